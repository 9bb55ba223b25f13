//! `dashbatch run JOB.toml`: chooses and locks the run directory, runs the job, and removes a
//! directory it created for a run that was refused before anything was spent.

use std::sync::Mutex;

use super::terminal::{finish_run, install_signal_handlers, interruptible, output_mode};
use crate::cli::RunArguments;
use crate::engine::{self, RunFailure, RunOptions, Spending};
use crate::job;

pub async fn run_command(arguments: RunArguments) -> u8 {
    if let Err(code) = install_signal_handlers() {
        return code;
    }
    let RunArguments {
        job,
        provider,
        base_url,
        run_dir,
        output,
        prices,
        rehearse,
        max_cost,
        tokenizer,
        no_store,
        refresh,
        no_adopt,
        lock,
        output_flags,
    } = arguments;
    let wait_for_lock = lock.wait;
    let mode = output_mode(&output_flags);
    let chosen_directory = Mutex::new(run_dir.clone());
    let work = async {
        // Usage errors are found before a run directory is chosen or created.
        if let Some(url) = &base_url {
            engine::check_base_url(url)?;
        }
        if let Some(amount) = &max_cost {
            job::check_positive_amount(amount)
                .map_err(|problem| RunFailure::local(anyhow::anyhow!("`--max-cost`: {problem}")))?;
        }
        // The job file is read once, before any directory is made for it.
        let loaded = job::load_job(&job).map_err(RunFailure::local)?;
        let chosen = match run_dir {
            Some(directory) => {
                let command = format!("run {}", job.display());
                let created = !directory.exists();
                let held = engine::open_and_lock(&directory, &command, wait_for_lock).await?;
                engine::ChosenRunDirectory {
                    path: directory,
                    lock: held,
                    created,
                }
            }
            None => engine::choose_and_lock_run_directory(&loaded, rehearse, wait_for_lock).await?,
        };
        let run_directory = chosen.path.clone();
        *chosen_directory.lock().expect("not poisoned") = Some(run_directory.clone());
        let options = RunOptions {
            provider: provider.into(),
            base_url,
            run_directory: Some(run_directory.clone()),
            output,
            mode,
            prices_file: prices,
            rehearse,
            max_cost,
            tokenizer,
            no_store,
            refresh,
            no_adopt,
        };
        let outcome = engine::run_job(loaded, options).await;
        // A run refused before it spent anything leaves no directory behind (still under its
        // lock, so no other process is working in it).
        if chosen.created
            && matches!(&outcome, Err(failure) if failure.kind == engine::FailureKind::Local)
            && engine::spending_of(&run_directory) == Spending::Nothing
        {
            engine::discard_unspent_run_directory(&run_directory);
        }
        drop(chosen.lock);
        outcome
    };
    let outcome = Box::pin(interruptible(work)).await;
    let directory = chosen_directory.lock().expect("not poisoned").clone();
    finish_run(outcome, mode, directory.as_deref(), Some(&job))
}
