//! The binary's allocator: small blocks from mimalloc, large ones from the system's (glibc's)
//! allocator, chosen by size alone, so a block is always freed by the allocator that made it.
//!
//! Why two. Planning makes small blocks (rendered request lines) on one thread and frees them on
//! another, which glibc serialises on its arena locks and mimalloc does not. The join and
//! planning also make large blocks (record batches, output columns, a shard's results, Parquet
//! pages) that one thread fills and another frees, a few thousand times a second. mimalloc 3
//! gives those back to the system only after its `purge_delay` (1,000 ms) and meanwhile takes
//! fresh memory for the next ones: the 1M-row join peaked at 117–157 MiB, against 75 MiB with
//! glibc, which hands a freed large block to the next request of its size at once. Purging
//! sooner (`MIMALLOC_PURGE_DELAY=0`) gave 74 MiB for 32% more CPU (BENCHMARKS.md, twelfth
//! round).

use std::alloc::{GlobalAlloc, Layout, System};

use mimalloc::MiMalloc;

/// Blocks of at least this many bytes come from the system's allocator: above the size of a
/// rendered request line or a result's texts, at or below the columns of a record batch the
/// join makes on one thread and the writer frees on another (4,096 rows of a number are
/// 32 KiB; of a review, about 1 MiB). At 256 KiB, the columns between went to mimalloc, which
/// kept them past their use for its purge delay: the join peaked at 94.8 MiB at 10M rows and
/// 86.8 at 1M, against 83.2 and 79.3 from 64 KiB, in the same time (BENCHMARKS.md, eighteenth
/// round).
pub const LARGE_BLOCK_BYTES: usize = 64 * 1024;

/// See the module's documentation.
pub struct SplitAllocator;

/// Gives back to the system what both allocators hold freed, once a stage that used a great
/// deal of memory is over. The allocators keep freed memory for the next blocks (glibc keeps
/// its arenas at their peak, `main.rs`); that suits a stage that needs it again, but after
/// planning 10 million rows a run held about 100 MiB it no longer used (30 MiB after 1
/// million) through hours of waiting, and its join then took more besides: 150–170 MiB at
/// its peak, against about 100 MiB for the same join run alone.
pub fn return_freed_memory() {
    // SAFETY: asks mimalloc to free and purge what it can; no block in use is touched.
    unsafe { libmimalloc_sys::mi_collect(true) };
    // SAFETY: asks glibc to give back the free memory of its arenas; no block in use moves.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }
}

fn is_large(size: usize) -> bool {
    size >= LARGE_BLOCK_BYTES
}

// SAFETY: every block is made and freed (or resized) by the allocator its size chooses: the
// layout given to `dealloc` and `realloc` is the one the block was made or last resized with,
// so the choice is the same; a resize that crosses the line is a new block of the other
// allocator, the bytes copied and the old block freed by its own.
unsafe impl GlobalAlloc for SplitAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout is passed on as it is.
        unsafe {
            if is_large(layout.size()) {
                System.alloc(layout)
            } else {
                MiMalloc.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe {
            if is_large(layout.size()) {
                System.alloc_zeroed(layout)
            } else {
                MiMalloc.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: the block was made with this layout, so by the allocator its size chooses.
        unsafe {
            if is_large(layout.size()) {
                System.dealloc(block, layout)
            } else {
                MiMalloc.dealloc(block, layout)
            }
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `block` was made with `layout` and that `new_size`,
        // rounded up to the alignment, does not overflow; the new layout is then valid.
        unsafe {
            match (is_large(layout.size()), is_large(new_size)) {
                (true, true) => System.realloc(block, layout, new_size),
                (false, false) => MiMalloc.realloc(block, layout, new_size),
                _ => {
                    let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        std::ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_keep_their_bytes_when_resized_across_the_line_both_ways() {
        let allocator = SplitAllocator;
        for (from, to) in [
            (1_000, LARGE_BLOCK_BYTES + 1),
            (LARGE_BLOCK_BYTES * 2, 100),
            (LARGE_BLOCK_BYTES - 1, LARGE_BLOCK_BYTES),
            (LARGE_BLOCK_BYTES, LARGE_BLOCK_BYTES * 3),
            (64, 128),
        ] {
            for align in [1, 8, 64, 4096] {
                let layout = Layout::from_size_align(from, align).unwrap();
                // SAFETY: each block is made, resized and freed with the layouts it has.
                unsafe {
                    let block = allocator.alloc(layout);
                    assert!(!block.is_null());
                    for offset in 0..from {
                        *block.add(offset) = (offset % 251) as u8;
                    }
                    let moved = allocator.realloc(block, layout, to);
                    assert!(!moved.is_null());
                    assert_eq!(
                        moved as usize % align,
                        0,
                        "{from} → {to}, aligned to {align}"
                    );
                    for offset in 0..from.min(to) {
                        assert_eq!(*moved.add(offset), (offset % 251) as u8);
                    }
                    allocator.dealloc(moved, Layout::from_size_align(to, align).unwrap());
                    let zeroed =
                        allocator.alloc_zeroed(Layout::from_size_align(to, align).unwrap());
                    assert!(!zeroed.is_null());
                    assert!((0..to).all(|offset| *zeroed.add(offset) == 0));
                    allocator.dealloc(zeroed, Layout::from_size_align(to, align).unwrap());
                }
            }
        }
    }
}
