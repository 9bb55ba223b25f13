//! The newest claimed request keys, held in memory until they are spilled as one sorted run: in
//! the order they came, in one array, with a small hash index of their places beside it. At a
//! spill they are sorted in that same array, so holding them and sorting them take one array's
//! memory: 5.25 MiB for 114,688 keys and their rows, besides an index of 0.6 MiB and, while
//! sorting, two tables of 0.25 MiB. A hash map of the keys (6.4 MB) and a sorted copy of it
//! (6.55 MB) were both held at every spill before, measured with heaptrack on the planning of
//! a 10M-row run (BENCHMARKS.md, seventeenth round).

use hashbrown::HashTable;

use super::sorted_key_runs::ClaimedKey;
use crate::ledger::FirstRowOfKey;
use crate::request_key::RequestKey;

/// Keys held, each at one place of `keys`.
pub struct HeldRequestKeys {
    /// In the order they were held, until [`HeldRequestKeys::sorted`] puts them in key order.
    keys: Vec<ClaimedKey>,
    /// The place in `keys` of each key, found by the key's first eight bytes (a SHA-256 is
    /// already spread evenly, so they need no hashing of their own).
    places: HashTable<u32>,
}

impl HeldRequestKeys {
    /// Room for `capacity` keys without growing.
    pub fn with_capacity(capacity: usize) -> HeldRequestKeys {
        assert!(capacity < u32::MAX as usize, "places and counts are 32-bit");
        HeldRequestKeys {
            keys: Vec::with_capacity(capacity),
            places: HashTable::with_capacity(capacity),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The first row of `key`, when it is held.
    pub fn get(&self, key: &RequestKey) -> Option<&FirstRowOfKey> {
        let keys = &self.keys;
        self.places
            .find(place_hash(key), |place| keys[*place as usize].0 == *key)
            .map(|place| &keys[*place as usize].1)
    }

    /// The first row of `key`, to change, when it is held.
    pub fn get_mut(&mut self, key: &RequestKey) -> Option<&mut FirstRowOfKey> {
        let keys = &self.keys;
        let place = *self
            .places
            .find(place_hash(key), |place| keys[*place as usize].0 == *key)?;
        Some(&mut self.keys[place as usize].1)
    }

    /// Holds `key` with its first row. The caller has made sure it is not held already.
    pub fn insert_new(&mut self, key: RequestKey, first: FirstRowOfKey) {
        debug_assert!(self.get(&key).is_none());
        let place = u32::try_from(self.keys.len()).expect("fewer keys held than 2^32");
        self.keys.push((key, first));
        let keys = &self.keys;
        self.places.insert_unique(place_hash(&key), place, |place| {
            place_hash(&keys[*place as usize].0)
        });
    }

    /// The keys held, in key order: placed by their first two bytes in the array itself (an
    /// in-place counting sort; keys are SHA-256 values, spread evenly over the 65,536 groups),
    /// then each group of about two sorted. A comparison sort of the whole took 3–4% of
    /// `validate`'s CPU at 10 million rows. The index no longer applies after this: the keys
    /// are to be written out and let go with [`HeldRequestKeys::clear`].
    pub fn sorted(&mut self) -> &[ClaimedKey] {
        const GROUPS: usize = 1 << 16;
        let group_of = |key: &RequestKey| usize::from(u16::from_be_bytes([key.0[0], key.0[1]]));
        self.places.clear();
        let keys = &mut self.keys;
        let mut group_ends = vec![0_u32; GROUPS];
        for (key, _) in keys.iter() {
            group_ends[group_of(key)] += 1;
        }
        let mut next_in_group = Vec::with_capacity(GROUPS);
        let mut end = 0_u32;
        for count in &mut group_ends {
            next_in_group.push(end);
            end += *count;
            *count = end;
        }
        // Each group's part of the array is filled from its start: a key found there that
        // belongs to another group is swapped into that group's next free place, until the
        // key at the place belongs there.
        for group in 0..GROUPS {
            while next_in_group[group] < group_ends[group] {
                let place = next_in_group[group] as usize;
                let belongs_to = group_of(&keys[place].0);
                if belongs_to != group {
                    keys.swap(place, next_in_group[belongs_to] as usize);
                }
                next_in_group[belongs_to] += 1;
            }
        }
        let mut start = 0;
        for end in group_ends {
            keys[start..end as usize].sort_unstable_by_key(|(key, _)| key.0);
            start = end as usize;
        }
        keys
    }

    /// Lets every key go; the memory stays for the next ones.
    pub fn clear(&mut self) {
        self.keys.clear();
        self.places.clear();
    }
}

/// Where a key is looked for in the index: its first eight bytes.
fn place_hash(key: &RequestKey) -> u64 {
    u64::from_le_bytes(key.0[..8].try_into().expect("8 of 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::KeyOrigin;

    fn key(seed: u64) -> RequestKey {
        use sha2::{Digest, Sha256};
        RequestKey(Sha256::digest(seed.to_le_bytes()).into())
    }

    fn first(row_number: u64) -> FirstRowOfKey {
        FirstRowOfKey {
            row_number,
            origin: KeyOrigin::Batch,
        }
    }

    #[test]
    fn held_keys_are_found_changed_and_given_back_in_key_order() {
        let mut held = HeldRequestKeys::with_capacity(50_000);
        let mut expected = Vec::new();
        // Keys sharing their first two bytes (whole groups to sort), keys sharing their first
        // eight (one index hash for many), and keys from the whole range.
        for seed in 0..50_000 {
            let mut bytes = key(seed).0;
            if seed % 3 == 0 {
                bytes[..2].copy_from_slice(&[0x12, 0x34]);
            }
            if seed % 1_000 == 7 {
                bytes[..8].copy_from_slice(&[0xff; 8]);
            }
            let key = RequestKey(bytes);
            held.insert_new(key, first(seed + 1));
            expected.push((key, first(seed + 1)));
        }
        assert_eq!(held.len(), 50_000);
        for (key, first) in expected.iter().step_by(7) {
            assert_eq!(held.get(key), Some(first));
        }
        assert_eq!(held.get(&key(50_001)), None);
        let changed = expected[1_007].0;
        held.get_mut(&changed).unwrap().origin = KeyOrigin::Store;
        expected[1_007].1.origin = KeyOrigin::Store;
        assert_eq!(held.get_mut(&key(50_002)), None);

        expected.sort_unstable_by_key(|(key, _)| key.0);
        assert_eq!(held.sorted(), &expected[..]);
        // Sorted, the keys are no longer found by key (never at a wrong place).
        assert_eq!(held.get(&expected[0].0), None);
        held.clear();
        assert_eq!(held.len(), 0);
        assert_eq!(held.get(&expected[0].0), None);
        // Held again after a clear, the index finds them.
        held.insert_new(expected[0].0, first(9));
        assert_eq!(held.get(&expected[0].0), Some(&first(9)));
        assert!(HeldRequestKeys::with_capacity(4).sorted().is_empty());
    }
}
