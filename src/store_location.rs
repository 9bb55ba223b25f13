//! Which answer store a command uses, and why: `--no-store`, else what the run recorded when it
//! was founded (a resumed run keeps its store), else `DASHBATCH_STORE` (a file, or `off`), else
//! the job's `[reuse] store`, else the user's store in the dashbatch cache directory
//! (`$XDG_CACHE_HOME/dashbatch/answers.sqlite`, else `~/.cache/dashbatch/answers.sqlite`).

use std::path::PathBuf;

use crate::settings::{SettingPlaces, SettingSource};

/// The store file's name in the user's dashbatch cache directory.
pub const USER_STORE_FILE_NAME: &str = "answers.sqlite";

/// What the job file says of the store (`[reuse] store`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStoreSetting {
    /// `true` or unset: the user's store.
    UserStore,
    /// `false`.
    Off,
    /// A path, resolved against the job file's directory.
    File(PathBuf),
    /// `[reuse] deduplicate = false`: no store, whatever the flag, the environment or a run
    /// says (every row is its own sample; the store keeps one answer per request).
    NeverWithoutDeduplication,
}

/// The store in force: a file, or none; and the place that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreChoice {
    pub path: Option<PathBuf>,
    pub source: SettingSource,
}

/// The user's store, when there is a cache directory to keep it in.
pub fn user_store_path() -> Option<PathBuf> {
    crate::user_cache::dashbatch_cache_directory()
        .map(|directory| directory.join(USER_STORE_FILE_NAME))
}

/// `DASHBATCH_STORE`: a path, or `off` (also `none`, `false`, `0`) for no store.
fn environment_store() -> Option<Option<PathBuf>> {
    let value = std::env::var_os(crate::env::DASHBATCH_STORE)?;
    if value.is_empty() {
        return None;
    }
    let text = value.to_string_lossy().to_ascii_lowercase();
    if ["off", "none", "false", "0"].contains(&text.as_str()) {
        return Some(None);
    }
    Some(Some(PathBuf::from(value)))
}

/// Chooses the store by the precedence of `settings`: `--no-store`, the run's record
/// (`recorded`: `Some(None)` is a run founded without a store), `DASHBATCH_STORE`, the job file,
/// the user's store.
pub fn choose_store(
    no_store_flag: bool,
    recorded: Option<Option<PathBuf>>,
    job_setting: &JobStoreSetting,
) -> StoreChoice {
    let job_file = match job_setting {
        JobStoreSetting::NeverWithoutDeduplication => {
            return StoreChoice {
                path: None,
                source: SettingSource::JobFile("[reuse] deduplicate"),
            };
        }
        JobStoreSetting::UserStore => None,
        JobStoreSetting::Off => Some((None, "[reuse] store")),
        JobStoreSetting::File(path) => Some((Some(path.clone()), "[reuse] store")),
    };
    let setting = SettingPlaces {
        flag: no_store_flag.then_some((None, "--no-store")),
        run_ledger: recorded,
        environment: environment_store().map(|path| (path, crate::env::DASHBATCH_STORE)),
        job_file,
        default: Some(user_store_path()),
    }
    .resolve()
    .expect("a default is given");
    StoreChoice {
        path: setting.value,
        source: setting.source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_beats_the_record_which_beats_the_job_file() {
        let file = JobStoreSetting::File(PathBuf::from("/jobs/answers.sqlite"));
        assert_eq!(
            choose_store(true, Some(Some(PathBuf::from("/x"))), &file),
            StoreChoice {
                path: None,
                source: SettingSource::Flag("--no-store")
            }
        );
        assert_eq!(choose_store(false, Some(None), &file).path, None);
        assert_eq!(
            choose_store(
                false,
                Some(Some(PathBuf::from("/x"))),
                &JobStoreSetting::Off
            )
            .path,
            Some(PathBuf::from("/x"))
        );
        // Without deduplication nothing names a store, not even a run's record.
        assert_eq!(
            choose_store(
                false,
                Some(Some(PathBuf::from("/x"))),
                &JobStoreSetting::NeverWithoutDeduplication
            )
            .path,
            None
        );
    }
}
