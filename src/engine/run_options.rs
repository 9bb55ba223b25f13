//! What a run is asked to do (provider, directory, output, prices, budget, mode) and what it
//! gives back (its report and exit code).

use std::path::PathBuf;

use super::OutputMode;
use super::report::RunReport;
use crate::provider::ProviderKind;

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub provider: ProviderKind,
    pub base_url: Option<String>,
    pub run_directory: Option<PathBuf>,
    pub output: Option<PathBuf>,
    pub mode: OutputMode,
    pub prices_file: Option<PathBuf>,
    /// Send the shards to DashScope's free `batch-test-model` instead of the job's model.
    pub rehearse: bool,
    /// `--max-cost`: the budget cap, winning over the job's `[batch] max_cost`.
    pub max_cost: Option<String>,
    /// `--tokenizer`: the Qwen vocabulary for the run's cost estimates.
    pub tokenizer: Option<PathBuf>,
    /// `--no-store`: no answer store for this run (nothing reused from it, nothing recorded).
    pub no_store: bool,
    /// `--refresh`: take no answer from the store; the run's answers replace the stored ones.
    pub refresh: bool,
    /// `--no-adopt`: send requests another running run has in flight instead of waiting for
    /// its answers.
    pub no_adopt: bool,
}

#[derive(Debug)]
pub struct RunOutcome {
    pub report: RunReport,
    pub exit_code: u8,
    pub run_directory: PathBuf,
}
