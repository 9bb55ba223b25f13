//! Orchestration of a run: plan → upload → create → poll → download → join → report, each step
//! recorded in the ledger so that `resume` (or `run` on an existing run directory) continues
//! where the last process stopped, and a finished run makes no changing call at all. The stages
//! are the methods of [`Run`](super::run_context::Run); this file chains them.

use std::path::{Path, PathBuf};

use super::run_context::Run;
use super::run_failure::RunFailure;
use super::run_options::{RunOptions, RunOutcome};
use super::run_record::{open_existing_ledger, read_run_record};
use super::{OutputMode, RunDirectory};
use crate::job::{Job, load_job};

/// `dashbatch run JOB.toml` of the loaded `job`: a new run, or the continuation of the one in
/// `--run-dir`.
pub async fn run_job(job: Job, options: RunOptions) -> Result<RunOutcome, RunFailure> {
    let run_directory = match &options.run_directory {
        Some(path) => RunDirectory::new(path.clone()),
        None => RunDirectory::default_for(&job.name),
    };
    execute(job, run_directory, options).await
}

/// `dashbatch resume RUN_DIR`: continues a run from its ledger alone (`output_override` writes
/// the table elsewhere than the run first said).
pub async fn resume_run(
    run_directory: &Path,
    mode: OutputMode,
    output_override: Option<PathBuf>,
) -> Result<RunOutcome, RunFailure> {
    let ledger = open_existing_ledger(run_directory)?;
    let record = read_run_record(&ledger)?;
    let founding = record.founded(run_directory)?.clone();
    drop(ledger);
    if !founding.job_file.exists() {
        // A project moved or renamed: the run goes on from the job file where it is now.
        let base_url = founding
            .base_url
            .as_ref()
            .map(|url| format!(" --base-url {url}"))
            .unwrap_or_default();
        return Err(RunFailure::local(anyhow::anyhow!(
            "the job file this run was founded with, `{}`, is not there any more (moved, renamed or deleted). If it was moved, continue the run with `dashbatch run NEW_PATH_OF_THE_JOB_FILE --run-dir {} --provider {}{base_url}{}`: a job file of the same content (SHA-256 {}) continues this run and pays for nothing twice",
            founding.job_file.display(),
            run_directory.display(),
            founding.provider,
            if founding.rehearsal {
                " --rehearse"
            } else {
                ""
            },
            founding.job_sha256
        )));
    }
    let job = load_job(&founding.job_file).map_err(RunFailure::local)?;
    execute(
        job,
        RunDirectory::new(run_directory.to_owned()),
        RunOptions {
            provider: founding.provider,
            base_url: founding.base_url,
            run_directory: Some(run_directory.to_owned()),
            output: Some(output_override.unwrap_or(founding.output_path)),
            mode,
            // The ledger's recorded prices apply (see `connection::load_prices`).
            prices_file: None,
            rehearse: founding.rehearsal,
            max_cost: None,
            tokenizer: None,
            // The store the run was founded with applies (see `store_location::choose_store`).
            no_store: false,
            refresh: founding.refresh,
            no_adopt: false,
        },
    )
    .await
}

/// The pipeline. Up to `plan` nothing is spent; a failure's exit code is chosen from what the
/// run had spent when it is settled (`RunFailure::settle`), not here.
async fn execute(
    job: Job,
    run_directory: RunDirectory,
    options: RunOptions,
) -> Result<RunOutcome, RunFailure> {
    let mut run = Run::prepare(job, run_directory, options)?;
    run.plan()?;
    run.submit_and_wait().await?;
    run.join_and_report().await
}
