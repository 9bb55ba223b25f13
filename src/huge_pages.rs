//! Memory read at random over many megabytes (a Bloom filter, say) asked to be backed by huge
//! pages (2 MiB) where the system allows them: each random read then needs no page-table walk
//! of its own, which on a virtual machine costs as much as the read. Only a hint to the
//! kernel; where it is refused or unknown, the memory is the same, on ordinary pages.
//!
//! Such memory is a mapping of its own, unmapped when it is dropped, not a block of the heap:
//! advice given to part of the heap outlives the block it was given for, so the blocks the heap
//! later holds there were backed by huge pages too, each touched byte making 2 MiB resident.
//! With the planning's filters in glibc's heap, a 10M-row run's join (whose record batches and
//! pages go there next) peaked about 7 MiB higher than the same join alone (BENCHMARKS.md,
//! seventeenth round).

use std::ops::{Deref, DerefMut, Range};
use std::ptr::NonNull;

/// Huge pages are 2 MiB on x86-64 and most AArch64 systems.
const HUGE_PAGE_BYTES: usize = 2 << 20;

/// Zeroed words in an anonymous mapping of their own, given back to the system when dropped.
pub struct ZeroedWords {
    start: NonNull<u64>,
    len: usize,
    /// Bytes mapped (none for no words).
    mapped: usize,
}

// SAFETY: the words are owned as a `Vec<u64>`'s are; nothing else refers to the mapping.
unsafe impl Send for ZeroedWords {}
// SAFETY: as for `Send`: shared references only read.
unsafe impl Sync for ZeroedWords {}

/// `len` zeroed words, asked to be backed by huge pages. Memory fresh from the system is zero
/// and untouched, so the hint comes before the first write and pages are only taken as they
/// are written.
///
/// # Panics
/// When `len` words do not fit the address space; aborts, as a failed allocation does, when
/// the system gives no memory.
pub fn zeroed_words(len: usize) -> ZeroedWords {
    let bytes = len
        .checked_mul(8)
        .expect("a size that fits the address space");
    if bytes == 0 {
        return ZeroedWords {
            start: NonNull::dangling(),
            len: 0,
            mapped: 0,
        };
    }
    // SAFETY: asks for a new private anonymous mapping; no existing memory is involved.
    let mapping = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    let layout = std::alloc::Layout::array::<u64>(len).expect("a size that fits");
    if mapping == libc::MAP_FAILED {
        std::alloc::handle_alloc_error(layout);
    }
    let Some(start) = NonNull::new(mapping.cast::<u64>()) else {
        std::alloc::handle_alloc_error(layout);
    };
    if let Some(pages) = whole_huge_pages_within(start.as_ptr() as usize, bytes) {
        advise_huge_pages(pages);
    }
    ZeroedWords {
        start,
        len,
        mapped: bytes,
    }
}

impl Deref for ZeroedWords {
    type Target = [u64];

    fn deref(&self) -> &[u64] {
        // SAFETY: `start` points at `len` words this value owns (mapped, zeroed by the
        // system), or is dangling with `len` 0.
        unsafe { std::slice::from_raw_parts(self.start.as_ptr(), self.len) }
    }
}

impl DerefMut for ZeroedWords {
    fn deref_mut(&mut self) -> &mut [u64] {
        // SAFETY: as for `deref`; `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.start.as_ptr(), self.len) }
    }
}

impl Drop for ZeroedWords {
    fn drop(&mut self) {
        if self.mapped > 0 {
            // SAFETY: unmaps exactly the mapping `zeroed_words` made, which nothing refers to
            // any more.
            unsafe {
                libc::munmap(self.start.as_ptr().cast(), self.mapped);
            }
        }
    }
}

/// The addresses of the whole huge pages inside `bytes` bytes from `start`, when there is one.
fn whole_huge_pages_within(start: usize, bytes: usize) -> Option<Range<usize>> {
    let first = start.checked_next_multiple_of(HUGE_PAGE_BYTES)?;
    let end = start.checked_add(bytes)? / HUGE_PAGE_BYTES * HUGE_PAGE_BYTES;
    (end > first).then_some(first..end)
}

fn advise_huge_pages(pages: Range<usize>) {
    #[cfg(target_os = "linux")]
    // SAFETY: the range lies inside an allocation this process owns (see
    // `whole_huge_pages_within`); the advice changes how its pages are backed, never their
    // contents or whether they may be accessed.
    unsafe {
        libc::madvise(
            pages.start as *mut libc::c_void,
            pages.end - pages.start,
            libc::MADV_HUGEPAGE,
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = pages;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_zeroed_whatever_their_size() {
        for len in [0, 1, 1_000, (HUGE_PAGE_BYTES / 8) * 3 + 5] {
            let mut words = zeroed_words(len);
            assert_eq!(words.len(), len);
            assert!(words.iter().all(|word| *word == 0));
            // Written through, end to end, and given back when dropped.
            if let Some(last) = words.last_mut() {
                *last = u64::MAX;
                words[0] |= 1;
                assert_eq!((words[0] & 1, words[len - 1]), (1, u64::MAX));
            }
        }
    }

    #[test]
    fn only_whole_huge_pages_inside_the_memory_are_advised() {
        let page = HUGE_PAGE_BYTES;
        assert_eq!(whole_huge_pages_within(page, 0), None);
        assert_eq!(whole_huge_pages_within(page, page - 1), None);
        assert_eq!(whole_huge_pages_within(page, page), Some(page..2 * page));
        // An unaligned start: the first whole page begins after it, the last ends before its end.
        assert_eq!(
            whole_huge_pages_within(page + 8, 2 * page),
            Some(2 * page..3 * page)
        );
        assert_eq!(
            whole_huge_pages_within(page + 8, 3 * page),
            Some(2 * page..4 * page)
        );
        assert_eq!(whole_huge_pages_within(page + 8, 2 * page - 16), None);
        assert_eq!(whole_huge_pages_within(usize::MAX - 8, 16), None);
    }
}
