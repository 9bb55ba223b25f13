//! Finding lost answers again: when a shard's output file can no longer be fetched (the
//! provider deleted or expired it, or an older copy of the run directory was put back after the
//! run had already downloaded and then deleted it), the answers that shard's batch gave are
//! taken from the answer store, which recorded them by request key when they were first
//! downloaded. Only an answer the store holds from this very batch is taken, so a row is never
//! given an answer it did not pay for in this run; the rows left without one keep
//! `results_unavailable`.

use std::io::Write;

use super::shard_request_keys::shard_request_keys;

use super::{Event, EventSink, RunDirectory};
use crate::answer_store::{AnswerStore, StoredAnswer};
use crate::ledger::{Ledger, ShardRecord};
use crate::request_key::RequestKey;

/// What a lost shard's reason says once answers were found again: `<reason>; found again in
/// the answer store: N of the shard's M answers were`.
const FOUND_AGAIN: &str = "; found again in the answer store: ";
/// The extension of a recovered results file before it is put in place.
const RECOVERING: &str = "jsonl.recovering";

/// What was found again for one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Recovered {
    /// Answers written back into the shard's output results file.
    pub answers: u64,
    /// Request lines of the shard.
    pub rows: u64,
}

/// Takes the answers of every shard whose output file was lost from `store`, writing them as
/// that shard's output results file, and updates the ledger's account of what was lost.
///
/// # Errors
/// When the ledger, a shard file or the store cannot be read, or the results file written.
pub(super) fn recover_lost_results(
    ledger: &Ledger,
    run_directory: &RunDirectory,
    store: &AnswerStore,
    provider_identity: &str,
    events: &EventSink,
) -> anyhow::Result<()> {
    for shard in ledger.shards()? {
        let (Some(reason), Some(file_id), Some(batch_id)) = (
            &shard.results_unavailable,
            &shard.output_file_id,
            &shard.batch_id,
        ) else {
            continue;
        };
        let destination = run_directory.output_results_path(shard.shard_index);
        if !shard.results_downloaded {
            continue;
        }
        if destination.exists() {
            // Stopped after putting back every answer but before saying nothing is lost.
            if all_found_again(reason) {
                ledger.set_results_unavailable(shard.shard_index, None)?;
            }
            continue;
        }
        let recovered = write_recovered_results(
            run_directory,
            &shard,
            &destination,
            provider_identity,
            |key| store.lookup(key).map_err(anyhow::Error::new),
            batch_id,
        )?;
        if recovered.answers == 0 {
            continue;
        }
        // The ledger says what was found before the file is in place (a crash in between
        // leaves the file out and the recovery to do again), and that nothing is lost after.
        let base_reason = reason
            .split_once(FOUND_AGAIN)
            .map_or(reason.as_str(), |(base, _)| base);
        ledger.set_results_unavailable(
            shard.shard_index,
            Some(&format!(
                "{base_reason}{FOUND_AGAIN}{} of the shard's {} answers were",
                recovered.answers, recovered.rows
            )),
        )?;
        std::fs::rename(destination.with_extension(RECOVERING), &destination)?;
        if recovered.answers == recovered.rows {
            ledger.set_results_unavailable(shard.shard_index, None)?;
        }
        events.emit(
            Event::ResultsRecovered {
                shard: shard.shard_index,
                file_id,
                answers: recovered.answers,
                rows: recovered.rows,
            },
            || {
                Some(format!(
                    "shard {}: `{file_id}` can no longer be fetched; {} of its {} answers were taken from the answer store, which kept them when they were first downloaded",
                    shard.shard_index, recovered.answers, recovered.rows
                ))
            },
        );
    }
    Ok(())
}

/// Whether `reason` says every answer of its shard was found again (see [`FOUND_AGAIN`]).
fn all_found_again(reason: &str) -> bool {
    let Some((_, found)) = reason.split_once(FOUND_AGAIN) else {
        return false;
    };
    let numbers: Vec<&str> = found
        .split(|character: char| !character.is_ascii_digit())
        .filter(|number| !number.is_empty())
        .collect();
    matches!(numbers[..], [answers, rows] if answers == rows)
}

/// Writes the stored answers of `shard`'s requests that its batch `batch_id` gave beside
/// `destination` (with the extension [`RECOVERING`], synced, when there is any); what it found.
fn write_recovered_results(
    run_directory: &RunDirectory,
    shard: &ShardRecord,
    destination: &std::path::Path,
    provider_identity: &str,
    mut lookup: impl FnMut(&RequestKey) -> anyhow::Result<Option<StoredAnswer>>,
    batch_id: &str,
) -> anyhow::Result<Recovered> {
    let requests = shard_request_keys(run_directory, shard, provider_identity)?;
    let partial = destination.with_extension(RECOVERING);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&partial)?);
    let mut recovered = Recovered {
        answers: 0,
        rows: 0,
    };
    for request in requests {
        let (custom_id, key) = request?;
        recovered.rows += 1;
        let Some(stored) = lookup(&key)? else {
            continue;
        };
        if is_answer_of(&stored, batch_id, &custom_id) {
            out.write_all(stored.result_line.trim_end().as_bytes())?;
            out.write_all(b"\n")?;
            recovered.answers += 1;
        }
    }
    let file = out.into_inner().map_err(|error| error.into_error())?;
    if recovered.answers == 0 {
        drop(file);
        std::fs::remove_file(&partial)?;
        return Ok(recovered);
    }
    file.sync_all()?;
    Ok(recovered)
}

/// Whether `stored` is the answer batch `batch_id` gave to the request `custom_id`.
fn is_answer_of(stored: &StoredAnswer, batch_id: &str, custom_id: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Identified<'a> {
        #[serde(borrow)]
        custom_id: std::borrow::Cow<'a, str>,
    }
    stored.batch_id.as_deref() == Some(batch_id)
        && serde_json::from_str::<Identified<'_>>(&stored.result_line)
            .is_ok_and(|line| line.custom_id == custom_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(batch_id: Option<&str>, custom_id: &str) -> StoredAnswer {
        StoredAnswer {
            result_line: format!(
                r#"{{"id":"r","custom_id":"{custom_id}","response":{{"status_code":200}}}}"#
            ),
            batch_id: batch_id.map(str::to_owned),
        }
    }

    #[test]
    fn a_reason_says_all_were_found_again_only_when_every_answer_was() {
        let reason = |found: u64, rows: u64| {
            format!(
                "`file-1` can no longer be fetched: 404{FOUND_AGAIN}{found} of the shard's {rows} answers were"
            )
        };
        assert!(all_found_again(&reason(12, 12)));
        assert!(!all_found_again(&reason(11, 12)));
        assert!(!all_found_again("`file-1` can no longer be fetched: 404"));
    }

    #[test]
    fn only_the_answer_this_batch_gave_this_request_is_taken() {
        assert!(is_answer_of(&stored(Some("b1"), "7"), "b1", "7"));
        // Another batch's answer to the same request (an earlier run): not paid for here.
        assert!(!is_answer_of(&stored(Some("b0"), "7"), "b1", "7"));
        assert!(!is_answer_of(&stored(None, "7"), "b1", "7"));
        // The same request under another row's id: the join would give it to that row.
        assert!(!is_answer_of(&stored(Some("b1"), "8"), "b1", "7"));
        assert!(!is_answer_of(
            &StoredAnswer {
                result_line: "not json".into(),
                batch_id: Some("b1".into())
            },
            "b1",
            "7"
        ));
    }

    #[test]
    fn the_found_answers_are_written_whole_and_none_leaves_no_file() {
        let directory = tempfile::tempdir().unwrap();
        let run_directory = RunDirectory::new(directory.path().to_owned());
        std::fs::create_dir_all(run_directory.shards_directory()).unwrap();
        std::fs::create_dir_all(run_directory.results_directory()).unwrap();
        let request = |id: &str, text: &str| {
            format!(
                r#"{{"custom_id":"{id}","method":"POST","url":"/v1/chat/completions","body":{{"model":"m","messages":[{{"role":"user","content":"{text}"}}]}}}}"#
            )
        };
        let lines = [request("1", "a"), request("2", "b"), request("3", "c")];
        std::fs::write(
            run_directory.shard_path("shard-00000.jsonl"),
            lines.join("\n") + "\n",
        )
        .unwrap();
        let shard = ShardRecord {
            shard_index: 0,
            file_name: "shard-00000.jsonl".into(),
            ..ShardRecord::default()
        };
        let key_of = |line: &str| {
            RequestKey::of_request_line("sim", line.as_bytes())
                .unwrap()
                .1
        };
        let (first, third) = (key_of(&lines[0]), key_of(&lines[2]));
        let destination = run_directory.output_results_path(0);
        let recovered = write_recovered_results(
            &run_directory,
            &shard,
            &destination,
            "sim",
            |key| {
                Ok((*key == first)
                    .then(|| stored(Some("b1"), "1"))
                    .or_else(|| (*key == third).then(|| stored(Some("b0"), "3"))))
            },
            "b1",
        )
        .unwrap();
        assert_eq!(
            recovered,
            Recovered {
                answers: 1,
                rows: 3
            }
        );
        let written = std::fs::read_to_string(destination.with_extension(RECOVERING)).unwrap();
        assert_eq!(written.lines().count(), 1);
        assert!(written.contains(r#""custom_id":"1""#));

        std::fs::remove_file(destination.with_extension(RECOVERING)).unwrap();
        let recovered = write_recovered_results(
            &run_directory,
            &shard,
            &destination,
            "sim",
            |_| Ok(None),
            "b1",
        )
        .unwrap();
        assert_eq!(recovered.answers, 0);
        assert!(!destination.with_extension(RECOVERING).exists());
        assert_eq!(
            std::fs::read_dir(run_directory.results_directory())
                .unwrap()
                .count(),
            0,
            "no partial file is left"
        );
    }
}
