//! One live process per run directory: an operating-system lock (`flock` through std's
//! `File::try_lock`) on `RUN_DIR/dashbatch.lock`, held for the whole life of `run`, `resume` and
//! `cancel`, and released by the kernel when the process ends, however it ends (`kill -9`
//! included), so a stale lock never needs cleaning up. The holder writes its pid, command and
//! start time into the file so a second process can say who holds it.
//!
//! The same kind of lock on `runs/.<job>.lock` makes choosing the run directory of a job atomic,
//! so two `dashbatch run JOB.toml` started together without `--run-dir` become one run.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lock file's name inside a run directory.
pub const RUN_LOCK_FILE_NAME: &str = "dashbatch.lock";

/// How often a `--wait`ing process tries the lock again.
const WAIT_RETRY_INTERVAL: Duration = Duration::from_millis(200);

/// How long a process that does not wait still tries a lock held elsewhere before it gives up:
/// long enough to outlast another process's look at whether the run is live
/// ([`is_locked_by_another_process`] holds the lock for an instant), far shorter than any run.
const BUSY_GRACE: Duration = Duration::from_millis(250);
/// How often it tries within that time.
const BUSY_GRACE_RETRY_INTERVAL: Duration = Duration::from_millis(10);

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct HeldLock {
    _file: File,
    pub path: PathBuf,
}

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "run directory `{directory}` is in use by another dashbatch process ({holder}); only one process may work on a run at a time, so nothing was changed. Wait for it with `--wait`, or follow it with `dashbatch status {directory}`"
    )]
    Busy { directory: String, holder: String },
    #[error("cannot lock `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Interrupted(#[from] crate::interrupt::Interrupted),
}

fn open_lock_file(path: &Path) -> Result<File, LockError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|source| LockError::Io {
            path: path.display().to_string(),
            source,
        })
}

/// What the holder of `path` wrote about itself, for the message a second process prints.
pub fn describe_holder(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let text = text.trim();
    if text.is_empty() {
        "a process that is just starting".to_owned()
    } else {
        text.lines().collect::<Vec<_>>().join(", ")
    }
}

fn write_holder(file: &mut File, command: &str) {
    let started = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let host = super::copied_run_holder::this_host();
    let text = format!(
        "pid {} on host `{host}`\ncommand `dashbatch {command}`\nstarted {started}\n",
        std::process::id()
    );
    // Best effort: the lock itself is what matters, the text only explains it.
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = file.write_all(text.as_bytes());
    let _ = file.flush();
}

/// Tries once to take the lock at `path`. `Ok(None)` when another process holds it.
pub fn try_lock_file(path: &Path, command: &str) -> Result<Option<HeldLock>, LockError> {
    let mut file = open_lock_file(path)?;
    match file.try_lock() {
        Ok(()) => {
            // A run directory copied while a process works on the original is that process's
            // until it ends: its lock file, copied, still names it.
            if path.file_name().and_then(|name| name.to_str()) == Some(RUN_LOCK_FILE_NAME) {
                let mut previous_holder = String::new();
                let _ = file.read_to_string(&mut previous_holder);
                if super::copied_run_holder::is_held_by_a_live_original(&previous_holder, path) {
                    return Ok(None);
                }
            }
            write_holder(&mut file, command);
            Ok(Some(HeldLock {
                _file: file,
                path: path.to_owned(),
            }))
        }
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(source)) => Err(LockError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// True when another process holds the lock of run directory `directory` now. Never creates a
/// lock file; a directory without one is not locked.
pub fn is_locked_by_another_process(directory: &Path) -> bool {
    let path = directory.join(RUN_LOCK_FILE_NAME);
    let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else {
        return false;
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(_)) => false,
    }
}

/// Takes the lock of the run directory `directory` (which must exist) for `command`. Without
/// `wait`, a lock held elsewhere is an error at once; with it, this waits (a signal ends the wait).
pub async fn lock_run_directory(
    directory: &Path,
    command: &str,
    wait: bool,
) -> Result<HeldLock, LockError> {
    lock_file(
        &directory.join(RUN_LOCK_FILE_NAME),
        directory,
        command,
        LockWait::from_flag(wait),
    )
    .await
}

/// Whether and how a process waits for a lock held elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Give up at once with [`LockError::Busy`].
    No,
    /// Wait, saying once on stderr who is waited for (`--wait`).
    Announced,
    /// Wait without a word: for locks held only for a moment (the per-job choice of a run).
    Quietly,
}

impl LockWait {
    pub fn from_flag(wait: bool) -> LockWait {
        if wait {
            LockWait::Announced
        } else {
            LockWait::No
        }
    }
}

/// Takes the lock at `path`, waiting for it when `wait` is set. `directory` names what the lock
/// protects in the message.
pub async fn lock_file(
    path: &Path,
    directory: &Path,
    command: &str,
    wait: LockWait,
) -> Result<HeldLock, LockError> {
    let mut announced = wait != LockWait::Announced;
    let started = std::time::Instant::now();
    loop {
        crate::interrupt::check()?;
        if let Some(held) = try_lock_file(path, command)? {
            return Ok(held);
        }
        if wait == LockWait::No && started.elapsed() < BUSY_GRACE {
            tokio::time::sleep(BUSY_GRACE_RETRY_INTERVAL).await;
            continue;
        }
        if wait == LockWait::No {
            return Err(LockError::Busy {
                directory: directory.display().to_string(),
                holder: describe_holder(path),
            });
        }
        if !announced {
            crate::console::say(&format!(
                "dashbatch: waiting for the other process on `{}` to finish ({})",
                directory.display(),
                describe_holder(path)
            ));
            announced = true;
        }
        tokio::time::sleep(WAIT_RETRY_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_until_the_first_is_dropped() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(RUN_LOCK_FILE_NAME);
        let first = try_lock_file(&path, "run job.toml").unwrap().unwrap();
        assert!(try_lock_file(&path, "resume").unwrap().is_none());
        assert!(is_locked_by_another_process(directory.path()));
        assert!(describe_holder(&path).contains(&format!("pid {}", std::process::id())));
        drop(first);
        assert!(!is_locked_by_another_process(directory.path()));
        assert!(try_lock_file(&path, "resume").unwrap().is_some());
    }

    fn lock_without_waiting(path: &Path) -> Result<HeldLock, LockError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(lock_file(path, Path::new("run"), "resume", LockWait::No))
    }

    #[test]
    fn a_lock_held_for_an_instant_by_a_look_does_not_turn_a_process_away() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(RUN_LOCK_FILE_NAME);
        // Another process's look at the run holds the lock for a moment (here longer than a
        // real look does).
        let look = try_lock_file(&path, "look").unwrap().unwrap();
        let looking = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            drop(look);
        });
        let held = lock_without_waiting(&path);
        looking.join().unwrap();
        assert!(held.is_ok(), "{:?}", held.err());
    }

    #[test]
    fn a_lock_held_by_a_live_run_turns_a_process_that_does_not_wait_away() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join(RUN_LOCK_FILE_NAME);
        let _live_run = try_lock_file(&path, "run job.toml").unwrap().unwrap();
        match lock_without_waiting(&path) {
            Err(LockError::Busy { holder, .. }) => assert!(holder.contains("run job.toml")),
            other => panic!("expected busy, got {other:?}"),
        }
    }

    #[test]
    fn a_directory_without_a_lock_file_is_not_locked_and_gets_none() {
        let directory = tempfile::tempdir().unwrap();
        assert!(!is_locked_by_another_process(directory.path()));
        assert!(!directory.path().join(RUN_LOCK_FILE_NAME).exists());
    }
}
