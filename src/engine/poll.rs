//! Polling: every live batch is retrieved with a growing interval until it settles, its state
//! written to the ledger each time, progress shown from `request_counts`, and its results
//! downloaded as soon as it settles.

use std::time::Duration;

use super::batch_lookup::{LiveBatch, look_up_live_batches};
use super::download::download_shard_results;
use super::{Event, EventSink, RunDirectory};
use crate::client::{ApiClient, ClientError};
use crate::ledger::Ledger;
use crate::wire::Batch;

/// The provider's cap on batches running at once, and whether shards wait for a free slot.
#[derive(Debug, Clone, Copy)]
pub struct BatchSlots {
    pub max_live_batches: usize,
    pub shards_waiting: bool,
}

/// How the wait between polls grows.
#[derive(Debug, Clone, Copy)]
pub struct PollSchedule {
    pub first_interval: Duration,
    pub max_interval: Duration,
}

impl PollSchedule {
    pub fn next_interval(&self, current: Duration) -> Duration {
        (current.mul_f64(1.5))
            .min(self.max_interval)
            .max(self.first_interval)
    }
}

fn ledger_error(error: crate::ledger::LedgerError) -> ClientError {
    ClientError::Local {
        operation: "update the run ledger".into(),
        message: error.to_string(),
    }
}

/// Records a batch's state in the ledger.
pub fn record_batch_state(
    ledger: &Ledger,
    shard_index: u64,
    batch: &Batch,
) -> Result<(), ClientError> {
    let counts = batch.request_counts.unwrap_or_default();
    let errors = if batch.error_list().is_empty() {
        None
    } else {
        Some(serde_json::to_string(batch.error_list()).expect("errors serialise"))
    };
    ledger
        .update_batch_state(
            shard_index,
            batch.status.as_str(),
            counts.total,
            counts.completed,
            counts.failed,
            batch.output_file_id.as_deref(),
            batch.error_file_id.as_deref(),
            errors.as_deref(),
        )
        .map_err(ledger_error)
}

/// Polls until a shard with a batch settles and its results are on disk (so its transient
/// failures can be sent again while other batches still run), until every one has, or until a
/// slot frees for a shard still waiting under `max_live_batches`.
pub async fn poll_until_settled(
    client: &ApiClient,
    ledger: &Ledger,
    run_directory: &RunDirectory,
    events: &EventSink,
    schedule: PollSchedule,
    total_rows: u64,
    slots: BatchSlots,
) -> Result<(), ClientError> {
    let mut interval = schedule.first_interval;
    loop {
        let shards = ledger.shards().map_err(ledger_error)?;
        let live: Vec<LiveBatch<'_>> = shards
            .iter()
            .filter(|shard| !shard.results_downloaded && !shard.status().is_terminal())
            .filter_map(|shard| {
                shard.batch_id.as_deref().map(|batch_id| LiveBatch {
                    batch_id,
                    input_file_id: shard.file_id.as_deref(),
                })
            })
            .collect();
        let mut looked_up = look_up_live_batches(client, &live).await?;
        let mut pending = 0;
        let mut settled_now = 0;
        for shard in &shards {
            let Some(batch_id) = &shard.batch_id else {
                continue;
            };
            if shard.results_downloaded {
                continue;
            }
            let mut shard = shard.clone();
            if !shard.status().is_terminal() {
                let batch = looked_up
                    .remove(batch_id.as_str())
                    .expect("every live batch is looked up");
                crate::kill_point::reach("during_poll");
                record_batch_state(ledger, shard.shard_index, &batch)?;
                let counts = batch.request_counts.unwrap_or_default();
                events.shard_progress(
                    shard.shard_index,
                    counts.total.max(shard.row_count),
                    counts.completed + counts.failed,
                    batch.status.as_str(),
                );
                if shard.status() != batch.status {
                    events.emit(
                        Event::BatchStatus {
                            shard: shard.shard_index,
                            batch_id,
                            status: batch.status.as_str(),
                            request_counts: &counts,
                        },
                        || {
                            batch.status.is_terminal().then(|| {
                                format!(
                                    "batch `{batch_id}` (shard {}) is {}: {} completed, {} failed",
                                    shard.shard_index,
                                    batch.status.as_str(),
                                    counts.completed,
                                    counts.failed
                                )
                            })
                        },
                    );
                }
                shard.batch_status = Some(batch.status.as_str().to_owned());
                shard.output_file_id = batch.output_file_id.clone();
                shard.error_file_id = batch.error_file_id.clone();
                shard.request_completed = counts.completed;
                shard.request_failed = counts.failed;
            }
            if shard.status().is_terminal() {
                download_shard_results(client, ledger, run_directory, events, &shard).await?;
                settled_now += 1;
            } else {
                pending += 1;
            }
        }
        let shards = ledger.shards().map_err(ledger_error)?;
        let answered: u64 = shards
            .iter()
            .map(|shard| {
                if shard.results_downloaded {
                    shard.row_count
                } else {
                    (shard.request_completed + shard.request_failed).min(shard.row_count)
                }
            })
            .sum();
        events.overall_progress(
            answered.min(total_rows),
            &format!("{pending} batch(es) running"),
        );
        if pending == 0 || settled_now > 0 {
            return Ok(());
        }
        // Shards waiting for a free slot under the provider's concurrency cap go first.
        if slots.shards_waiting && pending < slots.max_live_batches {
            return Ok(());
        }
        tokio::time::sleep(interval).await;
        interval = schedule.next_interval(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_grow_to_the_cap() {
        let schedule = PollSchedule {
            first_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(4),
        };
        let mut interval = schedule.first_interval;
        let mut seen = Vec::new();
        for _ in 0..6 {
            interval = schedule.next_interval(interval);
            seen.push(interval.as_millis());
        }
        assert_eq!(seen, vec![1500, 2250, 3375, 4000, 4000, 4000]);
    }
}
