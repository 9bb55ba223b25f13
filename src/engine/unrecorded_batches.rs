//! Before a resumed run sends anything: the provider's batches that carry this run's id (batch
//! metadata `dashbatch_run`) are matched against the ledger. A ledger that is an older copy (put
//! back from a backup, or a snapshot of the whole run directory) does not record the batches a
//! later process created, and resuming from it would create them again and pay for their rows
//! twice. A batch the ledger lacks is adopted when it is, beyond doubt, a shard the ledger has
//! not sent yet (same shard index, its input that shard's upload by name and size); any other
//! makes the run refuse to go on before anything is uploaded or created.

use std::collections::{BTreeMap, HashMap};

use super::poll::record_batch_state;
use super::submit::{
    METADATA_RUN, METADATA_SHARD, METADATA_SHARD_CONTENT, SHARD_CONTENT_DIGITS, SubmitError,
    upload_name,
};
use super::{Event, EventSink, RunDirectory};
use crate::client::{ApiClient, BatchListQuery, ClientError};
use crate::ledger::{Ledger, ShardRecord};
use crate::wire::{Batch, BatchStatus};

/// How long before the run's founding the provider's list is still read: the provider's clock
/// and the clock of the machine that founded the run may differ (a week; DashScope lists 30
/// days at most).
const CLOCK_SLACK_SECONDS: i64 = 7 * 86_400;
/// Statuses of a list call that say the provider has no batch list at all: the run goes on
/// unchecked (with a warning) rather than never resuming there.
const NO_BATCH_LIST: [u16; 3] = [404, 405, 501];
/// Batches per page of `GET /batches` (the most DashScope and OpenAI give).
const BATCHES_PER_PAGE: u32 = 100;
/// Pages read at most: a provider that ignores the list's cursor does not keep the run here.
const MAX_PAGES: usize = 500;

/// The provider holds batches of this run that its ledger does not record and that cannot be
/// adopted: nothing was uploaded or created.
#[derive(Debug, thiserror::Error)]
#[error(
    "the ledger of run directory `{run_directory}` does not record {count} batch(es) the provider holds for this run (their metadata `{METADATA_RUN}` is `{run_id}`): {listed}. The ledger is an older copy (put back from a backup or a snapshot) or was changed, and resuming from it would create batches again and pay for their rows twice; nothing was uploaded or created. If you have the ledger this run wrote last, put it back and resume. Otherwise those batches' answers are at the provider (their output files), and `dashbatch run JOB.toml --run-dir NEW_DIRECTORY` sends the job again in a new run (with the answer store on, answers already stored are not paid again)",
    count = batches.len(),
    listed = batches.join("; ")
)]
pub struct UnrecordedBatches {
    run_directory: String,
    run_id: String,
    /// Each batch, described: id, shard, status, and why it cannot be adopted.
    batches: Vec<String>,
}

/// The run's batches at the provider, as far as its list could be read.
pub(super) struct BatchesOfRun {
    pub batches: Vec<Batch>,
    /// Whether the list was read back to the run's founding (or its end).
    complete: bool,
}

/// Reads the provider's batch list, newest first, keeping the batches of `run_id`, back to a
/// batch created before `oldest_wanted` (seconds; when known), or to the list's end, reading
/// `max_pages` pages at most.
async fn batches_of_run(
    client: &ApiClient,
    run_id: &str,
    oldest_wanted: Option<i64>,
    max_pages: usize,
) -> Result<BatchesOfRun, ClientError> {
    let mut batches = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..max_pages {
        let (items, has_more) = list_page(client, after.clone()).await?;
        let reached_founding = oldest_wanted.is_some_and(|oldest| page_ends_before(&items, oldest));
        let last = items.last().map(|batch| batch.id.clone());
        batches.extend(
            items
                .into_iter()
                .filter(|batch| batch.metadata_value(METADATA_RUN) == Some(run_id)),
        );
        if !has_more || reached_founding {
            return Ok(BatchesOfRun {
                batches,
                complete: true,
            });
        }
        if last.is_none() || last == after {
            // A page that names no cursor, or the same one again: the list cannot be read on.
            break;
        }
        after = last;
    }
    Ok(BatchesOfRun {
        batches,
        complete: false,
    })
}

/// The batches of run `run_id` back to its beginning `began_at` (a week before it, for the two
/// clocks), or all of them when it is not known.
///
/// # Errors
/// The provider's.
pub(super) async fn batches_since_founding(
    client: &ApiClient,
    run_id: &str,
    began_at: Option<i64>,
) -> Result<BatchesOfRun, ClientError> {
    let oldest_wanted = began_at.map(|seconds| seconds - CLOCK_SLACK_SECONDS);
    batches_of_run(client, run_id, oldest_wanted, MAX_PAGES).await
}

/// One page of the provider's batch list (of the most it gives), after the batch `after`; its
/// batches and whether more follow.
///
/// # Errors
/// The provider's.
pub(super) async fn list_page(
    client: &ApiClient,
    after: Option<String>,
) -> Result<(Vec<Batch>, bool), ClientError> {
    let page = client
        .list_batches(&BatchListQuery {
            after,
            limit: Some(BATCHES_PER_PAGE),
            ..BatchListQuery::default()
        })
        .await?;
    let has_more = page.has_more;
    Ok((page.into_items(), has_more))
}

/// Whether a page's batches are listed newest first (by their creation times).
pub(super) fn is_newest_first(items: &[Batch]) -> bool {
    items
        .windows(2)
        .all(|pair| pair[0].created_at >= pair[1].created_at)
}

/// Whether a page listed newest first ends with a batch created before `oldest` (seconds): the
/// pages after it hold only older ones. A page not in that order, or without creation times,
/// tells nothing.
pub(super) fn page_ends_before(items: &[Batch], oldest: i64) -> bool {
    is_newest_first(items)
        && items
            .last()
            .is_some_and(|batch| batch.created_at > 0 && batch.created_at < oldest)
}

/// What one of the provider's batches of this run is to the ledger.
#[derive(Debug, PartialEq, Eq)]
enum Standing {
    /// The ledger records it.
    Recorded,
    /// The ledger's shard has another batch: the shard was created twice (a create whose
    /// answer was lost and that the provider's list did not show in time). Paid, not used.
    Duplicate { shard_index: u64, used: String },
    /// The ledger's shard has no batch yet: adopted if its input is that shard's upload.
    Unrecorded { shard_index: u64 },
    /// No shard of the ledger has its index (or its metadata names none).
    NoSuchShard,
}

fn standing_of(batch: &Batch, shards: &HashMap<u64, &ShardRecord>) -> Standing {
    let Some(shard) = batch
        .metadata_value(METADATA_SHARD)
        .and_then(|text| text.parse::<u64>().ok())
        .and_then(|index| shards.get(&index))
    else {
        return Standing::NoSuchShard;
    };
    match &shard.batch_id {
        Some(recorded) if *recorded == batch.id => Standing::Recorded,
        Some(recorded) => Standing::Duplicate {
            shard_index: shard.shard_index,
            used: recorded.clone(),
        },
        None => Standing::Unrecorded {
            shard_index: shard.shard_index,
        },
    }
}

/// Which of several unrecorded batches of one shard is adopted: one still running or
/// completed before one that failed, expired or was cancelled, then the newest.
pub(super) fn adoption_preference(batch: &Batch) -> (bool, i64) {
    let ended_without_answers = matches!(
        batch.status,
        BatchStatus::Failed
            | BatchStatus::Expired
            | BatchStatus::Cancelling
            | BatchStatus::Cancelled
    );
    (!ended_without_answers, batch.created_at)
}

pub(super) fn described(batch: &Batch, why: &str) -> String {
    format!(
        "`{}` (shard {}, {}): {why}",
        batch.id,
        batch.metadata_value(METADATA_SHARD).unwrap_or("none"),
        batch.status.as_str()
    )
}

/// Whether `batch`'s input file is `shard`'s upload by this run: the file the ledger recorded,
/// or a file of the upload's name and the shard file's size.
pub(super) async fn is_upload_of(
    client: &ApiClient,
    batch: &Batch,
    shard: &ShardRecord,
    run_id: &str,
) -> Result<Result<(), String>, ClientError> {
    if let Some(why) = other_content(batch, shard) {
        return Ok(Err(why));
    }
    if shard.file_id.as_deref() == Some(batch.input_file_id.as_str()) {
        return Ok(Ok(()));
    }
    match client.get_file(&batch.input_file_id).await {
        Ok(file)
            if file.filename == upload_name(run_id, shard) && file.bytes == shard.byte_size =>
        {
            Ok(Ok(()))
        }
        Ok(file) => Ok(Err(format!(
            "its input file `{}` is `{}` of {} bytes, not this run's upload of shard file `{}` ({} bytes)",
            file.id, file.filename, file.bytes, shard.file_name, shard.byte_size
        ))),
        Err(error) if error.status() == Some(404) => Ok(Err(format!(
            "its input file `{}` is gone, so it cannot be told to be shard file `{}`",
            batch.input_file_id, shard.file_name
        ))),
        Err(error) => Err(error),
    }
}

/// Why `batch` holds other requests than `shard` when its metadata says so (its content hash is
/// not the shard file's); `None` when it matches or a side does not say.
fn other_content(batch: &Batch, shard: &ShardRecord) -> Option<String> {
    let content = batch.metadata_value(METADATA_SHARD_CONTENT)?;
    let own = shard.sha256.get(..SHARD_CONTENT_DIGITS)?;
    (own != content).then(|| {
        format!(
            "it holds other requests than shard file `{}` (its content `{content}`, the shard's `{own}`): another process's shard of the same number",
            shard.file_name
        )
    })
}

/// Since when the provider's list holds batches of the run: its founding, or, for a run founded
/// before that was recorded, when its oldest shard file was written (planning comes before any
/// batch). `None` when neither is known: the list is read to its end.
pub(super) fn run_began_at(founded_at: Option<i64>, run_directory: &RunDirectory) -> Option<i64> {
    founded_at.or_else(|| {
        std::fs::read_dir(run_directory.shards_directory())
            .ok()?
            .filter_map(|entry| entry.ok()?.metadata().ok()?.modified().ok())
            .min()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|since| i64::try_from(since.as_secs()).ok())
    })
}

/// Matches the provider's batches of this run against the ledger: adopts the unrecorded ones
/// that are this run's shards not yet sent, warns of shards created twice, and refuses (with
/// [`UnrecordedBatches`], before anything is written) when any other batch is found.
///
/// # Errors
/// [`UnrecordedBatches`] as said; the provider's or the ledger's errors.
pub(super) async fn reconcile_unrecorded_batches(
    client: &ApiClient,
    ledger: &Ledger,
    run_directory: &RunDirectory,
    founded_at: Option<i64>,
    events: &EventSink,
) -> anyhow::Result<()> {
    let run_id = run_directory.run_id();
    let began_at = run_began_at(founded_at, run_directory);
    let listing = match batches_since_founding(client, &run_id, began_at).await {
        Err(error)
            if error
                .status()
                .is_some_and(|status| NO_BATCH_LIST.contains(&status)) =>
        {
            let message = format!(
                "the provider has no batch list ({error}): this run's batches there could not be checked against its ledger before resuming"
            );
            warn(events, message);
            return Ok(());
        }
        listed => listed?,
    };
    if !listing.complete {
        let message = format!(
            "the provider's batch list could not be read back to this run's founding ({MAX_PAGES} pages of {BATCHES_PER_PAGE}); batches of this run older than that were not checked against its ledger"
        );
        warn(events, message);
    }
    if listing.batches.is_empty() {
        return Ok(());
    }
    let shards = ledger.shards()?;
    let by_index: HashMap<u64, &ShardRecord> = shards
        .iter()
        .map(|shard| (shard.shard_index, shard))
        .collect();
    let mut refused = Vec::new();
    let mut duplicates = Vec::new();
    let mut ignored = Vec::new();
    let mut unrecorded: BTreeMap<u64, Vec<Batch>> = BTreeMap::new();
    for batch in listing.batches {
        match standing_of(&batch, &by_index) {
            Standing::Recorded => {}
            Standing::Duplicate { .. } if holds_no_answers(&batch) => ignored.push(batch),
            Standing::Duplicate { used, .. } => duplicates.push((batch, used)),
            Standing::Unrecorded { shard_index } => {
                unrecorded.entry(shard_index).or_default().push(batch);
            }
            Standing::NoSuchShard if holds_no_answers(&batch) => ignored.push(batch),
            Standing::NoSuchShard => refused.push(described(
                &batch,
                "the ledger has no such shard (it was planned or retried after this copy of the ledger was written)",
            )),
        }
    }
    let mut adoptions = Vec::new();
    for (shard_index, candidates) in unrecorded {
        let shard = by_index[&shard_index];
        let mut usable = Vec::new();
        for candidate in candidates {
            match is_upload_of(client, &candidate, shard, &run_id).await? {
                Ok(()) => usable.push(candidate),
                Err(_) if holds_no_answers(&candidate) => ignored.push(candidate),
                Err(why) => refused.push(described(&candidate, &why)),
            }
        }
        let mut candidates = usable;
        if candidates.is_empty() {
            continue;
        }
        candidates.sort_by_key(|batch| std::cmp::Reverse(adoption_preference(batch)));
        let mut candidates = candidates.into_iter();
        let adopted = candidates.next().expect("a shard listed here has a batch");
        duplicates.extend(candidates.map(|batch| (batch, adopted.id.clone())));
        adoptions.push((shard, adopted));
    }
    if !refused.is_empty() {
        return Err(UnrecordedBatches {
            run_directory: run_directory.root.display().to_string(),
            run_id,
            batches: refused,
        }
        .into());
    }
    for (shard, batch) in adoptions {
        adopt(ledger, events, shard, &batch)?;
    }
    for batch in ignored {
        let message = format!(
            "the provider holds batch `{}` ({}) of this run that the ledger does not record and that ran no request: ignored (another copy of this run directory made it and stopped it, or it was refused)",
            batch.id,
            batch.status.as_str()
        );
        warn(events, message);
    }
    for (batch, used) in duplicates {
        let message = format!(
            "the provider holds a second batch `{}` ({}) for shard {} of this run, which uses `{used}`: the shard was created twice (a create whose answer was lost). Its requests are billed and its answers are not joined; cancel it at the provider if it still runs",
            batch.id,
            batch.status.as_str(),
            batch.metadata_value(METADATA_SHARD).unwrap_or("?")
        );
        warn(events, message);
    }
    Ok(())
}

/// Says `message` as a `provider_warning`.
pub(super) fn warn(events: &EventSink, message: String) {
    events.emit(
        Event::ProviderWarning {
            message: message.clone(),
        },
        || Some(format!("warning: {message}")),
    );
}

/// Whether `batch` ended without running a request (cancelled, failed, expired): nothing in it
/// was paid for or can be adopted.
fn holds_no_answers(batch: &Batch) -> bool {
    matches!(
        batch.status,
        BatchStatus::Failed | BatchStatus::Expired | BatchStatus::Cancelled
    ) && batch
        .request_counts
        .is_none_or(|counts| counts.completed == 0 && counts.failed == 0)
}

/// Whether a list call's status says the provider has no batch list at all.
pub(super) fn has_no_batch_list(status: u16) -> bool {
    NO_BATCH_LIST.contains(&status)
}

/// Records `batch` (and its input file) as `shard`'s, as if this process had created it.
pub(super) fn adopt(
    ledger: &Ledger,
    events: &EventSink,
    shard: &ShardRecord,
    batch: &Batch,
) -> Result<(), SubmitError> {
    if shard.file_id.as_deref() != Some(batch.input_file_id.as_str()) {
        ledger.set_file_id(shard.shard_index, Some(&batch.input_file_id))?;
        events.emit(
            Event::FileAdopted {
                shard: shard.shard_index,
                file_id: &batch.input_file_id,
            },
            || None,
        );
    }
    ledger.set_batch_id(shard.shard_index, &batch.id)?;
    record_batch_state(ledger, shard.shard_index, batch)?;
    events.emit(
        Event::BatchAdopted {
            shard: shard.shard_index,
            batch_id: &batch.id,
        },
        || {
            Some(format!(
                "found batch `{}` of shard {} at the provider, which the ledger did not record; adopted it instead of creating another",
                batch.id, shard.shard_index
            ))
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(id: &str, shard: Option<&str>, status: BatchStatus, created_at: i64) -> Batch {
        let mut metadata = BTreeMap::new();
        metadata.insert(METADATA_RUN.to_owned(), "run-a".to_owned());
        if let Some(shard) = shard {
            metadata.insert(METADATA_SHARD.to_owned(), shard.to_owned());
        }
        serde_json::from_value(serde_json::json!({
            "id": id,
            "endpoint": "/v1/chat/completions",
            "input_file_id": format!("file-{id}"),
            "status": status.as_str(),
            "created_at": created_at,
            "metadata": metadata,
        }))
        .unwrap()
    }

    fn shard(index: u64, batch_id: Option<&str>) -> ShardRecord {
        ShardRecord {
            shard_index: index,
            batch_id: batch_id.map(str::to_owned),
            ..ShardRecord::default()
        }
    }

    #[test]
    fn a_batch_is_recorded_a_duplicate_unrecorded_or_of_no_shard() {
        let shards = [shard(0, Some("b0")), shard(1, None)];
        let by_index: HashMap<u64, &ShardRecord> = shards
            .iter()
            .map(|shard| (shard.shard_index, shard))
            .collect();
        let standing =
            |id, index| standing_of(&batch(id, index, BatchStatus::Completed, 1), &by_index);
        assert_eq!(standing("b0", Some("0")), Standing::Recorded);
        assert_eq!(
            standing("b9", Some("0")),
            Standing::Duplicate {
                shard_index: 0,
                used: "b0".into()
            }
        );
        assert_eq!(
            standing("b1", Some("1")),
            Standing::Unrecorded { shard_index: 1 }
        );
        assert_eq!(standing("b2", Some("2")), Standing::NoSuchShard);
        assert_eq!(standing("bx", Some("one")), Standing::NoSuchShard);
        assert_eq!(standing("by", None), Standing::NoSuchShard);
    }

    #[test]
    fn a_run_began_at_its_founding_or_else_at_its_oldest_shard_file() {
        let directory = tempfile::tempdir().unwrap();
        let run_directory = RunDirectory::new(directory.path().join("run"));
        assert_eq!(run_began_at(Some(42), &run_directory), Some(42));
        // Founded before the time was recorded, with no shard file: unknown.
        assert_eq!(run_began_at(None, &run_directory), None);
        std::fs::create_dir_all(run_directory.shards_directory()).unwrap();
        let shard = run_directory.shard_path("shard-00000.jsonl");
        std::fs::write(&shard, "{}\n").unwrap();
        let written = std::fs::metadata(&shard)
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(run_began_at(None, &run_directory), Some(written as i64));
        assert_eq!(run_began_at(Some(42), &run_directory), Some(42));
    }

    #[test]
    fn the_list_is_read_back_to_the_founding_only_when_it_is_newest_first() {
        let page = |times: &[i64]| -> Vec<Batch> {
            times
                .iter()
                .map(|&time| batch("b", Some("0"), BatchStatus::Completed, time))
                .collect()
        };
        assert!(page_ends_before(&page(&[300, 200, 99]), 100));
        assert!(!page_ends_before(&page(&[300, 200, 100]), 100));
        // Oldest first: later pages may hold newer batches.
        assert!(!page_ends_before(&page(&[50, 60, 99]), 100));
        // No creation times.
        assert!(!page_ends_before(&page(&[0, 0]), 100));
        assert!(!page_ends_before(&[], 100));
    }

    #[test]
    fn a_batch_whose_content_hash_is_not_the_shards_holds_other_requests() {
        let mut numbered_alike = batch("b", Some("3"), BatchStatus::InProgress, 1);
        numbered_alike.metadata = Some(BTreeMap::from([(
            METADATA_SHARD_CONTENT.to_owned(),
            "00112233aabbccdd".to_owned(),
        )]));
        let mut own = shard(3, None);
        own.file_name = "shard-00003.jsonl".into();
        own.sha256 = format!("00112233aabbccdd{}", "e".repeat(48));
        assert_eq!(other_content(&numbered_alike, &own), None);
        own.sha256 = format!("ffffffffffffffff{}", "e".repeat(48));
        let why = other_content(&numbered_alike, &own).unwrap();
        assert!(
            why.contains("shard-00003.jsonl") && why.contains("ffffffffffffffff"),
            "{why}"
        );
        // A batch made before the hash was written, or a shard without one: not told apart.
        let unmarked = batch("c", Some("3"), BatchStatus::InProgress, 1);
        assert_eq!(other_content(&unmarked, &own), None);
        own.sha256.clear();
        assert_eq!(other_content(&numbered_alike, &own), None);
    }

    #[test]
    fn a_batch_that_ended_without_running_a_request_holds_no_answers() {
        let mut stopped = batch("b", Some("0"), BatchStatus::Cancelled, 1);
        assert!(holds_no_answers(&stopped));
        stopped.request_counts = Some(crate::wire::RequestCounts {
            total: 4,
            completed: 1,
            failed: 0,
        });
        assert!(!holds_no_answers(&stopped), "one request ran: paid for");
        assert!(!holds_no_answers(&batch(
            "c",
            Some("0"),
            BatchStatus::Completed,
            1
        )));
        assert!(!holds_no_answers(&batch(
            "r",
            Some("0"),
            BatchStatus::InProgress,
            1
        )));
    }

    #[test]
    fn only_a_provider_without_any_batch_list_is_passed_over_in_silence() {
        for status in [404, 405, 501] {
            assert!(has_no_batch_list(status), "{status}");
        }
        for status in [400, 401, 429, 500] {
            assert!(!has_no_batch_list(status), "{status}");
        }
    }

    #[test]
    fn a_running_or_completed_batch_is_adopted_before_one_that_ended_without_answers() {
        let mut candidates = [
            batch("failed", Some("0"), BatchStatus::Failed, 300),
            batch("older", Some("0"), BatchStatus::InProgress, 100),
            batch("newer", Some("0"), BatchStatus::Completed, 200),
        ];
        candidates.sort_by_key(|batch| std::cmp::Reverse(adoption_preference(batch)));
        let order: Vec<&str> = candidates.iter().map(|batch| batch.id.as_str()).collect();
        assert_eq!(order, ["newer", "older", "failed"]);
    }
}
