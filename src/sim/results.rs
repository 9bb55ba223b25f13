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

use super::clock::whole_seconds;
use super::config::{SimFlavour, TEST_MODEL};
use super::faults::BatchBehaviour;
use super::ids::{base62_text, digest_of_parts, hex_text, uuid_text};
use super::input_lines::{RequestLineReader, scan_request_lines};
use super::ledger::BilledRequest;
use super::lifecycle::{BatchRecord, LineFate, SECONDS_PER_LINE, UnprocessedLines};
use super::persist::{FileSink, FileStore};
use super::processing_order::ProcessingOrder;
use super::responder::{AnswerBody, AnswerContext, RequestRejection, answer_request, error_body};
use crate::wire::{LineError, RequestCounts, RequestLine};

/// The files (not yet stored under ids) and the tallies of a finished batch.
pub(crate) struct WrittenResults {
    pub(crate) output: Option<FileSink>,
    pub(crate) errors: Option<FileSink>,
    pub(crate) counts: RequestCounts,
    pub(crate) billed: Vec<BilledRequest>,
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
        let digest = digest_of_parts(&[&seed.to_le_bytes(), b"line", batch_id.as_bytes(), &index.to_le_bytes()]);
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
        let slot = if to_output { &mut self.output } else { &mut self.errors };
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
        429 => ("rate_limit_exceeded", "rate_limit_error", "Requests rate limit exceeded, please try again later."),
        400 => ("invalid_parameter_error", "invalid_request_error", "The request was refused by the model service."),
        _ => ("internal_error", "server_error", "The server had an error while processing this request."),
    }
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
    let mut billed = Vec::new();
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
        let (unprocessed_code, unprocessed_message) = unprocessed.code_and_message();
        for (first_index, length) in order.blocks() {
            let mut reader =
                RequestLineReader::starting_at(&mut *source, offsets[first_index as usize], first_index)?;
            for _ in 0..length {
                let Some(line) = reader.next_line()? else { break };
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
                    error_line(&mut sinks, line_error(unprocessed_code, unprocessed_message, helper_spelling))?;
                    continue;
                }
                let finished_at = batch
                    .processing_started_at
                    .map_or(ended_at, |started_at| started_at + (position + 1) as f64 * SECONDS_PER_LINE);
                let refusal = match batch.line_fates.get(&line.index) {
                    Some(LineFate::Lost) => {
                        counts.completed += 1;
                        continue;
                    }
                    Some(LineFate::TransientError { code }) => {
                        counts.failed += 1;
                        error_line(&mut sinks, line_error(code, transient_message(code), helper_spelling))?;
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
                    Some(LineFate::Refused { message }) => Some(RequestRejection { message: message.clone() }),
                    None => None,
                };
                let context = AnswerContext {
                    seed,
                    completion_id: &ids.completion_id,
                    created: whole_seconds(finished_at),
                };
                let answer = match refusal {
                    Some(refusal) => Err(refusal),
                    None => answer_request(context, &request.url, &request.body),
                };
                match answer {
                    Ok(answer) => {
                        counts.completed += 1;
                        let model = request.body.get("model").and_then(|model| model.as_str()).unwrap_or("");
                        billed.push(BilledRequest {
                            batch_id: batch.id.clone(),
                            custom_id: request.custom_id.clone(),
                            model: model.to_owned(),
                            prompt_tokens: answer.usage.prompt_tokens,
                            completion_tokens: answer.usage.completion_tokens,
                            reasoning_tokens: answer.usage.reasoning_tokens,
                            free: model == TEST_MODEL,
                        });
                        sinks.write(
                            true,
                            &ResultLineOut {
                                id: &ids.line_id,
                                custom_id: &request.custom_id,
                                response: Some(ResponseOut {
                                    status_code: 200,
                                    request_id: &ids.request_id,
                                    body: &answer.body,
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
                                line_error(RequestRejection::CODE, &rejection.message, helper_spelling),
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
        billed,
    })
}
