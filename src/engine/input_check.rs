//! The check that a run's input is still the one it planned, before its rows are joined to their
//! answers (a part rewritten with as many rows would otherwise be joined to another row's
//! answer): the digest of the bytes the join read, or a pass that hashes the input again.

use std::path::PathBuf;

use super::plan::input_digest;
use crate::table::DigestAlgorithm;

/// What the input's digest was when the run planned, and what to say when it is no longer.
#[derive(Clone)]
pub struct InputCheck {
    input_path: PathBuf,
    run_root: PathBuf,
    planned_digest: String,
}

impl InputCheck {
    pub fn new(input_path: PathBuf, run_root: PathBuf, planned_digest: String) -> InputCheck {
        InputCheck {
            input_path,
            run_root,
            planned_digest,
        }
    }

    /// How the planned digest was taken, and so how the input is hashed to compare with it.
    /// Planning refuses a run whose record holds a digest no algorithm writes
    /// ([`super::RunRecord::refuse_a_damaged_plan`]); were one to come here, no digest taken
    /// would equal it, and the input would be said changed.
    pub fn algorithm(&self) -> DigestAlgorithm {
        DigestAlgorithm::of_written(&self.planned_digest).unwrap_or(DigestAlgorithm::FOR_NEW_RUNS)
    }

    /// Whether `digest`, of the bytes the rows were read from, is the planned input's.
    ///
    /// # Errors
    /// [`Self::changed`] when it is not.
    pub fn judge_digest(&self, digest: &str) -> anyhow::Result<()> {
        if digest == self.planned_digest {
            return Ok(());
        }
        Err(self.changed())
    }

    /// Hashes the input again (a pass over all of it) and judges that digest.
    ///
    /// # Errors
    /// [`Self::changed`] when the input is not as planned (or gone); [`Self::unreadable`] when
    /// it is there but cannot be read.
    pub fn hash_again(&self) -> anyhow::Result<()> {
        if self.is_as_planned()? {
            return Ok(());
        }
        Err(self.changed())
    }

    /// Whether the input hashed again (a pass over all of it) has the planned digest; `false`
    /// when it changed or is gone.
    ///
    /// # Errors
    /// [`Self::unreadable`] when it is there but cannot be read (a permission, a disk's error):
    /// the advice for a changed input (restore it) would be the wrong one.
    pub fn is_as_planned(&self) -> anyhow::Result<bool> {
        match input_digest(&self.input_path, self.algorithm()) {
            Ok(digest) => Ok(self.judge_digest(&digest).is_ok()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(error) => match crate::interrupt::of_io_error(&error) {
                Some(interrupted) => Err(interrupted.into()),
                None => Err(self.unreadable(&error)),
            },
        }
    }

    /// The error of an input that is there but cannot be read to be checked.
    fn unreadable(&self, error: &std::io::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "cannot read input `{}` to check that it is the one run `{}` planned: {error}. The run is kept as it is: make the input readable and run `dashbatch resume {}`",
            self.input_path.display(),
            self.run_root.display(),
            self.run_root.display()
        )
    }

    /// The error of an input that changed since the run planned.
    pub fn changed(&self) -> anyhow::Error {
        anyhow::anyhow!(
            "input `{}` changed since run `{}` was planned, so its rows cannot be matched to their answers. The answers are paid for and kept in the run directory: restore the input as it was planned and run `dashbatch resume {}`",
            self.input_path.display(),
            self.run_root.display(),
            self.run_root.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_planned_digest_passes_and_another_or_a_missing_input_is_named_changed() {
        for algorithm in [DigestAlgorithm::Sha256, DigestAlgorithm::Xxh3_128] {
            a_change_is_found_by_a_digest_taken_with(algorithm);
        }
    }

    fn a_change_is_found_by_a_digest_taken_with(algorithm: DigestAlgorithm) {
        let directory = tempfile::tempdir().unwrap();
        let input = directory.path().join("input.csv");
        std::fs::write(&input, "id,text\n1,a\n").unwrap();
        let planned = input_digest(&input, algorithm).unwrap();
        let check = InputCheck::new(input.clone(), directory.path().join("run"), planned.clone());
        assert_eq!(check.algorithm(), algorithm);
        check.judge_digest(&planned).unwrap();
        check.hash_again().unwrap();
        let other = check.judge_digest("00").unwrap_err().to_string();
        assert!(other.contains("changed since run"), "{other}");
        std::fs::write(&input, "id,text\n1,b\n").unwrap();
        assert!(check.hash_again().is_err());
        std::fs::remove_file(&input).unwrap();
        let gone = check.hash_again().unwrap_err().to_string();
        assert!(gone.contains("changed since run"), "{gone}");
    }

    #[test]
    fn an_input_there_but_unreadable_is_said_so_not_said_changed() {
        let directory = tempfile::tempdir().unwrap();
        let input = directory.path().join("input.csv");
        std::fs::write(&input, "id,text\n1,a\n").unwrap();
        let planned = input_digest(&input, DigestAlgorithm::FOR_NEW_RUNS).unwrap();
        let check = InputCheck::new(input.clone(), directory.path().join("run"), planned);
        // A link to itself: there, and unreadable even to root, which no permission stops.
        std::fs::remove_file(&input).unwrap();
        std::os::unix::fs::symlink(&input, &input).unwrap();
        let error = check.hash_again().unwrap_err().to_string();
        assert!(error.contains("cannot read input"), "{error}");
        assert!(!error.contains("changed since run"), "{error}");
        assert!(check.is_as_planned().is_err());
    }

    #[test]
    fn a_partitioned_input_emptied_or_gone_is_said_changed() {
        let directory = tempfile::tempdir().unwrap();
        let parts = directory.path().join("parts");
        std::fs::create_dir(&parts).unwrap();
        std::fs::write(parts.join("a.csv"), "id,text\n1,a\n").unwrap();
        std::fs::write(parts.join("b.csv"), "id,text\n2,b\n").unwrap();
        let planned = input_digest(&parts, DigestAlgorithm::FOR_NEW_RUNS).unwrap();
        let check = InputCheck::new(parts.clone(), directory.path().join("run"), planned);
        check.hash_again().unwrap();
        std::fs::remove_file(parts.join("a.csv")).unwrap();
        std::fs::remove_file(parts.join("b.csv")).unwrap();
        let emptied = check.hash_again().unwrap_err().to_string();
        assert!(emptied.contains("changed since run"), "{emptied}");
        std::fs::remove_dir(&parts).unwrap();
        let gone = check.hash_again().unwrap_err().to_string();
        assert!(gone.contains("changed since run"), "{gone}");
    }
}
