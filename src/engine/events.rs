//! What a run tells people and machines: progress bars on stderr (hidden off a terminal or with
//! `--quiet`), short status lines on stderr, or NDJSON events on stdout with `--json`.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::wire::BatchStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Progress bars and status lines on stderr.
    Human,
    /// Nothing but errors.
    Quiet,
    /// NDJSON events on stdout; nothing else on stdout.
    Json,
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
    pub fn emit(&self, kind: &str, fields: Value, human: impl FnOnce() -> Option<String>) {
        match self.mode {
            OutputMode::Json => {
                let mut object = json!({ "type": kind });
                if let (Some(target), Value::Object(extra)) = (object.as_object_mut(), fields) {
                    target.extend(extra);
                }
                // The stdout lock keeps each event one whole line.
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{object}");
                let _ = stdout.flush();
            }
            OutputMode::Human => {
                if let Some(line) = human() {
                    let _ = self.bars.println(format!("dashbatch: {line}"));
                    if self.bars.is_hidden() {
                        eprintln!("dashbatch: {line}");
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
