//! The temporary directory `validate` and `estimate` plan into (shard files, a scratch ledger,
//! spilled keys), removed when dropped; a temporary directory that cannot be made is said with
//! where and what to do. A process killed outright (`kill -9`, out of memory) cannot remove its
//! own, which can hold gigabytes of shards: each is named for its process, and the next one made
//! removes those of processes that are gone.

use std::path::Path;

/// What every scratch directory's name starts with, before its process id and a `-`.
const SCRATCH_PREFIX: &str = "dashbatch-scratch-";

/// A new scratch directory under the system's temporary directory (`TMPDIR`).
///
/// # Errors
/// When it cannot be made, named with the place tried.
pub fn scratch_directory() -> anyhow::Result<tempfile::TempDir> {
    scratch_directory_in(&std::env::temp_dir())
}

/// A new scratch directory under `parent`, after removing those left there by processes that
/// are gone.
///
/// # Errors
/// When it cannot be made, named with the place tried.
pub fn scratch_directory_in(parent: &Path) -> anyhow::Result<tempfile::TempDir> {
    remove_scratch_of_gone_processes(parent);
    tempfile::Builder::new()
        .prefix(&format!("{SCRATCH_PREFIX}{}-", std::process::id()))
        .tempdir_in(parent)
        .map_err(|error| {
            anyhow::anyhow!(
                "cannot make a scratch directory for the shard files in `{}` ({error}); set TMPDIR to a writable directory with room for them",
                parent.display()
            )
        })
}

/// Removes the scratch directories in `parent` whose process is known to be gone: only where
/// the system lists its live processes in `/proc`, so elsewhere nothing is removed. A
/// directory that cannot be removed is left as it is.
fn remove_scratch_of_gone_processes(parent: &Path) {
    let processes = Path::new("/proc");
    if !processes.join("self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(process_id) = name
            .to_str()
            .and_then(|name| name.strip_prefix(SCRATCH_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(process_id, _)| process_id.parse::<u32>().ok())
        else {
            continue;
        };
        let is_directory = entry.file_type().is_ok_and(|kind| kind.is_dir());
        if is_directory && !processes.join(process_id.to_string()).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_left_by_a_gone_process_is_removed_and_nothing_else() {
        if !Path::new("/proc/self").exists() {
            return;
        }
        let parent = tempfile::tempdir().unwrap();
        // Beyond any process id Linux hands out (at most 2^22).
        let gone = parent.path().join(format!("{SCRATCH_PREFIX}99999999-abc"));
        std::fs::create_dir(&gone).unwrap();
        std::fs::write(gone.join("shard-00000.jsonl"), "{}\n").unwrap();
        let live = parent
            .path()
            .join(format!("{SCRATCH_PREFIX}{}-abc", std::process::id()));
        std::fs::create_dir(&live).unwrap();
        let not_ours = parent.path().join("dashbatch-scratch-notapid-abc");
        std::fs::create_dir(&not_ours).unwrap();
        let a_file = parent.path().join(format!("{SCRATCH_PREFIX}99999998-file"));
        std::fs::write(&a_file, "kept").unwrap();

        let scratch = scratch_directory_in(parent.path()).unwrap();
        assert!(!gone.exists(), "a gone process's scratch is removed");
        assert!(live.exists(), "a live process's scratch is kept");
        assert!(not_ours.exists() && a_file.exists());
        let name = scratch.path().file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with(&format!("{SCRATCH_PREFIX}{}-", std::process::id())),
            "{name}"
        );
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
