//! A Bloom filter in front of an exact index kept on disk: a value it has never been given is
//! surely new, so a run of distinct values never reads the index. Blocked: a value's bits all lie
//! in one 64-byte block (one cache line), so a check costs one memory read, not seven. A filter
//! for a known number of values is sized for it, with the bits per value its user chooses (10
//! give about 1 in 100 false "maybe"s; then the index is read, and says no). For a number not
//! known ahead, [`GrowingBloomFilter`] adds a filter of the same size each time the last is full,
//! so the false "maybe"s stay rare at 100 million values as at 10.

/// Values of a run's claims (custom_ids, request keys) one filter is sized for, at
/// [`CLAIMS_BITS_PER_VALUE`] bits each: 16 MiB, about 1 new value in 300 a false "maybe" once
/// full. One filter given 30 million ids let 1 new id in 10 through, and each made the claims
/// look further (BENCHMARKS.md, "Past 10M"); each filter added past it costs 16 MiB more.
const CLAIMS_VALUES_PER_FILTER: usize = 10_000_000;
/// Values of each of [`GrowingBloomFilter::growing_for_claims`]'s filters: debug builds (the
/// tests' binary) make a new one every thousand, so tests of a few thousand rows go through
/// several.
const CLAIMS_VALUES_PER_GROWING_FILTER: usize = if cfg!(debug_assertions) {
    1_000
} else {
    CLAIMS_VALUES_PER_FILTER
};
/// Bits of a claims filter per value.
pub const CLAIMS_BITS_PER_VALUE: usize = 13;
/// Bits set per value, unless a filter is made with another number
/// ([`BloomFilter::for_values_setting`]).
const BITS_SET_PER_VALUE: u32 = 7;
/// Words per block: 8 words of 64 bits, one cache line.
const BLOCK_WORDS: usize = 8;

/// Two independent 64-bit hashes of a value, from which its bit positions are made (double
/// hashing).
#[derive(Debug, Clone, Copy)]
pub struct FilterHashes {
    pub first: u64,
    pub step: u64,
}

/// A filter of whole blocks, never empty.
pub struct BloomFilter {
    words: crate::huge_pages::ZeroedWords,
    /// Bits set per value (positions made from a value's two hashes).
    bits_set: u32,
}

impl BloomFilter {
    /// A filter sized for `values` values with `bits_per_value` bits each, in whole blocks.
    pub fn for_values(values: usize, bits_per_value: usize) -> BloomFilter {
        BloomFilter::for_values_setting(values, bits_per_value, BITS_SET_PER_VALUE)
    }

    /// As [`Self::for_values`], setting `bits_set` bits per value (at least one): fewer suit
    /// fewer bits per value (3 for 4 bits: about 1 in 6 false "maybe"s, where 7 give 1 in 4; 1
    /// for 2 bits: about 2 in 5).
    pub fn for_values_setting(values: usize, bits_per_value: usize, bits_set: u32) -> BloomFilter {
        let words = (values.saturating_mul(bits_per_value).div_ceil(64))
            .next_multiple_of(BLOCK_WORDS)
            .max(BLOCK_WORDS);
        BloomFilter {
            words: crate::huge_pages::zeroed_words(words),
            bits_set: bits_set.max(1),
        }
    }

    /// Whether a value with these hashes may have been inserted.
    pub fn may_contain(&self, hashes: FilterHashes) -> bool {
        Self::positions(hashes, self.words.len(), self.bits_set)
            .all(|bit| self.words[bit / 64] & (1 << (bit % 64)) != 0)
    }

    /// Asks the processor to start loading the block holding a value's bits, so that a check or
    /// an insert made a little later (the next row's) finds it in cache instead of waiting on
    /// memory. Only a hint: it changes no result.
    pub fn prefetch(&self, hashes: FilterHashes) {
        let first_word = Self::block(hashes, self.words.len()) * BLOCK_WORDS;
        crate::prefetch::prefetch_address(&self.words[first_word]);
    }

    pub fn insert(&mut self, hashes: FilterHashes) {
        for bit in Self::positions(hashes, self.words.len(), self.bits_set) {
            self.words[bit / 64] |= 1 << (bit % 64);
        }
    }

    /// The block a value's bits are in: `first` taken as a fraction of the filter (its high
    /// bits choose), so values given in increasing `first` fill the filter front to back. A
    /// sorted run's filter is built that way, in one sweep through memory instead of a cache
    /// miss per key ([`super::sorted_key_runs`]); for hashes, any bits are as good as others.
    fn block(hashes: FilterHashes, words: usize) -> usize {
        let blocks = (words / BLOCK_WORDS) as u128;
        ((u128::from(hashes.first) * blocks) >> 64) as usize
    }

    /// The value's bits: a block chosen by `first`, and bits within it by `step`.
    fn positions(hashes: FilterHashes, words: usize, count: u32) -> impl Iterator<Item = usize> {
        let block = Self::block(hashes, words);
        let block_bits = (BLOCK_WORDS * 64) as u64;
        let (start, step) = (hashes.step, (hashes.step >> 32) | 1);
        (0..u64::from(count)).map(move |index| {
            block * BLOCK_WORDS * 64
                + (start.wrapping_add(index.wrapping_mul(step)) % block_bits) as usize
        })
    }
}

/// Bloom filters for values whose number is not known ahead: each sized for `values_per_filter`
/// values, a new one made when the newest is full, up to `most_filters` (none until the first
/// value, so claims that see none cost nothing; past the last, it takes the values beyond its
/// size, and lets more through). A value may be in any of them; new values go into the newest. Each
/// filter added keeps its own rate of false "maybe"s, so theirs add up slowly (about 0.3% per
/// full filter at 13 bits a value), where one filter given ten times its values lets nearly
/// every new one through.
pub struct GrowingBloomFilter {
    filters: Vec<BloomFilter>,
    values_in_newest: usize,
    values_per_filter: usize,
    bits_per_value: usize,
    most_filters: usize,
}

impl GrowingBloomFilter {
    /// One filter in front of a run's claims, however many values come (request keys).
    pub fn one_for_claims() -> GrowingBloomFilter {
        GrowingBloomFilter::new(CLAIMS_VALUES_PER_FILTER, CLAIMS_BITS_PER_VALUE, 1)
    }

    /// As many filters in front of a run's claims as the values need (custom_ids).
    pub fn growing_for_claims() -> GrowingBloomFilter {
        GrowingBloomFilter::new(
            CLAIMS_VALUES_PER_GROWING_FILTER,
            CLAIMS_BITS_PER_VALUE,
            usize::MAX,
        )
    }

    pub fn new(
        values_per_filter: usize,
        bits_per_value: usize,
        most_filters: usize,
    ) -> GrowingBloomFilter {
        GrowingBloomFilter {
            filters: Vec::new(),
            values_in_newest: 0,
            values_per_filter,
            bits_per_value,
            most_filters: most_filters.max(1),
        }
    }

    /// Whether a value with these hashes may have been inserted.
    pub fn may_contain(&self, hashes: FilterHashes) -> bool {
        self.filters.iter().any(|filter| filter.may_contain(hashes))
    }

    /// Starts loading the blocks a check of these hashes reads (see [`BloomFilter::prefetch`]).
    pub fn prefetch(&self, hashes: FilterHashes) {
        for filter in &self.filters {
            filter.prefetch(hashes);
        }
    }

    pub fn insert(&mut self, hashes: FilterHashes) {
        if self.filters.is_empty()
            || (self.values_in_newest >= self.values_per_filter
                && self.filters.len() < self.most_filters)
        {
            self.filters.push(BloomFilter::for_values(
                self.values_per_filter,
                self.bits_per_value,
            ));
            self.values_in_newest = 0;
        }
        self.filters
            .last_mut()
            .expect("a filter was just made if none was")
            .insert(hashes);
        self.values_in_newest += 1;
    }

    /// How many filters were made.
    #[cfg(test)]
    pub fn filter_count(&self) -> usize {
        self.filters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserted_values_are_always_found_and_most_others_are_not() {
        let mut filter = GrowingBloomFilter::one_for_claims();
        let hashes = |seed: u64| FilterHashes {
            first: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            step: seed.rotate_left(29).wrapping_mul(0xBF58_476D_1CE4_E5B9),
        };
        assert!(
            !filter.may_contain(hashes(1)),
            "an empty filter holds nothing"
        );
        for seed in 0..100_000 {
            filter.insert(hashes(seed));
        }
        assert!((0..100_000).all(|seed| filter.may_contain(hashes(seed))));
        let false_maybes = (100_000..200_000)
            .filter(|seed| filter.may_contain(hashes(*seed)))
            .count();
        assert!(false_maybes < 10, "{false_maybes} false maybes in 100,000");
    }

    #[test]
    fn values_given_in_increasing_first_fill_the_filter_front_to_back() {
        let words = BloomFilter::for_values(10_000, 8).words.len();
        let blocks: Vec<usize> = (0..=1_000_u64)
            .map(|step| {
                let first = step.saturating_mul(u64::MAX / 1_000);
                BloomFilter::block(FilterHashes { first, step: 7 }, words)
            })
            .collect();
        assert!(blocks.windows(2).all(|pair| pair[0] <= pair[1]));
        assert_eq!(blocks[0], 0);
        assert_eq!(*blocks.last().unwrap(), words / BLOCK_WORDS - 1);
    }

    #[test]
    fn a_filter_sized_for_its_values_finds_them_all_and_few_others() {
        // Well-mixed words, as the SHA-256 words the filter is given in use are.
        let mix = |value: u64| {
            let value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            value ^ (value >> 31)
        };
        let hashes = |seed: u64| FilterHashes {
            first: mix(seed),
            step: mix(seed ^ 0x9E37_79B9_7F4A_7C15),
        };
        for (values, bits_per_value, bits_set) in [
            (0_u64, 10, BITS_SET_PER_VALUE),
            (1, 10, BITS_SET_PER_VALUE),
            (7, 8, BITS_SET_PER_VALUE),
            (1_000, 8, BITS_SET_PER_VALUE),
            (50_000, 10, BITS_SET_PER_VALUE),
            (50_000, 4, 3),
            (50_000, 2, 1),
        ] {
            let mut filter =
                BloomFilter::for_values_setting(values as usize, bits_per_value, bits_set);
            assert!(
                filter.words.len().is_multiple_of(BLOCK_WORDS) && filter.words.len() >= BLOCK_WORDS
            );
            for seed in 0..values {
                filter.insert(hashes(seed));
            }
            assert!((0..values).all(|seed| filter.may_contain(hashes(seed))));
            let false_maybes = (1_000_000..1_100_000)
                .filter(|seed| filter.may_contain(hashes(*seed)))
                .count();
            if values >= 1_000 {
                // About 1 in 100 at 10 bits a value, 1 in 40 at 8, 1 in 6 at 4 with three
                // hashes, 2 in 5 at 2 with one (a blocked filter does a little worse than the
                // 0.8%, 2.2%, 14.7% and 39.3% of an unblocked one).
                let most = match bits_per_value {
                    10 => 2_000,
                    8 => 4_000,
                    4 => 19_000,
                    _ => 44_000,
                };
                assert!(
                    false_maybes < most,
                    "{false_maybes} false maybes in 100,000 at {bits_per_value} bits a value"
                );
            }
        }
    }
}
