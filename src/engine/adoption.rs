//! Waiting for the requests this run adopted: another live run has them in flight, so this run
//! takes that run's answers from the answer store as they land. An adopted request whose run
//! stops (its lock released) or finishes without an answer is sent by this run itself, in a
//! shard of its own (attempt 2, its rows in `shard_rows`, like a retry shard), so no row is left
//! without an answer and none is paid for twice by this run.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};

use super::RunDirectory;
use super::answer_reuse::{LiveRuns, adopted_lines_path, is_ok_result_line};
use super::extra_shards::ExtraShards;
use super::retry::LineIdentity;
use crate::answer_store::AnswerStore;
use crate::job::Job;
use crate::ledger::{Adoption, AdoptionState, Ledger};
use crate::provider::ProviderProfile;
use crate::shard::shard_limits;

/// Where the run's adoptions stand after one look.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct AdoptionProgress {
    /// Requests still in flight in other live runs.
    pub waiting: u64,
    /// The run directories of those runs.
    pub waiting_for: BTreeSet<String>,
    /// Answers that arrived in this look.
    pub answered: u64,
    /// Requests this run now sends itself, and in how many shards.
    pub sent: u64,
    pub shards_created: usize,
}

/// Takes every adopted answer that has landed, and plans shards for the adopted requests whose
/// run ended without one.
///
/// # Errors
/// When the ledger, the store or the adopted lines cannot be read or written.
pub(super) fn settle_adoptions(
    job: &Job,
    profile: &ProviderProfile,
    ledger: &mut Ledger,
    run_directory: &RunDirectory,
    store: Option<&mut AnswerStore>,
    own_run_id: &str,
) -> anyhow::Result<AdoptionProgress> {
    let mut progress = AdoptionProgress::default();
    let waiting = ledger.adoptions_in(AdoptionState::Waiting)?;
    if waiting.is_empty() {
        return Ok(progress);
    }
    let live = LiveRuns::new(&run_directory.root);
    let mut to_send = Vec::new();
    for adoption in waiting {
        let Some(store) = store.as_deref() else {
            to_send.push(adoption);
            continue;
        };
        // In flight first, then the answer: a run stores an answer and withdraws the
        // announcements of it in one transaction, so this order never misses an answer.
        let still_in_flight = store
            .in_flight(&adoption.key)?
            .iter()
            .any(|run| live.is_other_live(&run.run_directory));
        if still_in_flight {
            progress.waiting += 1;
            progress
                .waiting_for
                .insert(adoption.other_run_directory.clone());
            continue;
        }
        match store.lookup(&adoption.key)? {
            Some(answer) if is_ok_result_line(&answer.result_line) => {
                ledger.answer_adoption(
                    &adoption.key,
                    &answer.result_line,
                    answer.batch_id.as_deref(),
                )?;
                progress.answered += 1;
            }
            _ => to_send.push(adoption),
        }
    }
    if !to_send.is_empty() {
        progress.sent = to_send.len() as u64;
        progress.shards_created =
            plan_adoption_sends(job, profile, ledger, run_directory, &to_send)?;
        // This run now sends them: runs that adopted them from the one that stopped wait for
        // this one instead of sending them a third time.
        if let Some(store) = store {
            let keys: Vec<_> = to_send.iter().map(|adoption| adoption.key).collect();
            let directory = std::path::absolute(&run_directory.root)?;
            store.announce_in_flight(&keys, own_run_id, &directory.display().to_string())?;
        }
    }
    Ok(progress)
}

/// Writes the adopted requests in `to_send` into new shards and records them with their rows.
fn plan_adoption_sends(
    job: &Job,
    profile: &ProviderProfile,
    ledger: &mut Ledger,
    run_directory: &RunDirectory,
    to_send: &[Adoption],
) -> anyhow::Result<usize> {
    let by_custom_id: HashMap<&str, &Adoption> = to_send
        .iter()
        .map(|adoption| (adoption.custom_id.as_str(), adoption))
        .collect();
    let next_index = ledger
        .shards()?
        .iter()
        .map(|shard| shard.shard_index + 1)
        .max()
        .unwrap_or(0);
    let path = adopted_lines_path(&run_directory.shards_directory());
    let file = std::fs::File::open(&path).map_err(|error| {
        anyhow::anyhow!(
            "cannot read the adopted requests `{}`: {error}",
            path.display()
        )
    })?;
    let mut extra = ExtraShards::new(run_directory, shard_limits(job, profile), next_index);
    let mut keys = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let identity: LineIdentity = serde_json::from_str(&line)?;
        let Some(adoption) = by_custom_id.get(identity.custom_id.as_str()) else {
            continue;
        };
        extra.write(
            &line,
            adoption.row_number,
            adoption.custom_id.clone(),
            &job.spec.request.model,
            2,
        )?;
        keys.push(adoption.key);
    }
    let (shards, rows) = extra.finish()?;
    if keys.len() != to_send.len() {
        anyhow::bail!(
            "{} adopted request(s) are missing from `{}`; the run directory was changed",
            to_send.len() - keys.len(),
            path.display()
        );
    }
    ledger.insert_adoption_sends(&shards, &rows, &keys)?;
    Ok(shards.len())
}
