//! A run directory copied (or put back from a snapshot) while a process still works on the
//! original: the copy's lock file is another file, so its lock is free, yet the two processes
//! would create the same run's batches twice. The copy's lock file still names the process that
//! held the original when it was copied; when that process is alive on this host and holds a
//! run directory's lock file other than this one (or this path's, since deleted), the copy is
//! busy until it ends. Read through `/proc`: a process of another user, or another host, is not
//! seen (the provider's list, checked before a resumed run sends anything, is the net there).

use std::path::Path;

use super::run_identity::RunIdentity;

/// What a lock file's holder wrote about itself: its pid and host.
fn holder_of(text: &str) -> Option<(u32, &str)> {
    let line = text.lines().next()?;
    let rest = line.strip_prefix("pid ")?;
    let (pid, rest) = rest.split_once(' ')?;
    let host = rest.strip_prefix("on host `")?.strip_suffix('`')?;
    Some((pid.parse().ok()?, host))
}

/// This host's name, as lock files record it.
pub fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

/// Whether a process's open file `target` (a `/proc/PID/fd` link) is the lock file of another
/// copy of the run `run_id`, whose lock file is `own_lock` (canonical, as `/proc` names files):
/// this path's file since deleted (a snapshot put in its place), or another path whose
/// directory holds the same run's identity (so a pid reused by a process working on another run
/// is not taken for the holder).
fn is_another_copys_lock(target: &str, own_lock: &Path, run_id: &str) -> bool {
    let (path, deleted) = match target.strip_suffix(" (deleted)") {
        Some(path) => (path, true),
        None => (target, false),
    };
    let path = Path::new(path);
    if path.file_name() != own_lock.file_name() {
        return false;
    }
    if path == own_lock {
        return deleted;
    }
    path.parent()
        .and_then(RunIdentity::read)
        .is_some_and(|identity| identity.run_id == run_id)
}

/// Whether `previous_holder` (the text the lock file at `own_lock` held before this process
/// took it) names another live process on this host that holds the lock file of another copy
/// of the same run.
pub fn is_held_by_a_live_original(previous_holder: &str, own_lock: &Path) -> bool {
    let Some((pid, host)) = holder_of(previous_holder) else {
        return false;
    };
    if pid == std::process::id() || host != this_host() {
        return false;
    }
    // A directory not yet founded has sent nothing, and has no run to share.
    let Some(run_id) = own_lock
        .parent()
        .and_then(RunIdentity::read)
        .map(|identity| identity.run_id)
    else {
        return false;
    };
    let Ok(open_files) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    let own_lock = std::fs::canonicalize(own_lock).unwrap_or_else(|_| own_lock.to_owned());
    open_files
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .any(|target| is_another_copys_lock(&target.to_string_lossy(), &own_lock, &run_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_read_from_what_the_lock_file_says() {
        let text = "pid 4242 on host `build-1`\ncommand `dashbatch run job.toml`\nstarted 2026-12-04T10:00:00Z\n";
        assert_eq!(holder_of(text), Some((4242, "build-1")));
        assert_eq!(holder_of("pid x on host `a`"), None);
        assert_eq!(holder_of(""), None);
    }

    /// Makes `directory/dashbatch.lock` in a directory of run `run_id`; returns the lock's path.
    fn run_directory_of(directory: &Path, run_id: &str) -> std::path::PathBuf {
        std::fs::create_dir_all(directory).unwrap();
        RunIdentity {
            run_id: run_id.to_owned(),
            job_sha256: "ab".repeat(32),
        }
        .write(directory)
        .unwrap();
        let lock = directory.join("dashbatch.lock");
        std::fs::write(&lock, "").unwrap();
        lock
    }

    #[test]
    fn another_copys_lock_is_this_path_deleted_or_another_path_of_the_same_run() {
        let directory = tempfile::tempdir().unwrap();
        let own = run_directory_of(&directory.path().join("copy"), "run-a");
        let original = run_directory_of(&directory.path().join("run"), "run-a");
        let other_run = run_directory_of(&directory.path().join("other"), "run-b");
        let own = std::fs::canonicalize(&own).unwrap();
        let text = |path: &Path| std::fs::canonicalize(path).unwrap().display().to_string();
        assert!(!is_another_copys_lock(&text(&own), &own, "run-a"));
        assert!(is_another_copys_lock(
            &format!("{} (deleted)", text(&own)),
            &own,
            "run-a"
        ));
        assert!(is_another_copys_lock(&text(&original), &own, "run-a"));
        assert!(!is_another_copys_lock(&text(&other_run), &own, "run-a"));
        let ledger = directory.path().join("run/ledger.sqlite");
        assert!(!is_another_copys_lock(
            &ledger.display().to_string(),
            &own,
            "run-a"
        ));
    }

    #[test]
    fn a_process_that_holds_another_copys_lock_is_a_live_original() {
        let directory = tempfile::tempdir().unwrap();
        let original = run_directory_of(&directory.path().join("run"), "run-a");
        let copy = run_directory_of(&directory.path().join("copy"), "run-a");
        // A child process (a live pid other than this one) holding the original's lock file open.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .stdin(std::fs::File::open(&original).unwrap())
            .spawn()
            .unwrap();
        let text = format!(
            "pid {} on host `{}`\ncommand `dashbatch run`\n",
            child.id(),
            this_host()
        );
        let seen = is_held_by_a_live_original(&text, &copy);
        // A process holding only the copy's own lock file holds no other copy's.
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .stdin(std::fs::File::open(&copy).unwrap())
            .spawn()
            .unwrap();
        let other_text = format!("pid {} on host `{}`\n", other.id(), this_host());
        let not_seen = is_held_by_a_live_original(&other_text, &copy);
        let elsewhere = is_held_by_a_live_original(
            &format!("pid {} on host `another-host`\n", child.id()),
            &copy,
        );
        child.kill().unwrap();
        other.kill().unwrap();
        let _ = (child.wait(), other.wait());
        assert!(seen);
        assert!(!not_seen);
        assert!(!elsewhere);
    }
}
