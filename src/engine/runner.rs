//! Orchestration of a run: plan → upload → create → poll → download → join → report, each step
//! recorded in the ledger so that `resume` (or `run` on an existing run directory) continues
//! where the last process stopped, and a finished run makes no changing call at all. The stages
//! are the methods of [`Run`](super::run_context::Run); this file chains them and gives a
//! failure its true exit code.

use std::path::{Path, PathBuf};

use super::run_context::Run;
use super::run_failure::{ProviderRefusal, RunFailure};
use super::run_options::{RunOptions, RunOutcome};
use super::run_record::{open_existing_ledger, read_run_record};
use super::{OutputMode, RunDirectory};
use crate::exit;
use crate::job::{Job, load_job};
use crate::ledger::{EffectKind, Ledger};

/// `dashbatch run JOB.toml`: a new run, or the continuation of the one in `--run-dir`.
pub async fn run_job(job_file: &Path, options: RunOptions) -> Result<RunOutcome, RunFailure> {
    let job = load_job(job_file).map_err(RunFailure::input)?;
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
    let job = load_job(&founding.job_file).map_err(RunFailure::input)?;
    execute(
        job,
        RunDirectory::new(run_directory.to_owned()),
        RunOptions {
            provider: founding.provider,
            base_url: founding.base_url,
            run_directory: Some(run_directory.to_owned()),
            output: Some(output_override.unwrap_or(founding.output_path)),
            mode,
            prices_file: founding.prices_file,
            rehearse: founding.rehearsal,
            max_cost: None,
            tokenizer: None,
        },
    )
    .await
}

/// The pipeline. Up to `plan` nothing is spent; after it, `settle_failure` keeps a failure's
/// exit code truthful.
async fn execute(
    job: Job,
    run_directory: RunDirectory,
    options: RunOptions,
) -> Result<RunOutcome, RunFailure> {
    let root = run_directory.root.clone();
    let job_file = job.job_file.clone();
    let stages = async {
        let mut run = Run::prepare(job, run_directory, options)?;
        run.plan()?;
        run.submit_and_wait().await?;
        run.join_and_report()
    };
    stages
        .await
        .map_err(|failure| settle_failure(failure, &root, &job_file))
}

fn settle_failure(mut failure: RunFailure, run_root: &Path, job_file: &Path) -> RunFailure {
    if let Some(interrupted) = crate::interrupt::received()
        && crate::interrupt::is_interruption(&failure.error)
    {
        return RunFailure::interrupted(interrupted);
    }
    if failure.error.downcast_ref::<ProviderRefusal>().is_some() {
        failure.exit_code = exit::REMOTE_ERROR;
        return failure;
    }
    if failure.exit_code == exit::INPUT_ERROR && batches_exist(run_root) {
        failure.exit_code = exit::REMOTE_ERROR;
        failure.error = anyhow::anyhow!(
            "{:#}\nBatches of this run were already created, so results may be billed: nothing will be submitted again. Fix what the message says, then finish the run with `dashbatch resume {root}` (or `dashbatch run {job} --run-dir {root} --output OTHER_PATH` to write the table elsewhere); the results already downloaded are kept in `{root}/results`.",
            failure.error,
            root = run_root.display(),
            job = job_file.display()
        );
    }
    failure
}

/// True when the run in `run_root` created (or may have created) at least one batch.
fn batches_exist(run_root: &Path) -> bool {
    if !Ledger::exists_in(run_root) {
        return false;
    }
    let Ok(ledger) = Ledger::open(run_root) else {
        // Cannot tell: assume the worst, never claim nothing was spent.
        return true;
    };
    let created = ledger
        .shards()
        .map(|shards| shards.iter().any(|shard| shard.batch_id.is_some()))
        .unwrap_or(true);
    created || ledger.count_effects(EffectKind::CreateBatch).unwrap_or(1) > 0
}
