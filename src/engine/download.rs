//! Downloading a settled batch's output and error files, streamed to the run directory and
//! verified line by line; a truncated or malformed file is fetched again.

use std::io::{BufRead, BufReader};
use std::path::Path;

use super::{Event, EventSink, RunDirectory};
use crate::client::{ApiClient, ClientError};
use crate::ledger::{EffectKind, EffectOutcome, Ledger, ShardRecord};
use crate::wire::ResultLine;

const MAX_DOWNLOAD_ATTEMPTS: u32 = 3;

/// Checks that every non-empty line of a result file is a result line with a custom_id.
/// Returns the line count or the first problem.
pub fn verify_result_file(path: &Path) -> Result<u64, String> {
    let file = std::fs::File::open(path).map_err(|error| error.to_string())?;
    let mut lines = 0;
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|error| format!("line {}: {error}", index + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        serde_json::from_str::<ResultLine>(&line)
            .map_err(|error| format!("line {}: not a result line ({error})", index + 1))?;
        lines += 1;
    }
    Ok(lines)
}

async fn download_verified(
    client: &ApiClient,
    ledger: &Ledger,
    shard_index: u64,
    file_id: &str,
    destination: &Path,
) -> Result<u64, ClientError> {
    let mut last_problem = String::new();
    for _attempt in 0..MAX_DOWNLOAD_ATTEMPTS {
        let effect = ledger
            .record_intent(Some(shard_index), EffectKind::Download, file_id)
            .map_err(|error| ClientError::Local {
                operation: format!("download `{file_id}`"),
                message: error.to_string(),
            })?;
        let outcome = client.download_file(file_id, destination).await;
        match outcome {
            Ok(_) => {
                crate::kill_point::reach("during_download");
                let verified = verify_result_file(destination);
                match verified {
                    Ok(lines) => {
                        let _ = ledger.record_outcome(
                            effect,
                            EffectOutcome::Done,
                            &format!("{lines} lines"),
                        );
                        crate::ledger::restrict_permissions(destination);
                        return Ok(lines);
                    }
                    Err(problem) => {
                        let _ = ledger.record_outcome(effect, EffectOutcome::Failed, &problem);
                        last_problem = problem;
                    }
                }
            }
            Err(error) => {
                let _ = ledger.record_outcome(effect, EffectOutcome::Failed, &error.to_string());
                return Err(error);
            }
        }
    }
    Err(ClientError::Decode {
        operation: format!("download `{file_id}`"),
        message: format!(
            "the file was malformed {MAX_DOWNLOAD_ATTEMPTS} times in a row: {last_problem}"
        ),
    })
}

/// A download failure that retrying later cannot fix: the file is gone or refused for good,
/// or it came back malformed every time.
fn is_gone(error: &ClientError) -> bool {
    match error {
        ClientError::Status { status, .. } => {
            (400..500).contains(status) && *status != 408 && *status != 429 && *status != 401
        }
        ClientError::Decode { .. } => true,
        _ => false,
    }
}

/// Downloads whatever result files the shard's batch has. Missing files are fine (a batch with
/// no failures has no error file).
pub async fn download_shard_results(
    client: &ApiClient,
    ledger: &Ledger,
    run_directory: &RunDirectory,
    events: &EventSink,
    shard: &ShardRecord,
) -> Result<(), ClientError> {
    let mut lines = 0;
    let files = [
        (
            &shard.output_file_id,
            run_directory.output_results_path(shard.shard_index),
        ),
        (
            &shard.error_file_id,
            run_directory.error_results_path(shard.shard_index),
        ),
    ];
    for (file_id, destination) in files {
        let Some(file_id) = file_id else { continue };
        match download_verified(client, ledger, shard.shard_index, file_id, &destination).await {
            Ok(count) => lines += count,
            Err(error) if is_gone(&error) => {
                // The provider will not serve it again: say so on the rows, keep the run going.
                let _ = std::fs::remove_file(&destination);
                let reason = format!("`{file_id}` can no longer be fetched: {error}");
                ledger
                    .set_results_unavailable(shard.shard_index, &reason)
                    .map_err(|error| ClientError::Local {
                        operation: "record the lost results".into(),
                        message: error.to_string(),
                    })?;
                events.emit(
                    Event::ResultsUnavailable {
                        shard: shard.shard_index,
                        file_id,
                        reason: &reason,
                    },
                    || Some(format!("shard {}: {reason}", shard.shard_index)),
                );
            }
            Err(error) => return Err(error),
        }
    }
    ledger
        .set_results_downloaded(shard.shard_index)
        .map_err(|error| ClientError::Local {
            operation: "record the download".into(),
            message: error.to_string(),
        })?;
    events.emit(
        Event::ResultsDownloaded {
            shard: shard.shard_index,
            lines,
        },
        || {
            Some(format!(
                "downloaded {lines} result lines of shard {}",
                shard.shard_index
            ))
        },
    );
    Ok(())
}
