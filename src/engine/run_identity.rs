//! Which run and which job a run directory holds, written beside the ledger when the run is
//! founded (`run-identity`): still readable when the ledger is lost, emptied or replaced by
//! another run's, so such a directory is told as this job's damaged run, not passed over.

use std::path::Path;

/// The file's name in the run directory.
pub const RUN_IDENTITY_FILE_NAME: &str = "run-identity";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunIdentity {
    pub run_id: String,
    pub job_sha256: String,
}

impl RunIdentity {
    /// Writes the identity into `directory` (a new file put in place whole).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write(&self, directory: &Path) -> std::io::Result<()> {
        let path = directory.join(RUN_IDENTITY_FILE_NAME);
        let building = directory.join(format!("{RUN_IDENTITY_FILE_NAME}.new"));
        std::fs::write(
            &building,
            format!("run_id {}\njob_sha256 {}\n", self.run_id, self.job_sha256),
        )?;
        std::fs::rename(&building, path)
    }

    /// The identity written in `directory`, if one is there and whole.
    pub fn read(directory: &Path) -> Option<RunIdentity> {
        let text = std::fs::read_to_string(directory.join(RUN_IDENTITY_FILE_NAME)).ok()?;
        let mut run_id = None;
        let mut job_sha256 = None;
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("run_id", value)) => run_id = Some(value.to_owned()),
                Some(("job_sha256", value)) => job_sha256 = Some(value.to_owned()),
                _ => {}
            }
        }
        Some(RunIdentity {
            run_id: run_id?,
            job_sha256: job_sha256?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_reads_back_and_a_damaged_one_is_none() {
        let directory = tempfile::tempdir().unwrap();
        assert_eq!(RunIdentity::read(directory.path()), None);
        let identity = RunIdentity {
            run_id: "reviews-20261204T050750Z-0ea18f00".into(),
            job_sha256: "ab".repeat(32),
        };
        identity.write(directory.path()).unwrap();
        assert_eq!(RunIdentity::read(directory.path()), Some(identity));
        std::fs::write(directory.path().join(RUN_IDENTITY_FILE_NAME), "run_id x\n").unwrap();
        assert_eq!(RunIdentity::read(directory.path()), None);
    }
}
