//! What a run tells people and machines: progress bars on stderr (hidden off a terminal or with
//! `--quiet`), short status lines on stderr, or NDJSON events on stdout with `--json`.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::report::RunReport;
use crate::wire::{BatchStatus, RequestCounts};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Progress bars and status lines on stderr.
    Human,
    /// Nothing but errors.
    Quiet,
    /// NDJSON events on stdout; nothing else on stdout.
    Json,
}

/// Every kind of `--json` event, in the order a run can emit them. The NDJSON `type` field is
/// [`EventKind::as_str`]; nothing else names an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The run began (or resumed): job, run directory, provider.
    RunStarted,
    /// The input was planned: rows to send, rows skipped, rows answered from the answer store
    /// or by an earlier row with the same request, shards.
    Planned,
    /// A shard file was uploaded.
    FileUploaded,
    /// An upload whose answer was lost was found at the provider and adopted.
    FileAdopted,
    /// A batch was created for a shard.
    BatchCreated,
    /// A create whose answer was lost was found at the provider and adopted.
    BatchAdopted,
    /// What the provider holds for the run does not match its ledger in a way that costs
    /// money but stops nothing (a shard created twice), or could not all be checked.
    ProviderWarning,
    /// A batch's status and request counts changed.
    BatchStatus,
    /// A shard's result files are on disk.
    ResultsDownloaded,
    /// A shard's result file can no longer be fetched.
    ResultsUnavailable,
    /// Answers of a shard whose output file can no longer be fetched were taken from the
    /// answer store, which kept them when they were first downloaded.
    ResultsRecovered,
    /// A shard's `ok` answers were recorded in the answer store.
    AnswersStored,
    /// The answer store could not be used; the run goes on without it.
    StoreWarning,
    /// The run waits for answers to requests other running runs have in flight.
    AdoptionWaiting,
    /// Requests another run had in flight and ended without answering are sent by this run.
    AdoptionSent,
    /// Transiently failed requests were put into retry shards.
    RetryPlanned,
    /// The run's files at the provider were deleted.
    RemoteFilesDeleted,
    RemoteCleanupFailed,
    /// A shard was held back by the budget cap.
    BudgetCapReached,
    /// The run ended at its budget cap with rows not submitted.
    BudgetStopped,
    /// `dashbatch cancel` asked the provider to cancel a batch.
    BatchCancelRequested,
    /// The run ended; the event carries the report.
    RunFinished,
    /// The command failed; the event carries the exit code and the error.
    RunFailed,
    /// A signal stopped the command; the event carries the exit code and signal.
    RunInterrupted,
}

impl EventKind {
    pub const ALL: [EventKind; 24] = [
        EventKind::RunStarted,
        EventKind::Planned,
        EventKind::FileUploaded,
        EventKind::FileAdopted,
        EventKind::BatchCreated,
        EventKind::BatchAdopted,
        EventKind::ProviderWarning,
        EventKind::BatchStatus,
        EventKind::ResultsDownloaded,
        EventKind::ResultsUnavailable,
        EventKind::ResultsRecovered,
        EventKind::AnswersStored,
        EventKind::StoreWarning,
        EventKind::AdoptionWaiting,
        EventKind::AdoptionSent,
        EventKind::RetryPlanned,
        EventKind::RemoteFilesDeleted,
        EventKind::RemoteCleanupFailed,
        EventKind::BudgetCapReached,
        EventKind::BudgetStopped,
        EventKind::BatchCancelRequested,
        EventKind::RunFinished,
        EventKind::RunFailed,
        EventKind::RunInterrupted,
    ];

    /// The `type` of the NDJSON line.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RunStarted => "run_started",
            EventKind::Planned => "planned",
            EventKind::FileUploaded => "file_uploaded",
            EventKind::FileAdopted => "file_adopted",
            EventKind::BatchCreated => "batch_created",
            EventKind::BatchAdopted => "batch_adopted",
            EventKind::ProviderWarning => "provider_warning",
            EventKind::BatchStatus => "batch_status",
            EventKind::ResultsDownloaded => "results_downloaded",
            EventKind::ResultsUnavailable => "results_unavailable",
            EventKind::ResultsRecovered => "results_recovered",
            EventKind::AnswersStored => "answers_stored",
            EventKind::StoreWarning => "store_warning",
            EventKind::AdoptionWaiting => "adoption_waiting",
            EventKind::AdoptionSent => "adoption_sent",
            EventKind::RetryPlanned => "retry_planned",
            EventKind::RemoteFilesDeleted => "remote_files_deleted",
            EventKind::RemoteCleanupFailed => "remote_cleanup_failed",
            EventKind::BudgetCapReached => "budget_cap_reached",
            EventKind::BudgetStopped => "budget_stopped",
            EventKind::BatchCancelRequested => "batch_cancel_requested",
            EventKind::RunFinished => "run_finished",
            EventKind::RunFailed => "run_failed",
            EventKind::RunInterrupted => "run_interrupted",
        }
    }
}

/// One `--json` event with its fields, typed: the NDJSON line is this, serialised with its
/// `type` first. Field names are part of the documented output (README, "Machine output").
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event<'a> {
    RunStarted {
        job: &'a str,
        run_directory: String,
        provider: String,
        resumed: bool,
    },
    Planned {
        rows: u64,
        skipped_rows: u64,
        rows_from_store: u64,
        rows_deduplicated: u64,
        rows_adopted: u64,
        shards: usize,
    },
    FileUploaded {
        shard: u64,
        file_id: &'a str,
        bytes: u64,
    },
    FileAdopted {
        shard: u64,
        file_id: &'a str,
    },
    BatchCreated {
        shard: u64,
        batch_id: &'a str,
        input_file_id: &'a str,
    },
    BatchAdopted {
        shard: u64,
        batch_id: &'a str,
    },
    BatchStatus {
        shard: u64,
        batch_id: &'a str,
        status: &'a str,
        request_counts: &'a RequestCounts,
    },
    ResultsDownloaded {
        shard: u64,
        lines: u64,
    },
    ResultsUnavailable {
        shard: u64,
        file_id: &'a str,
        reason: &'a str,
    },
    ResultsRecovered {
        shard: u64,
        file_id: &'a str,
        answers: u64,
        rows: u64,
    },
    AnswersStored {
        shard: u64,
        answers: u64,
    },
    StoreWarning {
        message: String,
    },
    ProviderWarning {
        message: String,
    },
    AdoptionWaiting {
        requests: u64,
        runs: Vec<String>,
    },
    AdoptionSent {
        requests: u64,
        shards: usize,
    },
    RetryPlanned {
        shards: usize,
    },
    RemoteFilesDeleted {
        files: u64,
    },
    RemoteCleanupFailed {
        message: String,
    },
    BudgetCapReached {
        shard: u64,
        rows: u64,
        /// Decimal text; absent when unknown.
        shard_upper_bound: Option<String>,
        committed: Option<String>,
        max_cost: String,
    },
    BudgetStopped {
        shards_not_submitted: &'a [u64],
        rows_not_submitted: u64,
    },
    BatchCancelRequested {
        shard: u64,
        batch_id: &'a str,
        status: &'a str,
    },
    /// The whole report, its fields beside `type`.
    RunFinished(&'a RunReport),
    RunFailed {
        exit_code: u8,
        error: String,
    },
    RunInterrupted {
        exit_code: u8,
        signal: i32,
    },
}

impl Event<'_> {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::RunStarted { .. } => EventKind::RunStarted,
            Event::Planned { .. } => EventKind::Planned,
            Event::FileUploaded { .. } => EventKind::FileUploaded,
            Event::FileAdopted { .. } => EventKind::FileAdopted,
            Event::BatchCreated { .. } => EventKind::BatchCreated,
            Event::BatchAdopted { .. } => EventKind::BatchAdopted,
            Event::BatchStatus { .. } => EventKind::BatchStatus,
            Event::ResultsDownloaded { .. } => EventKind::ResultsDownloaded,
            Event::ResultsUnavailable { .. } => EventKind::ResultsUnavailable,
            Event::ResultsRecovered { .. } => EventKind::ResultsRecovered,
            Event::AnswersStored { .. } => EventKind::AnswersStored,
            Event::StoreWarning { .. } => EventKind::StoreWarning,
            Event::ProviderWarning { .. } => EventKind::ProviderWarning,
            Event::AdoptionWaiting { .. } => EventKind::AdoptionWaiting,
            Event::AdoptionSent { .. } => EventKind::AdoptionSent,
            Event::RetryPlanned { .. } => EventKind::RetryPlanned,
            Event::RemoteFilesDeleted { .. } => EventKind::RemoteFilesDeleted,
            Event::RemoteCleanupFailed { .. } => EventKind::RemoteCleanupFailed,
            Event::BudgetCapReached { .. } => EventKind::BudgetCapReached,
            Event::BudgetStopped { .. } => EventKind::BudgetStopped,
            Event::BatchCancelRequested { .. } => EventKind::BatchCancelRequested,
            Event::RunFinished(_) => EventKind::RunFinished,
            Event::RunFailed { .. } => EventKind::RunFailed,
            Event::RunInterrupted { .. } => EventKind::RunInterrupted,
        }
    }
}

pub struct EventSink {
    mode: OutputMode,
    bars: MultiProgress,
    overall: Mutex<Option<ProgressBar>>,
    shard_bars: Mutex<BTreeMap<u64, ProgressBar>>,
}

impl EventSink {
    pub fn new(mode: OutputMode) -> EventSink {
        let target = match mode {
            OutputMode::Human => ProgressDrawTarget::stderr(),
            OutputMode::Quiet | OutputMode::Json => ProgressDrawTarget::hidden(),
        };
        EventSink {
            mode,
            bars: MultiProgress::with_draw_target(target),
            overall: Mutex::new(None),
            shard_bars: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn mode(&self) -> OutputMode {
        self.mode
    }

    /// An event: a JSON line on stdout in JSON mode, a line on stderr in human mode.
    pub fn emit(&self, event: Event<'_>, human: impl FnOnce() -> Option<String>) {
        match self.mode {
            OutputMode::Json => {
                let line = serde_json::to_string(&event).expect("an event serialises");
                // The stdout lock keeps each event one whole line.
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{line}");
                let _ = stdout.flush();
            }
            OutputMode::Human => {
                if let Some(line) = human() {
                    let _ = self.bars.println(format!("dashbatch: {line}"));
                    if self.bars.is_hidden() {
                        crate::console::say(&format!("dashbatch: {line}"));
                    }
                }
            }
            OutputMode::Quiet => {}
        }
    }

    /// Starts (or restarts) the overall bar over `total_rows`.
    pub fn start_progress(&self, total_rows: u64) {
        let bar = self.bars.add(ProgressBar::new(total_rows));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:30}] {pos}/{len} rows answered ({elapsed}) {msg}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar.set_prefix("overall");
        *self.overall.lock().expect("overall lock") = Some(bar);
    }

    /// Updates one shard's bar from its batch's request counts.
    pub fn shard_progress(&self, shard_index: u64, total: u64, done: u64, status: &str) {
        let mut bars = self.shard_bars.lock().expect("shard bars lock");
        let bar = bars.entry(shard_index).or_insert_with(|| {
            let bar = self.bars.add(ProgressBar::new(total.max(1)));
            bar.set_style(
                ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {msg}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("shard {shard_index}"));
            bar
        });
        if total > 0 {
            bar.set_length(total);
        }
        bar.set_position(done);
        bar.set_message(status.to_owned());
        // Only live batches keep a bar, so a run of many shards stays readable.
        if BatchStatus::parse(status).is_terminal()
            && let Some(bar) = bars.remove(&shard_index)
        {
            bar.finish_and_clear();
            self.bars.remove(&bar);
        }
    }

    pub fn overall_progress(&self, done: u64, message: &str) {
        if let Some(bar) = self.overall.lock().expect("overall lock").as_ref() {
            bar.set_position(done);
            bar.set_message(message.to_owned());
        }
    }

    /// A bar for a long local stage (`planning`, `joining`): rows done so far. Drawn only where
    /// the other bars are (a terminal, not `--json` or `--quiet`); it disappears when dropped.
    pub fn stage_progress(&self, stage: &'static str) -> StageProgress {
        let bar = self.bars.add(ProgressBar::no_length());
        bar.set_style(
            ProgressStyle::with_template("{prefix:>8} {human_pos} rows ({elapsed})")
                .expect("static template"),
        );
        bar.set_prefix(stage);
        StageProgress(bar)
    }

    pub fn finish_progress(&self) {
        if let Some(bar) = self.overall.lock().expect("overall lock").take() {
            bar.finish();
        }
        for (_, bar) in std::mem::take(&mut *self.shard_bars.lock().expect("shard bars lock")) {
            bar.finish();
        }
        let _ = self.bars.clear();
    }
}

/// The bar of a local stage; see [`EventSink::stage_progress`].
pub struct StageProgress(ProgressBar);

impl StageProgress {
    pub fn set_rows(&self, rows: u64) {
        self.0.set_position(rows);
    }
}

impl Drop for StageProgress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The serialised `type` of each event is its kind's name, first on the line.
    #[test]
    fn an_event_line_starts_with_its_kind() {
        let counts = RequestCounts::default();
        let events = [
            Event::FileUploaded {
                shard: 3,
                file_id: "file-1",
                bytes: 10,
            },
            Event::BatchStatus {
                shard: 3,
                batch_id: "batch-1",
                status: "completed",
                request_counts: &counts,
            },
            Event::BudgetStopped {
                shards_not_submitted: &[4, 5],
                rows_not_submitted: 9,
            },
            Event::RunInterrupted {
                exit_code: 130,
                signal: 2,
            },
        ];
        for event in events {
            let line = serde_json::to_string(&event).unwrap();
            assert!(
                line.starts_with(&format!("{{\"type\":\"{}\"", event.kind().as_str())),
                "{line}"
            );
        }
        let line = serde_json::to_string(&Event::FileUploaded {
            shard: 3,
            file_id: "file-1",
            bytes: 10,
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"type":"file_uploaded","shard":3,"file_id":"file-1","bytes":10}"#
        );
    }

    #[test]
    fn every_event_kind_is_named_once_and_documented_in_the_readme() {
        let readme = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"),
        )
        .unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for kind in EventKind::ALL {
            assert!(seen.insert(kind.as_str()), "{} twice", kind.as_str());
            assert!(
                readme.contains(&format!("`{}`", kind.as_str())),
                "README.md does not list the event `{}`",
                kind.as_str()
            );
        }
    }
}
