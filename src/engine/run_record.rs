//! The run's record in its ledger, typed: what the run was founded with (written once, in one
//! transaction), what planning settled, whether it finished, and the budget settings a resumed
//! run must keep. One struct, one read, one write per change; the keys live only here.

use std::path::{Path, PathBuf};

use super::run_failure::RunFailure;
use crate::ledger::{EffectKind, LEDGER_FILE_NAME, Ledger, LedgerError};
use crate::provider::ProviderKind;
use crate::table::DigestAlgorithm;

/// The ledger keys of the record (`run_facts` rows).
mod key {
    pub const RUN_ID: &str = "run_id";
    pub const JOB_FILE: &str = "job_file";
    pub const JOB_SHA256: &str = "job_sha256";
    pub const PROVIDER: &str = "provider";
    pub const BASE_URL: &str = "base_url";
    pub const OUTPUT_PATH: &str = "output_path";
    pub const OUTPUT_FORMAT: &str = "output_format";
    pub const REHEARSAL: &str = "rehearsal";
    pub const PRICES_FILE: &str = "prices_file";
    pub const PRICES_TEXT: &str = "prices_text";
    /// The input's SHA-256, as runs planned before 2026-12 recorded it.
    pub const INPUT_SHA256: &str = "input_sha256";
    /// The input's digest, written as `DigestAlgorithm::of_written` reads it.
    pub const INPUT_DIGEST: &str = "input_digest";
    pub const PLANNED_ROWS: &str = "planned_rows";
    pub const FINISHED: &str = "finished";
    pub const MAX_COST: &str = "max_cost";
    pub const TOKENIZER: &str = "tokenizer";
    pub const ANSWER_STORE: &str = "answer_store";
    pub const REFRESH: &str = "refresh";
    pub const REQUESTS_ANNOUNCED: &str = "requests_announced";
    /// When the run was founded, in seconds since 1970 (UTC), by this machine's clock.
    pub const FOUNDED_AT: &str = "founded_at";
}

/// How the answer store key records a run founded without a store.
const NO_ANSWER_STORE: &str = "off";

/// What a run is, fixed when it is founded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFounding {
    pub run_id: String,
    /// Absolute.
    pub job_file: PathBuf,
    pub job_sha256: String,
    pub provider: ProviderKind,
    pub base_url: Option<String>,
    /// Absolute.
    pub output_path: PathBuf,
    /// The output format's extension (`parquet`, `csv`, `jsonl`).
    pub output_format: String,
    pub rehearsal: bool,
    pub prices_file: Option<PathBuf>,
    /// The price file's text when the run was founded: a resumed run prices with it, whatever
    /// became of the file since. `None` in runs founded before it was recorded.
    pub prices_text: Option<String>,
    /// The answer store the run uses: `Some(None)` for none; `None` in runs founded before the
    /// store existed (they use the one in force).
    pub answer_store: Option<Option<PathBuf>>,
    /// `--refresh`: the run takes no answer from the store (and replaces them).
    pub refresh: bool,
    /// When the run was founded (seconds since 1970, UTC, this machine's clock): how far back
    /// the provider's batch list is read for this run's batches. `None` in runs founded before
    /// it was recorded.
    pub founded_at: Option<i64>,
}

/// Everything the ledger records about the run as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// `None` until the run is founded (a crash before that leaves nothing to resume).
    pub founding: Option<RunFounding>,
    /// Set by the plan, with `planned_rows`, once every shard is in the ledger; written as
    /// [`crate::table::DigestAlgorithm::of_written`] reads it (a SHA-256 in older ledgers).
    pub input_digest: Option<String>,
    /// What is wrong with the plan's record, when the ledger was damaged: its input digest is
    /// missing beside planned rows, or is no digest. Commands that do not use the plan
    /// (`status`, `cancel`, finding the run) read on; planning, sending and joining refuse
    /// ([`Self::refuse_a_damaged_plan`]).
    pub plan_damage: Option<String>,
    pub planned_rows: Option<u64>,
    pub finished: bool,
    /// The `--max-cost` the run was given.
    pub max_cost: Option<String>,
    /// The tokenizer vocabulary the run's estimates used.
    pub tokenizer: Option<PathBuf>,
}

fn corrupt(ledger: &Ledger, key: &str, value: &str) -> LedgerError {
    ledger.corrupt(format!(
        "the run record's `{key}` is `{value}`, which dashbatch never writes"
    ))
}

impl RunRecord {
    /// Reads the whole record.
    pub fn read(ledger: &Ledger) -> Result<RunRecord, LedgerError> {
        let text = |name: &str| ledger.fact(name);
        let founding = match text(key::JOB_SHA256)? {
            None => None,
            Some(job_sha256) => {
                let required = |name: &str| -> Result<String, LedgerError> {
                    text(name)?
                        .ok_or_else(|| ledger.corrupt(format!("the run record has no `{name}`")))
                };
                let provider_text = required(key::PROVIDER)?;
                let provider = serde_json::from_value(serde_json::json!(provider_text))
                    .map_err(|_| corrupt(ledger, key::PROVIDER, &provider_text))?;
                let rehearsal = match text(key::REHEARSAL)?.as_deref() {
                    None | Some("0") => false,
                    Some("1") => true,
                    Some(other) => return Err(corrupt(ledger, key::REHEARSAL, other)),
                };
                Some(RunFounding {
                    run_id: required(key::RUN_ID)?,
                    job_file: PathBuf::from(required(key::JOB_FILE)?),
                    job_sha256,
                    provider,
                    base_url: text(key::BASE_URL)?,
                    output_path: PathBuf::from(required(key::OUTPUT_PATH)?),
                    output_format: required(key::OUTPUT_FORMAT)?,
                    rehearsal,
                    prices_file: text(key::PRICES_FILE)?.map(PathBuf::from),
                    prices_text: text(key::PRICES_TEXT)?,
                    answer_store: text(key::ANSWER_STORE)?
                        .map(|text| (text != NO_ANSWER_STORE).then(|| PathBuf::from(text))),
                    refresh: text(key::REFRESH)?.as_deref() == Some("1"),
                    founded_at: match text(key::FOUNDED_AT)? {
                        None => None,
                        Some(seconds) => Some(
                            seconds
                                .parse::<i64>()
                                .map_err(|_| corrupt(ledger, key::FOUNDED_AT, &seconds))?,
                        ),
                    },
                })
            }
        };
        let planned_rows = match text(key::PLANNED_ROWS)? {
            None => None,
            Some(rows) => Some(
                rows.parse::<u64>()
                    .map_err(|_| corrupt(ledger, key::PLANNED_ROWS, &rows))?,
            ),
        };
        let input_digest = match text(key::INPUT_DIGEST)? {
            Some(digest) => Some((key::INPUT_DIGEST, digest)),
            None => text(key::INPUT_SHA256)?.map(|digest| (key::INPUT_SHA256, digest)),
        };
        // The plan's digest is written before (or with) its planned rows, so a digest without
        // rows is a plan a crash cut short (planned again), but rows without a digest, or a
        // digest no algorithm writes, would have the join match the input unchecked, or tell
        // of a change that never was.
        let plan_damage = match (&input_digest, planned_rows) {
            (Some((name, digest)), Some(_)) if DigestAlgorithm::of_written(digest).is_none() => {
                Some(format!(
                    "the run record's `{name}` is `{digest}`, which dashbatch never writes"
                ))
            }
            (None, Some(_)) => Some(format!(
                "the run record has `{}` but no digest of the input (`{}`), which dashbatch writes first",
                key::PLANNED_ROWS,
                key::INPUT_DIGEST
            )),
            _ => None,
        };
        Ok(RunRecord {
            founding,
            input_digest: input_digest.map(|(_, digest)| digest),
            plan_damage,
            planned_rows,
            finished: match text(key::FINISHED)?.as_deref() {
                None => false,
                Some("1") => true,
                Some(other) => return Err(corrupt(ledger, key::FINISHED, other)),
            },
            max_cost: text(key::MAX_COST)?,
            tokenizer: text(key::TOKENIZER)?.map(PathBuf::from),
        })
    }

    /// The SHA-256 of the job file the run was founded with, read alone: which job a run
    /// whose record cannot be read is of.
    pub fn job_sha256(ledger: &Ledger) -> Option<String> {
        ledger.fact(key::JOB_SHA256).ok().flatten()
    }

    /// The run's id, read alone.
    pub fn run_id_alone(ledger: &Ledger) -> Option<String> {
        ledger.fact(key::RUN_ID).ok().flatten()
    }

    /// Whether the run finished, read alone (for a run whose record cannot be read): only as
    /// dashbatch writes it, so a damaged value is taken up and told rather than passed over.
    pub fn finished_alone(ledger: &Ledger) -> bool {
        ledger.fact(key::FINISHED).ok().flatten().as_deref() == Some("1")
    }

    /// Whether the run was founded: its record has `job_sha256`, written last in the founding's
    /// one transaction. An error when the ledger cannot be read at all.
    pub fn is_founded(ledger: &Ledger) -> Result<bool, LedgerError> {
        Ok(ledger.fact(key::JOB_SHA256)?.is_some())
    }

    /// Whether the record holds anything a plan writes (its rows, the input's digest).
    pub fn holds_plan_facts(ledger: &Ledger) -> Result<bool, LedgerError> {
        for name in [key::PLANNED_ROWS, key::INPUT_DIGEST, key::INPUT_SHA256] {
            if ledger.fact(name)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Writes the founding in one transaction: the run exists once `job_sha256` is there.
    pub fn found(ledger: &mut Ledger, founding: &RunFounding) -> Result<(), LedgerError> {
        let mut facts = vec![
            (key::RUN_ID, founding.run_id.clone()),
            (key::JOB_FILE, founding.job_file.display().to_string()),
            (key::PROVIDER, founding.provider.to_string()),
            (key::OUTPUT_PATH, founding.output_path.display().to_string()),
            (key::OUTPUT_FORMAT, founding.output_format.clone()),
            (key::REHEARSAL, u8::from(founding.rehearsal).to_string()),
            (key::JOB_SHA256, founding.job_sha256.clone()),
        ];
        if let Some(url) = &founding.base_url {
            facts.push((key::BASE_URL, url.clone()));
        }
        if let Some(path) = &founding.prices_file {
            facts.push((key::PRICES_FILE, path.display().to_string()));
        }
        if let Some(text) = &founding.prices_text {
            facts.push((key::PRICES_TEXT, text.clone()));
        }
        if let Some(store) = &founding.answer_store {
            facts.push((
                key::ANSWER_STORE,
                store.as_ref().map_or(NO_ANSWER_STORE.to_owned(), |path| {
                    path.display().to_string()
                }),
            ));
        }
        if founding.refresh {
            facts.push((key::REFRESH, "1".to_owned()));
        }
        if let Some(seconds) = founding.founded_at {
            facts.push((key::FOUNDED_AT, seconds.to_string()));
        }
        ledger.set_facts(&facts)
    }

    /// The error of a damaged plan record, if the record has one: the run cannot check that
    /// its input is the one it planned. A record without planned rows whose ledger holds shards
    /// already uploaded or sent, or their intents, is damaged too (`planned_rows` is written
    /// before any shard is sent): planning it again would send its rows a second time.
    pub fn refuse_a_damaged_plan(
        &self,
        ledger: &Ledger,
        run_directory: &Path,
    ) -> Result<(), LedgerError> {
        let damage = match &self.plan_damage {
            Some(damage) => {
                format!("{damage}, so the run cannot check that its input is the one it planned")
            }
            None if self.planned_rows.is_none() && plan_was_sent(ledger)? => format!(
                "the run record has no `{}`, but shards of its plan were uploaded or sent, so planning it again would send its rows a second time",
                key::PLANNED_ROWS
            ),
            None => return Ok(()),
        };
        Err(ledger.corrupt(format!(
            "{damage}. The answers already paid for are kept in `{}`; restore `{LEDGER_FILE_NAME}` from a backup and resume, or start a new run (its rows are sent and billed again)",
            run_directory.join("results").display()
        )))
    }

    /// Records a finished plan: the input's digest and how many rows it sends.
    pub fn record_plan(
        ledger: &mut Ledger,
        input_digest: &str,
        planned_rows: u64,
    ) -> Result<(), LedgerError> {
        ledger.set_facts(&[
            (key::INPUT_DIGEST, input_digest.to_owned()),
            (key::PLANNED_ROWS, planned_rows.to_string()),
        ])
    }

    /// Whether the requests this run sends are announced in the answer store.
    pub fn requests_announced(ledger: &Ledger) -> Result<bool, LedgerError> {
        Ok(ledger.fact(key::REQUESTS_ANNOUNCED)?.is_some())
    }

    pub fn record_requests_announced(ledger: &Ledger) -> Result<(), LedgerError> {
        ledger.set_fact(key::REQUESTS_ANNOUNCED, "1")
    }

    pub fn mark_finished(ledger: &Ledger) -> Result<(), LedgerError> {
        ledger.set_fact(key::FINISHED, "1")
    }

    pub fn record_max_cost(ledger: &Ledger, cap: &str) -> Result<(), LedgerError> {
        ledger.set_fact(key::MAX_COST, cap)
    }

    pub fn record_tokenizer(ledger: &Ledger, path: &Path) -> Result<(), LedgerError> {
        ledger.set_fact(key::TOKENIZER, &path.display().to_string())
    }

    /// Records prices given with `--prices` to a run that already exists: from now on the run
    /// (and its resumes) prices with them.
    pub fn record_prices(ledger: &mut Ledger, path: &Path, text: &str) -> Result<(), LedgerError> {
        ledger.set_facts(&[
            (key::PRICES_FILE, path.display().to_string()),
            (key::PRICES_TEXT, text.to_owned()),
        ])
    }

    /// The founding, or the error a command on an unfounded run directory gives.
    pub fn founded(&self, run_directory: &Path) -> Result<&RunFounding, RunFailure> {
        self.founding.as_ref().ok_or_else(|| {
            RunFailure::local(anyhow::anyhow!(
                "run `{}` was interrupted before it started, so there is nothing to continue; start it again with `dashbatch run`",
                run_directory.display()
            ))
        })
    }
}

/// Whether any shard of the ledger's plan was uploaded or sent, or an upload or a batch begun.
fn plan_was_sent(ledger: &Ledger) -> Result<bool, LedgerError> {
    let shard_sent = ledger
        .shards()?
        .iter()
        .any(|shard| shard.file_id.is_some() || shard.batch_id.is_some());
    Ok(shard_sent
        || ledger.count_effects(EffectKind::Upload)? > 0
        || ledger.count_effects(EffectKind::CreateBatch)? > 0)
}

/// The run id of the run in `run_directory` and whether it finished, read without creating or
/// changing anything; `None` when there is no run there.
pub fn peek_run(run_directory: &Path) -> Option<(String, bool)> {
    let ledger = Ledger::open_read_only(run_directory).ok()?;
    let record = RunRecord::read(&ledger).ok()?;
    Some((record.founding?.run_id, record.finished))
}

/// Opens the ledger of an existing run directory, whose lock this process holds.
pub fn open_existing_ledger(run_directory: &Path) -> Result<Ledger, RunFailure> {
    refuse_a_directory_without_ledger(run_directory)?;
    Ledger::open(run_directory).map_err(RunFailure::local)
}

/// Opens the ledger of an existing run directory only to read it (`status`, which holds no lock
/// and never touches it: the run may be live, and only the lock's holder writes its ledger). A
/// ledger an older dashbatch made lacks columns this one reads until a `resume` (which holds
/// the lock) adds them; that is said.
pub fn read_existing_ledger(run_directory: &Path) -> Result<Ledger, RunFailure> {
    refuse_a_directory_without_ledger(run_directory)?;
    let ledger = Ledger::open_read_only(run_directory).map_err(RunFailure::local)?;
    if !ledger.has_current_columns().map_err(RunFailure::local)? {
        return Err(RunFailure::local(anyhow::anyhow!(
            "the ledger of `{dir}` was written by an older dashbatch; `dashbatch resume {dir}` brings it up to date (a finished run makes no call and needs no key), then `status` reads it",
            dir = run_directory.display()
        )));
    }
    Ok(ledger)
}

/// Refuses a directory that holds no run, or a run whose ledger was lost or damaged.
fn refuse_a_directory_without_ledger(run_directory: &Path) -> Result<(), RunFailure> {
    super::damaged_run::refuse_a_damaged_run(run_directory)?;
    if Ledger::exists_in(run_directory) {
        return Ok(());
    }
    Err(RunFailure::local(anyhow::anyhow!(
        "`{}` is not a run directory (it has no {LEDGER_FILE_NAME})",
        run_directory.display()
    )))
}

/// Reads the record of an existing run directory.
pub fn read_run_record(ledger: &Ledger) -> Result<RunRecord, RunFailure> {
    RunRecord::read(ledger).map_err(RunFailure::local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reads_a_ledger_without_writing_and_names_an_older_one() {
        let directory = tempfile::tempdir().unwrap();
        assert!(read_existing_ledger(directory.path()).is_err(), "no ledger");
        drop(Ledger::open(directory.path()).unwrap());
        assert!(read_existing_ledger(directory.path()).is_ok());
        // An older dashbatch's ledger: a table added since is missing.
        Ledger::open(directory.path())
            .unwrap()
            .connection_for_tests()
            .execute_batch("DROP TABLE adoptions")
            .unwrap();
        let Err(error) = read_existing_ledger(directory.path()) else {
            panic!("an older ledger is read");
        };
        let error = error.to_string();
        assert!(
            error.contains("older dashbatch") && error.contains("dashbatch resume"),
            "{error}"
        );
    }

    fn digest_of(algorithm: DigestAlgorithm, bytes: &[u8]) -> String {
        let mut hasher = algorithm.hasher();
        hasher.update(bytes);
        hasher.written()
    }

    fn founding() -> RunFounding {
        RunFounding {
            run_id: "run-1234abcd".into(),
            job_file: PathBuf::from("/jobs/job.toml"),
            job_sha256: "ab".repeat(32),
            provider: ProviderKind::Dashscope,
            base_url: Some("http://127.0.0.1:1/v1".into()),
            output_path: PathBuf::from("/out/x.parquet"),
            output_format: "parquet".into(),
            rehearsal: true,
            prices_file: None,
            prices_text: None,
            answer_store: Some(Some(PathBuf::from("/cache/dashbatch/answers.sqlite"))),
            refresh: true,
            founded_at: Some(1_796_380_800),
        }
    }

    #[test]
    fn a_record_reads_back_what_was_written() {
        let directory = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(directory.path()).unwrap();
        let empty = RunRecord::read(&ledger).unwrap();
        assert_eq!(empty.founding, None);
        assert!(!empty.finished);
        RunRecord::found(&mut ledger, &founding()).unwrap();
        let digest = digest_of(DigestAlgorithm::FOR_NEW_RUNS, b"id\n1\n");
        RunRecord::record_plan(&mut ledger, &digest, 42).unwrap();
        RunRecord::mark_finished(&ledger).unwrap();
        RunRecord::record_max_cost(&ledger, "5.00").unwrap();
        let record = RunRecord::read(&ledger).unwrap();
        assert_eq!(record.founding, Some(founding()));
        assert_eq!(record.planned_rows, Some(42));
        assert_eq!(record.input_digest, Some(digest));
        assert!(record.finished);
        assert_eq!(record.max_cost.as_deref(), Some("5.00"));
    }

    #[test]
    fn a_ledger_of_an_earlier_version_gives_its_sha256_as_the_input_digest() {
        let directory = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(directory.path()).unwrap();
        RunRecord::found(&mut ledger, &founding()).unwrap();
        let sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        ledger.set_fact(key::INPUT_SHA256, sha256).unwrap();
        ledger.set_fact(key::PLANNED_ROWS, "3").unwrap();
        let record = RunRecord::read(&ledger).unwrap();
        assert_eq!(record.input_digest.as_deref(), Some(sha256));
        assert_eq!(
            DigestAlgorithm::of_written(sha256),
            Some(DigestAlgorithm::Sha256)
        );
    }

    #[test]
    fn a_value_dashbatch_never_writes_is_an_error_not_a_default() {
        let directory = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(directory.path()).unwrap();
        RunRecord::found(&mut ledger, &founding()).unwrap();
        ledger.set_fact("planned_rows", "many").unwrap();
        let error = RunRecord::read(&ledger).unwrap_err().to_string();
        assert!(error.contains("planned_rows"), "{error}");
    }

    #[test]
    fn a_plan_without_a_digest_or_with_one_no_algorithm_writes_is_read_as_damaged() {
        let digest = digest_of(DigestAlgorithm::FOR_NEW_RUNS, b"id\n1\n");
        let sha256 = digest_of(DigestAlgorithm::Sha256, b"id\n1\n");
        /// Facts written, and what the damage read is said to be (`None`: no damage).
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
        let cases: [Case; 8] = [
            (&[(key::PLANNED_ROWS, "3")], Some("no digest of the input")),
            (
                &[(key::INPUT_DIGEST, "cd"), (key::PLANNED_ROWS, "3")],
                Some("`input_digest` is `cd`"),
            ),
            (
                &[(key::INPUT_DIGEST, &sha256[1..]), (key::PLANNED_ROWS, "3")],
                Some("`input_digest`"),
            ),
            (
                &[(key::INPUT_SHA256, "xyz"), (key::PLANNED_ROWS, "3")],
                Some("`input_sha256` is `xyz`"),
            ),
            (
                &[(key::INPUT_SHA256, ""), (key::PLANNED_ROWS, "3")],
                Some("`input_sha256` is ``"),
            ),
            // An earlier dashbatch wrote the digest, then the rows: a crash between the two
            // left a plan to make again, not damage.
            (&[(key::INPUT_SHA256, &sha256)], None),
            (&[(key::INPUT_DIGEST, &digest)], None),
            (
                &[(key::INPUT_DIGEST, &digest), (key::PLANNED_ROWS, "3")],
                None,
            ),
        ];
        for (facts, damage) in cases {
            let directory = tempfile::tempdir().unwrap();
            let mut ledger = Ledger::open(directory.path()).unwrap();
            RunRecord::found(&mut ledger, &founding()).unwrap();
            for (name, value) in facts {
                ledger.set_fact(name, value).unwrap();
            }
            // Read whatever the damage: finding, showing and cancelling the run need no plan.
            let record = RunRecord::read(&ledger).unwrap();
            let refused = record.refuse_a_damaged_plan(&ledger, directory.path());
            match damage {
                None => {
                    assert_eq!(record.plan_damage, None, "{facts:?}");
                    refused.unwrap();
                }
                Some(named) => {
                    let said = record.plan_damage.clone().unwrap_or_default();
                    assert!(said.contains(named), "{facts:?}: {said}");
                    let error = refused.unwrap_err().to_string();
                    assert!(
                        error.contains("ledger.sqlite") && error.contains("results"),
                        "{error}"
                    );
                }
            }
        }
    }
}
