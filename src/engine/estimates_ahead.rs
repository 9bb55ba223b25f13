//! Shard estimates counted on a thread of their own while the run uploads and its batches run,
//! so the estimate-versus-actual report is ready when the results are. Counting every request's
//! tokens takes about 11 CPU-seconds a million rows; done only between polls, most of it was
//! left to the end of a run whose batches finish quickly (a minute after the output at 5M rows).
//!
//! The thread only reads shard files and sends what it counted; the run keeps the estimates and
//! writes them to its ledger. A shard the thread cannot read is left to the run, which counts it
//! itself and says why it could not.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::thread::JoinHandle;

use super::RunDirectory;
use crate::estimate::{RequestEstimator, ShardEstimate, estimate_shard_file};
use crate::ledger::ShardRecord;

/// Counting is background work: it yields the cores to the run's own work (and to anything else
/// on the machine) whenever they are wanted. Linux gives each thread its own nice value.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority and gettid only read their integer arguments.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
    }
}

/// The counting thread and what it sent.
pub struct EstimatesAhead {
    inbox: Receiver<ShardEstimate>,
    worker: JoinHandle<()>,
    /// Set when the run wants the rest counted on its own thread (at its own priority).
    stop: Arc<AtomicBool>,
}

impl EstimatesAhead {
    /// Starts counting `shards`, in order, on a new thread.
    pub fn start(
        estimator: Arc<RequestEstimator>,
        run_directory: RunDirectory,
        shards: Vec<ShardRecord>,
    ) -> EstimatesAhead {
        let (outbox, inbox) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_asked = Arc::clone(&stop);
        let worker = std::thread::spawn(move || {
            lower_this_threads_priority();
            for shard in shards {
                // A signal stops the run and a stop request the counting: between shards.
                if crate::interrupt::received().is_some() || stop_asked.load(Ordering::Relaxed) {
                    return;
                }
                let path = run_directory.shard_path(&shard.file_name);
                let Ok(totals) = estimate_shard_file(&path, &estimator, |_, _| {}) else {
                    return;
                };
                let estimate = ShardEstimate {
                    shard_index: shard.shard_index,
                    first_row: shard.first_row,
                    attempt: shard.attempt,
                    totals,
                };
                if outbox.send(estimate).is_err() {
                    return;
                }
            }
        });
        EstimatesAhead {
            inbox,
            worker,
            stop,
        }
    }

    /// The estimates counted since the last call, without waiting.
    pub fn ready(&self) -> Vec<ShardEstimate> {
        self.inbox.try_iter().collect()
    }

    /// Whether the thread has stopped (everything it counted can be taken with [`Self::ready`]).
    pub fn is_done(&self) -> bool {
        self.worker.is_finished()
    }

    /// Stops the thread after the shard it is counting (at once when it is done); returns what
    /// it counted and was not taken yet. The run counts the rest itself.
    pub fn stop(self) -> Vec<ShardEstimate> {
        self.stop.store(true, Ordering::Relaxed);
        // A panic on the thread loses only its estimates: the run counts them itself.
        let _ = self.worker.join();
        self.inbox.try_iter().collect()
    }
}
