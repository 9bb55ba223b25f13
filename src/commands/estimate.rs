//! `dashbatch estimate JOB.toml`: what a job would cost, as text or JSON, without spending.

use std::path::{Path, PathBuf};

use super::terminal::{install_signal_handlers, local_command_failure};
use crate::cli::ProviderArgument;
use crate::estimate;
use crate::exit;

pub fn estimate_command(
    job: &Path,
    provider: ProviderArgument,
    prices: Option<PathBuf>,
    tokenizer: Option<PathBuf>,
    base_url: Option<String>,
    json: bool,
) -> u8 {
    if let Err(code) = install_signal_handlers() {
        return code;
    }
    let options = estimate::EstimateOptions {
        provider: provider.into(),
        prices_file: prices,
        tokenizer,
        base_url,
    };
    match estimate::estimate_job(job, &options) {
        Ok(estimate) => {
            let text = if json {
                let mut json_text =
                    serde_json::to_string_pretty(&estimate).expect("an estimate serialises");
                json_text.push('\n');
                json_text
            } else {
                estimate::render_estimate_text(&estimate)
            };
            // A closed pipe (`| head`) is not an error of the estimate.
            crate::console::print_text(&text);
            exit::SUCCESS
        }
        Err(error) => local_command_failure(&error),
    }
}
