//! The temporary directory `validate` and `estimate` plan into (a scratch ledger, spilled keys,
//! and `estimate`'s shard files, which it reads back), removed when dropped; a temporary directory that cannot be made is said with
//! where and what to do. A process killed outright (`kill -9`, out of memory) cannot remove its
//! own, which can hold gigabytes of shards and keys. So each holds an operating-system lock on a file
//! inside it for its whole life (released by the kernel however the process ends), and making a
//! scratch directory removes the others whose lock nobody holds: the process id in a name is
//! only for people, as a process in another container or on another machine sharing the
//! directory has ids of its own.

use std::fs::File;
use std::path::Path;

/// What every scratch directory's name starts with (then the process id, for people).
const SCRATCH_PREFIX: &str = "dashbatch-scratch-";
/// The file inside a scratch directory its process holds locked.
const LOCK_FILE_NAME: &str = "scratch.lock";

/// A scratch directory, removed when dropped, and the lock that says it is in use.
#[derive(Debug)]
pub struct ScratchDirectory {
    directory: tempfile::TempDir,
    /// Released after the directory is removed (fields drop in order).
    _lock: File,
}

impl ScratchDirectory {
    pub fn path(&self) -> &Path {
        self.directory.path()
    }
}

/// A new scratch directory under the system's temporary directory (`TMPDIR`).
///
/// # Errors
/// When it cannot be made, named with the place tried.
pub fn scratch_directory() -> anyhow::Result<ScratchDirectory> {
    scratch_directory_in(&std::env::temp_dir())
}

/// A new scratch directory under `parent`, after removing those left there by processes that
/// are gone.
///
/// # Errors
/// When it cannot be made, named with the place tried.
pub fn scratch_directory_in(parent: &Path) -> anyhow::Result<ScratchDirectory> {
    remove_scratch_of_gone_processes(parent);
    let cannot = |error: std::io::Error| {
        anyhow::anyhow!(
            "cannot make a scratch directory for the plan's files in `{}` ({error}); set TMPDIR to a writable directory with room for them",
            parent.display()
        )
    };
    let directory = tempfile::Builder::new()
        .prefix(&format!("{SCRATCH_PREFIX}{}-", std::process::id()))
        .tempdir_in(parent)
        .map_err(cannot)?;
    // Locked before it is named, so another process never finds the lock file unheld while
    // this one is alive.
    let unnamed = directory.path().join(format!("{LOCK_FILE_NAME}.new"));
    let lock = File::create(&unnamed).map_err(cannot)?;
    lock.try_lock().map_err(|error| cannot(error.into()))?;
    std::fs::rename(&unnamed, directory.path().join(LOCK_FILE_NAME)).map_err(cannot)?;
    Ok(ScratchDirectory {
        directory,
        _lock: lock,
    })
}

/// Removes the scratch directories in `parent` whose lock nobody holds. One without a lock file
/// (being made this instant) is left alone, as is one that cannot be removed.
fn remove_scratch_of_gone_processes(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let is_scratch = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(SCRATCH_PREFIX));
        if !is_scratch || !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            continue;
        }
        let Ok(lock) = File::options()
            .write(true)
            .open(entry.path().join(LOCK_FILE_NAME))
        else {
            continue;
        };
        if lock.try_lock().is_ok() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_whose_lock_nobody_holds_is_removed_and_nothing_else() {
        let parent = tempfile::tempdir().unwrap();
        // Left by a process that is gone: its lock file is there, held by nobody.
        let gone = parent.path().join(format!("{SCRATCH_PREFIX}12345-abc"));
        std::fs::create_dir(&gone).unwrap();
        std::fs::write(gone.join(LOCK_FILE_NAME), "").unwrap();
        std::fs::write(gone.join("shard-00000.jsonl"), "{}\n").unwrap();
        // In use (here by this process, as another would hold it).
        let live = scratch_directory_in(parent.path()).unwrap();
        // Being made: no lock file yet.
        let being_made = parent.path().join(format!("{SCRATCH_PREFIX}12346-abc"));
        std::fs::create_dir(&being_made).unwrap();
        let not_ours = parent.path().join("someone-elses");
        std::fs::create_dir(&not_ours).unwrap();
        std::fs::write(not_ours.join(LOCK_FILE_NAME), "").unwrap();
        let a_file = parent.path().join(format!("{SCRATCH_PREFIX}12347-file"));
        std::fs::write(&a_file, "kept").unwrap();

        let scratch = scratch_directory_in(parent.path()).unwrap();
        assert!(!gone.exists(), "a gone process's scratch is removed");
        assert!(live.path().exists(), "a scratch in use is kept");
        assert!(being_made.exists() && not_ours.exists() && a_file.exists());
        let name = scratch.path().file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with(&format!("{SCRATCH_PREFIX}{}-", std::process::id())),
            "{name}"
        );
        let removed_with_its_process = scratch.path().to_owned();
        drop(scratch);
        assert!(!removed_with_its_process.exists());
    }

    #[test]
    fn a_parent_that_cannot_hold_one_is_named() {
        let parent = tempfile::tempdir().unwrap();
        let missing = parent.path().join("missing");
        let error = scratch_directory_in(&missing).unwrap_err().to_string();
        assert!(
            error.contains("cannot make a scratch directory") && error.contains("missing"),
            "{error}"
        );
    }
}
