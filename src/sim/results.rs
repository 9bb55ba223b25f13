//! Writing a finished batch's output and error files, streaming the input one block at a time.
//!
//! Lines are written in processing order (shuffled blocks, see
//! [`super::processing_order`]), so results are not in input order. Each line ends up:
//! - answered (status 200) in the output file, and billed;
//! - refused by the fake model (bad body), or hit by a transient fault, in the error file;
//! - answered non-200 INSIDE the output file (fault `failed_lines_in_output`);
//! - in neither file (fault `lose_lines`);
//! - not run at all (expired, cancelled) in the error file with `batch_expired`/`batch_cancelled`.

use std::io::{self, Write};

use serde::Serialize;

use super::bills::{BatchBills, BillWriter};
use super::clock::whole_seconds;
use super::config::{SimFlavour, TEST_MODEL};
use super::faults::BatchBehaviour;
use super::ids::{base62_text, digest_of_parts, hex_text, uuid_text};
use super::input_lines::{RequestLineReader, scan_request_lines};
use super::ledger::BilledRequest;
use super::lifecycle::{BatchRecord, LineFate, UnprocessedLines};
use super::persist::{FileSink, FileStore};
use super::processing_order::ProcessingOrder;
use super::request_rejection::{RequestRejection, error_body};
use super::responder::{AnswerBody, AnswerContext, answer_request};
use crate::wire::{LineError, RequestCounts, RequestLine};

/// The files (not yet stored under ids) and the tallies of a finished batch.
pub(crate) struct WrittenResults {
    pub(crate) output: Option<FileSink>,
    pub(crate) errors: Option<FileSink>,
    pub(crate) counts: RequestCounts,
    pub(crate) bills: BatchBills,
}

/// One line of an output or error file, with its fields in the providers' order.
#[derive(Serialize)]
struct ResultLineOut<'line> {
    id: &'line str,
    custom_id: &'line str,
    response: Option<ResponseOut<'line>>,
    error: Option<LineError>,
}

#[derive(Serialize)]
struct ResponseOut<'line> {
    status_code: u16,
    request_id: &'line str,
    body: &'line AnswerBody,
}

/// The ids of one result line.
struct LineIds {
    line_id: String,
    request_id: String,
    completion_id: String,
}

impl LineIds {
    fn new(seed: u64, flavour: SimFlavour, batch_id: &str, index: u64) -> LineIds {
        let digest = digest_of_parts(&[
            &seed.to_le_bytes(),
            b"line",
            batch_id.as_bytes(),
            &index.to_le_bytes(),
        ]);
        match flavour {
            SimFlavour::Dashscope => {
                let uuid = uuid_text(&digest);
                LineIds {
                    completion_id: format!("chatcmpl-{uuid}"),
                    request_id: uuid.clone(),
                    line_id: uuid,
                }
            }
            SimFlavour::Openai => {
                let request_digest = digest_of_parts(&[&digest, b"request"]);
                LineIds {
                    line_id: format!("batch_req_{}", hex_text(&digest, 32)),
                    request_id: format!("req_{}", hex_text(&request_digest, 32)),
                    completion_id: format!("chatcmpl-{}", base62_text(&request_digest, 29)),
                }
            }
        }
    }
}

/// Lazily created sinks, so a batch without errors gets no error file.
struct ResultSinks<'store> {
    store: &'store FileStore,
    output: Option<FileSink>,
    errors: Option<FileSink>,
}

impl ResultSinks<'_> {
    fn write(&mut self, to_output: bool, line: &ResultLineOut<'_>) -> io::Result<()> {
        let slot = if to_output {
            &mut self.output
        } else {
            &mut self.errors
        };
        if slot.is_none() {
            *slot = Some(self.store.new_sink()?);
        }
        let sink = slot.as_mut().expect("just created");
        serde_json::to_writer(&mut *sink, line)?;
        sink.write_all(b"\n")
    }
}

fn line_error(code: &str, message: &str, helper_spelling: bool) -> LineError {
    if helper_spelling {
        LineError {
            error_code: Some(code.to_owned()),
            error_message: Some(message.to_owned()),
            ..LineError::default()
        }
    } else {
        LineError {
            code: Some(code.to_owned()),
            message: Some(message.to_owned()),
            ..LineError::default()
        }
    }
}

fn transient_message(code: &str) -> &'static str {
    match code {
        "rate_limit_exceeded" => "Requests rate limit exceeded, please try again later.",
        "timeout" => "The request timed out before it could be completed.",
        _ => "The server had an error while processing this request.",
    }
}

fn status_error_code(status_code: u16) -> (&'static str, &'static str, &'static str) {
    match status_code {
        429 => (
            "rate_limit_exceeded",
            "rate_limit_error",
            "Requests rate limit exceeded, please try again later.",
        ),
        400 => (
            "invalid_parameter_error",
            "invalid_request_error",
            "The request was refused by the model service.",
        ),
        _ => (
            "internal_error",
            "server_error",
            "The server had an error while processing this request.",
        ),
    }
}

/// A success body as other Batch APIs send it: without `usage`, and/or as a JSON string holding
/// the object. `None` when neither behaviour is on (the body goes out as it is).
fn reshape_body(
    body: &AnswerBody,
    as_string: bool,
    omit_usage: bool,
) -> io::Result<Option<AnswerBody>> {
    if !as_string && !omit_usage {
        return Ok(None);
    }
    let mut value = serde_json::to_value(body).map_err(io::Error::other)?;
    if omit_usage && let Some(object) = value.as_object_mut() {
        object.remove("usage");
    }
    Ok(Some(if as_string {
        AnswerBody::Text(value.to_string())
    } else {
        AnswerBody::Value(value)
    }))
}

/// Writes the result files of `batch`, which ends at `ended_at` after `processed` lines ran.
pub(crate) fn write_results(
    store: &FileStore,
    seed: u64,
    flavour: SimFlavour,
    batch: &BatchRecord,
    processed: u64,
    unprocessed: UnprocessedLines,
    ended_at: f64,
) -> io::Result<WrittenResults> {
    let mut counts = RequestCounts::default();
    let mut bills = BillWriter::new(store);
    let mut sinks = ResultSinks {
        store,
        output: None,
        errors: None,
    };
    if batch.request_count > 0 {
        let mut source = store.open_source(&batch.input_file_id)?;
        let mut offsets: Vec<u64> = Vec::with_capacity(batch.request_count as usize);
        scan_request_lines(&mut *source, |line| {
            offsets.push(line.byte_offset);
            Ok(())
        })?;
        let request_count = (offsets.len() as u64).min(batch.request_count);
        counts.total = request_count;
        let order = ProcessingOrder::new(seed, &batch.id, request_count);
        let helper_spelling = batch
            .behaviours
            .contains(&BatchBehaviour::ErrorCodeSpellingHelper);
        let body_as_string = batch.behaviours.contains(&BatchBehaviour::BodyAsJsonString);
        let omit_usage = batch.behaviours.contains(&BatchBehaviour::OmitUsage);
        let (unprocessed_code, unprocessed_message) = unprocessed.code_and_message();
        for (first_index, length) in order.blocks() {
            let mut reader = RequestLineReader::starting_at(
                &mut *source,
                offsets[first_index as usize],
                first_index,
            )?;
            for _ in 0..length {
                let Some(line) = reader.next_line()? else {
                    break;
                };
                let Ok(request) = serde_json::from_slice::<RequestLine>(&line.bytes) else {
                    // Only a batch cancelled before its (bad) file was validated gets here.
                    continue;
                };
                let position = order.position_of(line.index);
                let ids = LineIds::new(seed, flavour, &batch.id, line.index);
                let error_line = |sinks: &mut ResultSinks<'_>, error: LineError| {
                    sinks.write(
                        false,
                        &ResultLineOut {
                            id: &ids.line_id,
                            custom_id: &request.custom_id,
                            response: None,
                            error: Some(error),
                        },
                    )
                };
                if position >= processed {
                    counts.failed += 1;
                    error_line(
                        &mut sinks,
                        line_error(unprocessed_code, unprocessed_message, helper_spelling),
                    )?;
                    continue;
                }
                let finished_at = batch.line_finishes_at(position).unwrap_or(ended_at);
                let refusal = match batch.line_fates.get(&line.index) {
                    Some(LineFate::Lost) => {
                        counts.completed += 1;
                        continue;
                    }
                    Some(LineFate::TransientError { code }) => {
                        counts.failed += 1;
                        error_line(
                            &mut sinks,
                            line_error(code, transient_message(code), helper_spelling),
                        )?;
                        continue;
                    }
                    Some(LineFate::FailedInOutput { status_code }) => {
                        counts.completed += 1;
                        let (code, kind, message) = status_error_code(*status_code);
                        sinks.write(
                            true,
                            &ResultLineOut {
                                id: &ids.line_id,
                                custom_id: &request.custom_id,
                                response: Some(ResponseOut {
                                    status_code: *status_code,
                                    request_id: &ids.request_id,
                                    body: &AnswerBody::Error(error_body(code, kind, message)),
                                }),
                                error: None,
                            },
                        )?;
                        continue;
                    }
                    Some(LineFate::Refused { message }) => Some(RequestRejection {
                        message: message.clone(),
                    }),
                    None => None,
                };
                let context = AnswerContext {
                    seed,
                    completion_id: &ids.completion_id,
                    created: whole_seconds(finished_at),
                    flavour,
                };
                let answer = match refusal {
                    Some(refusal) => Err(refusal),
                    None => answer_request(context, &request.url, &request.body),
                };
                match answer {
                    Ok(answer) => {
                        counts.completed += 1;
                        let model = request
                            .body
                            .get("model")
                            .and_then(|model| model.as_str())
                            .unwrap_or("");
                        bills.add(&BilledRequest {
                            batch_id: batch.id.clone(),
                            custom_id: request.custom_id.clone(),
                            model: model.to_owned(),
                            prompt_tokens: answer.usage.prompt_tokens,
                            completion_tokens: answer.usage.completion_tokens,
                            reasoning_tokens: answer.usage.reasoning_tokens,
                            free: model == TEST_MODEL,
                        })?;
                        let reshaped = reshape_body(&answer.body, body_as_string, omit_usage)?;
                        sinks.write(
                            true,
                            &ResultLineOut {
                                id: &ids.line_id,
                                custom_id: &request.custom_id,
                                response: Some(ResponseOut {
                                    status_code: 200,
                                    request_id: &ids.request_id,
                                    body: reshaped.as_ref().unwrap_or(&answer.body),
                                }),
                                error: None,
                            },
                        )?;
                    }
                    Err(rejection) => {
                        counts.failed += 1;
                        match flavour {
                            SimFlavour::Dashscope => error_line(
                                &mut sinks,
                                line_error(
                                    RequestRejection::CODE,
                                    &rejection.message,
                                    helper_spelling,
                                ),
                            )?,
                            // OpenAI writes the refused response itself to the error file.
                            SimFlavour::Openai => sinks.write(
                                false,
                                &ResultLineOut {
                                    id: &ids.line_id,
                                    custom_id: &request.custom_id,
                                    response: Some(ResponseOut {
                                        status_code: 400,
                                        request_id: &ids.request_id,
                                        body: &AnswerBody::Error(rejection.error_body()),
                                    }),
                                    error: None,
                                },
                            )?,
                        }
                    }
                }
            }
        }
    }
    let ResultSinks { output, errors, .. } = sinks;
    Ok(WrittenResults {
        output,
        errors,
        counts,
        bills: bills.finish(&batch.id)?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::super::test_support::{TestSim, chat_lines, frozen_sim};
    use super::super::{BatchBehaviour, BatchSelector, FaultPlan, SimFlavour};
    use crate::wire::{Batch, BatchStatus, RequestCounts};

    async fn run_with(behaviour: BatchBehaviour, lines: usize) -> (TestSim, Batch) {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        sim.handle
            .set_fault_plan(
                FaultPlan::default().with_batch_behaviour(BatchSelector::All, behaviour),
            )
            .unwrap();
        let batch = sim.submit(&chat_lines(lines, "qwen-flash")).await;
        let done = sim.finish(&batch.id).await;
        (sim, done)
    }

    #[tokio::test]
    async fn expire_with_partial_keeps_and_bills_the_finished_lines() {
        let (sim, expired) =
            run_with(BatchBehaviour::ExpireWithPartial { done_fraction: 0.5 }, 10).await;
        assert_eq!(expired.status, BatchStatus::Expired);
        assert!(expired.expired_at.is_some() && expired.completed_at.is_none());
        assert_eq!(
            expired.request_counts,
            Some(RequestCounts {
                total: 10,
                completed: 5,
                failed: 5
            })
        );
        let output = sim
            .result_lines(expired.output_file_id.as_ref().unwrap())
            .await;
        let errors = sim
            .result_lines(expired.error_file_id.as_ref().unwrap())
            .await;
        assert_eq!((output.len(), errors.len()), (5, 5));
        for line in &errors {
            let error = line.error.as_ref().unwrap();
            assert_eq!(error.code(), Some("batch_expired"));
            assert!(line.response.is_none());
        }
        let ledger = sim.handle.ledger().await;
        let billed: BTreeSet<&str> = ledger
            .billed_requests
            .iter()
            .map(|bill| bill.custom_id.as_str())
            .collect();
        let answered: BTreeSet<&str> = output.iter().map(|line| line.custom_id.as_str()).collect();
        assert_eq!(billed, answered);
    }

    #[tokio::test]
    async fn fail_validation_fails_the_batch_with_a_reason() {
        let (sim, failed) = run_with(
            BatchBehaviour::FailValidation {
                code: Some("token_limit_exceeded".to_owned()),
                message: None,
            },
            3,
        )
        .await;
        assert_eq!(failed.status, BatchStatus::Failed);
        assert_eq!(
            failed.error_list()[0].code.as_deref(),
            Some("token_limit_exceeded")
        );
        assert!(failed.error_list()[0].message.is_some());
        assert_eq!((failed.output_file_id, failed.error_file_id), (None, None));
        assert!(sim.handle.ledger().await.billed_requests.is_empty());
    }

    #[tokio::test]
    async fn failed_lines_in_output_hide_non_200_answers_in_the_output_file() {
        let (sim, done) = run_with(BatchBehaviour::FailedLinesInOutput { fraction: 0.5 }, 24).await;
        assert_eq!(done.status, BatchStatus::Completed);
        assert_eq!(
            done.request_counts,
            Some(RequestCounts {
                total: 24,
                completed: 24,
                failed: 0
            })
        );
        assert_eq!(done.error_file_id, None);
        let output = sim
            .result_lines(done.output_file_id.as_ref().unwrap())
            .await;
        assert_eq!(output.len(), 24);
        let failures: Vec<_> = output
            .iter()
            .filter(|line| line.response.as_ref().unwrap().status_code != 200)
            .collect();
        assert!((4..=20).contains(&failures.len()), "{}", failures.len());
        for line in &failures {
            let response = line.response.as_ref().unwrap();
            assert!([400, 429, 500].contains(&response.status_code));
            assert!(response.body.as_ref().unwrap()["error"]["code"].is_string());
            assert!(line.error.is_none());
        }
        assert_eq!(
            sim.handle.ledger().await.billed_requests.len(),
            24 - failures.len()
        );
    }

    #[tokio::test]
    async fn transient_line_errors_land_in_the_error_file() {
        let (sim, done) = run_with(BatchBehaviour::TransientLineErrors { fraction: 0.5 }, 24).await;
        let errors = sim.result_lines(done.error_file_id.as_ref().unwrap()).await;
        let counts = done.request_counts.unwrap();
        assert_eq!(counts.failed, errors.len() as u64);
        assert_eq!(counts.completed + counts.failed, 24);
        for line in &errors {
            let code = line.error.as_ref().unwrap().code().unwrap();
            assert!(
                ["rate_limit_exceeded", "server_error", "timeout"].contains(&code),
                "{code}"
            );
        }
        assert_eq!(
            sim.handle.ledger().await.billed_requests.len() as u64,
            counts.completed
        );
    }

    #[tokio::test]
    async fn lost_lines_appear_in_neither_file() {
        let (sim, done) = run_with(BatchBehaviour::LoseLines { count: 3 }, 12).await;
        assert_eq!(
            done.request_counts,
            Some(RequestCounts {
                total: 12,
                completed: 12,
                failed: 0
            })
        );
        assert_eq!(done.error_file_id, None);
        let output = sim
            .result_lines(done.output_file_id.as_ref().unwrap())
            .await;
        assert_eq!(output.len(), 9);
        assert_eq!(sim.handle.ledger().await.billed_requests.len(), 9);
    }

    #[tokio::test]
    async fn the_helper_spelling_uses_error_code_and_error_message() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let plan = json!({"batches": [
            {"batches": "all", "behaviour": "error_code_spelling_helper"},
            {"batches": "all", "behaviour": {"transient_line_errors": {"fraction": 1.0}}}
        ]});
        assert_eq!(sim.put_faults(plan).await.status(), 200);
        let batch = sim.submit(&chat_lines(4, "qwen-flash")).await;
        let done = sim.finish(&batch.id).await;
        let raw = sim.raw_lines(done.error_file_id.as_ref().unwrap()).await;
        assert_eq!(raw.len(), 4);
        for line in &raw {
            assert!(
                line["error"]["error_code"].is_string()
                    && line["error"]["error_message"].is_string()
            );
            assert!(line["error"].get("code").is_none());
        }
        let decoded = sim.result_lines(done.error_file_id.as_ref().unwrap()).await;
        assert!(
            decoded
                .iter()
                .all(|line| line.error.as_ref().unwrap().code().is_some())
        );
    }

    #[tokio::test]
    async fn nth_batch_rules_pick_batches_by_their_order_since_the_plan() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        sim.submit(&chat_lines(1, "qwen-flash")).await;
        sim.handle
            .set_fault_plan(FaultPlan::default().with_batch_behaviour(
                BatchSelector::NthBatch(2),
                BatchBehaviour::FailValidation {
                    code: None,
                    message: None,
                },
            ))
            .unwrap();
        let first = sim.submit(&chat_lines(1, "qwen-flash")).await;
        let second = sim.submit(&chat_lines(1, "qwen-flash")).await;
        let third = sim.submit(&chat_lines(1, "qwen-flash")).await;
        assert_eq!(sim.finish(&first.id).await.status, BatchStatus::Completed);
        assert_eq!(sim.batch(&second.id).await.status, BatchStatus::Failed);
        assert_eq!(sim.batch(&third.id).await.status, BatchStatus::Completed);
    }

    #[tokio::test]
    async fn lines_the_model_refuses_go_to_the_error_file_and_are_not_billed() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let content = chat_lines(2, "qwen-flash")
            + &json!({"custom_id": "empty", "method": "POST", "url": "/v1/chat/completions",
                      "body": {"model": "qwen-flash", "messages": []}})
            .to_string();
        let batch = sim.submit(&content).await;
        let done = sim.finish(&batch.id).await;
        assert_eq!(done.status, BatchStatus::Completed);
        assert_eq!(
            done.request_counts,
            Some(RequestCounts {
                total: 3,
                completed: 2,
                failed: 1
            })
        );
        let errors = sim.result_lines(done.error_file_id.as_ref().unwrap()).await;
        assert_eq!(errors[0].custom_id, "empty");
        assert_eq!(
            errors[0].error.as_ref().unwrap().code(),
            Some("invalid_parameter_error")
        );
        assert_eq!(sim.handle.ledger().await.billed_requests.len(), 2);
    }
}
