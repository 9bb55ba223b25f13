//! dashbatch: offline LLM inference at scale through DashScope's OpenAI-compatible Batch API (and
//! any other OpenAI-compatible Batch API). A table goes in; the same table comes back with the
//! model's answer, a status, tokens and cost on every row.
//!
//! Layout (see ARCHITECTURE.md for the whole map and the invariants):
//! - `job`, `table`, `render`, `shard`, `output_fields`, `row_result`, `cost`: the pure or
//!   local parts (job file, columnar I/O, request lines, limits, answers, money).
//! - `client`: the only code that talks HTTP to a provider.
//! - `ledger`: the only code that writes run state.
//! - `engine`: orchestration of a run, resumable from the ledger.
//! - `commands`: what each command does with its arguments, and its exit code.
//! - `sim`: the embedded simulator of the provider's Files and Batches API.

pub mod answer_store;
pub mod bounded_read;
pub mod canonical_json;
pub mod chat_line_shape;
pub mod chat_success_line;
pub mod cli;
pub mod client;
pub mod commands;
pub mod console;
pub mod cost;
mod declared_field_reading;
pub mod engine;
pub mod env;
pub mod estimate;
pub mod exit;
mod huge_pages;
pub mod images;
pub mod interrupt;
pub mod job;
mod json_cursor;
mod json_string;
pub mod kill_point;
pub mod ledger;
pub mod model_check;
pub mod model_facts;
pub mod output_fields;
mod prefetch;
pub mod pricing;
pub mod provider;
pub mod readable_number;
pub mod render;
pub mod request_key;
pub mod request_line;
pub mod row_result;
pub mod scratch_directory;
pub mod settings;
pub mod shard;
pub mod sim;
pub mod split_allocator;
pub mod store_location;
pub mod table;
pub mod template_budget;
pub mod tokens;
pub mod user_cache;
pub mod utf8_check;
pub mod validate;
pub mod wire;

use std::process::ExitCode;

use clap::Parser;

use cli::Cli;

/// Runs the command line `arguments` (program name first) and returns the exit code.
pub fn run<I, T>(arguments: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(arguments) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() {
                exit::INPUT_ERROR
            } else {
                exit::SUCCESS
            });
        }
    };
    // Run files hold prompts and answers: everything this process creates is private (0600/0700).
    #[cfg(unix)]
    // SAFETY: umask has no memory-safety preconditions.
    unsafe {
        libc::umask(0o077);
    }
    // Threads for blocking work (each file operation of a download, name lookups) end after a
    // second idle instead of ten: those of the last downloads otherwise live on through the
    // join, each keeping the memory its allocator holds for it.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(std::time::Duration::from_secs(1))
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            crate::console::say(&format!("error: cannot start the async runtime: {error}"));
            return ExitCode::from(exit::REMOTE_ERROR);
        }
    };
    ExitCode::from(runtime.block_on(commands::dispatch(cli)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_can_be_called_more_than_once() {
        for _ in 0..2 {
            let code = super::run(["dashbatch", "--version"]);
            assert_eq!(code, std::process::ExitCode::SUCCESS);
        }
    }
}
