//! Texts kept one after another in blocks of 256 KiB that are never moved, regrown or shrunk,
//! each found again by an 8-byte [`TextPlace`]: the store of a shard's custom_ids and answer
//! texts while the join reads its results.
//!
//! Why blocks. A single growing string doubles: the join's four result maps each held a 6.4 MB
//! string for 3.2 MB of texts, and every doubling left the old string's memory as a hole in
//! the allocator's arena that later blocks filled, so a join's resident memory crept up by
//! about 3 MiB a doubling, more often the more shards it read (BENCHMARKS.md, eighteenth
//! round). Blocks of one size are kept when the store is emptied and filled again with the next
//! shard's texts; what is lost is the end of a block that the next text did not fit (short
//! texts, as nearly all answers are, lose a few bytes a block). A text longer than a block is
//! kept apart, in a string of its own.

/// The size of a block: at least the size from which the binary's allocator takes blocks from
/// glibc ([`crate::split_allocator::LARGE_BLOCK_BYTES`]), whose arenas give a freed block of one
/// size to the next request of that size; and large enough that a shard's short texts take a
/// few dozen blocks.
pub(super) const BLOCK_BYTES: usize = 1 << OFFSET_BITS;
/// A place's start holds the block's number above these bits and the offset in it below.
const OFFSET_BITS: u32 = 18;
/// The most blocks one store holds (their numbers fit the start's upper 14 bits): 4 GiB of
/// short texts.
const MOST_BLOCKS: usize = 1 << (u32::BITS - OFFSET_BITS);

const _: () = assert!(BLOCK_BYTES >= crate::split_allocator::LARGE_BLOCK_BYTES);

/// Where a text is in a [`TextBlocks`], or that there is none ([`TextPlace::NONE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TextPlace {
    /// The block's number, then the offset in it; for a text longer than a block, its number
    /// among the long texts.
    start: u32,
    /// `u32::MAX` for no text.
    length: u32,
}

impl TextPlace {
    pub(super) const NONE: TextPlace = TextPlace {
        start: 0,
        length: u32::MAX,
    };
    const EMPTY: TextPlace = TextPlace {
        start: 0,
        length: 0,
    };
}

/// See the module's documentation.
#[derive(Default)]
pub(super) struct TextBlocks {
    /// The blocks in use first, then empty ones kept for later texts, each of
    /// [`BLOCK_BYTES`].
    blocks: Vec<String>,
    /// How many blocks hold texts now.
    in_use: usize,
    /// Texts longer than a block, each in a string of its own, let go when the store is
    /// emptied. Apart from the blocks, so that the block being filled stays the last in use.
    long_texts: Vec<Box<str>>,
}

impl TextBlocks {
    /// Keeps `text`; `None` when the store is full or the text is 4 GiB long.
    pub(super) fn push(&mut self, text: &str) -> Option<TextPlace> {
        if text.is_empty() {
            return Some(TextPlace::EMPTY);
        }
        let length = u32::try_from(text.len())
            .ok()
            .filter(|&length| length != u32::MAX)?;
        if text.len() > BLOCK_BYTES {
            let number = u32::try_from(self.long_texts.len()).ok()?;
            self.long_texts.push(text.into());
            return Some(TextPlace {
                start: number,
                length,
            });
        }
        let fits_in_last =
            self.in_use > 0 && self.blocks[self.in_use - 1].len() + text.len() <= BLOCK_BYTES;
        if !fits_in_last {
            if self.in_use == MOST_BLOCKS {
                return None;
            }
            if self.in_use == self.blocks.len() {
                self.blocks.push(String::with_capacity(BLOCK_BYTES));
            }
            self.in_use += 1;
        }
        let number = self.in_use - 1;
        let block = &mut self.blocks[number];
        // The text ends at or below BLOCK_BYTES, so it starts below it.
        let offset = block.len();
        debug_assert!(offset < BLOCK_BYTES);
        block.push_str(text);
        Some(TextPlace {
            start: ((number as u32) << OFFSET_BITS) | offset as u32,
            length,
        })
    }

    /// The text at `place`; `None` for [`TextPlace::NONE`].
    pub(super) fn get(&self, place: TextPlace) -> Option<&str> {
        match place.length {
            u32::MAX => None,
            0 => Some(""),
            length if length as usize > BLOCK_BYTES => Some(&self.long_texts[place.start as usize]),
            length => {
                let block = &self.blocks[(place.start >> OFFSET_BITS) as usize];
                let offset = (place.start & (BLOCK_BYTES as u32 - 1)) as usize;
                Some(&block[offset..offset + length as usize])
            }
        }
    }

    /// Lets go of every text. The blocks are kept for the next texts, empty; the long texts
    /// are freed.
    pub(super) fn clear(&mut self) {
        for block in &mut self.blocks {
            block.clear();
        }
        self.in_use = 0;
        self.long_texts = Vec::new();
    }

    /// The bytes its blocks and long texts take, used or not.
    #[cfg(test)]
    fn bytes_held(&self) -> usize {
        let long: usize = self.long_texts.iter().map(|text| text.len()).sum();
        self.blocks.iter().map(String::capacity).sum::<usize>() + long
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_come_back_as_kept_across_blocks_long_ones_and_empty_ones() {
        let mut store = TextBlocks::default();
        let long = "长".repeat(BLOCK_BYTES / 3 + 7);
        let texts: Vec<String> = (0..40_000)
            .map(|number| match number % 1_000 {
                0 => long.clone(),
                1 => String::new(),
                _ => format!("text {number} {}", "x".repeat(number % 37)),
            })
            .collect();
        let places: Vec<TextPlace> = texts.iter().map(|text| store.push(text).unwrap()).collect();
        for (text, place) in texts.iter().zip(&places) {
            assert_eq!(store.get(*place), Some(text.as_str()));
        }
        assert_eq!(store.get(TextPlace::NONE), None);
    }

    #[test]
    fn a_text_exactly_a_block_long_and_one_that_fills_a_block_to_its_end_stay_whole() {
        let mut store = TextBlocks::default();
        let whole_block = "a".repeat(BLOCK_BYTES);
        let first = store.push("b").unwrap();
        let filling = "c".repeat(BLOCK_BYTES - 1);
        let to_the_end = store.push(&filling).unwrap();
        let next = store.push("d").unwrap();
        let exact = store.push(&whole_block).unwrap();
        let after = store.push("e").unwrap();
        assert_eq!(store.get(first), Some("b"));
        assert_eq!(store.get(to_the_end), Some(filling.as_str()));
        assert_eq!(store.get(next), Some("d"));
        assert_eq!(store.get(exact), Some(whole_block.as_str()));
        assert_eq!(store.get(after), Some("e"));
    }

    #[test]
    fn emptied_the_store_keeps_its_blocks_and_frees_long_texts_blocks() {
        let mut store = TextBlocks::default();
        let long = "l".repeat(BLOCK_BYTES * 2 + 1);
        for _ in 0..3 {
            for number in 0..100_000 {
                store.push(&format!("{number:08}")).unwrap();
            }
            store.push(&long).unwrap();
            // 800,000 bytes in 256 KiB blocks: four blocks, and the long text's own.
            assert_eq!(store.bytes_held(), 4 * BLOCK_BYTES + long.len());
            store.clear();
            assert_eq!(store.bytes_held(), 4 * BLOCK_BYTES);
        }
    }

    #[test]
    fn a_full_store_refuses_a_text_instead_of_giving_a_place_that_is_not_its() {
        let long = "z".repeat(BLOCK_BYTES + 1);
        // A store whose block numbers are all taken, the last one full (the others empty, so
        // that the test does not take 4 GiB).
        let mut blocks = vec![String::new(); MOST_BLOCKS - 1];
        blocks.push("f".repeat(BLOCK_BYTES));
        let mut store = TextBlocks {
            blocks,
            in_use: MOST_BLOCKS,
            long_texts: Vec::new(),
        };
        assert_eq!(store.push("short"), None);
        assert_eq!(store.push(""), Some(TextPlace::EMPTY));
        // A long text takes no block number.
        let place = store.push(&long).unwrap();
        assert_eq!(store.get(place), Some(long.as_str()));
    }

    #[test]
    fn short_texts_around_long_ones_share_their_blocks() {
        let mut store = TextBlocks::default();
        let long = "l".repeat(BLOCK_BYTES + 10);
        let mut places = Vec::new();
        // An answer longer than a block between a request id and a finish reason, a thousand
        // times.
        for number in 0..1_000 {
            let id = format!("request-{number}");
            places.push((store.push(&id).unwrap(), id));
            places.push((store.push(&long).unwrap(), long.clone()));
            places.push((store.push("stop").unwrap(), "stop".to_owned()));
        }
        for (place, text) in &places {
            assert_eq!(store.get(*place), Some(text.as_str()));
        }
        // The short texts (about 16,000 bytes) fill one block, not one each.
        assert_eq!(store.in_use, 1);
        assert_eq!(store.bytes_held(), BLOCK_BYTES + 1_000 * long.len());
    }
}
