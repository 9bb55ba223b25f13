//! The engine: one run from input table to joined output, resumable from its ledger.

mod adoption;
mod announced_calls;
mod answer_judge;
mod answer_recording;
mod answer_reuse;
mod batch_looks;
mod batch_lookup;
mod bloom_filter;
mod budget;
mod cancel;
mod connection;
mod copied_run_holder;
mod custom_id_claims;
mod damaged_run;
mod download;
mod estimate_vs_actual;
mod estimates_ahead;
mod events;
mod extra_shards;
mod held_request_keys;
mod input_check;
mod join_pass;
mod lost_results_recovery;
mod ordered_rendering;
mod output_target;
mod plan;
mod poll;
mod rehearsal;
mod remote_cleanup;
mod report;
mod request_key_claims;
mod result_digest;
mod retry;
mod run_context;
mod run_directory;
mod run_failure;
mod run_identity;
mod run_lock;
mod run_options;
mod run_record;
mod run_selection;
mod runner;
mod shard_buffers;
mod shard_file;
mod shard_request_keys;
mod shard_results;
mod sorted_key_runs;
mod status;
mod submission;
mod submit;
mod text_blocks;
mod totals;
mod unrecorded_batches;

pub use answer_reuse::{AnswerReuse, RowDecision, previewed_reuse, withdraw_stale_announcements};
pub use budget::{BUDGET_CAP_ERROR_CODE, BudgetCap, BudgetReport, RunBudget, max_cost_setting};
pub use cancel::cancel_run;
pub use connection::check_base_url;
pub use estimate_vs_actual::EstimateVersusActual;
pub use events::{Event, EventKind, EventSink, OutputMode};
pub use output_target::{
    OutputTarget, check_output_target, choose_output_target, output_path_setting,
};
pub use plan::{PlanOutcome, plan_scratch_shards, plan_shards};
pub use report::RunReport;
pub use run_directory::RunDirectory;
pub use run_failure::{
    FailureKind, ProviderRefusal, RunFailure, SettledFailure, Spending, exit_code_for,
    may_have_live_batches, spending_of,
};
pub use run_lock::{HeldLock, RUN_LOCK_FILE_NAME};
pub use run_options::{RunOptions, RunOutcome};
pub use run_selection::{
    ChosenRunDirectory, ExistingRun, choose_and_lock_run_directory, discard_unspent_run_directory,
    find_existing_run, lock_existing, open_and_lock,
};
pub use runner::{resume_run, run_job};
pub use shard_file::ShardDurability;
pub use status::show_status;
