//! The engine: one run from input table to joined output, resumable from its ledger.

mod budget;
mod cancel;
mod download;
mod estimate_vs_actual;
mod events;
mod join_pass;
mod plan;
mod poll;
mod rehearsal;
mod remote_cleanup;
mod report;
mod retry;
mod run_directory;
mod runner;
mod status;
mod submit;

pub use budget::{BUDGET_CAP_ERROR_CODE, BudgetCap, BudgetReport, CapSource, RunBudget};
pub use cancel::cancel_run;
pub use estimate_vs_actual::EstimateVersusActual;
pub use events::{EventSink, OutputMode};
pub use plan::{PlanOutcome, plan_shards, shard_limits};
pub use report::RunReport;
pub use run_directory::RunDirectory;
pub use runner::{RunFailure, RunOptions, RunOutcome, find_unfinished_run, resume_run, run_job};
pub use status::show_status;
