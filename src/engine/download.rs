//! Downloading a settled batch's output and error files, streamed to the run directory and
//! verified line by line; a truncated or malformed file is fetched again.

use std::path::Path;

use super::result_digest::{DigestAlongside, remove_digest_of};
use super::shard_results::ResultFileLines;
use super::{Event, EventSink, RunDirectory};
use crate::chat_line_shape::ChatLineReader;
use crate::client::{ApiClient, ClientError};
use crate::ledger::{EffectKind, EffectOutcome, Ledger, ShardRecord};
use crate::row_result::classify_result_text_in_full;
use crate::wire::BatchStatus;

const MAX_DOWNLOAD_ATTEMPTS: u32 = 3;

/// Checks that every non-empty line of a result file is a result line with a custom_id, read
/// as the join reads it (so a file that passes here is one the join can read), and writes the
/// file's digest as it goes ([`super::result_digest`]), so that the join does not read the
/// lines again. Returns the line count or the first problem. A digest that cannot be written
/// is left out: the join then reads the lines.
pub fn verify_result_file(path: &Path) -> Result<u64, String> {
    let mut reading = ResultFileLines::open(path).map_err(|error| error.to_string())?;
    let mut digest = DigestAlongside::start(path, reading.file());
    let mut chat_lines = ChatLineReader::default();
    let mut lines = 0;
    loop {
        let (line_number, offset, line) = match reading.next_line() {
            Ok(Some(next)) => (next.number, next.offset, next.text),
            Ok(None) => {
                digest.finish();
                return Ok(lines);
            }
            Err(error) => return Err(format!("line {}: {error}", reading.line_number())),
        };
        let line = line.map_err(|error| format!("line {line_number}: not UTF-8 ({error})"))?;
        // Which status the batch ended in changes how a line is classified, never whether it
        // is read.
        let answer = chat_lines.read(line);
        if answer.is_none() {
            classify_result_text_in_full(line, BatchStatus::Completed)
                .map_err(|error| format!("line {line_number}: not a result line ({error})"))?;
        }
        digest.add(answer.as_ref(), line_number, offset, line.len());
        lines += 1;
    }
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
                // Before the check, which ties the file's digest to its status change time.
                crate::ledger::restrict_permissions(destination);
                let verified = verify_result_file(destination);
                match verified {
                    Ok(lines) => {
                        let _ = ledger.record_outcome(
                            effect,
                            EffectOutcome::Done,
                            &format!("{lines} lines"),
                        );
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
    let file_ids = [&shard.output_file_id, &shard.error_file_id];
    for (file_id, destination) in file_ids
        .into_iter()
        .zip(run_directory.results_paths(shard.shard_index))
    {
        let Some(file_id) = file_id else { continue };
        // A whole file is in place only once it was downloaded in full (see
        // `ApiClient::download_file`): one there before the ledger recorded the download (a
        // crash in between, or an older copy of the ledger put back) is kept, never fetched
        // again, since the provider may no longer serve the answers it holds.
        if destination.is_file()
            && let Ok(count) = verify_result_file(&destination)
        {
            lines += count;
            continue;
        }
        match download_verified(client, ledger, shard.shard_index, file_id, &destination).await {
            Ok(count) => lines += count,
            Err(error) if is_gone(&error) => {
                // The provider will not serve it again: say so on the rows, keep the run going.
                let _ = std::fs::remove_file(&destination);
                remove_digest_of(&destination);
                let reason = format!("`{file_id}` can no longer be fetched: {error}");
                ledger
                    .set_results_unavailable(shard.shard_index, Some(&reason))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(text: &[u8]) -> Result<u64, String> {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("results.jsonl");
        std::fs::write(&path, text).unwrap();
        verify_result_file(&path)
    }

    const ANSWER: &str = r#"{"id":"r1","custom_id":"a","response":{"status_code":200,"body":{"choices":[{"message":{"content":"hi"}}]}},"error":null}"#;
    const FAILURE: &str = r#"{"id":"r2","custom_id":"b","response":null,"error":{"code":"InternalError","message":"later"}}"#;

    #[test]
    fn whole_result_files_are_counted_line_by_line() {
        assert_eq!(verified(b""), Ok(0));
        assert_eq!(verified(format!("{ANSWER}\n").as_bytes()), Ok(1));
        assert_eq!(
            verified(format!("{ANSWER}\r\n\n  \n{FAILURE}").as_bytes()),
            Ok(2),
            "blank lines are skipped; the last line needs no newline"
        );
    }

    #[test]
    fn a_cut_or_damaged_file_names_its_first_bad_line() {
        let cut = format!("{ANSWER}\n{}", &FAILURE[..40]);
        let problem = verified(cut.as_bytes()).unwrap_err();
        assert!(
            problem.starts_with("line 2: not a result line"),
            "{problem}"
        );
        let no_custom_id = format!("{ANSWER}\n{{\"id\":\"r3\",\"response\":null}}\n");
        let problem = verified(no_custom_id.as_bytes()).unwrap_err();
        assert!(
            problem.starts_with("line 2: not a result line"),
            "{problem}"
        );
        let mut not_utf8 = format!("{ANSWER}\n{ANSWER}\n").into_bytes();
        not_utf8.extend_from_slice(b"{\"custom_id\":\"\xff\"}\n");
        let problem = verified(&not_utf8).unwrap_err();
        assert!(problem.starts_with("line 3: not UTF-8"), "{problem}");
    }
}
