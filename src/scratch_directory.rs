//! The temporary directory `validate` and `estimate` plan into (shard files, a scratch ledger,
//! spilled keys), removed when dropped; a temporary directory that cannot be made is said with
//! where and what to do.

/// A new scratch directory under the system's temporary directory (`TMPDIR`).
///
/// # Errors
/// When it cannot be made, named with the place tried.
pub fn scratch_directory() -> anyhow::Result<tempfile::TempDir> {
    tempfile::tempdir().map_err(|error| {
        anyhow::anyhow!(
            "cannot make a scratch directory for the shard files in `{}` ({error}); set TMPDIR to a writable directory with room for them",
            std::env::temp_dir().display()
        )
    })
}
