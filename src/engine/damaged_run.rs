//! A run whose ledger was lost or damaged while its work is still in its directory (shard
//! files, downloaded results, a plan or side effects in what is left of the ledger): every
//! command refuses it, and no run is ever founded over it, which would send and bill its rows a
//! second time and overwrite the results already paid for.

use std::path::Path;

use super::run_failure::RunFailure;
use super::run_record::RunRecord;
use crate::ledger::{LEDGER_FILE_NAME, Ledger};

/// What is wrong with the run in `directory`, when its ledger is missing, cannot be read, or
/// has no founding record while the directory or the ledger shows the run planned or spent.
/// `None` for a healthy run, an empty directory, or a run a crash stopped before it was founded
/// (nothing of it exists but an empty ledger). A founded ledger's other damage is told by the
/// record's own reading.
pub fn damage_of_run(directory: &Path) -> Option<String> {
    let work = work_on_disk(directory);
    if !Ledger::exists_in(directory) {
        return (!work.is_empty()).then(|| {
            format!(
                "it has no `{LEDGER_FILE_NAME}`, but holds {}",
                work.join(" and ")
            )
        });
    }
    let ledger = match Ledger::open_read_only(directory) {
        Ok(ledger) => ledger,
        Err(error) => {
            return Some(format!(
                "its `{LEDGER_FILE_NAME}` cannot be opened: {error}"
            ));
        }
    };
    match RunRecord::is_founded(&ledger) {
        Ok(true) => return None,
        Ok(false) => {}
        Err(error) => return Some(format!("its `{LEDGER_FILE_NAME}` cannot be read: {error}")),
    }
    let mut signs = Vec::new();
    match (
        RunRecord::holds_plan_facts(&ledger),
        ledger.holds_shards_or_effects(),
    ) {
        (Ok(false), Ok(false)) => {}
        (Ok(_), Ok(_)) => signs.push("a plan".to_owned()),
        (Err(error), _) | (_, Err(error)) => {
            return Some(format!("its `{LEDGER_FILE_NAME}` cannot be read: {error}"));
        }
    }
    signs.extend(work);
    (!signs.is_empty()).then(|| {
        format!(
            "its `{LEDGER_FILE_NAME}` has no founding record (`job_sha256`), but the run left {}",
            signs.join(" and ")
        )
    })
}

/// The refusal of a damaged run (see [`damage_of_run`]), saying what to restore and how to run
/// the job anew on purpose.
pub fn refuse_a_damaged_run(directory: &Path) -> Result<(), RunFailure> {
    match damage_of_run(directory) {
        None => Ok(()),
        Some(damage) => Err(damaged_run_failure(directory, &damage)),
    }
}

/// The failure that tells of the damaged run in `directory`.
pub fn damaged_run_failure(directory: &Path, damage: &str) -> RunFailure {
    RunFailure::damaged(anyhow::anyhow!(
        "the run `{dir}` cannot be continued: {damage}. Nothing is sent for it, so that no row is sent and billed a second time. Put `{LEDGER_FILE_NAME}` back from a backup and `dashbatch resume {dir}`; the answers already downloaded are in `{results}`. To send the job's rows again and pay for them again, move `{dir}` away or start a new run with `--run-dir NEW_DIRECTORY`",
        dir = directory.display(),
        results = directory.join("results").display(),
    ))
}

/// The run's files in its directory: shard files written by a plan and result files
/// downloaded from batches, each told with its count.
fn work_on_disk(directory: &Path) -> Vec<String> {
    let count_files = |subdirectory: &str| {
        std::fs::read_dir(directory.join(subdirectory)).map_or(0, |entries| {
            entries
                .flatten()
                .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
                .count()
        })
    };
    [
        ("shards", "shard file"),
        ("results", "downloaded result file"),
    ]
    .into_iter()
    .filter_map(|(subdirectory, what)| {
        let count = count_files(subdirectory);
        (count > 0).then(|| {
            format!(
                "{count} {what}{} in `{subdirectory}/`",
                if count == 1 { "" } else { "s" }
            )
        })
    })
    .collect()
}

/// Whether the run in `directory` left downloaded results: batches of it were made (and paid).
pub fn has_downloaded_results(directory: &Path) -> bool {
    std::fs::read_dir(directory.join("results")).is_ok_and(|mut entries| {
        entries.any(|entry| {
            entry.is_ok_and(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
        })
    })
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
            lost.contains("1 downloaded result file in `results/`"),
            "{lost}"
        );
        assert!(has_downloaded_results(directory.path()));

        std::fs::write(directory.path().join(LEDGER_FILE_NAME), b"").unwrap();
        let emptied = damage_of_run(directory.path()).expect("emptied ledger");
        assert!(emptied.contains("cannot be read"), "{emptied}");

        std::fs::write(
            directory.path().join(LEDGER_FILE_NAME),
            b"not a database at all",
        )
        .unwrap();
        let garbage = damage_of_run(directory.path()).expect("garbage ledger");
        assert!(garbage.contains("cannot be"), "{garbage}");
    }

    #[test]
    fn a_ledger_that_lost_its_founding_but_kept_a_plan_is_damage() {
        let directory = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(directory.path()).unwrap();
        RunRecord::record_plan(&mut ledger, "xxh3-128:0123", 7).unwrap();
        let damage = damage_of_run(directory.path()).expect("plan without founding");
        assert!(
            damage.contains("job_sha256") && damage.contains("a plan"),
            "{damage}"
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
