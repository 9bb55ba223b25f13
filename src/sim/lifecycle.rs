//! A batch's life in simulated time: validating → in_progress → finalizing → completed, or failed,
//! expired, cancelling → cancelled.
//!
//! The life is a pure function of the batch's timestamps and of the simulated "now": whenever a
//! batch is read, [`advance_batch`] replays every transition that is due, each at the time it was
//! due (not at the time it is noticed), so the outcome does not depend on how often anyone polls.
//! The only input/output (reading the input file, writing result files) goes through
//! [`BatchEnvironment`].
//!
//! Durations are simulated seconds; [`super::SimConfig::time_scale`] maps them to real time.
//! Lines run in parallel, more of them at once in bigger batches (as on real providers): a batch
//! of `n` lines runs `max(1, √n × PARALLEL_LINES_PER_SQUARE_ROOT_OF_LINES)` lines at a time, so
//! its `in_progress` stage lasts `n × SECONDS_PER_LINE / that` (16·√n seconds once `n ≥ 16`).
//! A 300-line batch takes 40 + 277 + 20 ≈ 337 simulated seconds (a third of a real second at the
//! default scale of 1000); 50,000 lines take about an hour (3.6 real seconds).

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::bills::BatchBills;
use super::clock::whole_seconds;
use super::config::SimFlavour;
use super::faults::BatchBehaviour;
use super::ids::fraction_of_parts;
use super::ledger::BilledRequest;
use super::processing_order::ProcessingOrder;
use super::validation::InputValidation;
use crate::wire::{Batch, BatchError, BatchErrors, BatchStatus, RequestCounts};

/// Simulated seconds a batch stays `validating`.
pub const VALIDATION_SECONDS: f64 = 40.0;
/// Simulated seconds each line takes while `in_progress`.
pub const SECONDS_PER_LINE: f64 = 4.0;
/// How many lines run at once per square root of the batch's line count (at least one).
pub const PARALLEL_LINES_PER_SQUARE_ROOT_OF_LINES: f64 = 0.25;
/// Simulated seconds a batch stays `finalizing`.
pub const FINALIZING_SECONDS: f64 = 20.0;
/// Simulated seconds a batch stays `cancelling`.
pub const CANCELLING_SECONDS: f64 = 30.0;

/// How many lines a batch of `request_count` lines runs at once (fractional: a throughput).
pub(crate) fn lines_at_once(request_count: u64) -> f64 {
    ((request_count as f64).sqrt() * PARALLEL_LINES_PER_SQUARE_ROOT_OF_LINES).max(1.0)
}

/// Simulated seconds from create to `completed` for a batch of `request_count` lines that
/// passes validation (without faults).
pub fn simulated_seconds_to_complete(request_count: u64) -> f64 {
    VALIDATION_SECONDS
        + request_count as f64 * SECONDS_PER_LINE / lines_at_once(request_count)
        + FINALIZING_SECONDS
}

/// Where a batch is in its life (stored; the API status is derived from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BatchStage {
    Validating,
    InProgress,
    Finalizing,
    Completed,
    Failed,
    Expired,
    Cancelling,
    Cancelled,
}

impl BatchStage {
    pub(crate) fn status(self) -> BatchStatus {
        match self {
            BatchStage::Validating => BatchStatus::Validating,
            BatchStage::InProgress => BatchStatus::InProgress,
            BatchStage::Finalizing => BatchStatus::Finalizing,
            BatchStage::Completed => BatchStatus::Completed,
            BatchStage::Failed => BatchStatus::Failed,
            BatchStage::Expired => BatchStatus::Expired,
            BatchStage::Cancelling => BatchStatus::Cancelling,
            BatchStage::Cancelled => BatchStatus::Cancelled,
        }
    }

    pub(crate) fn is_terminal(self) -> bool {
        self.status().is_terminal()
    }
}

/// What happens to one line when it runs, if it does not simply succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LineFate {
    /// The realtime endpoint would refuse the body (HTTP 400).
    Refused { message: String },
    /// Fault: a non-200 answer written inside the output file, not counted as failed.
    FailedInOutput { status_code: u16 },
    /// Fault: a transient error written to the error file.
    TransientError { code: String },
    /// Fault: the line is written to neither file.
    Lost,
}

impl LineFate {
    /// Whether `request_counts.failed` counts the line once it ran.
    pub(crate) fn counts_as_failed(&self) -> bool {
        matches!(
            self,
            LineFate::Refused { .. } | LineFate::TransientError { .. }
        )
    }
}

/// Why lines that never ran are in the error file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnprocessedLines {
    /// Every line ran.
    None,
    Expired,
    Cancelled,
}

impl UnprocessedLines {
    pub(crate) fn code_and_message(self) -> (&'static str, &'static str) {
        match self {
            UnprocessedLines::None | UnprocessedLines::Expired => (
                "batch_expired",
                "This request could not be executed before the completion window expired.",
            ),
            UnprocessedLines::Cancelled => (
                "batch_cancelled",
                "This request was not executed because the batch was cancelled.",
            ),
        }
    }
}

/// A batch as the simulator remembers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BatchRecord {
    pub(crate) id: String,
    /// 1-based order among all batches ever created here.
    pub(crate) creation_order: u64,
    pub(crate) input_file_id: String,
    pub(crate) input_sha256: String,
    pub(crate) endpoint: String,
    pub(crate) completion_window: String,
    pub(crate) window_seconds: f64,
    pub(crate) metadata: Option<BTreeMap<String, String>>,
    /// OpenAI's `output_expires_after.seconds`: result files expire this long after they are
    /// created (30 days when absent).
    #[serde(default)]
    pub(crate) output_expires_after_seconds: Option<i64>,
    pub(crate) created_at: f64,
    pub(crate) behaviours: Vec<BatchBehaviour>,
    pub(crate) stage: BatchStage,
    pub(crate) model: Option<String>,
    pub(crate) request_count: u64,
    /// Set when validation succeeded; lines run one after another from here (under a capacity,
    /// from the batch's turn in the queue).
    pub(crate) processing_started_at: Option<f64>,
    /// Under a capacity ([`super::capacity`]): the seconds between lines the queue gave the
    /// batch. `None`: the batch runs at its own pace.
    #[serde(default)]
    pub(crate) seconds_per_line_at_capacity: Option<f64>,
    /// Request index → fate, for lines that do not simply succeed.
    pub(crate) line_fates: BTreeMap<u64, LineFate>,
    pub(crate) cancel_requested_at: Option<f64>,
    pub(crate) finalizing_started_at: Option<f64>,
    /// When the batch reached its terminal stage.
    pub(crate) ended_at: Option<f64>,
    pub(crate) errors: Vec<BatchError>,
    pub(crate) output_file_id: Option<String>,
    pub(crate) error_file_id: Option<String>,
    pub(crate) final_counts: Option<RequestCounts>,
    /// The lines this batch billed (successful answers): stored apart, totals here.
    #[serde(default)]
    pub(crate) bills: BatchBills,
    /// The bill lines themselves, as a simulator before `bills.rs` kept them in `world.json`:
    /// read from such a state only, and moved to the file store when it is opened.
    #[serde(default, rename = "billed", skip_serializing)]
    pub(crate) bills_kept_in_world: Vec<BilledRequest>,
}

/// A batch's place in a shared capacity's queue (`capacity.rs`): when its first line starts,
/// and the seconds between lines.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct QueuePlace {
    pub(crate) starts_at: f64,
    pub(crate) seconds_per_line: f64,
}

/// Files and counts produced when a batch ends.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct BatchResults {
    pub(crate) output_file_id: Option<String>,
    pub(crate) error_file_id: Option<String>,
    pub(crate) counts: RequestCounts,
    pub(crate) bills: BatchBills,
}

/// The input and output a batch's life needs.
pub(crate) trait BatchEnvironment {
    fn seed(&self) -> u64;
    /// Validates the batch's input file; `None` when its bytes are gone.
    fn validate(&mut self, batch: &BatchRecord) -> io::Result<Option<InputValidation>>;
    /// The batch's place in the shared capacity's queue, when the simulator has one.
    fn take_capacity_place(
        &mut self,
        _validated_at: f64,
        _request_count: u64,
    ) -> Option<QueuePlace> {
        None
    }
    /// Writes the output and error files for a batch that ends at `ended_at` after `processed`
    /// lines (in processing order) ran.
    fn write_results(
        &mut self,
        batch: &BatchRecord,
        processed: u64,
        unprocessed: UnprocessedLines,
        ended_at: f64,
    ) -> io::Result<BatchResults>;
}

/// Replays every transition that is due at `now`. Returns whether anything changed.
pub(crate) fn advance_batch(
    batch: &mut BatchRecord,
    now: f64,
    environment: &mut dyn BatchEnvironment,
) -> io::Result<bool> {
    let mut changed = false;
    loop {
        match batch.stage {
            BatchStage::Validating => {
                let validated_at = batch.created_at + VALIDATION_SECONDS;
                if now < validated_at {
                    break;
                }
                apply_validation(batch, validated_at, environment)?;
            }
            BatchStage::InProgress => {
                if let Some((expires_at, processed)) = batch.planned_expiry() {
                    if now < expires_at {
                        break;
                    }
                    end_batch(
                        batch,
                        BatchStage::Expired,
                        expires_at,
                        processed,
                        UnprocessedLines::Expired,
                        environment,
                    )?;
                } else {
                    let finished_at = batch.processing_finishes_at().unwrap_or(batch.created_at);
                    if now < finished_at {
                        break;
                    }
                    batch.finalizing_started_at = Some(finished_at);
                    batch.stage = BatchStage::Finalizing;
                }
            }
            BatchStage::Finalizing => {
                let completed_at =
                    batch.finalizing_started_at.unwrap_or(batch.created_at) + FINALIZING_SECONDS;
                if now < completed_at {
                    break;
                }
                let every_line = batch.request_count;
                end_batch(
                    batch,
                    BatchStage::Completed,
                    completed_at,
                    every_line,
                    UnprocessedLines::None,
                    environment,
                )?;
            }
            BatchStage::Cancelling => {
                let requested_at = batch.cancel_requested_at.unwrap_or(batch.created_at);
                let cancelled_at = requested_at + CANCELLING_SECONDS;
                if now < cancelled_at {
                    break;
                }
                if batch.processing_started_at.is_none() {
                    // Cancelled while validating: the lines still come back as failed, when the
                    // file can be read at all.
                    if let Some(validation) = environment.validate(batch)?
                        && validation.errors.is_empty()
                    {
                        batch.request_count = validation.request_count;
                        batch.model = validation.model.or(batch.model.take());
                    }
                }
                let processed = batch.processed_lines_at(requested_at);
                end_batch(
                    batch,
                    BatchStage::Cancelled,
                    cancelled_at,
                    processed,
                    UnprocessedLines::Cancelled,
                    environment,
                )?;
            }
            BatchStage::Completed
            | BatchStage::Failed
            | BatchStage::Expired
            | BatchStage::Cancelled => break,
        }
        changed = true;
    }
    Ok(changed)
}

fn apply_validation(
    batch: &mut BatchRecord,
    validated_at: f64,
    environment: &mut dyn BatchEnvironment,
) -> io::Result<()> {
    let scripted_failure = batch
        .behaviours
        .iter()
        .find_map(|behaviour| match behaviour {
            BatchBehaviour::FailValidation { code, message } => Some(BatchError {
                code: Some(code.clone().unwrap_or_else(|| "invalid_file".to_owned())),
                message: Some(message.clone().unwrap_or_else(|| {
                    "The input file could not be validated (simulated failure).".to_owned()
                })),
                param: None,
                line: None,
            }),
            _ => None,
        });
    let errors = match environment.validate(batch)? {
        None => vec![BatchError {
            code: Some("file_not_found".to_owned()),
            message: Some(format!(
                "The input file '{}' no longer exists.",
                batch.input_file_id
            )),
            param: Some("input_file_id".to_owned()),
            line: None,
        }],
        Some(validation) if !validation.errors.is_empty() => validation.errors,
        Some(_) if scripted_failure.is_some() => scripted_failure.into_iter().collect(),
        Some(validation) => {
            batch.request_count = validation.request_count;
            batch.model = validation.model.or(batch.model.take());
            batch.line_fates = line_fates(
                environment.seed(),
                &batch.id,
                validation.request_count,
                validation.refused_lines,
                &batch.behaviours,
            );
            let place = environment.take_capacity_place(validated_at, batch.request_count);
            batch.processing_started_at = Some(place.map_or(validated_at, |place| place.starts_at));
            batch.seconds_per_line_at_capacity = place.map(|place| place.seconds_per_line);
            batch.stage = BatchStage::InProgress;
            return Ok(());
        }
    };
    batch.errors = errors;
    batch.stage = BatchStage::Failed;
    batch.ended_at = Some(validated_at);
    batch.final_counts = Some(RequestCounts::default());
    Ok(())
}

fn end_batch(
    batch: &mut BatchRecord,
    stage: BatchStage,
    ended_at: f64,
    processed: u64,
    unprocessed: UnprocessedLines,
    environment: &mut dyn BatchEnvironment,
) -> io::Result<()> {
    let results = environment.write_results(batch, processed, unprocessed, ended_at)?;
    batch.output_file_id = results.output_file_id;
    batch.error_file_id = results.error_file_id;
    batch.final_counts = Some(results.counts);
    batch.bills = results.bills;
    batch.stage = stage;
    batch.ended_at = Some(ended_at);
    Ok(())
}

/// Which lines fail, get lost or answer non-200, decided once when validation succeeds.
fn line_fates(
    seed: u64,
    batch_id: &str,
    request_count: u64,
    refused_lines: BTreeMap<u64, String>,
    behaviours: &[BatchBehaviour],
) -> BTreeMap<u64, LineFate> {
    let mut fates: BTreeMap<u64, LineFate> = refused_lines
        .into_iter()
        .map(|(index, message)| (index, LineFate::Refused { message }))
        .collect();
    let draw = |label: &[u8], index: u64| {
        fraction_of_parts(&[
            &seed.to_le_bytes(),
            batch_id.as_bytes(),
            label,
            &index.to_le_bytes(),
        ])
    };
    for behaviour in behaviours {
        match behaviour {
            BatchBehaviour::LoseLines { count } => {
                let count = (*count).min(request_count);
                for slot in 0..count {
                    // Spread evenly over the file.
                    let index = (2 * slot + 1) * request_count / (2 * count);
                    fates.entry(index).or_insert(LineFate::Lost);
                }
            }
            BatchBehaviour::FailedLinesInOutput { fraction } => {
                for index in 0..request_count {
                    if !fates.contains_key(&index) && draw(b"failed-in-output", index) < *fraction {
                        let status_code =
                            [400, 429, 500][(draw(b"status", index) * 3.0) as usize % 3];
                        fates.insert(index, LineFate::FailedInOutput { status_code });
                    }
                }
            }
            BatchBehaviour::TransientLineErrors { fraction } => {
                for index in 0..request_count {
                    if !fates.contains_key(&index) && draw(b"transient", index) < *fraction {
                        let code = ["rate_limit_exceeded", "server_error", "timeout"]
                            [(draw(b"transient-code", index) * 3.0) as usize % 3];
                        fates.insert(
                            index,
                            LineFate::TransientError {
                                code: code.to_owned(),
                            },
                        );
                    }
                }
            }
            _ => {}
        }
    }
    fates
}

/// What a batch is created with; everything else starts empty.
pub(crate) struct NewBatch {
    pub(crate) id: String,
    pub(crate) creation_order: u64,
    pub(crate) input_file_id: String,
    pub(crate) input_sha256: String,
    pub(crate) endpoint: String,
    pub(crate) completion_window: String,
    pub(crate) window_seconds: f64,
    pub(crate) metadata: Option<BTreeMap<String, String>>,
    pub(crate) output_expires_after_seconds: Option<i64>,
    pub(crate) created_at: f64,
    pub(crate) behaviours: Vec<BatchBehaviour>,
    pub(crate) model: Option<String>,
}

impl BatchRecord {
    /// A batch just created: validating, nothing run, counted or billed yet.
    pub(crate) fn validating(new: NewBatch) -> BatchRecord {
        BatchRecord {
            id: new.id,
            creation_order: new.creation_order,
            input_file_id: new.input_file_id,
            input_sha256: new.input_sha256,
            endpoint: new.endpoint,
            completion_window: new.completion_window,
            window_seconds: new.window_seconds,
            metadata: new.metadata,
            output_expires_after_seconds: new.output_expires_after_seconds,
            created_at: new.created_at,
            behaviours: new.behaviours,
            stage: BatchStage::Validating,
            model: new.model,
            request_count: 0,
            processing_started_at: None,
            seconds_per_line_at_capacity: None,
            line_fates: BTreeMap::new(),
            cancel_requested_at: None,
            finalizing_started_at: None,
            ended_at: None,
            errors: Vec::new(),
            output_file_id: None,
            error_file_id: None,
            final_counts: None,
            bills: BatchBills::default(),
            bills_kept_in_world: Vec::new(),
        }
    }

    /// Simulated seconds between two lines finishing.
    fn seconds_between_lines(&self) -> f64 {
        self.seconds_per_line_at_capacity
            .unwrap_or_else(|| SECONDS_PER_LINE / lines_at_once(self.request_count))
    }

    pub(crate) fn processing_finishes_at(&self) -> Option<f64> {
        self.processing_started_at
            .map(|started_at| started_at + self.request_count as f64 * self.seconds_between_lines())
    }

    /// When the batch stops running lines: it finishes them, expires or is cancelled.
    pub(crate) fn stops_running_lines_at(&self) -> Option<f64> {
        let finishes_at = self.processing_finishes_at()?;
        let expires_at = self.planned_expiry().map(|(at, _)| at);
        let cancelled_at = self.cancel_requested_at;
        Some(
            [Some(finishes_at), expires_at, cancelled_at]
                .into_iter()
                .flatten()
                .fold(f64::INFINITY, f64::min),
        )
    }

    /// When the line at processing `position` (0-based) finishes.
    pub(crate) fn line_finishes_at(&self, position: u64) -> Option<f64> {
        self.processing_started_at
            .map(|started_at| started_at + (position + 1) as f64 * self.seconds_between_lines())
    }

    /// `(when, lines done by then)` if the batch will expire instead of finishing: scripted by
    /// `expire_with_partial`, or because its lines cannot all run within the completion window.
    pub(crate) fn planned_expiry(&self) -> Option<(f64, u64)> {
        let started_at = self.processing_started_at?;
        let scripted = self
            .behaviours
            .iter()
            .find_map(|behaviour| match behaviour {
                BatchBehaviour::ExpireWithPartial { done_fraction } => {
                    let processed = ((self.request_count as f64 * done_fraction).floor() as u64)
                        .min(self.request_count);
                    Some((
                        started_at + (processed as f64 + 0.5) * self.seconds_between_lines(),
                        processed,
                    ))
                }
                _ => None,
            });
        let deadline = self.created_at + self.window_seconds;
        let natural = self
            .processing_finishes_at()
            .filter(|finishes_at| *finishes_at > deadline)
            .map(|_| {
                let processed = ((deadline - started_at) / self.seconds_between_lines())
                    .floor()
                    .max(0.0) as u64;
                (deadline, processed.min(self.request_count))
            });
        match (scripted, natural) {
            (Some(scripted), Some(natural)) => Some(if scripted.0 <= natural.0 {
                scripted
            } else {
                natural
            }),
            (scripted, natural) => scripted.or(natural),
        }
    }

    /// Lines (in processing order) done at simulated time `at`.
    pub(crate) fn processed_lines_at(&self, at: f64) -> u64 {
        let Some(started_at) = self.processing_started_at else {
            return 0;
        };
        let done = ((at - started_at) / self.seconds_between_lines())
            .floor()
            .max(0.0) as u64;
        let limit = self
            .planned_expiry()
            .map_or(self.request_count, |(_, processed)| processed);
        done.min(limit)
    }

    /// `request_counts` while lines are running: `processed` lines done so far.
    fn running_counts(&self, processed: u64, seed: u64) -> RequestCounts {
        let failed = if processed == 0 || self.line_fates.is_empty() {
            0
        } else {
            let order = ProcessingOrder::new(seed, &self.id, self.request_count);
            self.line_fates
                .iter()
                .filter(|(index, fate)| {
                    fate.counts_as_failed() && order.position_of(**index) < processed
                })
                .count() as u64
        };
        RequestCounts {
            total: self.request_count,
            completed: processed - failed,
            failed,
        }
    }

    pub(crate) fn request_counts_at(&self, now: f64, seed: u64) -> RequestCounts {
        match self.stage {
            BatchStage::Validating => RequestCounts::default(),
            BatchStage::InProgress => self.running_counts(self.processed_lines_at(now), seed),
            BatchStage::Finalizing => self.running_counts(self.request_count, seed),
            BatchStage::Cancelling => match self.cancel_requested_at {
                Some(requested_at) if self.processing_started_at.is_some() => {
                    self.running_counts(self.processed_lines_at(requested_at), seed)
                }
                _ => RequestCounts::default(),
            },
            BatchStage::Completed
            | BatchStage::Failed
            | BatchStage::Expired
            | BatchStage::Cancelled => self.final_counts.unwrap_or_default(),
        }
    }

    /// The batch object the API shows at simulated time `now`.
    pub(crate) fn to_wire(&self, now: f64, flavour: SimFlavour, seed: u64) -> Batch {
        let dashscope = flavour == SimFlavour::Dashscope;
        let ended_in = |stage: BatchStage| {
            (self.stage == stage)
                .then_some(self.ended_at)
                .flatten()
                .map(whole_seconds)
        };
        let in_progress_at = self.processing_started_at.map(|started_at| {
            // Live DashScope reports the creation time here.
            if dashscope {
                whole_seconds(self.created_at)
            } else {
                whole_seconds(started_at)
            }
        });
        let finalizing_at = if dashscope {
            ended_in(BatchStage::Completed)
        } else {
            self.finalizing_started_at.map(whole_seconds)
        };
        let cancelling_at = if dashscope {
            // Live DashScope fills it only once the batch is cancelled.
            ended_in(BatchStage::Cancelled)
        } else {
            self.cancel_requested_at.map(whole_seconds)
        };
        let errors = (!self.errors.is_empty()).then(|| BatchErrors {
            object: "list".to_owned(),
            data: Some(self.errors.clone()),
        });
        Batch {
            id: self.id.clone(),
            object: "batch".to_owned(),
            endpoint: self.endpoint.clone(),
            errors,
            input_file_id: self.input_file_id.clone(),
            completion_window: self.completion_window.clone(),
            status: self.stage.status(),
            output_file_id: self.output_file_id.clone(),
            error_file_id: self.error_file_id.clone(),
            created_at: whole_seconds(self.created_at),
            in_progress_at,
            expires_at: (!dashscope).then(|| whole_seconds(self.created_at + self.window_seconds)),
            finalizing_at,
            completed_at: ended_in(BatchStage::Completed),
            failed_at: if dashscope {
                // The live failed-validation capture shows failed_at == created_at, like
                // in_progress_at (reference §3.5).
                (self.stage == BatchStage::Failed).then(|| whole_seconds(self.created_at))
            } else {
                ended_in(BatchStage::Failed)
            },
            expired_at: ended_in(BatchStage::Expired),
            cancelling_at,
            cancelled_at: ended_in(BatchStage::Cancelled),
            request_counts: Some(self.request_counts_at(now, seed)),
            metadata: self.metadata.clone(),
            model: if dashscope { None } else { self.model.clone() },
            usage: (!dashscope).then(|| self.usage_value()),
        }
    }

    /// OpenAI's batch `usage`: totals of the billed lines (zero until the batch ends).
    fn usage_value(&self) -> serde_json::Value {
        let totals = self.bills.totals;
        let (input_tokens, output_tokens, reasoning_tokens) = (
            totals.prompt_tokens,
            totals.completion_tokens,
            totals.reasoning_tokens,
        );
        json!({
            "input_tokens": input_tokens,
            "input_tokens_details": { "cached_tokens": 0 },
            "output_tokens": output_tokens,
            "output_tokens_details": { "reasoning_tokens": reasoning_tokens },
            "total_tokens": input_tokens + output_tokens,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A batch record with every optional field empty.
    pub(crate) fn fresh_batch(behaviours: Vec<BatchBehaviour>) -> BatchRecord {
        BatchRecord::validating(NewBatch {
            id: "batch_test".to_owned(),
            creation_order: 1,
            input_file_id: "file-batch-x".to_owned(),
            input_sha256: String::new(),
            endpoint: "/v1/chat/completions".to_owned(),
            completion_window: "24h".to_owned(),
            window_seconds: 86_400.0,
            metadata: None,
            output_expires_after_seconds: None,
            created_at: 1000.0,
            behaviours,
            model: None,
        })
    }

    /// An environment whose input has `request_count` good lines and whose results are just
    /// counted.
    struct CountingEnvironment {
        request_count: u64,
        endings: Vec<(u64, UnprocessedLines, f64)>,
    }

    impl BatchEnvironment for CountingEnvironment {
        fn seed(&self) -> u64 {
            0
        }

        fn validate(&mut self, _batch: &BatchRecord) -> io::Result<Option<InputValidation>> {
            Ok(Some(InputValidation {
                request_count: self.request_count,
                model: Some("qwen-flash".to_owned()),
                ..InputValidation::default()
            }))
        }

        fn write_results(
            &mut self,
            batch: &BatchRecord,
            processed: u64,
            unprocessed: UnprocessedLines,
            ended_at: f64,
        ) -> io::Result<BatchResults> {
            self.endings.push((processed, unprocessed, ended_at));
            Ok(BatchResults {
                counts: RequestCounts {
                    total: batch.request_count,
                    completed: processed,
                    failed: batch.request_count - processed,
                },
                ..BatchResults::default()
            })
        }
    }

    fn environment(request_count: u64) -> CountingEnvironment {
        CountingEnvironment {
            request_count,
            endings: Vec::new(),
        }
    }

    #[test]
    fn a_batch_walks_through_every_stage_at_the_documented_times() {
        let mut batch = fresh_batch(vec![]);
        let mut environment = environment(10);
        let validated_at = 1000.0 + VALIDATION_SECONDS;
        assert!(!advance_batch(&mut batch, validated_at - 0.1, &mut environment).unwrap());
        assert_eq!(
            batch
                .to_wire(validated_at - 0.1, SimFlavour::Dashscope, 0)
                .status,
            BatchStatus::Validating
        );
        advance_batch(
            &mut batch,
            validated_at + 3.5 * SECONDS_PER_LINE,
            &mut environment,
        )
        .unwrap();
        let wire = batch.to_wire(
            validated_at + 3.5 * SECONDS_PER_LINE,
            SimFlavour::Dashscope,
            0,
        );
        assert_eq!(wire.status, BatchStatus::InProgress);
        assert_eq!(wire.in_progress_at, Some(1000));
        assert_eq!(
            wire.request_counts,
            Some(RequestCounts {
                total: 10,
                completed: 3,
                failed: 0
            })
        );
        let finished_at = validated_at + 10.0 * SECONDS_PER_LINE;
        advance_batch(&mut batch, finished_at, &mut environment).unwrap();
        assert_eq!(batch.stage, BatchStage::Finalizing);
        let dashscope = batch.to_wire(finished_at, SimFlavour::Dashscope, 0);
        assert_eq!(dashscope.finalizing_at, None);
        let openai = batch.to_wire(finished_at, SimFlavour::Openai, 0);
        assert_eq!(openai.finalizing_at, Some(finished_at as i64));
        assert_eq!(openai.in_progress_at, Some(validated_at as i64));
        assert_eq!(openai.expires_at, Some(1000 + 86_400));
        // Noticed late: the completion time is still the due time.
        advance_batch(&mut batch, finished_at + 5000.0, &mut environment).unwrap();
        let completed = batch.to_wire(finished_at + 5000.0, SimFlavour::Dashscope, 0);
        assert_eq!(completed.status, BatchStatus::Completed);
        let completed_at = (finished_at + FINALIZING_SECONDS) as i64;
        assert_eq!(completed.completed_at, Some(completed_at));
        assert_eq!(completed.finalizing_at, Some(completed_at));
        assert_eq!(
            environment.endings,
            vec![(10, UnprocessedLines::None, finished_at + FINALIZING_SECONDS)]
        );
    }

    #[test]
    fn a_batch_longer_than_its_window_expires_at_the_deadline_with_what_it_finished() {
        let mut batch = fresh_batch(vec![]);
        let request_count = 40_000_000;
        let lines_in_window = ((86_400.0 - VALIDATION_SECONDS) * lines_at_once(request_count)
            / SECONDS_PER_LINE) as u64;
        assert!(lines_in_window < request_count);
        let mut environment = environment(request_count);
        advance_batch(&mut batch, 1000.0 + 200_000.0, &mut environment).unwrap();
        assert_eq!(batch.stage, BatchStage::Expired);
        assert_eq!(
            environment.endings,
            vec![(
                lines_in_window,
                UnprocessedLines::Expired,
                1000.0 + 86_400.0
            )]
        );
    }

    #[test]
    fn a_batch_saved_before_output_expiry_policies_existed_still_loads() {
        let mut saved = serde_json::to_value(fresh_batch(vec![])).unwrap();
        saved
            .as_object_mut()
            .unwrap()
            .remove("output_expires_after_seconds")
            .expect("the field is saved");
        let loaded: BatchRecord = serde_json::from_value(saved).unwrap();
        assert_eq!(loaded, fresh_batch(vec![]));
    }

    #[test]
    fn bigger_batches_take_longer_but_less_per_line() {
        let mut previous = 0.0;
        for request_count in 1..=5000 {
            let seconds = simulated_seconds_to_complete(request_count);
            assert!(seconds > previous, "{request_count}");
            previous = seconds;
        }
        assert_eq!(simulated_seconds_to_complete(10), 40.0 + 40.0 + 20.0);
        assert!((330.0..345.0).contains(&simulated_seconds_to_complete(300)));
        let largest = simulated_seconds_to_complete(50_000);
        assert!((3000.0..4000.0).contains(&largest), "{largest}");
    }

    /// An environment whose input file fails validation.
    struct FailingEnvironment;

    impl BatchEnvironment for FailingEnvironment {
        fn seed(&self) -> u64 {
            0
        }

        fn validate(&mut self, _batch: &BatchRecord) -> io::Result<Option<InputValidation>> {
            Ok(Some(InputValidation {
                request_count: 1,
                errors: vec![BatchError {
                    code: Some("url_not_found".to_owned()),
                    message: Some("bad url".to_owned()),
                    param: Some("url".to_owned()),
                    line: Some(1),
                }],
                ..InputValidation::default()
            }))
        }

        fn write_results(
            &mut self,
            _batch: &BatchRecord,
            _processed: u64,
            _unprocessed: UnprocessedLines,
            _ended_at: f64,
        ) -> io::Result<BatchResults> {
            unreachable!("a failed batch writes no files")
        }
    }

    #[test]
    fn a_failed_validation_shows_failed_at_as_each_provider_does() {
        let mut batch = fresh_batch(vec![]);
        let later = 1000.0 + VALIDATION_SECONDS + 100.0;
        advance_batch(&mut batch, later, &mut FailingEnvironment).unwrap();
        assert_eq!(batch.stage, BatchStage::Failed);
        let dashscope = batch.to_wire(later, SimFlavour::Dashscope, 0);
        assert_eq!(dashscope.failed_at, Some(dashscope.created_at));
        assert_eq!(dashscope.in_progress_at, None);
        assert_eq!(dashscope.request_counts, Some(RequestCounts::default()));
        let openai = batch.to_wire(later, SimFlavour::Openai, 0);
        assert_eq!(
            openai.failed_at,
            Some(openai.created_at + VALIDATION_SECONDS as i64)
        );
        // Only a failed batch has failed_at.
        let running = fresh_batch(vec![]).to_wire(1000.0, SimFlavour::Dashscope, 0);
        assert_eq!(running.failed_at, None);
    }

    #[test]
    fn scripted_expiry_stops_after_the_fraction() {
        let mut batch = fresh_batch(vec![BatchBehaviour::ExpireWithPartial {
            done_fraction: 0.25,
        }]);
        let mut environment = environment(8);
        advance_batch(&mut batch, 1_000_000.0, &mut environment).unwrap();
        assert_eq!(batch.stage, BatchStage::Expired);
        assert_eq!(environment.endings[0].0, 2);
    }

    #[test]
    fn a_cancel_keeps_the_lines_done_when_it_was_asked() {
        let mut batch = fresh_batch(vec![]);
        let mut environment = environment(10);
        let asked_at = 1000.0 + VALIDATION_SECONDS + 4.2 * SECONDS_PER_LINE;
        advance_batch(&mut batch, asked_at, &mut environment).unwrap();
        batch.stage = BatchStage::Cancelling;
        batch.cancel_requested_at = Some(asked_at);
        let cancelling = batch.to_wire(asked_at + 1.0, SimFlavour::Dashscope, 0);
        assert_eq!(cancelling.cancelling_at, None);
        assert_eq!(cancelling.request_counts.unwrap().completed, 4);
        advance_batch(&mut batch, asked_at + CANCELLING_SECONDS, &mut environment).unwrap();
        let cancelled = batch.to_wire(asked_at + CANCELLING_SECONDS, SimFlavour::Dashscope, 0);
        assert_eq!(cancelled.status, BatchStatus::Cancelled);
        assert_eq!(cancelled.cancelling_at, cancelled.cancelled_at);
        assert_eq!(
            environment.endings,
            vec![(
                4,
                UnprocessedLines::Cancelled,
                asked_at + CANCELLING_SECONDS
            )]
        );
    }

    #[test]
    fn fates_follow_the_behaviours() {
        let fates = line_fates(
            1,
            "batch_f",
            100,
            BTreeMap::from([(3, "bad".to_owned())]),
            &[
                BatchBehaviour::LoseLines { count: 4 },
                BatchBehaviour::FailedLinesInOutput { fraction: 0.2 },
                BatchBehaviour::TransientLineErrors { fraction: 1.0 },
            ],
        );
        assert_eq!(fates.len(), 100);
        assert_eq!(
            fates[&3],
            LineFate::Refused {
                message: "bad".to_owned()
            }
        );
        assert_eq!(
            fates
                .values()
                .filter(|fate| **fate == LineFate::Lost)
                .count(),
            4
        );
        let in_output = fates
            .values()
            .filter(|fate| matches!(fate, LineFate::FailedInOutput { .. }))
            .count();
        assert!((8..=35).contains(&in_output), "{in_output}");
    }
}
