//! `dashbatch cancel RUN_DIR`: locks the run directory and asks the provider to cancel the
//! run's live batches; finished rows stay billed and are kept.

use std::path::Path;

use super::terminal::{
    install_signal_handlers, interruptible, output_mode, print_error, say_interrupted,
};
use crate::cli::OutputFlags;
use crate::engine::{self, FailureKind};
use crate::exit;

pub async fn cancel_command(run_dir: &Path, wait_for_lock: bool, output_flags: &OutputFlags) -> u8 {
    if let Err(code) = install_signal_handlers() {
        return code;
    }
    let work = async {
        let held_lock = engine::lock_existing(run_dir, "cancel", wait_for_lock).await?;
        let cancelled = engine::cancel_run(run_dir, output_mode(output_flags)).await;
        drop(held_lock);
        cancelled
    };
    let failure = match interruptible(work).await {
        Ok(Ok(count)) => {
            crate::console::say(&format!(
                "dashbatch: asked the provider to cancel {count} batch(es); finished rows stay billed and are kept. Collect them with `dashbatch resume {}`",
                run_dir.display()
            ));
            return exit::SUCCESS;
        }
        Ok(Err(failure)) => failure,
        Err(interrupted) => engine::RunFailure::interrupted(interrupted),
    };
    let settled = failure.settle(Some(run_dir), None);
    match settled.kind {
        FailureKind::Interrupted(interrupted) => say_interrupted(interrupted, Some(run_dir)),
        _ => print_error(&settled),
    }
    settled.exit_code
}
