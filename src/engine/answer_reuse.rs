//! Deciding, while planning, which rows need a request of their own: a row whose request an
//! earlier row of the run already makes copies that row's answer (deduplication); a row whose
//! request has an answer in the answer store takes it from there, pinned in the run's ledger so
//! a resumed run joins what it planned with; a row whose request another live run has in flight
//! (announced in the store) is adopted: this run waits for that answer, and sends the request
//! itself only if that run ends without one. Only the other rows are sent.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::request_key_claims::RequestKeyClaims;
use crate::answer_store::AnswerStore;
use crate::ledger::{KeyOrigin, Ledger, RowSource};
use crate::request_key::RequestKey;

/// How a run reuses answers while it plans.
pub struct AnswerReuse {
    /// The provider part of every request key ([`crate::request_key::provider_identity`]).
    pub provider_identity: String,
    /// The store to take answers from; `None` without a store, with `--refresh`, or for a
    /// rehearsal (whose answers are not the model's).
    pub store: Option<AnswerStore>,
    /// `[reuse] deduplicate`.
    pub deduplicate: bool,
    /// Adopting other runs' requests in flight; `None` with `--no-adopt`, without a store, or
    /// when no other run has announced any.
    pub adoption: Option<AdoptionPlanning>,
    /// The request keys rows have claimed so far (for deduplication).
    pub claims: RefCell<RequestKeyClaims>,
}

/// What adopting needs while planning.
pub struct AdoptionPlanning {
    live: LiveRuns,
    /// The request lines of adopted rows, kept in case this run has to send them itself.
    lines: RefCell<std::io::BufWriter<std::fs::File>>,
}

/// The file of a run's adopted request lines.
pub fn adopted_lines_path(shards_directory: &Path) -> PathBuf {
    shards_directory.join("adopted-requests.jsonl")
}

impl AdoptionPlanning {
    /// Adoption for the run in `own_directory` planning into `shards_directory`, when another
    /// run has announced requests; `None` otherwise.
    ///
    /// # Errors
    /// When the store cannot be read or the lines file created.
    pub fn start(
        store: &AnswerStore,
        own_directory: &Path,
        shards_directory: &Path,
    ) -> anyhow::Result<Option<AdoptionPlanning>> {
        let live = LiveRuns::new(own_directory);
        if !store
            .runs_in_flight()?
            .iter()
            .any(|run| !live.is_own(&run.run_directory))
        {
            return Ok(None);
        }
        let lines_path = adopted_lines_path(shards_directory);
        let file = std::fs::File::create(&lines_path)?;
        crate::ledger::restrict_permissions(&lines_path);
        Ok(Some(AdoptionPlanning {
            live,
            lines: RefCell::new(std::io::BufWriter::new(file)),
        }))
    }

    /// Writes the adopted lines to disk (before the plan is recorded).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn finish(self) -> anyhow::Result<()> {
        let file = self
            .lines
            .into_inner()
            .into_inner()
            .map_err(|error| error.into_error())?;
        file.sync_all()?;
        Ok(())
    }
}

/// Which announced requests another run is still working on: a run in another directory than
/// this one (a run never waits for itself, nor for an earlier run of its own directory) whose
/// lock a process holds (only then will its answers arrive). Asked once per directory.
pub struct LiveRuns {
    own_directory: PathBuf,
    known: RefCell<HashMap<String, bool>>,
}

impl LiveRuns {
    pub fn new(own_directory: &Path) -> LiveRuns {
        LiveRuns {
            own_directory: comparable(own_directory),
            known: RefCell::new(HashMap::new()),
        }
    }

    pub fn is_own(&self, run_directory: &str) -> bool {
        comparable(Path::new(run_directory)) == self.own_directory
    }

    /// Whether `run_directory` is another run's, live now.
    pub fn is_other_live(&self, run_directory: &str) -> bool {
        !self.is_own(run_directory)
            && *self
                .known
                .borrow_mut()
                .entry(run_directory.to_owned())
                .or_insert_with(|| {
                    super::run_lock::is_locked_by_another_process(Path::new(run_directory))
                })
    }
}

/// A path as two spellings of one directory compare equal.
fn comparable(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_owned())
}

/// Forgets announcements no run will answer: those of earlier runs of `own_directory`, and of
/// runs whose directory is gone, holds another run now, or finished. (A run that stopped but may
/// be resumed keeps its announcements; runs simply do not wait for it while it is not running.)
///
/// # Errors
/// When the store cannot be read or written.
pub fn withdraw_stale_announcements(
    store: &mut AnswerStore,
    own_directory: Option<&Path>,
) -> anyhow::Result<()> {
    let live = own_directory.map(LiveRuns::new);
    for run in store.runs_in_flight()? {
        let directory = Path::new(&run.run_directory);
        let stale = live
            .as_ref()
            .is_some_and(|live| live.is_own(&run.run_directory))
            || match super::run_record::peek_run(directory) {
                Some((run_id, finished)) => run_id != run.run_id || finished,
                None => true,
            };
        if stale {
            store.withdraw_in_flight(&run.run_id)?;
        }
    }
    Ok(())
}

/// What becomes of one row's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowDecision {
    /// Sent in a shard.
    Send,
    /// Answered from the answer store.
    FromStore,
    /// Answered by an earlier row of this run with the same request.
    Copy,
    /// Answered by another live run's request in flight.
    Adopted,
}

/// The row being decided.
pub struct RowRequest<'a> {
    pub key: RequestKey,
    pub row_number: u64,
    pub custom_id: &'a str,
    /// The request line, kept when the row is adopted.
    pub line: &'a [u8],
}

impl AnswerReuse {
    /// Reuse nothing: every row is sent (unit tests of the plan).
    #[cfg(test)]
    pub fn nothing(provider_identity: &str) -> AnswerReuse {
        AnswerReuse {
            provider_identity: provider_identity.to_owned(),
            store: None,
            deduplicate: false,
            adoption: None,
            claims: RefCell::default(),
        }
    }

    /// Writes what deciding keeps in memory to the ledger (at the end of the plan, inside its
    /// transaction).
    ///
    /// # Errors
    /// When the ledger cannot be written.
    pub fn finish(&self, ledger: &Ledger) -> anyhow::Result<()> {
        self.claims.borrow_mut().finish(ledger)
    }

    /// Starts loading what deciding a row of `key` will look at first, for a row decided a
    /// little later.
    pub fn prefetch(&self, key: &RequestKey) {
        if self.deduplicate {
            self.claims.borrow().prefetch(key);
        }
    }

    /// Decides a row's fate and records it in `ledger` (inside the plan's bulk transaction).
    ///
    /// # Errors
    /// When the ledger or the store cannot be read or written.
    pub fn decide(&self, ledger: &Ledger, row: &RowRequest<'_>) -> anyhow::Result<RowDecision> {
        let key = &row.key;
        let mut claims = self.claims.borrow_mut();
        if self.deduplicate
            && let Some(first) = claims.claim(key, row.row_number)?
        {
            return Ok(match first.origin {
                KeyOrigin::Store => {
                    ledger.set_row_source(row.row_number, RowSource::Store, key)?;
                    RowDecision::FromStore
                }
                KeyOrigin::Adopted => {
                    ledger.set_row_source(row.row_number, RowSource::Adopted, key)?;
                    RowDecision::Adopted
                }
                KeyOrigin::Batch => {
                    ledger.set_row_source(first.row_number, RowSource::SharedWithCopies, key)?;
                    ledger.set_row_source(row.row_number, RowSource::Dedup, key)?;
                    RowDecision::Copy
                }
            });
        }
        let Some(store) = &self.store else {
            return Ok(RowDecision::Send);
        };
        // A stored line that is not an `ok` result line (a store written by hand, or damaged) is
        // no answer: the row is sent.
        if let Some(answer) = store.lookup(key)?
            && is_ok_result_line(&answer.result_line)
        {
            if self.deduplicate {
                claims.set_origin(key, KeyOrigin::Store)?;
            }
            ledger.pin_answer(key, &answer.result_line, answer.batch_id.as_deref())?;
            ledger.set_row_source(row.row_number, RowSource::Store, key)?;
            return Ok(RowDecision::FromStore);
        }
        if let Some(adoption) = &self.adoption
            && let Some(in_flight) = store
                .in_flight(key)?
                .into_iter()
                .find(|run| adoption.live.is_other_live(&run.run_directory))
        {
            if self.deduplicate {
                claims.set_origin(key, KeyOrigin::Adopted)?;
            }
            if ledger.adopt(key, row.row_number, row.custom_id, &in_flight.run_directory)? {
                let mut lines = adoption.lines.borrow_mut();
                lines.write_all(row.line)?;
                lines.write_all(b"\n")?;
            }
            ledger.set_row_source(row.row_number, RowSource::Adopted, key)?;
            return Ok(RowDecision::Adopted);
        }
        Ok(RowDecision::Send)
    }
}

/// Whether `line` is a result line that succeeded.
pub(super) fn is_ok_result_line(line: &str) -> bool {
    serde_json::from_str::<crate::wire::ResultLine>(line).is_ok_and(|parsed| {
        crate::row_result::classify_result_line(&parsed, crate::wire::BatchStatus::Completed)
            .status()
            == crate::row_result::RowStatus::Ok
    })
}

/// Announces every request this run sends itself in the store, in chunks so that no other
/// process waits long for the store.
///
/// # Errors
/// When the ledger cannot be read or the store written.
pub fn announce_sent_requests(
    ledger: &Ledger,
    store: &mut AnswerStore,
    run_id: &str,
    run_directory: &Path,
) -> anyhow::Result<()> {
    const CHUNK: usize = 10_000;
    let directory = std::path::absolute(run_directory)?.display().to_string();
    let mut after: Option<RequestKey> = None;
    loop {
        let keys = ledger.sent_keys_after(after.as_ref(), CHUNK)?;
        let Some(last) = keys.last().copied() else {
            return Ok(());
        };
        store.announce_in_flight(&keys, run_id, &directory)?;
        after = Some(last);
    }
}

/// The store `estimate` and `validate` read, as they report it.
pub struct StorePreview {
    /// The store a run would use; `None` for none.
    pub path: Option<PathBuf>,
    /// Why the user's default store is not read (it cannot be), when it is not: a run would go
    /// on without it too.
    pub warning: Option<String>,
}

/// The reuse `estimate` and `validate` plan with: the store a run would use (`DASHBATCH_STORE`,
/// the job file, the user's), only read, and the same deduplication. Requests other runs have
/// in flight are counted as sent.
///
/// # Errors
/// When a store the user named exists but is not a store (a run would refuse it too).
pub fn previewed_reuse(
    job: &crate::job::Job,
    provider: crate::provider::ProviderKind,
    base_url: Option<&str>,
) -> anyhow::Result<(AnswerReuse, StorePreview)> {
    let mut preview = StorePreview {
        path: None,
        warning: None,
    };
    let mut store = None;
    let choice = crate::store_location::choose_store(false, None, &job.answer_store);
    if let Some(path) = &choice.path {
        match AnswerStore::open_to_read(path) {
            Ok(opened) => store = opened,
            Err(error) if choice.source == crate::settings::SettingSource::Default => {
                preview.warning = Some(format!(
                    "{error}; a run would go on without it, so nothing is counted as reused"
                ));
            }
            Err(error) => anyhow::bail!("{error} (chosen by {})", choice.source),
        }
        if preview.warning.is_none() {
            preview.path = Some(path.clone());
        }
    }
    Ok((
        AnswerReuse {
            provider_identity: crate::request_key::provider_identity(provider, base_url),
            store,
            deduplicate: job.spec.reuse.deduplicate,
            adoption: None,
            claims: RefCell::default(),
        },
        preview,
    ))
}

/// Notes in the store that the answers this run pinned were used now, in chunks so that no
/// other process waits long for the store.
///
/// # Errors
/// When the ledger cannot be read or the store written.
pub fn mark_pinned_answers_used(ledger: &Ledger, store: &mut AnswerStore) -> anyhow::Result<()> {
    const CHUNK: usize = 10_000;
    let mut after: Option<RequestKey> = None;
    loop {
        let keys = ledger.pinned_keys_after(after.as_ref(), CHUNK)?;
        let Some(last) = keys.last().copied() else {
            return Ok(());
        };
        store.mark_used(&keys)?;
        after = Some(last);
    }
}
