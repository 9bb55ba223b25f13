//! A hint to the processor to start loading a cache line that will be read soon, so that the
//! read does not wait on memory. It reads nothing and changes no result; where the processor
//! has no such hint, it does nothing.

/// Starts loading the cache line holding `address` into the closest cache.
#[inline]
pub fn prefetch_address<T>(address: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch loads nothing the program reads and never faults, whatever the
        // address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(address.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}
