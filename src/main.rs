//! The `dashbatch` binary: everything happens in [`dashbatch::run`].

fn main() -> std::process::ExitCode {
    dashbatch::run(std::env::args_os())
}
