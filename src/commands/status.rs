//! `dashbatch status RUN_DIR`: what a run has done, read from its ledger without a lock.

use std::path::Path;

use super::terminal::print_error;
use crate::engine;
use crate::exit;

pub fn status_command(run_dir: &Path, json: bool) -> u8 {
    match engine::show_status(run_dir, json) {
        Ok(text) => {
            crate::console::print_text(&text);
            if json {
                crate::console::print_text("\n");
            }
            exit::SUCCESS
        }
        Err(failure) => {
            let settled = failure.settle(Some(run_dir), None);
            print_error(&settled);
            settled.exit_code
        }
    }
}
