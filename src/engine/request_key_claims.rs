//! Finding the rows of one run that repeat an earlier row's request, exactly, with flat memory
//! and little work per row: the newest keys are held in memory, older ones are spilled to disk in
//! sorted runs ([`SortedKeyRuns`]), and Bloom filters in front ([`GrowingBloomFilter`]) answers "new" for nearly every
//! distinct key without reading either. No key is written to the ledger per row: at the end of
//! the plan, a run that announces its requests in the answer store writes them all to the
//! ledger's `request_keys` in key order (a B-tree fills far faster in order than at random).

use std::path::Path;

use super::bloom_filter::{FilterHashes, GrowingBloomFilter};
use super::held_request_keys::HeldRequestKeys;
use super::sorted_key_runs::{ClaimedKey, SortedKeyRuns};
use crate::ledger::{FirstRowOfKey, KeyOrigin, Ledger};
use crate::request_key::RequestKey;

/// Keys held in memory before they are spilled to disk as one sorted run: 7/8 of 131,072, the
/// most a hash table of 131,072 slots holds before it doubles (when the keys were held in a
/// hash map of 6 MiB, one twice as large missed the processor's caches and page-table cache at
/// every claim). Debug builds (the tests'
/// binary) spill far sooner, so tests of a few thousand rows go through spilling and merging
/// too.
const PENDING_LIMIT: usize = if cfg!(debug_assertions) {
    2_048
} else {
    114_688
};

/// Keys written to the ledger in one statement loop between checks.
const LEDGER_CHUNK: usize = 65_536;

/// The run's claimed request keys.
pub struct RequestKeyClaims {
    filter: GrowingBloomFilter,
    pending: HeldRequestKeys,
    spilled: SortedKeyRuns,
    /// Whether the keys go to the ledger at the end (a run that announces its requests).
    kept_in_ledger: bool,
}

impl RequestKeyClaims {
    /// Claims whose keys are written to the ledger at the end when `kept_in_ledger`.
    pub fn new(kept_in_ledger: bool) -> RequestKeyClaims {
        RequestKeyClaims {
            // One filter, however many keys: a key it lets through by mistake costs a look at
            // the held keys and the runs' own filters, all in memory. At 30M rows more filters
            // (as the custom_ids have) took 47.1 s and 202 MiB against 44.2 s and 169 MiB.
            filter: GrowingBloomFilter::one_for_claims(),
            pending: HeldRequestKeys::with_capacity(PENDING_LIMIT),
            spilled: SortedKeyRuns::new(&std::env::temp_dir()),
            kept_in_ledger,
        }
    }

    /// Spills keys into anonymous files in `directory` (by default, the system's temporary
    /// directory).
    pub fn spill_into(&mut self, directory: &Path) {
        if self.spilled.is_empty() {
            self.spilled = SortedKeyRuns::new(directory);
        }
    }

    /// Claims `key` for row `row_number`; returns the first row that had it, when one did.
    ///
    /// # Errors
    /// When spilled keys cannot be read or written.
    pub fn claim(
        &mut self,
        key: &RequestKey,
        row_number: u64,
    ) -> anyhow::Result<Option<FirstRowOfKey>> {
        let hashes = Self::hashes(key);
        // Every claimed key, held or spilled, is in the filter: a key it has never been given
        // is new without a look at either (most keys, and the check is one cache line).
        if self.filter.may_contain(hashes) {
            if let Some(first) = self.pending.get(key) {
                return Ok(Some(*first));
            }
            if let Some(first) = self.spilled.find(key).map_err(spill_error)? {
                return Ok(Some(first));
            }
        }
        if self.pending.len() >= PENDING_LIMIT {
            self.spill()?;
        }
        self.filter.insert(hashes);
        self.pending.insert_new(
            *key,
            FirstRowOfKey {
                row_number,
                origin: KeyOrigin::Batch,
            },
        );
        Ok(None)
    }

    /// Starts loading what claiming `key` will look at first, for a claim a row later.
    pub fn prefetch(&self, key: &RequestKey) {
        self.filter.prefetch(Self::hashes(key));
    }

    /// Says where the answer of a claimed key comes from.
    ///
    /// # Errors
    /// When spilled keys cannot be read or written, or `key` was never claimed.
    pub fn set_origin(&mut self, key: &RequestKey, origin: KeyOrigin) -> anyhow::Result<()> {
        if let Some(first) = self.pending.get_mut(key) {
            first.origin = origin;
            return Ok(());
        }
        let found = self.spilled.set_origin(key, origin).map_err(spill_error)?;
        anyhow::ensure!(
            found,
            "a request key was given an origin before it was claimed"
        );
        Ok(())
    }

    /// Writes every claimed key to the ledger, in key order, when the claims keep them there
    /// (inside the plan's transaction). The claims' last use: the keys held are left in key
    /// order, no longer found by key.
    ///
    /// # Errors
    /// When spilled keys cannot be read or the ledger written.
    pub fn finish(&mut self, ledger: &Ledger) -> anyhow::Result<()> {
        if !self.kept_in_ledger {
            return Ok(());
        }
        let pending = self.pending.sorted();
        let mut chunk: Vec<ClaimedKey> = Vec::with_capacity(LEDGER_CHUNK.min(pending.len() + 1));
        self.spilled
            .for_each_in_key_order(pending, |claimed| -> anyhow::Result<()> {
                chunk.push(*claimed);
                if chunk.len() >= LEDGER_CHUNK {
                    ledger.insert_request_keys(&chunk)?;
                    chunk.clear();
                }
                Ok(())
            })
            .map_err(|error| match error.downcast::<std::io::Error>() {
                Ok(spill_failure) => spill_error(spill_failure),
                Err(other) => other,
            })?;
        ledger.insert_request_keys(&chunk)?;
        Ok(())
    }

    /// Writes the keys held in memory to disk as one sorted run, and lets them go (the spilled
    /// runs lose none they held if the run cannot be written; the held keys, then no longer
    /// found by key, go with the error, which ends the plan).
    fn spill(&mut self) -> anyhow::Result<()> {
        let keys = self.pending.sorted();
        let written = self.spilled.add_run(keys);
        // Let go even when the run could not be written: sorted, the keys are no longer found
        // by key, and the error ends the plan.
        self.pending.clear();
        written.map_err(spill_error)
    }

    /// Two words of the key, which is itself a SHA-256: bytes 8 to 24, none of which the
    /// spilled runs' filters use ([`super::sorted_key_runs`] takes bytes 0 to 8 and 24 to 32),
    /// so a false "maybe" here is not one there too.
    fn hashes(key: &RequestKey) -> FilterHashes {
        let word = |at: usize| u64::from_le_bytes(key.0[at..at + 8].try_into().expect("8 bytes"));
        FilterHashes {
            first: word(8),
            step: word(16),
        }
    }
}

impl Default for RequestKeyClaims {
    /// Claims that are not written to the ledger.
    fn default() -> RequestKeyClaims {
        RequestKeyClaims::new(false)
    }
}

fn spill_error(error: std::io::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot keep the run's request keys in a temporary file while planning: {error}; free some disk space where the run's shards are written"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u64) -> RequestKey {
        use sha2::{Digest, Sha256};
        RequestKey(Sha256::digest(seed.to_le_bytes()).into())
    }

    #[test]
    fn repeats_are_found_exactly_whether_the_first_is_held_or_spilled() {
        let directory = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(directory.path()).unwrap();
        let mut claims = RequestKeyClaims::new(true);
        claims.spill_into(directory.path());
        // More keys than are held in memory: the early ones are on disk by the end.
        let count = PENDING_LIMIT as u64 + 1_000;
        for seed in 0..count {
            assert_eq!(claims.claim(&key(seed), seed + 1).unwrap(), None);
        }
        claims.set_origin(&key(1), KeyOrigin::Store).unwrap();
        claims
            .set_origin(&key(count - 1), KeyOrigin::Adopted)
            .unwrap();
        assert!(
            claims
                .set_origin(&key(count + 1), KeyOrigin::Store)
                .is_err()
        );
        for (seed, origin) in [
            (0, KeyOrigin::Batch),
            (1, KeyOrigin::Store),
            (count - 1, KeyOrigin::Adopted),
        ] {
            assert_eq!(
                claims.claim(&key(seed), count + 10).unwrap(),
                Some(FirstRowOfKey {
                    row_number: seed + 1,
                    origin
                }),
                "seed {seed}"
            );
        }
        assert_eq!(claims.claim(&key(count + 5), count + 6).unwrap(), None);
        claims.finish(&ledger).unwrap();
        for (seed, origin) in [
            (1, KeyOrigin::Store),
            (count - 1, KeyOrigin::Adopted),
            (count + 5, KeyOrigin::Batch),
        ] {
            assert_eq!(
                ledger.request_key(&key(seed)).unwrap(),
                Some(FirstRowOfKey {
                    row_number: seed + 1,
                    origin
                })
            );
        }
        let sent = ledger.sent_keys_after(None, usize::MAX >> 1).unwrap();
        assert_eq!(
            sent.len() as u64,
            count + 1 - 2,
            "every key but the two not sent"
        );
    }

    #[test]
    fn claims_not_kept_in_the_ledger_write_nothing_there() {
        let directory = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(directory.path()).unwrap();
        let mut claims = RequestKeyClaims::default();
        assert_eq!(claims.claim(&key(1), 1).unwrap(), None);
        claims.finish(&ledger).unwrap();
        assert_eq!(ledger.request_key(&key(1)).unwrap(), None);
    }
}
