//! `dashbatch resume RUN_DIR`: locks the run directory and continues the run from its ledger.

use std::path::{Path, PathBuf};

use super::terminal::{finish_run, install_signal_handlers, interruptible, output_mode};
use crate::cli::OutputFlags;
use crate::engine;

pub async fn resume_command(
    run_dir: &Path,
    output: Option<PathBuf>,
    wait_for_lock: bool,
    output_flags: &OutputFlags,
) -> u8 {
    if let Err(code) = install_signal_handlers() {
        return code;
    }
    let mode = output_mode(output_flags);
    let work = async {
        let held_lock = engine::lock_existing(run_dir, "resume", wait_for_lock).await?;
        let outcome = engine::resume_run(run_dir, mode, output).await;
        drop(held_lock);
        outcome
    };
    finish_run(
        Box::pin(interruptible(work)).await,
        mode,
        Some(run_dir),
        None,
    )
}
