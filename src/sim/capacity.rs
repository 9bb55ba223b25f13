//! A provider under load: with a capacity set ([`super::SimConfig::capacity`]), the simulator
//! runs a fixed number of request lines per simulated second across all batches, first come
//! first served. A batch that passes validation queues behind the lines of every batch that
//! passed before it (it is `in_progress` while it waits, as on DashScope), then runs at the whole
//! capacity. The place in the queue is taken once, when the batch is validated, and kept in the
//! batch's record, so a batch's life stays a function of its own timestamps (batches are
//! validated in the order they were created). A batch that is cancelled or expires stops using
//! the capacity then, which batches validated later can take; those already queued keep their
//! place. Without a capacity, each batch runs at a pace of its own
//! ([`super::lifecycle::lines_at_once`]).

use super::lifecycle::{BatchRecord, QueuePlace};

/// The shared capacity and when the lines queued so far will all have run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CapacityQueue {
    requests_per_second: f64,
    free_at: f64,
}

impl CapacityQueue {
    /// The queue left by `batches` (those that took a place in it) under a capacity of
    /// `requests_per_second`.
    pub(crate) fn after<'a>(
        requests_per_second: f64,
        batches: impl IntoIterator<Item = &'a BatchRecord>,
    ) -> CapacityQueue {
        let free_at = batches
            .into_iter()
            .filter(|batch| batch.seconds_per_line_at_capacity.is_some())
            .filter_map(BatchRecord::stops_running_lines_at)
            .fold(f64::NEG_INFINITY, f64::max);
        CapacityQueue {
            requests_per_second,
            free_at,
        }
    }

    /// Queues `request_count` lines of a batch validated at `validated_at`.
    pub(crate) fn take_place(&mut self, validated_at: f64, request_count: u64) -> QueuePlace {
        let seconds_per_line = 1.0 / self.requests_per_second;
        let starts_at = validated_at.max(self.free_at);
        self.free_at = starts_at + request_count as f64 * seconds_per_line;
        QueuePlace {
            starts_at,
            seconds_per_line,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_queue_one_behind_another_at_the_whole_capacity() {
        let mut queue = CapacityQueue::after(10.0, []);
        let first = queue.take_place(40.0, 100);
        assert_eq!(first.starts_at, 40.0);
        assert_eq!(first.seconds_per_line, 0.1);
        // Validated while the first still runs: it waits until the first is done (50 s).
        let second = queue.take_place(45.0, 50);
        assert_eq!(second.starts_at, 50.0);
        // Validated after the queue emptied: it starts at once.
        let third = queue.take_place(80.0, 10);
        assert_eq!(third.starts_at, 80.0);
        assert_eq!(queue.free_at, 81.0);
    }

    #[test]
    fn a_cancelled_batch_gives_the_rest_of_its_turn_to_batches_validated_later() {
        let queued = |starts_at: f64, lines: u64| {
            let mut batch = crate::sim::lifecycle::tests::fresh_batch(Vec::new());
            batch.request_count = lines;
            batch.processing_started_at = Some(starts_at);
            batch.seconds_per_line_at_capacity = Some(0.1);
            batch
        };
        let running = queued(40.0, 1_000);
        let mut cancelled = queued(140.0, 1_000);
        assert_eq!(
            CapacityQueue::after(10.0, [&running, &cancelled]).free_at,
            240.0
        );
        cancelled.cancel_requested_at = Some(100.0);
        assert_eq!(
            CapacityQueue::after(10.0, [&running, &cancelled]).free_at,
            140.0,
            "the batch before it still runs until 140"
        );
        // A batch at its own pace takes no place in the queue.
        let mut own_pace = queued(0.0, 1_000_000);
        own_pace.seconds_per_line_at_capacity = None;
        assert_eq!(
            CapacityQueue::after(10.0, [&own_pace]).free_at,
            f64::NEG_INFINITY
        );
    }
}
