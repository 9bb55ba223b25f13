//! A run whose ledger was lost, damaged or put back older than the run's files, while its work
//! is still in its directory (shard files, downloaded results, a plan or side effects in what
//! is left of the ledger): every command refuses it, and no run is ever founded over it, which
//! would send and bill its rows a second time and overwrite the results already paid for.

use std::collections::HashSet;
use std::path::Path;

use super::RunDirectory;
use super::run_failure::RunFailure;
use super::run_identity::RunIdentity;
use super::run_record::RunRecord;
use crate::ledger::{LEDGER_FILE_NAME, Ledger, LedgerError};

/// What is wrong with a run directory, and what can be done about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDamage {
    /// What was found, e.g. "it has no `ledger.sqlite`, but holds 3 shard files in `shards/`".
    pub what: String,
    /// The ledger is there and whole but cannot be opened by this user (its permissions, a
    /// read-only file system): making it readable and writable mends it.
    pub unreadable_here: bool,
    /// The job the run was founded with, when the ledger still says it.
    pub job_sha256: Option<String>,
}

impl RunDamage {
    fn lost(what: String) -> RunDamage {
        RunDamage {
            what,
            unreadable_here: false,
            job_sha256: None,
        }
    }

    /// The ledger could not be opened or read: for want of permission, or because it is not
    /// (or no longer) a ledger.
    fn unreadable(error: &LedgerError) -> RunDamage {
        // SQLite's words for "cannot open" and "read-only" (SQLITE_CANTOPEN, SQLITE_READONLY).
        let unreadable_here = ["unable to open database file", "readonly database"]
            .iter()
            .any(|words| error.message.contains(words));
        RunDamage {
            what: format!(
                "its `{LEDGER_FILE_NAME}` cannot be read ({})",
                error.message
            ),
            unreadable_here,
            job_sha256: None,
        }
    }
}

/// What is wrong with the run in `directory`, when the run's files are there and its ledger
/// is missing, cannot be read, has no founding record, or does not record batches whose
/// results were downloaded (an older copy put back). `None` for a healthy run, an empty
/// directory, or a run a crash stopped before it was founded (an empty ledger and nothing
/// else). A founded ledger's values that cannot be read are told by the record's own reading.
pub fn damage_of_run(directory: &Path) -> Option<RunDamage> {
    let identity = RunIdentity::read(directory);
    damage_beside_the_identity(directory, identity.as_ref()).map(|damage| RunDamage {
        // The identity says whose run it is when the ledger no longer can.
        job_sha256: damage
            .job_sha256
            .or_else(|| identity.map(|identity| identity.job_sha256)),
        ..damage
    })
}

fn damage_beside_the_identity(
    directory: &Path,
    identity: Option<&RunIdentity>,
) -> Option<RunDamage> {
    let work = || work_on_disk(directory);
    if !Ledger::exists_in(directory) {
        let work = work();
        return (!work.is_empty()).then(|| {
            RunDamage::lost(format!(
                "it has no `{LEDGER_FILE_NAME}`, but holds {}",
                work.join(" and ")
            ))
        });
    }
    let read = Ledger::open_read_only(directory).and_then(|ledger| {
        let founded = RunRecord::is_founded(&ledger)?;
        Ok((ledger, founded))
    });
    let (ledger, founded) = match read {
        Ok(read) => read,
        // An empty or unreadable file with nothing of a run beside it holds nothing to keep.
        Err(error) => return (!work().is_empty()).then(|| RunDamage::unreadable(&error)),
    };
    if founded {
        let run_id = RunRecord::run_id_alone(&ledger);
        if let Some(identity) = identity
            && run_id.as_ref() != Some(&identity.run_id)
        {
            return Some(RunDamage::lost(format!(
                "its `{LEDGER_FILE_NAME}` is the ledger of run `{}`, but the directory holds run `{}` (`{}`)",
                run_id.unwrap_or_default(),
                identity.run_id,
                super::run_identity::RUN_IDENTITY_FILE_NAME
            )));
        }
        return results_the_ledger_does_not_record(directory, &ledger).map(|what| RunDamage {
            job_sha256: RunRecord::job_sha256(&ledger),
            ..RunDamage::lost(what)
        });
    }
    let mut signs = Vec::new();
    let planned = RunRecord::holds_plan_facts(&ledger)
        .and_then(|plan| Ok(plan || ledger.holds_shards_or_effects()?));
    match planned {
        Ok(false) => {}
        Ok(true) => signs.push("a plan".to_owned()),
        Err(error) => return Some(RunDamage::unreadable(&error)),
    }
    signs.extend(work());
    (!signs.is_empty()).then(|| {
        RunDamage::lost(format!(
            "its `{LEDGER_FILE_NAME}` has no founding record (`job_sha256`), but the run left {}",
            signs.join(" and ")
        ))
    })
}

/// A downloaded result file of a shard whose batch the founded `ledger` does not record: the
/// ledger is older than the run's files, and continuing from it would create batches that were
/// created (and billed) already. Result files are downloaded only from a recorded batch, and a
/// shard's batch is never forgotten.
fn results_the_ledger_does_not_record(directory: &Path, ledger: &Ledger) -> Option<String> {
    let results =
        std::fs::read_dir(RunDirectory::new(directory.to_owned()).results_directory()).ok()?;
    let mut recorded: Option<HashSet<u64>> = None;
    for entry in results.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(shard_index) = RunDirectory::shard_of_result_file_name(&name) else {
            continue;
        };
        if recorded.is_none() {
            // A ledger an older dashbatch made may lack columns `shards` reads: not judged.
            let shards = ledger.shards().ok()?;
            recorded = Some(
                shards
                    .into_iter()
                    .filter(|shard| shard.batch_id.is_some())
                    .map(|shard| shard.shard_index)
                    .collect(),
            );
        }
        if !recorded.as_ref()?.contains(&shard_index) {
            return Some(format!(
                "`results/{name}` was downloaded from a batch that its `{LEDGER_FILE_NAME}` does not record, so the ledger is older than the run's files (a copy put back?) and continuing it would create batches that were created and billed already"
            ));
        }
    }
    None
}

/// The refusal of a damaged run (see [`damage_of_run`]), saying what can be done.
pub fn refuse_a_damaged_run(directory: &Path) -> Result<(), RunFailure> {
    match damage_of_run(directory) {
        None => Ok(()),
        Some(damage) => Err(damaged_run_failure(directory, &damage)),
    }
}

/// The failure that tells of the damaged run in `directory`.
pub fn damaged_run_failure(directory: &Path, damage: &RunDamage) -> RunFailure {
    let dir = directory.display();
    if damage.unreadable_here {
        return RunFailure::damaged(anyhow::anyhow!(
            "the run `{dir}` cannot be read: {}. Nothing is sent for it until it can: make `{LEDGER_FILE_NAME}` and the directory `{dir}` readable and writable by this user, then run the command again",
            damage.what
        ));
    }
    let results_directory = RunDirectory::new(directory.to_owned()).results_directory();
    let results = if has_downloaded_results(directory) {
        format!(
            " The answers already downloaded are in `{}`.",
            results_directory.display()
        )
    } else {
        String::new()
    };
    let run_id_start = directory
        .file_name()
        .map_or_else(|| "run".into(), |name| name.to_string_lossy());
    RunFailure::damaged(anyhow::anyhow!(
        "the run `{dir}` cannot be continued: {}. dashbatch cannot tell what the run sent, so it sends nothing for it: no row is sent and billed a second time.{results} Its batches at the provider may still be running, and are billed for what they answer: their metadata and the names of their uploaded files carry the run's id, which starts `{run_id_start}-`; fetch or cancel them in the provider's console. To run the job again on purpose, move `{dir}` away or start a new run with `--run-dir NEW_DIRECTORY`: rows whose answers are in the answer store are not paid for again, the others are",
        damage.what
    ))
}

/// The run's files in its directory: shard files written by a plan, result files downloaded
/// from batches, and a write-ahead log left without its ledger, each told with its count.
fn work_on_disk(directory: &Path) -> Vec<String> {
    let run_directory = RunDirectory::new(directory.to_owned());
    let mut work: Vec<String> = [
        (run_directory.shards_directory(), "shard file", "shards"),
        (
            run_directory.results_directory(),
            "downloaded result file",
            "results",
        ),
    ]
    .into_iter()
    .filter_map(|(subdirectory, what, name)| {
        let count = files_in(&subdirectory);
        (count > 0).then(|| {
            format!(
                "{count} {what}{} in `{name}/`",
                if count == 1 { "" } else { "s" }
            )
        })
    })
    .collect();
    let log = format!("{LEDGER_FILE_NAME}-wal");
    if std::fs::metadata(directory.join(&log)).is_ok_and(|log| log.len() > 0) {
        work.push(format!("the ledger's write-ahead log `{log}`"));
    }
    work
}

/// How many entries of `directory` are not directories (none when it cannot be read).
fn files_in(directory: &Path) -> usize {
    std::fs::read_dir(directory).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|entry| !entry.file_type().is_ok_and(|kind| kind.is_dir()))
            .count()
    })
}

/// Whether the run in `directory` left downloaded results: batches of it were made (and paid).
pub fn has_downloaded_results(directory: &Path) -> bool {
    files_in(&RunDirectory::new(directory.to_owned()).results_directory()) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn an_empty_or_unfounded_directory_is_not_damaged() {
        let directory = tempfile::tempdir().unwrap();
        assert_eq!(damage_of_run(directory.path()), None, "empty");
        std::fs::create_dir_all(directory.path().join("shards")).unwrap();
        std::fs::create_dir_all(directory.path().join("results")).unwrap();
        assert_eq!(
            damage_of_run(directory.path()),
            None,
            "empty subdirectories"
        );
        // An empty file, as a tool that opens the path makes: nothing to keep.
        std::fs::write(directory.path().join(LEDGER_FILE_NAME), b"").unwrap();
        assert_eq!(damage_of_run(directory.path()), None, "an empty file alone");
        std::fs::remove_file(directory.path().join(LEDGER_FILE_NAME)).unwrap();
        // A crash between making the ledger and founding the run leaves an empty ledger.
        drop(Ledger::open(directory.path()).unwrap());
        assert_eq!(
            damage_of_run(directory.path()),
            None,
            "unfounded, nothing done"
        );
    }

    #[test]
    fn a_lost_emptied_or_garbage_ledger_beside_the_runs_files_is_damage() {
        let directory = tempfile::tempdir().unwrap();
        write(
            &directory.path().join("results/shard-00000.output.jsonl"),
            "{}\n",
        );
        let lost = damage_of_run(directory.path()).expect("lost ledger");
        assert!(
            lost.what.contains("1 downloaded result file in `results/`"),
            "{lost:?}"
        );
        assert!(has_downloaded_results(directory.path()));

        std::fs::write(directory.path().join(LEDGER_FILE_NAME), b"").unwrap();
        let emptied = damage_of_run(directory.path()).expect("emptied ledger");
        assert!(emptied.what.contains("cannot be read"), "{emptied:?}");
        assert!(!emptied.unreadable_here, "{emptied:?}");

        std::fs::write(
            directory.path().join(LEDGER_FILE_NAME),
            b"not a database at all",
        )
        .unwrap();
        let garbage = damage_of_run(directory.path()).expect("garbage ledger");
        assert!(garbage.what.contains("cannot be read"), "{garbage:?}");
    }

    #[test]
    fn a_write_ahead_log_left_without_its_ledger_is_damage() {
        let directory = tempfile::tempdir().unwrap();
        write(&directory.path().join("ledger.sqlite-wal"), "frames");
        let damage = damage_of_run(directory.path()).expect("a log without its ledger");
        assert!(damage.what.contains("ledger.sqlite-wal"), "{damage:?}");
    }

    #[test]
    fn a_ledger_that_lost_its_founding_but_kept_a_plan_is_damage() {
        let directory = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(directory.path()).unwrap();
        RunRecord::record_plan(&mut ledger, "xxh3-128:0123", 7).unwrap();
        let damage = damage_of_run(directory.path()).expect("plan without founding");
        assert!(
            damage.what.contains("job_sha256") && damage.what.contains("a plan"),
            "{damage:?}"
        );
        let refused = refuse_a_damaged_run(directory.path()).unwrap_err();
        assert_eq!(refused.kind, super::super::FailureKind::Damaged);
        assert!(
            refused
                .error
                .to_string()
                .contains("--run-dir NEW_DIRECTORY")
        );
    }
}
