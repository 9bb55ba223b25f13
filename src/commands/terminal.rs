//! What the money-spending commands share at the terminal: the output mode, error printing,
//! signals, and how a run's end (finished, failed or interrupted) is said and turned into an
//! exit code.

use std::path::Path;

use crate::cli::OutputFlags;
use crate::engine::{self, OutputMode, RunFailure, RunOutcome};
use crate::exit;
use crate::interrupt::{self, Interrupted};

pub fn output_mode(flags: &OutputFlags) -> OutputMode {
    if flags.json {
        OutputMode::Json
    } else if flags.quiet {
        OutputMode::Quiet
    } else {
        OutputMode::Human
    }
}

pub fn print_error(error: &dyn std::fmt::Display) {
    crate::console::say(&format!("error: {error}"));
}

pub use crate::console::print_text;

/// Runs `work` until it ends or the first SIGINT/SIGTERM (whose handlers were installed before
/// the command started). Remote batches are never cancelled here: the ledger already holds
/// every step, so `resume` continues the run. A signal that arrives while `work` is in a
/// synchronous stage is seen by that stage's own check.
pub async fn interruptible<F>(work: F) -> Result<F::Output, Interrupted>
where
    F: std::future::Future,
{
    tokio::select! {
        output = work => match interrupt::received() {
            // The work ended, but a signal came first: never report success after a signal.
            Some(interrupted) => Err(interrupted),
            None => Ok(output),
        },
        interrupted = interrupt::wait_for_signal() => Err(interrupted),
    }
}

pub fn say_interrupted(interrupted: Interrupted, run_directory: Option<&Path>) {
    match run_directory {
        // A run stopped while planning, before anything was uploaded, leaves no directory.
        Some(directory) if !directory.exists() => crate::console::say(&format!(
            "dashbatch: {interrupted}; nothing was uploaded, and the run directory `{}` was removed; run the job again to start over",
            directory.display()
        )),
        Some(directory) if engine::may_have_live_batches(directory) => {
            crate::console::say(&format!(
                "dashbatch: {interrupted}; the run's state is saved and its batches keep running. Continue with `dashbatch resume {}` (or stop them with `dashbatch cancel {}`)",
                directory.display(),
                directory.display()
            ))
        }
        // Stopped while planning, or once every batch had settled (downloading, joining).
        Some(directory) => crate::console::say(&format!(
            "dashbatch: {interrupted}; the run's state is saved, and none of its batches is running. Continue with `dashbatch resume {}` to finish it",
            directory.display()
        )),
        None => crate::console::say(&format!("dashbatch: {interrupted}; nothing more was done")),
    }
}

/// The exit code of a command that spends nothing (`validate`, `estimate`) after it failed: a
/// stop by signal is 130 or 143, said as such; anything else is an input error.
pub fn local_command_failure(error: &anyhow::Error) -> u8 {
    if interrupt::is_interruption(error)
        && let Some(interrupted) = interrupt::received()
    {
        say_interrupted(interrupted, None);
        return interrupt::exit_code(interrupted);
    }
    print_error(&format!("{error:#}"));
    exit::INPUT_ERROR
}

/// The signal handlers for the commands that spend money, and for those whose local work takes
/// long (`validate`, `estimate`: their scratch files are removed when a signal stops them),
/// installed before they start.
pub fn install_signal_handlers() -> Result<(), u8> {
    interrupt::install_handlers().map_err(|error| {
        print_error(&format!("cannot install the signal handlers: {error}"));
        exit::INPUT_ERROR
    })
}

/// The exit code of `run` or `resume`, after saying how it ended. A failure is settled against
/// what the run in `run_directory` had spent. With `--json` the last line on stdout is always a
/// final event: `run_finished` (printed by the run), `run_failed` or `run_interrupted`.
pub fn finish_run(
    outcome: Result<Result<RunOutcome, RunFailure>, Interrupted>,
    mode: OutputMode,
    run_directory: Option<&Path>,
    job_file: Option<&Path>,
) -> u8 {
    let events = engine::EventSink::new(mode);
    let failure = match outcome {
        Ok(Ok(outcome)) => return outcome.exit_code,
        Ok(Err(failure)) => failure,
        Err(interrupted) => RunFailure::interrupted(interrupted),
    };
    let settled = failure.settle(run_directory, job_file);
    if let engine::FailureKind::Interrupted(interrupted) = settled.kind {
        say_interrupted(interrupted, run_directory);
        events.emit(
            engine::Event::RunInterrupted {
                exit_code: settled.exit_code,
                signal: interrupted.signal,
            },
            || None,
        );
    } else {
        print_error(&settled);
        events.emit(
            engine::Event::RunFailed {
                exit_code: settled.exit_code,
                error: settled.to_string(),
            },
            || None,
        );
    }
    settled.exit_code
}
