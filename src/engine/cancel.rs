//! `dashbatch cancel RUN_DIR`: asks the provider to stop a run's live batches, each request
//! announced in the ledger first.

use std::path::Path;

use super::connection::connect;
use super::poll::record_batch_state;
use super::run_failure::RunFailure;
use super::run_record::{open_existing_ledger, read_run_record};
use super::submit::METADATA_SHARD;
use super::unrecorded_batches::{batches_since_founding, run_began_at};
use super::{Event, EventSink, OutputMode, RunDirectory};
use crate::client::{ApiClient, ClientError};
use crate::ledger::Ledger;
use crate::wire::{Batch, BatchStatus};

/// `dashbatch cancel RUN_DIR`: asks the provider to cancel the run's live batches. Rows that
/// already finished stay billed and are kept; `resume` then joins what came back.
pub async fn cancel_run(run_directory: &Path, mode: OutputMode) -> Result<u64, RunFailure> {
    let ledger = open_existing_ledger(run_directory)?;
    let record = read_run_record(&ledger)?;
    let founding = record.founded(run_directory)?;
    let (provider, base_url) = (founding.provider, founding.base_url.clone());
    // From here on the run may have spent money: a failure is never exit 2.
    let directory = RunDirectory::new(run_directory.to_owned());
    let connection = connect(provider, base_url.as_deref(), &directory).await?;
    let events = EventSink::new(mode);
    let mut cancelled = 0;
    // Every live batch is asked, whatever happened to the one before: a batch that ended in the
    // meantime refuses (409) and is recorded as it now is; the rest are still cancelled.
    let mut not_cancelled: Vec<String> = Vec::new();
    for shard in ledger.shards().map_err(RunFailure::remote)? {
        let Some(batch_id) = shard.batch_id.as_ref().filter(|_| shard.has_live_batch()) else {
            continue;
        };
        match ask_to_cancel(
            &ledger,
            &connection.client,
            Some(shard.shard_index),
            batch_id,
        )
        .await?
        {
            Ok(batch) => {
                record_batch_state(&ledger, shard.shard_index, &batch)
                    .map_err(RunFailure::remote)?;
                cancelled += 1;
                say_cancel(
                    &events,
                    shard.shard_index,
                    batch_id,
                    &batch,
                    "asked to cancel",
                );
            }
            Err(error) => {
                // Refused because the batch already ended: learn its state, so the ledger no
                // longer holds it live and a later `cancel` or `resume` sees the truth.
                let ended = error
                    .status()
                    .is_some_and(|status| (400..500).contains(&status))
                    && match connection.client.get_batch(batch_id).await {
                        Ok(batch) if batch.status.is_terminal() => {
                            record_batch_state(&ledger, shard.shard_index, &batch)
                                .map_err(RunFailure::remote)?;
                            say_cancel(
                                &events,
                                shard.shard_index,
                                batch_id,
                                &batch,
                                "had already ended",
                            );
                            true
                        }
                        _ => false,
                    };
                if !ended {
                    not_cancelled.push(format!(
                        "batch `{batch_id}` (shard {}): {error}",
                        shard.shard_index
                    ));
                }
            }
        }
    }
    // Batches of the run its ledger does not record (an older copy of it was put back) are
    // asked too: `cancel` stops all of the run's spending.
    let recorded: std::collections::HashSet<String> = ledger
        .shards()
        .map_err(RunFailure::remote)?
        .into_iter()
        .filter_map(|shard| shard.batch_id)
        .collect();
    let began_at = run_began_at(founding.founded_at, &directory);
    let listed = batches_since_founding(&connection.client, &founding.run_id, began_at)
        .await
        .map_err(RunFailure::remote)?;
    for batch in listed.batches {
        let live = !batch.status.is_terminal() && batch.status != BatchStatus::Cancelling;
        if !live || recorded.contains(&batch.id) {
            continue;
        }
        let shard_index = batch
            .metadata_value(METADATA_SHARD)
            .and_then(|text| text.parse::<u64>().ok());
        match ask_to_cancel(&ledger, &connection.client, shard_index, &batch.id).await? {
            Ok(answer) => {
                cancelled += 1;
                say_cancel(
                    &events,
                    shard_index.unwrap_or_default(),
                    &batch.id,
                    &answer,
                    "not in the run's ledger (an older copy of it?), asked to cancel",
                );
            }
            Err(error) => {
                not_cancelled.push(format!(
                    "batch `{}` (not in the run's ledger): {error}",
                    batch.id
                ));
            }
        }
    }
    if !not_cancelled.is_empty() {
        return Err(RunFailure::remote(anyhow::anyhow!(
            "{} of the run's live batches could not be cancelled (the others were): {}; run `dashbatch cancel` again",
            not_cancelled.len(),
            not_cancelled.join("; ")
        )));
    }
    Ok(cancelled)
}

/// Asks the provider to cancel `batch_id` (of shard `shard_index`, when known), announced in the
/// ledger first; the provider's answer, or its error.
async fn ask_to_cancel(
    ledger: &Ledger,
    client: &ApiClient,
    shard_index: Option<u64>,
    batch_id: &str,
) -> Result<Result<Batch, ClientError>, RunFailure> {
    super::announced_calls::cancel_batch_announced(ledger, client, shard_index, batch_id)
        .await
        .map_err(RunFailure::remote)
}

/// Says what became of a batch `cancel` asked about: `what` is `asked to cancel` or `had
/// already ended`, and the batch's status follows.
fn say_cancel(events: &EventSink, shard_index: u64, batch_id: &str, batch: &Batch, what: &str) {
    events.emit(
        Event::BatchCancelRequested {
            shard: shard_index,
            batch_id,
            status: batch.status.as_str(),
        },
        || {
            Some(format!(
                "batch `{batch_id}` (shard {shard_index}): {what}, now {}",
                batch.status.as_str()
            ))
        },
    );
}
