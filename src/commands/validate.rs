//! `dashbatch validate JOB.toml`: checks the job and its input, and shows rendered requests,
//! without spending anything.

use std::path::Path;

use super::terminal::{install_signal_handlers, local_command_failure, print_text};
use crate::cli::ProviderArgument;
use crate::exit;
use crate::validate;

pub fn validate_command(
    job: &Path,
    provider: ProviderArgument,
    show: usize,
    prices: Option<&Path>,
    base_url: Option<&str>,
) -> u8 {
    if let Err(code) = install_signal_handlers() {
        return code;
    }
    match validate::validate_job(job, provider.into(), show, prices, base_url) {
        Ok(text) => {
            print_text(&text);
            exit::SUCCESS
        }
        Err(error) => local_command_failure(&error),
    }
}
