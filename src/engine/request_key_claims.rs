//! Finding the rows of one run that repeat an earlier row's request, with flat memory and little
//! work per row. Every key the run has seen is in the ledger (`request_keys`), exactly; in front
//! of it sit a fixed-size Bloom filter (16 MiB: a key it has never been given is surely new, so
//! a run of distinct requests never reads the ledger) and the newest keys not yet written, which
//! go to the ledger in key order, many at a time (a B-tree fills far faster in order than at
//! random).

use std::collections::HashMap;

use crate::ledger::{FirstRowOfKey, KeyOrigin, Ledger};
use crate::request_key::RequestKey;

/// Keys held before they are written to the ledger together.
const PENDING_LIMIT: usize = 65_536;
/// The filter's size in 64-bit words: 2^21 words, 2^27 bits, 16 MiB.
const FILTER_WORDS: usize = 1 << 21;
/// Bits set per key: with 10 million keys in 2^27 bits, about 1 in 1,000 new keys is a false
/// "maybe" (then the ledger is read, and says no).
const FILTER_HASHES: u64 = 7;

/// The run's claimed request keys.
#[derive(Default)]
pub struct RequestKeyClaims {
    /// Allocated at the first key: a run that claims none costs nothing.
    filter: Vec<u64>,
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
        if self.filter.is_empty() {
            self.filter = vec![0; FILTER_WORDS];
        }
        if self.may_contain(key)
            && let Some(first) = ledger.request_key(key)?
        {
            return Ok(Some(first));
        }
        self.insert(key);
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

    /// The filter's bit positions of `key`: double hashing over two words of the key, which
    /// is itself a SHA-256.
    fn positions(key: &RequestKey) -> impl Iterator<Item = usize> {
        let word = |at: usize| u64::from_le_bytes(key.0[at..at + 8].try_into().expect("8 bytes"));
        let (first, step) = (word(0), word(8) | 1);
        let bits = (FILTER_WORDS * 64) as u64;
        (0..FILTER_HASHES)
            .map(move |index| (first.wrapping_add(index.wrapping_mul(step)) % bits) as usize)
    }

    fn may_contain(&self, key: &RequestKey) -> bool {
        Self::positions(key).all(|bit| self.filter[bit / 64] & (1 << (bit % 64)) != 0)
    }

    fn insert(&mut self, key: &RequestKey) {
        for bit in Self::positions(key) {
            self.filter[bit / 64] |= 1 << (bit % 64);
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
