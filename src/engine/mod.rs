//! The engine: one run from input table to joined output, resumable from its ledger.

mod budget;
mod download;
mod estimate_vs_actual;
mod events;
mod join_pass;
mod plan;
mod poll;
mod report;
mod retry;
mod run_directory;
mod runner;
mod submit;

pub use budget::{BUDGET_CAP_ERROR_CODE, BudgetCap, BudgetReport, CapSource, RunBudget};
pub use estimate_vs_actual::EstimateVersusActual;
pub use events::{EventSink, OutputMode};
pub use plan::{PlanOutcome, plan_shards, shard_limits};
pub use report::RunReport;
pub use run_directory::RunDirectory;
pub use runner::{
    RunFailure, RunOptions, RunOutcome, cancel_run, find_unfinished_run, resume_run, run_job,
    show_status,
};
