//! The run directory: where a run keeps its shards, downloaded results, ledger, report and
//! (unless told otherwise) its output.

use std::path::{Path, PathBuf};

/// The UTC time in a default run directory's name, e.g. `20261204T050750Z`.
const STAMP_FORMAT: &str = "%Y%m%dT%H%M%SZ";
const STAMP_LENGTH: usize = 16;

#[derive(Debug, Clone)]
pub struct RunDirectory {
    pub root: PathBuf,
    /// The run's unique id, recorded in its ledger; set once the ledger is open.
    unique_run_id: Option<String>,
}

impl RunDirectory {
    pub fn new(root: PathBuf) -> RunDirectory {
        RunDirectory {
            root,
            unique_run_id: None,
        }
    }

    /// A fresh run id: the directory's name and a random suffix, so two runs in directories of
    /// the same name (say, `run`) never mistake each other's files or batches for their own.
    pub fn new_run_id(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(std::process::id().to_le_bytes());
        hasher.update(format!("{:?}", std::time::SystemTime::now()).as_bytes());
        hasher.update(self.root.display().to_string().as_bytes());
        let suffix = hex::encode(hasher.finalize());
        format!("{}-{}", self.directory_name(), &suffix[..8])
    }

    pub fn set_run_id(&mut self, run_id: String) {
        self.unique_run_id = Some(run_id);
    }

    fn directory_name(&self) -> String {
        self.root
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".to_owned())
    }

    /// `runs/<job>-<UTC timestamp>` below the current directory, or, when a run of the same
    /// second has that name already, `runs/<job>-<UTC timestamp>-2` (`-3`, ...).
    pub fn default_for(job_name: &str) -> RunDirectory {
        let stamp = chrono::Utc::now().format(STAMP_FORMAT);
        let name = format!("{job_name}-{stamp}");
        let runs = PathBuf::from("runs");
        let mut path = runs.join(&name);
        let mut number = 2;
        while path.exists() {
            path = runs.join(format!("{name}-{number}"));
            number += 1;
        }
        RunDirectory::new(path)
    }

    /// Whether `name` is one [`Self::default_for`] gives a run of `job_name`: a name of another
    /// job that starts with this one's (`reviews-en` beside `reviews`) is not.
    pub fn is_default_name(name: &str, job_name: &str) -> bool {
        name.strip_prefix(job_name)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|rest| {
                let rest = rest.as_bytes();
                let (stamp, number) = rest.split_at(rest.len().min(STAMP_LENGTH));
                let number_fits = match number {
                    [] => true,
                    [b'-', digits @ ..] => {
                        !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
                    }
                    _ => false,
                };
                stamp.len() == STAMP_LENGTH
                    && stamp[8] == b'T'
                    && stamp[15] == b'Z'
                    && stamp[..8]
                        .iter()
                        .chain(&stamp[9..15])
                        .all(u8::is_ascii_digit)
                    && number_fits
            })
    }

    /// The shard whose result file is named `name` (`shard-00003.output.jsonl`,
    /// `shard-00003.errors.jsonl`), as [`Self::results_paths`] names them.
    pub fn shard_of_result_file_name(name: &str) -> Option<u64> {
        let (index, kind) = name.strip_prefix("shard-")?.split_once('.')?;
        matches!(kind, "output.jsonl" | "errors.jsonl")
            .then(|| index.parse().ok())
            .flatten()
    }

    /// The run id that goes into upload names and batch metadata.
    pub fn run_id(&self) -> String {
        self.unique_run_id
            .clone()
            .unwrap_or_else(|| self.directory_name())
    }

    pub fn shards_directory(&self) -> PathBuf {
        self.root.join("shards")
    }

    pub fn results_directory(&self) -> PathBuf {
        self.root.join("results")
    }

    pub fn shard_path(&self, file_name: &str) -> PathBuf {
        self.shards_directory().join(file_name)
    }

    pub fn output_results_path(&self, shard_index: u64) -> PathBuf {
        self.results_directory()
            .join(format!("shard-{shard_index:05}.output.jsonl"))
    }

    pub fn error_results_path(&self, shard_index: u64) -> PathBuf {
        self.results_directory()
            .join(format!("shard-{shard_index:05}.errors.jsonl"))
    }

    /// A shard's two result files, output then errors: the order they are read in.
    pub fn results_paths(&self, shard_index: u64) -> [PathBuf; 2] {
        [
            self.output_results_path(shard_index),
            self.error_results_path(shard_index),
        ]
    }

    pub fn report_path(&self) -> PathBuf {
        self.root.join("report.json")
    }

    pub fn default_output_path(&self, extension: &str) -> PathBuf {
        self.root.join(format!("output.{extension}"))
    }

    pub fn create(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(self.shards_directory())?;
        std::fs::create_dir_all(self.results_directory())?;
        restrict_directory(&self.root);
        Ok(())
    }
}

fn restrict_directory(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_file_names_give_their_shard() {
        let run = RunDirectory::new(PathBuf::from("run"));
        for path in run.results_paths(3) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(
                RunDirectory::shard_of_result_file_name(&name),
                Some(3),
                "{name}"
            );
        }
        assert_eq!(
            RunDirectory::shard_of_result_file_name("shard-00003.jsonl"),
            None
        );
        assert_eq!(
            RunDirectory::shard_of_result_file_name("shard-00003.output.partial"),
            None
        );
        assert_eq!(RunDirectory::shard_of_result_file_name("notes.txt"), None);
    }
}
