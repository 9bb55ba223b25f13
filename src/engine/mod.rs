//! The engine: one run from input table to joined output, resumable from its ledger.

mod download;
mod events;
mod join_pass;
mod plan;
mod poll;
mod report;
mod retry;
mod run_directory;
mod runner;
mod submit;

pub use events::{EventSink, OutputMode};
pub use plan::{PlanOutcome, plan_shards, shard_limits};
pub use report::RunReport;
pub use run_directory::RunDirectory;
pub use runner::{
    RunFailure, RunOptions, RunOutcome, cancel_run, find_unfinished_run, resume_run, run_job,
    show_status,
};
