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
pub mod job;
pub mod kill_point;
pub mod ledger;
pub mod output_fields;
pub mod pricing;
pub mod provider;
pub mod render;
pub mod row_result;
pub mod shard;
pub mod sim;
pub mod table;
pub mod tokens;
pub mod validate;
pub mod wire;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, FlavourArgument, OutputFlags, SimCommand};
use engine::{OutputMode, RunDirectory, RunOptions};

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

/// Runs `work` until it ends or the first Ctrl-C. Remote batches are never cancelled here: the
/// ledger already holds every step, so `resume` continues the run.
async fn interruptible<F>(work: F, run_directory: Option<&std::path::Path>) -> Option<F::Output>
where
    F: std::future::Future,
{
    tokio::select! {
        output = work => Some(output),
        _ = tokio::signal::ctrl_c() => {
            match run_directory {
                Some(directory) => eprintln!(
                    "dashbatch: interrupted; the run's state is saved and its batches keep running. Continue with `dashbatch resume {}` (or stop them with `dashbatch cancel {}`)",
                    directory.display(),
                    directory.display()
                ),
                None => eprintln!("dashbatch: interrupted"),
            }
            None
        }
    }
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
            output_flags,
        } => {
            let run_directory = match run_dir {
                Some(directory) => directory,
                None => match job::load_job(&job) {
                    Ok(loaded) => match engine::find_unfinished_run(&loaded, rehearse) {
                        Some(unfinished) => {
                            eprintln!(
                                "dashbatch: continuing the unfinished run `{}` of this job (pass `--run-dir` to choose another)",
                                unfinished.display()
                            );
                            unfinished
                        }
                        None if rehearse => {
                            RunDirectory::default_for(&format!("{}-rehearsal", loaded.name)).root
                        }
                        None => RunDirectory::default_for(&loaded.name).root,
                    },
                    Err(error) => {
                        print_error(&error);
                        return exit::INPUT_ERROR;
                    }
                },
            };
            let options = RunOptions {
                provider: provider.into(),
                base_url,
                run_directory: Some(run_directory.clone()),
                output,
                mode: output_mode(&output_flags),
                prices_file: prices,
                rehearse,
                max_cost,
                tokenizer,
            };
            finish_run(interruptible(engine::run_job(&job, options), Some(&run_directory)).await)
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
            output_flags,
        } => finish_run(
            interruptible(
                engine::resume_run(&run_dir, output_mode(&output_flags)),
                Some(&run_dir),
            )
            .await,
        ),
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
            output_flags,
        } => match engine::cancel_run(&run_dir, output_mode(&output_flags)).await {
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
        },
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

fn finish_run(outcome: Option<Result<engine::RunOutcome, engine::RunFailure>>) -> u8 {
    match outcome {
        None => exit::INTERRUPTED,
        Some(Ok(outcome)) => outcome.exit_code,
        Some(Err(failure)) => {
            print_error(&failure);
            failure.exit_code
        }
    }
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
