//! The buffers a plan's shard files gather their lines in, shared by all of them: at most
//! [`MOST_BUFFERS`] of [`BUFFER_BYTES`] at once, however many shards are being written. Each
//! shard file's writing thread gives a buffer back as soon as it has written it (a buffer
//! given back on any path, an error's too, since dropping one gives it back); when all are in
//! use, the planner waits for one, as it would for a disk that is slower than planning.
//!
//! Before, each shard file had buffers of its own, and a shard closing kept its buffers until
//! its thread had written them: at 10 million rows, with the disk behind (7.4 GB of shards), the
//! planning of a run held 14.7 MiB of them at its peak against 6.3 MiB at 1 million (heaptrack;
//! BENCHMARKS.md, seventeenth round).

use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// Bytes gathered before a buffer is handed to a writing thread.
pub(super) const BUFFER_BYTES: usize = 1 << 20;
/// Buffers in use at most: the one being filled and three being written. (Six held a sixth
/// MiB at 10 million rows that 1 million did not need; four cost `validate` no time,
/// BENCHMARKS.md, eighteenth round.)
const MOST_BUFFERS: usize = 4;

/// The pool of one plan (or of one set of extra shards); clones share it.
#[derive(Clone, Default)]
pub(super) struct ShardBuffers {
    shared: Arc<Pool>,
}

#[derive(Default)]
struct Pool {
    state: Mutex<PoolState>,
    given_back: Condvar,
}

#[derive(Default)]
struct PoolState {
    /// Buffers given back, empty, to be filled again (fresh memory costs the kernel a page
    /// clearing per 4 KiB).
    free: Vec<Vec<u8>>,
    /// Buffers made so far.
    made: usize,
}

/// A buffer taken from the pool; given back, emptied, when dropped.
pub(super) struct ShardBuffer {
    pub bytes: Vec<u8>,
    pool: ShardBuffers,
}

impl ShardBuffers {
    /// An empty buffer: one given back, or a new one while fewer than [`MOST_BUFFERS`] were
    /// made; else the next one given back, waited for.
    pub(super) fn take(&self) -> ShardBuffer {
        let mut state = self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(bytes) = state.free.pop() {
                return self.buffer(bytes);
            }
            if state.made < MOST_BUFFERS {
                state.made += 1;
                return self.buffer(Vec::with_capacity(BUFFER_BYTES));
            }
            state = self
                .shared
                .given_back
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Whether every buffer made is back in the pool.
    #[cfg(test)]
    pub(super) fn all_given_back(&self) -> bool {
        let state = self.shared.state.lock().unwrap();
        state.made == state.free.len()
    }

    fn buffer(&self, bytes: Vec<u8>) -> ShardBuffer {
        ShardBuffer {
            bytes,
            pool: self.clone(),
        }
    }
}

impl Drop for ShardBuffer {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.bytes);
        bytes.clear();
        // A line longer than a whole buffer grew it: it goes back at its usual size.
        bytes.shrink_to(BUFFER_BYTES);
        let mut state = self
            .pool
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state.free.push(bytes);
        self.pool.shared.given_back.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    #[test]
    fn at_most_six_buffers_are_in_use_and_a_taker_waits_for_one_given_back() {
        let buffers = ShardBuffers::default();
        let mut taken: Vec<ShardBuffer> = (0..MOST_BUFFERS).map(|_| buffers.take()).collect();
        taken[0].bytes.extend_from_slice(&vec![7; 3 * BUFFER_BYTES]);
        let (took, seen) = channel();
        let waiting = {
            let buffers = buffers.clone();
            std::thread::spawn(move || {
                let buffer = buffers.take();
                took.send((buffer.bytes.len(), buffer.bytes.capacity()))
                    .unwrap();
            })
        };
        assert!(
            seen.recv_timeout(Duration::from_millis(200)).is_err(),
            "a seventh buffer is not made"
        );
        // Given back from another thread, grown past its size: it comes back empty, at its size.
        let given_back = taken.remove(0);
        std::thread::spawn(move || drop(given_back)).join().unwrap();
        let (length, capacity) = seen.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(length, 0);
        assert!(
            (BUFFER_BYTES..2 * BUFFER_BYTES).contains(&capacity),
            "{capacity}"
        );
        waiting.join().unwrap();
        drop(taken);
        let state = buffers.shared.state.lock().unwrap();
        assert_eq!((state.made, state.free.len()), (MOST_BUFFERS, MOST_BUFFERS));
    }
}
