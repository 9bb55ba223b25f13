//! Memory read at random over many megabytes (a Bloom filter, say) asked to be backed by huge
//! pages (2 MiB) where the system allows them: each random read then needs no page-table walk
//! of its own, which on a virtual machine costs as much as the read. Only a hint to the
//! kernel; where it is refused or unknown, the memory is the same, on ordinary pages.

use std::ops::Range;

/// Huge pages are 2 MiB on x86-64 and most AArch64 systems.
const HUGE_PAGE_BYTES: usize = 2 << 20;

/// `len` zeroed words, asked to be backed by huge pages. Memory fresh from the system is zero
/// and untouched, so the hint comes before the first write and pages are only taken as they
/// are written; memory used before is backed by huge pages later, when the kernel gets to it.
pub fn zeroed_words(len: usize) -> Vec<u64> {
    let mut words = vec![0_u64; len];
    if let Some(pages) = whole_huge_pages_within(words.as_mut_ptr() as usize, len * 8) {
        advise_huge_pages(pages);
    }
    words
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
            let words = zeroed_words(len);
            assert_eq!(words.len(), len);
            assert!(words.iter().all(|word| *word == 0));
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
