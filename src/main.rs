//! The `dashbatch` binary: everything happens in [`dashbatch::run`].

/// mimalloc: planning renders rows on one thread and frees them on another, which glibc's
/// allocator serialises on its arena locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    dashbatch::run(std::env::args_os())
}
