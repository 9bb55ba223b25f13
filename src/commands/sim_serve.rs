//! `dashbatch sim serve`: the embedded simulator of the provider's Files and Batches API.

use std::path::PathBuf;

use super::terminal::print_error;
use crate::cli::FlavourArgument;
use crate::exit;
use crate::sim;

pub async fn sim_serve_command(
    addr: &str,
    state_dir: Option<PathBuf>,
    time_scale: Option<f64>,
    capacity: Option<f64>,
    flavour: FlavourArgument,
) -> u8 {
    let mut config = sim::SimConfig {
        state_dir,
        capacity,
        ..sim::SimConfig::default()
    };
    if let Some(scale) = time_scale {
        config.time_scale = scale;
    }
    config.flavour = match flavour {
        FlavourArgument::Dashscope => sim::SimFlavour::Dashscope,
        FlavourArgument::Openai => sim::SimFlavour::Openai,
    };
    match sim::serve(addr, config).await {
        Ok(()) => exit::SUCCESS,
        Err(error) => {
            print_error(&format!("the simulator stopped: {error}"));
            exit::REMOTE_ERROR
        }
    }
}
