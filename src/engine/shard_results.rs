//! One shard's downloaded result files (output and error lines) read into a map from custom_id
//! to the row's result. Used by the join, the retry planner, the budget and `status`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};

use rustc_hash::FxHashMap;

use super::RunDirectory;
use crate::ledger::ShardRecord;
use crate::row_result::{RowResult, RowStatus, classify_result_text};
use crate::wire::BatchStatus;

/// A shard's results by custom_id (the ids are the run's own, checked unique at plan time, so a
/// fast hash that is not flood-resistant is enough), sized for the shard's rows.
pub(super) type ResultsById = FxHashMap<String, RowResult>;

/// Reads one shard's result files into a map from custom_id to result.
pub(super) fn load_shard_results(
    run_directory: &RunDirectory,
    shard: &ShardRecord,
    batch_status: BatchStatus,
) -> anyhow::Result<ResultsById> {
    let mut results =
        ResultsById::with_capacity_and_hasher(shard.row_count as usize, Default::default());
    for_each_result_line(
        run_directory,
        shard,
        batch_status,
        |custom_id, _, result| {
            // A line reported twice keeps its success, never a failure over it.
            match results.get(&custom_id) {
                Some(existing) if existing.status() == RowStatus::Ok => {}
                _ => {
                    results.insert(custom_id, result);
                }
            }
        },
    )?;
    Ok(results)
}

/// One shard's `ok` results with the result lines as the provider wrote them, by custom_id
/// (what the answer store keeps).
pub(super) fn load_ok_result_lines(
    run_directory: &RunDirectory,
    shard: &ShardRecord,
    batch_status: BatchStatus,
) -> anyhow::Result<HashMap<String, (String, RowResult)>> {
    let mut results: HashMap<String, (String, RowResult)> = HashMap::new();
    for_each_result_line(
        run_directory,
        shard,
        batch_status,
        |custom_id, line, result| {
            if result.status() == RowStatus::Ok {
                results
                    .entry(custom_id)
                    .or_insert((line.to_owned(), result));
            }
        },
    )?;
    Ok(results)
}

/// Calls `each` with (custom_id, the line, its result) for every line of a shard's output and
/// error files, in that order.
fn for_each_result_line(
    run_directory: &RunDirectory,
    shard: &ShardRecord,
    batch_status: BatchStatus,
    mut each: impl FnMut(String, &str, RowResult),
) -> anyhow::Result<()> {
    for path in [
        run_directory.output_results_path(shard.shard_index),
        run_directory.error_results_path(shard.shard_index),
    ] {
        if !path.exists() {
            continue;
        }
        let file = std::fs::File::open(&path)?;
        for (index, line) in BufReader::new(file).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let (custom_id, result) =
                classify_result_text(&line, batch_status).map_err(|error| {
                    anyhow::anyhow!(
                        "{}, line {}: not a result line: {error}",
                        path.display(),
                        index + 1
                    )
                })?;
            each(custom_id, &line, result);
        }
    }
    Ok(())
}
