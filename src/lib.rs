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
//! - `sim`: the embedded simulator of the provider's Files and Batches API.

pub mod cli;
pub mod client;
pub mod cost;
pub mod engine;
pub mod env;
pub mod estimate;
pub mod exit;
pub mod interrupt;
pub mod job;
pub mod kill_point;
pub mod ledger;
pub mod model_check;
pub mod model_facts;
pub mod output_fields;
pub mod pricing;
pub mod provider;
pub mod render;
pub mod row_result;
pub mod shard;
pub mod sim;
pub mod table;
pub mod template_budget;
pub mod tokens;
pub mod validate;
pub mod wire;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, FlavourArgument, OutputFlags, SimCommand};
use engine::{OutputMode, RunOptions};

fn output_mode(flags: &OutputFlags) -> OutputMode {
    if flags.json {
        OutputMode::Json
    } else if flags.quiet {
        OutputMode::Quiet
    } else {
        OutputMode::Human
    }
}

fn print_error(error: &dyn std::fmt::Display) {
    eprintln!("error: {error}");
}

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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            print_error(&format!("cannot start the async runtime: {error}"));
            return ExitCode::from(exit::REMOTE_ERROR);
        }
    };
    ExitCode::from(runtime.block_on(dispatch(cli)))
}

/// Runs `work` until it ends or the first SIGINT/SIGTERM (whose handlers were installed before
/// the command started). Remote batches are never cancelled here: the ledger already holds
/// every step, so `resume` continues the run. A signal that arrives while `work` is in a
/// synchronous stage is seen by that stage's own check.
async fn interruptible<F>(work: F) -> Result<F::Output, interrupt::Interrupted>
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

fn say_interrupted(interrupted: interrupt::Interrupted, run_directory: Option<&std::path::Path>) {
    match run_directory {
        Some(directory) => eprintln!(
            "dashbatch: {interrupted}; the run's state is saved and its batches keep running. Continue with `dashbatch resume {}` (or stop them with `dashbatch cancel {}`)",
            directory.display(),
            directory.display()
        ),
        None => eprintln!("dashbatch: {interrupted}; nothing more was done"),
    }
}

/// The signal handlers for the commands that spend money, installed before they start.
fn install_signal_handlers() -> Result<(), u8> {
    interrupt::install_handlers().map_err(|error| {
        print_error(&format!("cannot install the signal handlers: {error}"));
        exit::INPUT_ERROR
    })
}

async fn dispatch(cli: Cli) -> u8 {
    match cli.command {
        Command::Run {
            job,
            provider,
            base_url,
            run_dir,
            output,
            prices,
            rehearse,
            max_cost,
            tokenizer,
            lock,
            output_flags,
        } => {
            if let Err(code) = install_signal_handlers() {
                return code;
            }
            let mode = output_mode(&output_flags);
            let chosen_directory = std::sync::Mutex::new(run_dir.clone());
            let work = async {
                // Usage errors are found before a run directory is chosen or created.
                if let Some(url) = &base_url {
                    engine::check_base_url(url)?;
                }
                let chosen = match run_dir {
                    Some(directory) => {
                        let command = format!("run {}", job.display());
                        let created = !directory.exists();
                        let held = engine::open_and_lock(&directory, &command, lock.wait).await?;
                        engine::ChosenRunDirectory {
                            path: directory,
                            lock: held,
                            created,
                        }
                    }
                    None => {
                        let loaded = job::load_job(&job).map_err(engine::RunFailure::input)?;
                        engine::choose_and_lock_run_directory(&loaded, rehearse, lock.wait).await?
                    }
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
                };
                let outcome = engine::run_job(&job, options).await;
                // A run refused before it uploaded anything leaves no directory behind (still
                // under its lock, so no other process is working in it).
                if chosen.created
                    && matches!(&outcome, Err(failure) if failure.exit_code == exit::INPUT_ERROR)
                {
                    engine::discard_unspent_run_directory(&run_directory);
                }
                drop(chosen.lock);
                outcome
            };
            let outcome = Box::pin(interruptible(work)).await;
            let directory = chosen_directory.lock().expect("not poisoned").clone();
            finish_run(outcome, mode, directory.as_deref())
        }
        Command::Estimate {
            job,
            provider,
            prices,
            tokenizer,
            json,
        } => {
            let options = estimate::EstimateOptions {
                provider: provider.into(),
                prices_file: prices,
                tokenizer,
            };
            match estimate::estimate_job(&job, &options) {
                Ok(estimate) => {
                    let text = if json {
                        let mut json_text = serde_json::to_string_pretty(&estimate)
                            .expect("an estimate serialises");
                        json_text.push('\n');
                        json_text
                    } else {
                        estimate::render_estimate_text(&estimate)
                    };
                    // A closed pipe (`| head`) is not an error of the estimate.
                    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
                    exit::SUCCESS
                }
                Err(error) => {
                    print_error(&format!("{error:#}"));
                    exit::INPUT_ERROR
                }
            }
        }
        Command::Resume {
            run_dir,
            output,
            lock,
            output_flags,
        } => {
            if let Err(code) = install_signal_handlers() {
                return code;
            }
            let mode = output_mode(&output_flags);
            let work = async {
                let held_lock = engine::lock_existing(&run_dir, "resume", lock.wait).await?;
                let outcome = engine::resume_run(&run_dir, mode, output).await;
                drop(held_lock);
                outcome
            };
            finish_run(Box::pin(interruptible(work)).await, mode, Some(&run_dir))
        }
        Command::Status { run_dir, json } => match engine::show_status(&run_dir, json) {
            Ok(text) => {
                print!("{text}");
                if json {
                    println!();
                }
                exit::SUCCESS
            }
            Err(failure) => {
                print_error(&failure);
                failure.exit_code
            }
        },
        Command::Cancel {
            run_dir,
            lock,
            output_flags,
        } => {
            if let Err(code) = install_signal_handlers() {
                return code;
            }
            let work = async {
                let held_lock = engine::lock_existing(&run_dir, "cancel", lock.wait).await?;
                let cancelled = engine::cancel_run(&run_dir, output_mode(&output_flags)).await;
                drop(held_lock);
                cancelled
            };
            let outcome = match interruptible(work).await {
                Ok(outcome) => outcome,
                Err(interrupted) => {
                    say_interrupted(interrupted, Some(&run_dir));
                    return interrupt::exit_code(interrupted);
                }
            };
            match outcome {
                Ok(count) => {
                    eprintln!(
                        "dashbatch: asked the provider to cancel {count} batch(es); finished rows stay billed and are kept. Collect them with `dashbatch resume {}`",
                        run_dir.display()
                    );
                    exit::SUCCESS
                }
                Err(failure) => {
                    print_error(&failure);
                    failure.exit_code
                }
            }
        }
        Command::Validate {
            job,
            provider,
            show,
        } => match validate::validate_job(&job, provider.into(), show) {
            Ok(text) => {
                print!("{text}");
                exit::SUCCESS
            }
            Err(error) => {
                print_error(&format!("{error:#}"));
                exit::INPUT_ERROR
            }
        },
        Command::Sim { command } => match command {
            SimCommand::Serve {
                addr,
                state_dir,
                time_scale,
                flavour,
            } => {
                let mut config = sim::SimConfig {
                    state_dir,
                    ..sim::SimConfig::default()
                };
                if let Some(scale) = time_scale {
                    config.time_scale = scale;
                }
                config.flavour = match flavour {
                    FlavourArgument::Dashscope => sim::SimFlavour::Dashscope,
                    FlavourArgument::Openai => sim::SimFlavour::Openai,
                };
                match sim::serve(&addr, config).await {
                    Ok(()) => exit::SUCCESS,
                    Err(error) => {
                        print_error(&format!("the simulator stopped: {error}"));
                        exit::REMOTE_ERROR
                    }
                }
            }
        },
    }
}

/// The exit code of `run` or `resume`, after saying how it ended. With `--json` the last line on
/// stdout is always a final event: `run_finished` (printed by the run), `run_failed` or
/// `run_interrupted`.
fn finish_run(
    outcome: Result<Result<engine::RunOutcome, engine::RunFailure>, interrupt::Interrupted>,
    mode: OutputMode,
    run_directory: Option<&std::path::Path>,
) -> u8 {
    let events = engine::EventSink::new(mode);
    let interrupted = match outcome {
        Ok(Ok(outcome)) => return outcome.exit_code,
        Ok(Err(failure)) => match interrupt::received() {
            Some(interrupted) if interrupt::is_interruption(&failure.error) => interrupted,
            _ => {
                print_error(&failure);
                events.emit(
                    engine::EventKind::RunFailed,
                    serde_json::json!({"exit_code": failure.exit_code, "error": format!("{failure}")}),
                    || None,
                );
                return failure.exit_code;
            }
        },
        Err(interrupted) => interrupted,
    };
    say_interrupted(interrupted, run_directory);
    let code = interrupt::exit_code(interrupted);
    events.emit(
        engine::EventKind::RunInterrupted,
        serde_json::json!({"exit_code": code, "signal": interrupted.signal}),
        || None,
    );
    code
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
