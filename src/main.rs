//! The `dashbatch` binary: everything happens in [`dashbatch::run`].

/// mimalloc: planning renders rows on one thread and frees them on another, which glibc's
/// allocator serialises on its arena locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
}

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static COMMIT_ALLOCATOR_ARENAS_ON_DEMAND: extern "C" fn() = commit_allocator_arenas_on_demand;

fn main() -> std::process::ExitCode {
    dashbatch::run(std::env::args_os())
}
