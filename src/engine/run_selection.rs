//! Which run directory a command works on, and taking its lock: `--run-dir` as given (refusing a
//! directory that is not a run directory), or for `dashbatch run JOB.toml` without it, the
//! unfinished or live run of the same job, else a new one. The choice is made under the job's
//! lock so that two processes started together agree on one run.

use std::path::{Path, PathBuf};

use super::RunDirectory;
use super::damaged_run::RunDamage;
use super::run_failure::RunFailure;
use super::run_lock::{
    HeldLock, LockError, LockWait, RUN_LOCK_FILE_NAME, is_locked_by_another_process, lock_file,
    lock_run_directory,
};
use super::run_record::RunRecord;
use crate::job::Job;
use crate::ledger::{
    EffectKind, FOUNDING_LEDGER_FILE_NAME, LEDGER_FILE_NAME, Ledger, SQLITE_FILE_SUFFIXES,
};

/// The directory below the current one where runs without `--run-dir` live.
const RUNS_DIRECTORY: &str = "runs";

/// An existing run of a job that `dashbatch run` should continue rather than start anew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExistingRun {
    /// Another process is working on it now.
    Live(PathBuf),
    /// Nobody is working on it; it was submitted (or started submitting) and did not finish.
    Unfinished(PathBuf),
    /// Nobody is working on it, and its ledger was lost, damaged or put back older while its
    /// work is there (what [`super::damaged_run::damage_of_run`] says): whether it finished
    /// cannot be told, and it is this job's by its ledger or by its name.
    Damaged(PathBuf, RunDamage),
}

/// Whether `name` is what [`RunDirectory::default_for`] names a run of `job_name`, with
/// `-rehearsal` after the job's name for a rehearsal.
fn is_default_run_directory_name(name: &str, job_name: &str, rehearse: bool) -> bool {
    if rehearse {
        RunDirectory::is_default_name(name, &format!("{job_name}-rehearsal"))
    } else {
        RunDirectory::is_default_name(name, job_name)
    }
}

/// The newest live, unfinished or damaged run of this very job (same job file contents) under
/// `runs/`, among the directories whose names start with the job's (`run --run-dir
/// runs/<job>-big` included). A founded ledger says which job a run is of; a run without one
/// (live before its ledger is founded, or damaged) is this job's only by the exact name
/// `dashbatch run` gives its runs. A live run counts even before its ledger exists (it may be
/// planning); an idle one only once it has submitted or announced an upload, so a run that
/// never spent anything is not revived.
pub fn find_existing_run(job: &Job, rehearse: bool) -> Option<ExistingRun> {
    let prefix = format!("{}-", job.name);
    let rehearsal_prefix = format!("{}-rehearsal-", job.name);
    let mut candidates: Vec<(PathBuf, bool)> = std::fs::read_dir(RUNS_DIRECTORY)
        .ok()?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_dir())
        .filter_map(|path| {
            let name = path.file_name()?.to_string_lossy().into_owned();
            (name.starts_with(&prefix) && name.starts_with(&rehearsal_prefix) == rehearse).then(
                || {
                    let named_as_this_jobs =
                        is_default_run_directory_name(&name, &job.name, rehearse);
                    (path, named_as_this_jobs)
                },
            )
        })
        .collect();
    candidates.sort();
    for (path, named_as_this_jobs) in candidates.into_iter().rev() {
        let founded_job = || {
            Ledger::exists_in(&path)
                .then(|| Ledger::open_read_only(&path).ok())
                .flatten()
                .and_then(|ledger| RunRecord::job_sha256(&ledger))
        };
        if is_locked_by_another_process(&path) {
            // Live: its ledger may not exist yet, and then it is this job's only if it is
            // planning this job; a founded ledger says which job it runs.
            let same_job = match founded_job() {
                Some(job_sha256) => job_sha256 == job.job_file_sha256,
                None => named_as_this_jobs,
            };
            if same_job {
                return Some(ExistingRun::Live(path));
            }
            continue;
        }
        if let Some(damage) = super::damaged_run::damage_of_run(&path) {
            let this_jobs = match &damage.job_sha256 {
                Some(job_sha256) => *job_sha256 == job.job_file_sha256,
                None => named_as_this_jobs,
            };
            if this_jobs {
                return Some(ExistingRun::Damaged(path, damage));
            }
            continue;
        }
        if is_unfinished_submitted_run(&path, job) {
            return Some(ExistingRun::Unfinished(path));
        }
    }
    None
}

fn is_unfinished_submitted_run(path: &Path, job: &Job) -> bool {
    if !Ledger::exists_in(path) {
        return false;
    }
    // Not locked by this process (yet): read only.
    let Ok(ledger) = Ledger::open_read_only(path) else {
        return false;
    };
    let (same_job, finished) = match RunRecord::read(&ledger) {
        Ok(record) => (
            record
                .founding
                .as_ref()
                .is_some_and(|founding| founding.job_sha256 == job.job_file_sha256),
            record.finished,
        ),
        // A damaged record of this job is taken up, so that its error is told, rather than
        // passed over for a new run that sends and bills its rows again.
        Err(_) => (
            RunRecord::job_sha256(&ledger).is_some_and(|sha256| sha256 == job.job_file_sha256),
            RunRecord::finished_alone(&ledger),
        ),
    };
    if !same_job || finished {
        return false;
    }
    let announced = ledger.count_effects(EffectKind::Upload).unwrap_or(0) > 0;
    any_shard_sent(&ledger) || announced
}

/// Whether a shard of the run has a file uploaded or a batch made. Shards that cannot be read (a
/// ledger an older dashbatch left) may have been: the run is kept and taken up again rather
/// than its rows sent a second time.
fn any_shard_sent(ledger: &Ledger) -> bool {
    ledger
        .shards()
        .map(|shards| {
            shards
                .iter()
                .any(|shard| shard.file_id.is_some() || shard.batch_id.is_some())
        })
        .unwrap_or(true)
}

fn lock_failure(error: LockError) -> RunFailure {
    match error {
        LockError::Interrupted(interrupted) => RunFailure::interrupted(interrupted),
        busy @ LockError::Busy { .. } => RunFailure::busy(busy),
        other => RunFailure::local(other),
    }
}

/// Refuses a `--run-dir` that exists with other content and is no dashbatch run directory, so
/// a run never writes its ledger and output among a user's own files.
pub fn refuse_foreign_directory(directory: &Path) -> Result<(), RunFailure> {
    // A run whose ledger (and lock file) were lost is told as such, not as a stranger's files.
    super::damaged_run::refuse_a_damaged_run(directory)?;
    let Ok(entries) = std::fs::read_dir(directory) else {
        if directory.exists() && !directory.is_dir() {
            return Err(RunFailure::local(anyhow::anyhow!(
                "`--run-dir {}` is a file, not a directory; choose a new directory for the run",
                directory.display()
            )));
        }
        return Ok(());
    };
    let names: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    let is_run_directory = names.iter().any(|name| {
        is_ledger_file_name(name)
            || name == RUN_LOCK_FILE_NAME
            || name == super::run_identity::RUN_IDENTITY_FILE_NAME
    });
    if names.is_empty() || is_run_directory {
        return Ok(());
    }
    let mut shown: Vec<&str> = names.iter().map(String::as_str).take(3).collect();
    shown.sort();
    Err(RunFailure::local(anyhow::anyhow!(
        "`--run-dir {}` is not empty and is not a dashbatch run directory (it holds {}{}); dashbatch would write its ledger and output among these files. Choose a new or empty directory",
        directory.display(),
        shown
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", "),
        if names.len() > 3 { ", ..." } else { "" }
    )))
}

/// `ledger.sqlite`, a ledger being founded, or the journal files SQLite keeps beside either.
fn is_ledger_file_name(name: &str) -> bool {
    [LEDGER_FILE_NAME, FOUNDING_LEDGER_FILE_NAME]
        .iter()
        .any(|ledger| {
            name.strip_prefix(ledger)
                .is_some_and(|suffix| suffix.is_empty() || SQLITE_FILE_SUFFIXES.contains(&suffix))
        })
}

/// Creates (if needed) and locks the run directory `directory` for `command`.
pub async fn open_and_lock(
    directory: &Path,
    command: &str,
    wait: bool,
) -> Result<HeldLock, RunFailure> {
    refuse_foreign_directory(directory)?;
    RunDirectory::new(directory.to_owned())
        .create()
        .map_err(|error| {
            RunFailure::local(anyhow::anyhow!(
                "cannot create the run directory `{}`: {error}",
                directory.display()
            ))
        })?;
    lock_run_directory(directory, command, wait)
        .await
        .map_err(lock_failure)
}

/// Locks an existing run directory (`resume`, `cancel`): it must hold a ledger. One without a
/// ledger yet whose lock another process holds is being founded by it (`run --run-dir` started
/// together with this command): busy, not a stranger's directory.
pub async fn lock_existing(
    directory: &Path,
    command: &str,
    wait: bool,
) -> Result<HeldLock, RunFailure> {
    // A directory holding nothing but (at most) a lock file may be one `run --run-dir` has just
    // made and is about to lock and found: give it a moment to show which.
    let fresh = |directory: &Path| {
        std::fs::read_dir(directory).is_ok_and(|entries| {
            entries
                .flatten()
                .all(|entry| entry.file_name() == RUN_LOCK_FILE_NAME)
        })
    };
    if !Ledger::exists_in(directory) && fresh(directory) {
        for _ in 0..20 {
            if Ledger::exists_in(directory) || is_locked_by_another_process(directory) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    if !Ledger::exists_in(directory) && is_locked_by_another_process(directory) {
        // Busy at once, or (`--wait`) once the founder is done.
        let held = lock_run_directory(directory, command, wait)
            .await
            .map_err(lock_failure)?;
        if Ledger::exists_in(directory) {
            return Ok(held);
        }
    }
    if !Ledger::exists_in(directory) {
        super::damaged_run::refuse_a_damaged_run(directory)?;
        return Err(RunFailure::local(anyhow::anyhow!(
            "`{}` is not a run directory (it has no {LEDGER_FILE_NAME})",
            directory.display()
        )));
    }
    lock_run_directory(directory, command, wait)
        .await
        .map_err(lock_failure)
}

/// Removes a run directory this process created for a run that failed before anything was
/// uploaded (a refused output, a bad input row, a budget refusal), so that a refused `run`
/// leaves nothing that a later `run --run-dir` would mistake for a run to continue. A directory
/// whose ledger announced an upload or holds a batch is kept: it may be needed to reconcile.
pub fn discard_unspent_run_directory(directory: &Path) {
    if Ledger::exists_in(directory) {
        let Ok(ledger) = Ledger::open(directory) else {
            return;
        };
        let announced = ledger.count_effects(EffectKind::Upload).unwrap_or(1) > 0
            || ledger.count_effects(EffectKind::CreateBatch).unwrap_or(1) > 0;
        if announced || any_shard_sent(&ledger) {
            return;
        }
    }
    // Out of sight first: a process killed while removing leaves a hidden directory, never a
    // run directory without its ledger that would be taken for a damaged run.
    let hidden = directory.file_name().and_then(|name| {
        let hidden = directory.with_file_name(format!(".{}.discarded", name.to_string_lossy()));
        std::fs::rename(directory, &hidden).ok().map(|()| hidden)
    });
    let _ = std::fs::remove_dir_all(hidden.as_deref().unwrap_or(directory));
}

/// A run directory chosen and locked for `run`, and whether this process created it.
pub struct ChosenRunDirectory {
    pub path: PathBuf,
    pub lock: HeldLock,
    pub created: bool,
}

/// For `dashbatch run JOB.toml` without `--run-dir`: under the job's lock, the live or
/// unfinished run of this job, else a new run directory; returned locked.
pub async fn choose_and_lock_run_directory(
    job: &Job,
    rehearse: bool,
    wait: bool,
) -> Result<ChosenRunDirectory, RunFailure> {
    if Path::new(RUNS_DIRECTORY).exists() && !Path::new(RUNS_DIRECTORY).is_dir() {
        return Err(RunFailure::local(anyhow::anyhow!(
            "`{RUNS_DIRECTORY}` is a file, but dashbatch keeps its run directories in a directory of that name; move the file away, or choose a run directory with `--run-dir`"
        )));
    }
    std::fs::create_dir_all(RUNS_DIRECTORY).map_err(|error| {
        RunFailure::local(anyhow::anyhow!(
            "cannot create the `{RUNS_DIRECTORY}` directory for the run: {error}; choose a run directory with `--run-dir`"
        ))
    })?;
    let job_lock_path =
        Path::new(RUNS_DIRECTORY).join(format!(".{}.lock", job.name.replace('/', "_")));
    // Held only while choosing, never while waiting for a run: always safe to wait for.
    let job_lock = lock_file(
        &job_lock_path,
        Path::new(RUNS_DIRECTORY),
        "run",
        LockWait::Quietly,
    )
    .await
    .map_err(lock_failure)?;
    let command = format!("run {}", job.job_file.display());
    let directory = match find_existing_run(job, rehearse) {
        Some(ExistingRun::Live(path)) => {
            drop(job_lock);
            if !wait {
                return Err(lock_failure(LockError::Busy {
                    directory: path.display().to_string(),
                    holder: super::run_lock::describe_holder(&path.join(RUN_LOCK_FILE_NAME)),
                }));
            }
            let held = lock_run_directory(&path, &command, true)
                .await
                .map_err(lock_failure)?;
            crate::console::say(&format!(
                "dashbatch: continuing the run `{}` of this job that another process was working on",
                path.display()
            ));
            return Ok(ChosenRunDirectory {
                path,
                lock: held,
                created: false,
            });
        }
        Some(ExistingRun::Damaged(path, damage)) => {
            drop(job_lock);
            return Err(super::damaged_run::damaged_run_failure(&path, &damage));
        }
        Some(ExistingRun::Unfinished(path)) => {
            crate::console::say(&format!(
                "dashbatch: continuing the unfinished run `{}` of this job (pass `--run-dir` to choose another)",
                path.display()
            ));
            path
        }
        None if rehearse => RunDirectory::default_for(&format!("{}-rehearsal", job.name)).root,
        None => RunDirectory::default_for(&job.name).root,
    };
    let created = !directory.exists();
    let held = open_and_lock(&directory, &command, wait).await?;
    drop(job_lock);
    Ok(ChosenRunDirectory {
        path: directory,
        lock: held,
        created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_directory_is_this_jobs_only_by_its_exact_default_name() {
        let stamp = "20261204T050750Z";
        // (name, rehearsal, whether it is a run `dashbatch run` named for job `reviews`)
        let cases = [
            (format!("reviews-{stamp}"), false, true),
            (format!("reviews-{stamp}"), true, false),
            (format!("reviews-rehearsal-{stamp}"), true, true),
            (format!("reviews-rehearsal-{stamp}"), false, false),
            // Another job whose name starts with this one's.
            (format!("reviews-en-{stamp}"), false, false),
            // A second run in the same second.
            (format!("reviews-{stamp}-2"), false, true),
            ("reviews-".to_owned(), false, false),
            ("reviews-2026120XT050750Z".to_owned(), false, false),
            (format!("reviews-{stamp}.bak"), false, false),
            (format!("reviews-{stamp}-"), false, false),
            (format!("reviews-{stamp}-x"), false, false),
        ];
        for (name, rehearse, expected) in cases {
            assert_eq!(
                is_default_run_directory_name(&name, "reviews", rehearse),
                expected,
                "{name}, rehearsal {rehearse}"
            );
        }
    }

    #[test]
    fn a_directory_holding_only_dashbatch_files_is_a_run_directory_and_others_are_refused() {
        let directory = tempfile::tempdir().unwrap();
        assert!(refuse_foreign_directory(directory.path()).is_ok(), "empty");
        // What a ledger's readers or a founder that died may leave, without the ledger itself.
        for name in [
            "ledger.sqlite-wal",
            "ledger.sqlite-shm",
            "ledger.sqlite.founding",
        ] {
            let path = directory.path().join(name);
            std::fs::write(&path, b"").unwrap();
            assert!(refuse_foreign_directory(directory.path()).is_ok(), "{name}");
            std::fs::remove_file(&path).unwrap();
        }
        // A user's own copy is not one of them.
        std::fs::write(directory.path().join("ledger.sqlite.bak"), b"mine").unwrap();
        assert!(refuse_foreign_directory(directory.path()).is_err());
        std::fs::remove_file(directory.path().join("ledger.sqlite.bak")).unwrap();
        std::fs::write(directory.path().join("notes.txt"), b"mine").unwrap();
        let refused = refuse_foreign_directory(directory.path()).unwrap_err();
        assert!(refused.to_string().contains("`notes.txt`"), "{refused}");
    }
}
