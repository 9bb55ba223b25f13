//! The `dashbatch` binary: everything happens in [`dashbatch::run`].

/// Small blocks from mimalloc, large ones from glibc: see [`dashbatch::split_allocator`].
#[global_allocator]
static ALLOCATOR: dashbatch::split_allocator::SplitAllocator =
    dashbatch::split_allocator::SplitAllocator;

/// mimalloc's `arena_eager_commit` option (its place in `mi_option_e` of mimalloc 3's
/// `mimalloc.h`, which libmimalloc-sys builds; the crate's own constants follow mimalloc 2).
#[cfg(target_os = "linux")]
const MIMALLOC_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Arenas committed on demand, so memory a stage frees is given back to the system instead of
/// staying resident (planning's peak RSS: about 150 MiB eagerly, 120 MiB on demand, at the same
/// speed). mimalloc reads the option when it reserves its first arena, at the process's first
/// allocation, before `main`: so it is set from the ELF constructors, which run earlier.
#[cfg(target_os = "linux")]
extern "C" fn commit_allocator_arenas_on_demand() {
    // SAFETY: sets one of mimalloc's options (an integer); no Rust memory is involved.
    unsafe { libmimalloc_sys::mi_option_set(MIMALLOC_ARENA_EAGER_COMMIT, 0) };
    keep_large_blocks_in_glibc_arenas();
}

/// glibc's allocator, which makes the large blocks, keeps blocks up to 32 MiB in its arenas
/// and what is freed at an arena's top up to 32 MiB, instead of mapping each block of more than
/// its adaptive threshold afresh and trimming arenas as they shrink: each of those costs page
/// faults when the memory is used again (the 10M-row join spent 1.3 s more in the kernel).
/// The arenas stay at the peak they reached, which is what a stage needs again; and there are
/// two of them, not one for each thread that makes a large block (the runtime's threads
/// too), each keeping its own: a 1M-row run peaked at 164.5 MiB that way, 124.6 MiB with two.
/// Large blocks are few (thousands a second), so sharing an arena's lock costs nothing seen.
/// These settings also apply to the C libraries that call glibc's `malloc` themselves (SQLite,
/// zstd, liblzma, bzip2), whose blocks are few and small next to the join's. A setting glibc
/// refuses (a 32-bit build, where 32 MiB is past its largest threshold) is left at its default,
/// which only costs memory back and forth.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_large_blocks_in_glibc_arenas() {
    const KEPT_BYTES: libc::c_int = 32 << 20;
    const ARENAS: libc::c_int = 2;
    // SAFETY: sets three of glibc's allocator parameters (integers), before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, KEPT_BYTES);
        libc::mallopt(libc::M_TRIM_THRESHOLD, KEPT_BYTES);
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

#[cfg(all(target_os = "linux", not(target_env = "gnu")))]
fn keep_large_blocks_in_glibc_arenas() {}

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static COMMIT_ALLOCATOR_ARENAS_ON_DEMAND: extern "C" fn() = commit_allocator_arenas_on_demand;

fn main() -> std::process::ExitCode {
    dashbatch::run(std::env::args_os())
}
