//! The order in which a batch processes (and writes) its lines: blocks of consecutive lines, the
//! blocks shuffled by a hash of the seed and the batch id.
//!
//! Real providers schedule lines dynamically and do not keep input order, so clients must join
//! results by `custom_id`. Shuffling whole blocks keeps that property while letting the writer
//! read the input sequentially within a block. A batch of at most one block keeps input order.

use super::ids::DeterministicRandom;

/// Consecutive input lines processed together.
pub(crate) const LINES_PER_BLOCK: u64 = 8;

#[derive(Debug, Clone)]
pub(crate) struct ProcessingOrder {
    request_count: u64,
    /// Block indices in processing order.
    blocks_in_order: Vec<u64>,
    /// For each block index, the processing position of its first line.
    first_position_of_block: Vec<u64>,
}

impl ProcessingOrder {
    pub(crate) fn new(seed: u64, batch_id: &str, request_count: u64) -> ProcessingOrder {
        let block_count = request_count.div_ceil(LINES_PER_BLOCK);
        let mut blocks_in_order: Vec<u64> = (0..block_count).collect();
        let mut random = DeterministicRandom::from_parts(&[
            &seed.to_le_bytes(),
            b"processing-order",
            batch_id.as_bytes(),
        ]);
        for position in (1..blocks_in_order.len()).rev() {
            let other = random.below(position as u64 + 1) as usize;
            blocks_in_order.swap(position, other);
        }
        let mut first_position_of_block = vec![0; block_count as usize];
        let mut position = 0;
        for block in &blocks_in_order {
            first_position_of_block[*block as usize] = position;
            position += block_length(*block, request_count);
        }
        ProcessingOrder {
            request_count,
            blocks_in_order,
            first_position_of_block,
        }
    }

    /// The 0-based processing position of the request line with this input index.
    pub(crate) fn position_of(&self, index: u64) -> u64 {
        let block = index / LINES_PER_BLOCK;
        self.first_position_of_block[block as usize] + index % LINES_PER_BLOCK
    }

    /// `(first input index, line count)` of each block, in processing order.
    pub(crate) fn blocks(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.blocks_in_order.iter().map(|block| {
            (
                block * LINES_PER_BLOCK,
                block_length(*block, self.request_count),
            )
        })
    }
}

fn block_length(block: u64, request_count: u64) -> u64 {
    (request_count - block * LINES_PER_BLOCK).min(LINES_PER_BLOCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_a_permutation_consistent_with_the_blocks() {
        for request_count in [0, 1, 7, 8, 9, 50, 203] {
            let order = ProcessingOrder::new(3, "batch_x", request_count);
            let mut positions: Vec<u64> = (0..request_count)
                .map(|index| order.position_of(index))
                .collect();
            let mut expected_position = 0;
            for (first, length) in order.blocks() {
                for offset in 0..length {
                    assert_eq!(positions[(first + offset) as usize], expected_position);
                    expected_position += 1;
                }
            }
            assert_eq!(expected_position, request_count);
            positions.sort_unstable();
            assert_eq!(positions, (0..request_count).collect::<Vec<_>>());
        }
    }

    #[test]
    fn larger_batches_are_not_in_input_order_and_the_order_is_stable() {
        let order = ProcessingOrder::new(0, "batch_y", 64);
        let firsts: Vec<u64> = order.blocks().map(|(first, _)| first).collect();
        assert_ne!(
            firsts,
            (0..8)
                .map(|block| block * LINES_PER_BLOCK)
                .collect::<Vec<_>>()
        );
        let again: Vec<u64> = ProcessingOrder::new(0, "batch_y", 64)
            .blocks()
            .map(|(first, _)| first)
            .collect();
        assert_eq!(firsts, again);
    }
}
