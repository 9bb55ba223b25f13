//! Texts kept one after another in blocks of 256 KiB that are never moved, regrown or shrunk,
//! each found again by an 8-byte [`TextPlace`]: the store of a shard's custom_ids and answer
//! texts while the join reads its results.
//!
//! Why blocks. A single growing string doubles: the join's four result maps each held a 6.4 MB
//! string for 3.2 MB of texts, and every doubling left the old string's memory as a hole in
//! the allocator's arena that later blocks filled, so a join's resident memory crept up by
//! about 3 MiB a doubling, more often the more shards it read (BENCHMARKS.md, eighteenth
//! round). Blocks of one size are kept when the store is emptied and filled again with the next
//! shard's texts; at most the end of the last block is left unused.

/// The size of a block: at least the size from which the binary's allocator takes blocks from
/// glibc ([`crate::split_allocator::LARGE_BLOCK_BYTES`]), whose arenas give a freed block of one
/// size to the next request of that size; and large enough that a shard's texts take a few
/// dozen blocks at most, the last one's unused end being the only room lost.
pub(super) const BLOCK_BYTES: usize = 1 << OFFSET_BITS;
/// A place's start holds the block's number above these bits and the offset in it below.
const OFFSET_BITS: u32 = 18;
/// The most blocks one store holds (their numbers fit the start's upper 14 bits): 4 GiB of
/// texts of up to 256 KiB, fewer of longer ones.
const MOST_BLOCKS: usize = 1 << (u32::BITS - OFFSET_BITS);

const _: () = assert!(BLOCK_BYTES >= crate::split_allocator::LARGE_BLOCK_BYTES);

/// Where a text is in a [`TextBlocks`], or that there is none ([`TextPlace::NONE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TextPlace {
    /// The block's number, then the offset in it.
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
    /// The blocks in use first, then empty ones kept for later texts. A block of
    /// [`BLOCK_BYTES`] holds texts up to that many bytes in all; a longer text has a block of
    /// its own, of its length, which is let go when the store is emptied.
    blocks: Vec<String>,
    /// How many blocks hold texts now.
    in_use: usize,
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
        let fits_in_last =
            self.in_use > 0 && self.blocks[self.in_use - 1].len() + text.len() <= BLOCK_BYTES;
        if !fits_in_last {
            if self.in_use == MOST_BLOCKS {
                return None;
            }
            if text.len() > BLOCK_BYTES {
                self.blocks
                    .insert(self.in_use, String::with_capacity(text.len()));
            } else if self.in_use == self.blocks.len() {
                self.blocks.push(String::with_capacity(BLOCK_BYTES));
            }
            self.in_use += 1;
        }
        let number = self.in_use - 1;
        let block = &mut self.blocks[number];
        // A long text starts its own block, at offset 0; any other ends below BLOCK_BYTES.
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
            length => {
                let block = &self.blocks[(place.start >> OFFSET_BITS) as usize];
                let offset = (place.start & (BLOCK_BYTES as u32 - 1)) as usize;
                Some(&block[offset..offset + length as usize])
            }
        }
    }

    /// Lets go of every text. Blocks of [`BLOCK_BYTES`] are kept for the next texts, empty;
    /// a long text's own block is freed.
    pub(super) fn clear(&mut self) {
        self.blocks.retain(|block| block.capacity() <= BLOCK_BYTES);
        for block in &mut self.blocks {
            block.clear();
        }
        self.in_use = 0;
    }

    /// The bytes its blocks take, used or not.
    #[cfg(test)]
    fn bytes_held(&self) -> usize {
        self.blocks.iter().map(String::capacity).sum()
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
        // A store whose block numbers are all taken, the last by a long text (the others
        // empty, so that the test does not take 4 GiB).
        let mut blocks = vec![String::new(); MOST_BLOCKS - 1];
        blocks.push(long.clone());
        let mut store = TextBlocks {
            blocks,
            in_use: MOST_BLOCKS,
        };
        assert_eq!(store.push("short"), None);
        assert_eq!(store.push(&long), None);
        assert_eq!(store.push(""), Some(TextPlace::EMPTY));
    }
}
