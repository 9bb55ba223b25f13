//! Deciding, while planning, which rows need a request of their own: a row whose request an
//! earlier row of the run already makes copies that row's answer (deduplication), and a row
//! whose request has an answer in the answer store takes it from there, pinned in the run's
//! ledger so a resumed run joins what it planned with. Only the other rows are sent.

use crate::answer_store::AnswerStore;
use crate::ledger::{Ledger, RowSource};
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
}

impl AnswerReuse {
    /// Reuse nothing: every row is sent (dashbatch before the store; unit tests).
    pub fn nothing(provider_identity: &str) -> AnswerReuse {
        AnswerReuse {
            provider_identity: provider_identity.to_owned(),
            store: None,
            deduplicate: false,
        }
    }

    /// Decides row `row_number`'s fate and records it in `ledger` (inside the plan's bulk
    /// transaction).
    ///
    /// # Errors
    /// When the ledger or the store cannot be read or written.
    pub fn decide(
        &self,
        ledger: &Ledger,
        key: &RequestKey,
        row_number: u64,
    ) -> anyhow::Result<RowDecision> {
        if self.deduplicate
            && let Some(first) = ledger.claim_request_key(key, row_number, false)?
        {
            if first.from_store {
                ledger.set_row_source(row_number, RowSource::Store, key)?;
                return Ok(RowDecision::FromStore);
            }
            ledger.set_row_source(first.row_number, RowSource::SharedWithCopies, key)?;
            ledger.set_row_source(row_number, RowSource::Dedup, key)?;
            return Ok(RowDecision::Copy);
        }
        let Some(store) = &self.store else {
            return Ok(RowDecision::Send);
        };
        let Some(answer) = store.lookup(key)? else {
            return Ok(RowDecision::Send);
        };
        if self.deduplicate {
            ledger.mark_request_key_from_store(key)?;
        }
        ledger.pin_answer(key, &answer.result_line, answer.batch_id.as_deref())?;
        ledger.set_row_source(row_number, RowSource::Store, key)?;
        Ok(RowDecision::FromStore)
    }
}

/// The reuse `estimate` and `validate` plan with: the store a run would use (`DASHBATCH_STORE`,
/// the job file, the user's), only read, and the same deduplication; with the store's path.
///
/// # Errors
/// When the store in force exists but is not a store.
pub fn previewed_reuse(
    job: &crate::job::Job,
    provider: crate::provider::ProviderKind,
    base_url: Option<&str>,
) -> anyhow::Result<(AnswerReuse, Option<std::path::PathBuf>)> {
    let choice = crate::store_location::choose_store(false, None, &job.answer_store);
    let store = match &choice.path {
        Some(path) => AnswerStore::open_to_read(path)
            .map_err(|error| anyhow::anyhow!("{error} (chosen by {})", choice.source))?,
        None => None,
    };
    Ok((
        AnswerReuse {
            provider_identity: crate::request_key::provider_identity(provider, base_url),
            store,
            deduplicate: job.spec.reuse.deduplicate,
        },
        choice.path,
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
