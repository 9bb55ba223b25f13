//! How a command fails, and the one place a failure becomes an exit code.
//!
//! A call site says only what *kind* of failure it met ([`FailureKind`]): something local to
//! change, the provider or network, another process holding the run, or a signal. It cannot
//! choose an exit code. The code is chosen by [`RunFailure::settle`] from that kind and from what
//! the run had spent when it failed, read from its ledger: a local failure exits 2 ("nothing was
//! spent") only while no batch of the run exists, and 3 with the way to finish afterwards. So
//! "before spending" and "after spending" are a property of the run, not of the call.

use std::path::Path;

use crate::exit;
use crate::interrupt::Interrupted;
use crate::ledger::{EffectKind, Ledger};

/// What went wrong, as far as the exit code is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Something local must change: the job, the input, an option, the key, the disk.
    Local,
    /// The provider or the network failed beyond retries, or refused for good.
    Remote,
    /// Another process holds the run directory; this one changed nothing.
    Busy,
    /// Stopped by SIGINT or SIGTERM.
    Interrupted(Interrupted),
    /// The run's ledger was lost or damaged while its work is there: nothing is sent, and what
    /// the run spent cannot be told, so it counts as spent.
    Damaged,
}

/// A failure of a command, not yet an exit code.
#[derive(Debug)]
pub struct RunFailure {
    pub kind: FailureKind,
    pub error: anyhow::Error,
}

/// Whether the run may have spent money when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spending {
    /// No batch of the run exists (or there is no run yet).
    Nothing,
    /// A batch of the run was (or may have been) created.
    MayHaveSpent,
}

/// A failure with its exit code and the message to show.
#[derive(Debug)]
pub struct SettledFailure {
    /// The kind, an interruption when a signal caused the failure.
    pub kind: FailureKind,
    pub exit_code: u8,
    pub error: anyhow::Error,
}

impl RunFailure {
    /// Something local must change (job, input, option, key, disk).
    pub fn local(error: impl Into<anyhow::Error>) -> RunFailure {
        RunFailure {
            kind: FailureKind::Local,
            error: error.into(),
        }
    }

    /// The provider or the network failed.
    pub fn remote(error: impl Into<anyhow::Error>) -> RunFailure {
        RunFailure {
            kind: FailureKind::Remote,
            error: error.into(),
        }
    }

    /// Another process holds the run directory.
    pub fn busy(error: impl Into<anyhow::Error>) -> RunFailure {
        RunFailure {
            kind: FailureKind::Busy,
            error: error.into(),
        }
    }

    /// The run's ledger was lost or damaged (see `damaged_run`).
    pub fn damaged(error: impl Into<anyhow::Error>) -> RunFailure {
        RunFailure {
            kind: FailureKind::Damaged,
            error: error.into(),
        }
    }

    /// Stopped by a signal.
    pub fn interrupted(interrupted: Interrupted) -> RunFailure {
        RunFailure {
            kind: FailureKind::Interrupted(interrupted),
            error: interrupted.into(),
        }
    }

    /// The exit code and message of this failure of the run in `run_directory` (none when the
    /// command failed before it had one), whose job file is `job_file` when known. What the run
    /// had spent is read from its ledger here.
    pub fn settle(self, run_directory: Option<&Path>, job_file: Option<&Path>) -> SettledFailure {
        // Only a local failure's code depends on what was spent; a busy run is not this
        // process's to read (its holder may be making its ledger).
        let spending = match (self.kind, run_directory) {
            (FailureKind::Local, Some(directory)) => spending_of(directory),
            _ => Spending::Nothing,
        };
        self.settle_with(spending, run_directory, job_file)
    }

    /// [`Self::settle`] with what the run had spent already known.
    pub fn settle_with(
        self,
        spending: Spending,
        run_directory: Option<&Path>,
        job_file: Option<&Path>,
    ) -> SettledFailure {
        // A failure caused by a signal (an interrupted call) is the signal's.
        let kind = match (crate::interrupt::received(), self.kind) {
            (Some(interrupted), _) if crate::interrupt::is_interruption(&self.error) => {
                FailureKind::Interrupted(interrupted)
            }
            (_, kind) => kind,
        };
        let exit_code = exit_code_for(kind, spending);
        let error = match (kind, spending, run_directory) {
            (FailureKind::Local, Spending::MayHaveSpent, Some(root)) => {
                let rerun = match job_file {
                    Some(job) => format!(
                        " (or `dashbatch run {} --run-dir {} --output OTHER_PATH` to write the table elsewhere)",
                        job.display(),
                        root.display()
                    ),
                    None => format!(
                        " (or `dashbatch resume {} --output OTHER_PATH` to write the table elsewhere)",
                        root.display()
                    ),
                };
                anyhow::anyhow!(
                    "{:#}\nBatches of this run were already created, so results may be billed: nothing will be submitted again. Fix what the message says, then finish the run with `dashbatch resume {root}`{rerun}; the results already downloaded are kept in `{root}/results`.",
                    self.error,
                    root = root.display(),
                )
            }
            _ => self.error,
        };
        SettledFailure {
            kind,
            exit_code,
            error,
        }
    }
}

/// The exit code of a failure of `kind` when the run had spent `spending`: the only mapping.
pub fn exit_code_for(kind: FailureKind, spending: Spending) -> u8 {
    match (kind, spending) {
        (FailureKind::Interrupted(interrupted), _) => crate::interrupt::exit_code(interrupted),
        (FailureKind::Busy, _) | (FailureKind::Local, Spending::Nothing) => exit::INPUT_ERROR,
        (FailureKind::Local, Spending::MayHaveSpent)
        | (FailureKind::Remote, _)
        | (FailureKind::Damaged, _) => exit::REMOTE_ERROR,
    }
}

/// What the run in `run_root` had spent, from its ledger: any batch created (or whose creation
/// was attempted) counts. When the ledger cannot be read, assume the worst: never claim that
/// nothing was spent. Only reads: the process asking may be one refused the run's lock.
pub fn spending_of(run_root: &Path) -> Spending {
    // Results are downloaded only from batches made, and a run whose ledger was lost beside
    // its files may have made them: whatever is left of the ledger says.
    if super::damaged_run::has_downloaded_results(run_root)
        || super::damaged_run::damage_of_run(run_root).is_some()
    {
        return Spending::MayHaveSpent;
    }
    if !Ledger::exists_in(run_root) {
        return Spending::Nothing;
    }
    let Ok(ledger) = Ledger::open_read_only(run_root) else {
        return Spending::MayHaveSpent;
    };
    let created = ledger
        .shards()
        .map(|shards| shards.iter().any(|shard| shard.batch_id.is_some()))
        .unwrap_or(true);
    if created || ledger.count_effects(EffectKind::CreateBatch).unwrap_or(1) > 0 {
        Spending::MayHaveSpent
    } else {
        Spending::Nothing
    }
}

/// Whether a batch of the run in `run_root` may still be running at the provider, from its
/// ledger: one created whose last recorded status is not final, or one whose creation was begun
/// and never recorded. When the ledger cannot be read, assume one may: never tell a user that
/// nothing runs when something might.
pub fn may_have_live_batches(run_root: &Path) -> bool {
    if !Ledger::exists_in(run_root) {
        return false;
    }
    let Ok(ledger) = Ledger::open_read_only(run_root) else {
        return true;
    };
    let live = ledger.shards().map_or(true, |shards| {
        shards.iter().any(|shard| shard.has_live_batch())
    });
    live || ledger
        .open_intents(EffectKind::CreateBatch)
        .map_or(true, |intents| !intents.is_empty())
}

/// The provider refused a call for good (a 4xx other than 408, 409 and 429): repeating it, or
/// resuming, would be refused again, so the message says what to change instead.
#[derive(Debug, thiserror::Error)]
#[error(
    "the provider refused shard {shard_index}: {error}\nThis is not a passing failure: resuming would be refused the same way. Change what the message names (model, endpoint, parameters, key or account) in the job or environment and run again. {cleanup}"
)]
pub struct ProviderRefusal {
    pub shard_index: u64,
    pub error: crate::client::ClientError,
    pub cleanup: String,
}

impl std::fmt::Display for RunFailure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{:#}", self.error)
    }
}

impl std::fmt::Display for SettledFailure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{:#}", self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of failure against what the run had spent: exit 2 only when nothing was
    /// spent (or when another process holds the run and this one did nothing).
    #[test]
    fn the_exit_code_follows_the_kind_and_what_was_spent() {
        let interrupt = Interrupted { signal: 2 };
        let terminate = Interrupted { signal: 15 };
        let cases = [
            (FailureKind::Local, Spending::Nothing, exit::INPUT_ERROR),
            (
                FailureKind::Local,
                Spending::MayHaveSpent,
                exit::REMOTE_ERROR,
            ),
            (FailureKind::Remote, Spending::Nothing, exit::REMOTE_ERROR),
            (
                FailureKind::Remote,
                Spending::MayHaveSpent,
                exit::REMOTE_ERROR,
            ),
            (FailureKind::Busy, Spending::Nothing, exit::INPUT_ERROR),
            (FailureKind::Busy, Spending::MayHaveSpent, exit::INPUT_ERROR),
            // What a damaged run spent cannot be told from its ledger: never exit 2.
            (FailureKind::Damaged, Spending::Nothing, exit::REMOTE_ERROR),
            (
                FailureKind::Damaged,
                Spending::MayHaveSpent,
                exit::REMOTE_ERROR,
            ),
            (FailureKind::Interrupted(interrupt), Spending::Nothing, 130),
            (
                FailureKind::Interrupted(interrupt),
                Spending::MayHaveSpent,
                130,
            ),
            (
                FailureKind::Interrupted(terminate),
                Spending::MayHaveSpent,
                143,
            ),
        ];
        for (kind, spending, expected) in cases {
            assert_eq!(
                exit_code_for(kind, spending),
                expected,
                "{kind:?} with {spending:?}"
            );
        }
    }

    #[test]
    fn a_local_failure_after_spending_says_how_to_finish_without_paying_again() {
        let root = Path::new("/runs/nightly");
        let settled = RunFailure::local(anyhow::anyhow!("the output cannot be written"))
            .settle_with(
                Spending::MayHaveSpent,
                Some(root),
                Some(Path::new("job.toml")),
            );
        assert_eq!(settled.exit_code, exit::REMOTE_ERROR);
        let message = settled.to_string();
        for piece in [
            "the output cannot be written",
            "already created",
            "dashbatch resume /runs/nightly",
            "--output OTHER_PATH",
        ] {
            assert!(message.contains(piece), "{piece}: {message}");
        }
        let settled = RunFailure::local(anyhow::anyhow!("bad row")).settle_with(
            Spending::Nothing,
            Some(root),
            None,
        );
        assert_eq!(settled.exit_code, exit::INPUT_ERROR);
        assert_eq!(settled.to_string(), "bad row");
    }

    #[test]
    fn a_directory_without_a_ledger_spent_nothing() {
        let directory = tempfile::tempdir().unwrap();
        assert_eq!(spending_of(directory.path()), Spending::Nothing);
        assert!(!may_have_live_batches(directory.path()));
    }

    #[test]
    fn batches_may_run_while_one_is_unsettled_or_its_creation_unrecorded() {
        let directory = tempfile::tempdir().unwrap();
        let root = directory.path();
        let mut ledger = Ledger::open(root).unwrap();
        let shard = |index| {
            crate::ledger::ShardRecord::planned(index, 1, format!("s{index}"), "m".into(), 1)
        };
        ledger.insert_shards(&[shard(0), shard(1)]).unwrap();
        assert!(!may_have_live_batches(root), "planned only: nothing runs");
        ledger.set_batch_id(0, "batch-0").unwrap();
        ledger
            .update_batch_state(0, "in_progress", 1, 0, 0, None, None, None)
            .unwrap();
        assert!(may_have_live_batches(root));
        ledger
            .update_batch_state(0, "completed", 1, 1, 0, None, None, None)
            .unwrap();
        assert!(!may_have_live_batches(root), "every batch has settled");
        ledger
            .record_intent(Some(1), EffectKind::CreateBatch, "")
            .unwrap();
        assert!(
            may_have_live_batches(root),
            "a creation begun and never recorded may have made a batch"
        );
    }
}
