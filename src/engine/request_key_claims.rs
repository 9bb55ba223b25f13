//! Finding the rows of one run that repeat an earlier row's request, with flat memory and little
//! work per row. Every key the run has seen is in the ledger (`request_keys`), exactly; in front
//! of it sit a [`BloomFilter`] and the newest keys not yet written, which go to the ledger in key
//! order, many at a time (a B-tree fills far faster in order than at random).

use std::collections::HashMap;

use super::bloom_filter::{BloomFilter, FilterHashes};
use crate::ledger::{FirstRowOfKey, KeyOrigin, Ledger};
use crate::request_key::RequestKey;

/// Keys held before they are written to the ledger together.
const PENDING_LIMIT: usize = 65_536;

/// The run's claimed request keys.
#[derive(Default)]
pub struct RequestKeyClaims {
    filter: BloomFilter,
    pending: HashMap<RequestKey, FirstRowOfKey>,
}

impl RequestKeyClaims {
    /// Claims `key` for row `row_number`; returns the first row that had it, when one did.
    ///
    /// # Errors
    /// When the ledger cannot be read or written.
    pub fn claim(
        &mut self,
        ledger: &Ledger,
        key: &RequestKey,
        row_number: u64,
    ) -> anyhow::Result<Option<FirstRowOfKey>> {
        if let Some(first) = self.pending.get(key) {
            return Ok(Some(*first));
        }
        let hashes = Self::hashes(key);
        if self.filter.may_contain(hashes)
            && let Some(first) = ledger.request_key(key)?
        {
            return Ok(Some(first));
        }
        self.filter.insert(hashes);
        self.pending.insert(
            *key,
            FirstRowOfKey {
                row_number,
                origin: KeyOrigin::Batch,
            },
        );
        if self.pending.len() >= PENDING_LIMIT {
            self.flush(ledger)?;
        }
        Ok(None)
    }

    /// Says where the answer of a claimed key comes from.
    ///
    /// # Errors
    /// When the ledger cannot be written.
    pub fn set_origin(
        &mut self,
        ledger: &Ledger,
        key: &RequestKey,
        origin: KeyOrigin,
    ) -> anyhow::Result<()> {
        match self.pending.get_mut(key) {
            Some(first) => first.origin = origin,
            None => ledger.set_request_key_origin(key, origin)?,
        }
        Ok(())
    }

    /// Writes the pending keys to the ledger, in key order.
    ///
    /// # Errors
    /// When the ledger cannot be written.
    pub fn flush(&mut self, ledger: &Ledger) -> anyhow::Result<()> {
        let mut keys: Vec<(RequestKey, FirstRowOfKey)> = self.pending.drain().collect();
        keys.sort_unstable_by_key(|(key, _)| key.0);
        ledger.insert_request_keys(&keys)?;
        Ok(())
    }

    /// Two words of the key, which is itself a SHA-256.
    fn hashes(key: &RequestKey) -> FilterHashes {
        let word = |at: usize| u64::from_le_bytes(key.0[at..at + 8].try_into().expect("8 bytes"));
        FilterHashes {
            first: word(0),
            step: word(8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u64) -> RequestKey {
        use sha2::{Digest, Sha256};
        RequestKey(Sha256::digest(seed.to_le_bytes()).into())
    }

    #[test]
    fn repeats_are_found_exactly_whether_the_first_is_pending_or_written() {
        let directory = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(directory.path()).unwrap();
        let mut claims = RequestKeyClaims::default();
        // More keys than are held pending: the early ones are in the ledger by the end.
        let count = PENDING_LIMIT as u64 + 1_000;
        for seed in 0..count {
            assert_eq!(claims.claim(&ledger, &key(seed), seed + 1).unwrap(), None);
        }
        claims
            .set_origin(&ledger, &key(1), KeyOrigin::Store)
            .unwrap();
        claims
            .set_origin(&ledger, &key(count - 1), KeyOrigin::Adopted)
            .unwrap();
        for (seed, origin) in [
            (0, KeyOrigin::Batch),
            (1, KeyOrigin::Store),
            (count - 1, KeyOrigin::Adopted),
        ] {
            assert_eq!(
                claims.claim(&ledger, &key(seed), count + 10).unwrap(),
                Some(FirstRowOfKey {
                    row_number: seed + 1,
                    origin
                }),
                "seed {seed}"
            );
        }
        claims.flush(&ledger).unwrap();
        assert_eq!(
            ledger.request_key(&key(count - 1)).unwrap(),
            Some(FirstRowOfKey {
                row_number: count,
                origin: KeyOrigin::Adopted
            })
        );
        assert_eq!(claims.claim(&ledger, &key(count + 5), 1).unwrap(), None);
    }
}
