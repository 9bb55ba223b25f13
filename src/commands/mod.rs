//! The commands, one file each: what `dashbatch run`, `resume`, `status`, `cancel`,
//! `validate`, `estimate`, `prices`, `tokenizer` and `sim serve` do with their parsed arguments, and the exit code
//! each returns. Failures become exit codes in one place, `RunFailure::settle`.

mod cancel;
mod estimate;
mod prices;
mod resume;
mod run;
mod sim_serve;
mod status;
mod store;
mod terminal;
mod tokenizer;
mod validate;

use crate::cli::{Cli, Command, SimCommand, StoreCommand, TokenizerCommand};

/// Runs the parsed command line and returns its exit code.
pub async fn dispatch(cli: Cli) -> u8 {
    match cli.command {
        Command::Run(arguments) => run::run_command(arguments).await,
        Command::Estimate {
            job,
            provider,
            prices,
            tokenizer,
            base_url,
            json,
        } => estimate::estimate_command(&job, provider, prices, tokenizer, base_url, json),
        Command::Resume {
            run_dir,
            output,
            lock,
            output_flags,
        } => resume::resume_command(&run_dir, output, lock.wait, &output_flags).await,
        Command::Status { run_dir, json } => status::status_command(&run_dir, json),
        Command::Cancel {
            run_dir,
            lock,
            output_flags,
        } => cancel::cancel_command(&run_dir, lock.wait, &output_flags).await,
        Command::Prices {
            model,
            provider,
            prices,
            json,
        } => prices::prices_command(model.as_deref(), provider, prices.as_deref(), json),
        Command::Tokenizer { command } => match command {
            TokenizerCommand::Install {
                from,
                python,
                no_download,
            } => tokenizer::install_command(from, python, !no_download),
            TokenizerCommand::List => tokenizer::list_command(),
        },
        Command::Validate {
            job,
            provider,
            show,
            prices,
            base_url,
        } => {
            validate::validate_command(&job, provider, show, prices.as_deref(), base_url.as_deref())
        }
        Command::Store { command } => match command {
            StoreCommand::Stats { store, json } => store::stats_command(store, json),
            StoreCommand::Prune {
                store,
                older_than,
                unused_for,
                job,
            } => store::prune_command(store, older_than, unused_for, job),
            StoreCommand::Export { store, job, output } => {
                store::export_command(store, job, output)
            }
        },
        Command::Sim { command } => match command {
            SimCommand::Serve {
                addr,
                state_dir,
                time_scale,
                capacity,
                flavour,
            } => {
                sim_serve::sim_serve_command(&addr, state_dir, time_scale, capacity, flavour).await
            }
        },
    }
}
