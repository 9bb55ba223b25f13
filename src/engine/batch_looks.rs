//! Looks at the provider's batch list around each create, for batches of this run that another
//! process made. Two processes on one run directory are kept apart by its lock, but a copy of a
//! live run directory resumed where the lock cannot be seen (another machine, another user)
//! works on the same run: it read the provider's list once, when it resumed, and would create
//! again every shard the original creates after that. So right before a create the list is read
//! again (a batch of the shard found there is adopted instead), and right after it once more (two
//! creates of one shard at the same moment: the batch created first, by creation time then id,
//! is kept by both processes, and the other cancelled by its own). Each look reads the list
//! newest first back to the newest batch of the look before: most often one page.

use std::collections::HashMap;

use super::submit::METADATA_RUN;
use super::unrecorded_batches::{is_newest_first, list_page, page_ends_before};
use crate::client::{ApiClient, ClientError};
use crate::wire::Batch;

/// How long before the last look a batch another process created may be dated (the
/// provider's clock and this machine's may differ): an hour.
const CLOCK_SLACK_SECONDS: i64 = 3_600;
/// Pages one look reads at most.
const MAX_PAGES_PER_LOOK: usize = 20;

/// What the looks of one process have seen of this run's batches.
#[derive(Debug)]
pub struct BatchLooks {
    /// When the list was last read (seconds since the epoch, this machine's clock).
    looked_at: i64,
    /// The newest batch of the last look: the next look reads back to it.
    newest_seen: Option<String>,
    /// This run's batches seen so far, by id.
    of_this_run: HashMap<String, Batch>,
    /// Whether a look failed: the provider's list is not read again by this process (each
    /// look would wait through the client's retries), and the failure was said once.
    pub given_up: bool,
}

impl BatchLooks {
    /// Looks starting now: the first reads back to an hour before it.
    pub fn new() -> BatchLooks {
        BatchLooks {
            looked_at: now_in_seconds(),
            newest_seen: None,
            of_this_run: HashMap::new(),
            given_up: false,
        }
    }

    /// Reads the list, newest first, back to the newest batch of the last look (or a batch
    /// dated before the last look less the slack), keeping the batches of `run_id`; those this
    /// look listed, in the list's order (newest first).
    ///
    /// # Errors
    /// The provider's.
    pub async fn look(
        &mut self,
        client: &ApiClient,
        run_id: &str,
    ) -> Result<Vec<Batch>, ClientError> {
        let mut listed = Vec::new();
        let looking_at = now_in_seconds();
        let oldest_wanted = self.looked_at - CLOCK_SLACK_SECONDS;
        let mut after: Option<String> = None;
        let mut newest: Option<String> = None;
        let mut read_back_far_enough = false;
        for _ in 0..MAX_PAGES_PER_LOOK {
            let (items, has_more) = list_page(client, after.clone()).await?;
            if newest.is_none() {
                newest = items.first().map(|batch| batch.id.clone());
            }
            let reached_seen = reaches(&items, self.newest_seen.as_deref());
            let reached_oldest = page_ends_before(&items, oldest_wanted);
            let last = items.last().map(|batch| batch.id.clone());
            for batch in items {
                if batch.metadata_value(METADATA_RUN) == Some(run_id) {
                    self.of_this_run.insert(batch.id.clone(), batch.clone());
                    listed.push(batch);
                }
            }
            if !has_more || reached_seen || reached_oldest || last.is_none() || last == after {
                read_back_far_enough = true;
                break;
            }
            after = last;
        }
        // A look cut short by its page limit leaves the next one to read back as far again,
        // so no part of the list goes unread.
        if read_back_far_enough {
            self.looked_at = looking_at;
            if newest.is_some() {
                self.newest_seen = newest;
            }
        }
        Ok(listed)
    }

    /// The batches seen of shard `shard_index` (metadata `dashbatch_shard`).
    pub fn of_shard(&self, shard_index: u64) -> Vec<Batch> {
        let wanted = shard_index.to_string();
        let mut batches: Vec<Batch> = self
            .of_this_run
            .values()
            .filter(|batch| batch.metadata_value(super::submit::METADATA_SHARD) == Some(&wanted))
            .cloned()
            .collect();
        batches.sort_by(|left, right| left.id.cmp(&right.id));
        batches
    }
}

/// Seconds since the epoch on this machine's clock, now.
fn now_in_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

/// Whether a page listed newest first holds `seen`: the pages after it were read before. A
/// page not in that order tells nothing.
fn reaches(items: &[Batch], seen: Option<&str>) -> bool {
    is_newest_first(items) && seen.is_some_and(|seen| items.iter().any(|batch| batch.id == seen))
}

/// Of batches that all created one shard, listed newest first, the one every process keeps:
/// the first created. Creation times are whole seconds, so within one second the list's order
/// says which came first (the provider lists by its own, finer creation time): a process that
/// created a shard before another looked saw only its own batch and keeps it, and the other,
/// seeing both, finds that one listed after its own.
pub fn kept_of(listed_newest_first: &[Batch]) -> Option<&Batch> {
    listed_newest_first
        .iter()
        .enumerate()
        .min_by_key(|(position, batch)| (batch.created_at, std::cmp::Reverse(*position)))
        .map(|(_, batch)| batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(id: &str, created_at: i64) -> Batch {
        let mut batch: Batch = serde_json::from_value(serde_json::json!({
            "id": id, "object": "batch", "endpoint": "/v1/chat/completions",
            "input_file_id": "file-1", "completion_window": "24h", "status": "validating",
            "created_at": created_at
        }))
        .unwrap();
        batch.created_at = created_at;
        batch
    }

    #[test]
    fn every_process_keeps_the_batch_created_first_then_the_one_listed_last() {
        let (early, late_a, late_b) = (batch("b-9", 10), batch("b-1", 11), batch("b-2", 11));
        assert_eq!(
            kept_of(&[late_a.clone(), early.clone(), late_b.clone()])
                .unwrap()
                .id,
            "b-9"
        );
        // Within one second the one listed after the other (newest first) came first,
        // whatever its id.
        assert_eq!(
            kept_of(&[late_a.clone(), late_b.clone()]).unwrap().id,
            "b-2"
        );
        assert_eq!(kept_of(&[late_b, late_a]).unwrap().id, "b-1");
        assert!(kept_of(&[]).is_none());
    }

    #[test]
    fn a_look_stops_at_the_newest_batch_of_the_last_only_on_a_page_newest_first() {
        let page = [batch("b-3", 30), batch("b-2", 20), batch("b-1", 10)];
        assert!(reaches(&page, Some("b-2")));
        assert!(!reaches(&page, Some("b-0")));
        assert!(!reaches(&page, None));
        let unordered = [batch("b-1", 10), batch("b-3", 30)];
        assert!(!reaches(&unordered, Some("b-1")));
    }
}
