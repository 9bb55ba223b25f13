//! Retries of transient failures: requests that failed for a passing reason (rate limit, server
//! error, timeout, expiry) are copied from their shard file into new retry shards and sent again,
//! up to `batch.max_attempts` sends in all. Requests that failed for good are never resent, and
//! neither are lines the provider lost (they may have been billed).
//!
//! A retry shard's results become the latest word on their rows (`row_overrides` in the ledger),
//! which the join prefers over the earlier attempt's failure.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::RunDirectory;
use super::plan::shard_limits;
use super::shard_results::load_shard_results;
use crate::job::Job;
use crate::ledger::{Ledger, ShardRecord, restrict_permissions};
use crate::provider::ProviderProfile;
use crate::row_result::{RowResult, is_transient_failure};
use crate::shard::{Placement, ShardPlanner};
use crate::wire::BatchStatus;

pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

#[derive(Deserialize)]
struct LineIdentity {
    custom_id: String,
}

/// The input row number of each line (1-based) of a shard.
fn row_numbers(ledger: &Ledger, shard: &ShardRecord) -> anyhow::Result<HashMap<u64, u64>> {
    if shard.attempt <= 1 {
        return Ok(HashMap::new());
    }
    Ok(ledger
        .shard_rows(shard.shard_index)?
        .into_iter()
        .map(|(line, row, _)| (line, row))
        .collect())
}

/// Records the results of downloaded retry shards as row overrides.
pub fn ingest_retry_results(
    ledger: &mut Ledger,
    run_directory: &RunDirectory,
) -> anyhow::Result<()> {
    for shard in ledger.shards()? {
        if shard.attempt <= 1 || !shard.results_downloaded || shard.results_ingested {
            continue;
        }
        let status = shard.status();
        let mut results = load_shard_results(run_directory, &shard, status)?;
        let mut overrides = Vec::new();
        for (_, _, custom_id) in ledger.shard_rows(shard.shard_index)? {
            let result = results
                .remove(&custom_id)
                .unwrap_or_else(|| RowResult::unanswered(Some(status)));
            overrides.push((custom_id, serde_json::to_string(&result)?));
        }
        ledger.ingest_overrides(
            shard.shard_index,
            shard.attempt,
            shard.batch_id.as_deref(),
            &overrides,
        )?;
    }
    Ok(())
}

struct RetryShardWriter {
    record: ShardRecord,
    path: std::path::PathBuf,
    writer: BufWriter<File>,
    hasher: Sha256,
}

/// Collects transient failures of settled shards into new retry shards. Returns how many were made.
pub fn plan_retries(
    job: &Job,
    profile: &ProviderProfile,
    ledger: &mut Ledger,
    run_directory: &RunDirectory,
) -> anyhow::Result<usize> {
    let max_attempts = job.spec.batch.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    let shards = ledger.shards()?;
    let mut next_index = shards
        .iter()
        .map(|shard| shard.shard_index + 1)
        .max()
        .unwrap_or(0);
    let candidates: Vec<&ShardRecord> = shards
        .iter()
        .filter(|shard| shard.results_downloaded && !shard.retry_scanned)
        .collect();
    if candidates.is_empty() {
        return Ok(0);
    }
    let mut new_shards: Vec<ShardRecord> = Vec::new();
    let mut new_rows: Vec<(u64, u64, u64, String)> = Vec::new();
    let mut scanned = Vec::new();
    let limits = shard_limits(job, profile);

    for shard in candidates {
        scanned.push(shard.shard_index);
        if shard.attempt >= max_attempts {
            continue;
        }
        let status = shard.status();
        if status == BatchStatus::Failed {
            // A batch that failed validation fails again the same way.
            continue;
        }
        let results = load_shard_results(run_directory, shard, status)?;
        let rows = row_numbers(ledger, shard)?;
        let mut planner = ShardPlanner::new(limits);
        let mut open: Option<RetryShardWriter> = None;
        let file = File::open(run_directory.shard_path(&shard.file_name))?;
        for (index, line) in BufReader::new(file).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let line_number = index as u64 + 1;
            let identity: LineIdentity = serde_json::from_str(&line)?;
            let unanswered;
            let result = match results.get(&identity.custom_id) {
                Some(result) => result,
                None => {
                    unanswered = RowResult::unanswered(Some(status));
                    &unanswered
                }
            };
            if !is_transient_failure(result) {
                continue;
            }
            let row_number = if shard.attempt <= 1 {
                shard.first_row + line_number - 1
            } else {
                rows.get(&line_number).copied().unwrap_or(0)
            };
            if let Placement::NewShard { .. } =
                planner.place(line.len() as u64).map_err(|too_long| {
                    anyhow::anyhow!(
                        "a retried line is {} bytes, over the limit",
                        too_long.line_bytes
                    )
                })?
            {
                if let Some(done) = open.take() {
                    new_shards.push(close(done)?);
                }
                let index = next_index;
                next_index += 1;
                let file_name = format!("shard-{index:05}.jsonl");
                let path = run_directory.shard_path(&file_name);
                open = Some(RetryShardWriter {
                    record: ShardRecord::planned(
                        index,
                        row_number,
                        file_name,
                        shard.model.clone(),
                        shard.attempt + 1,
                    ),
                    writer: BufWriter::new(File::create(&path)?),
                    path,
                    hasher: Sha256::new(),
                });
            }
            let writer = open.as_mut().expect("a retry shard is open");
            writer.writer.write_all(line.as_bytes())?;
            writer.writer.write_all(b"\n")?;
            writer.hasher.update(line.as_bytes());
            writer.hasher.update(b"\n");
            writer.record.row_count += 1;
            writer.record.byte_size += line.len() as u64 + 1;
            new_rows.push((
                writer.record.shard_index,
                writer.record.row_count,
                row_number,
                identity.custom_id,
            ));
        }
        if let Some(done) = open.take() {
            new_shards.push(close(done)?);
        }
    }
    ledger.insert_retry_plan(&new_shards, &new_rows, &scanned)?;
    Ok(new_shards.len())
}

fn close(mut shard: RetryShardWriter) -> anyhow::Result<ShardRecord> {
    shard.writer.flush()?;
    let file = shard
        .writer
        .into_inner()
        .map_err(|error| error.into_error())?;
    file.sync_all()?;
    restrict_permissions(&shard.path);
    shard.record.sha256 = hex::encode(shard.hasher.finalize());
    Ok(shard.record)
}
