//! Validation of a batch's input file, as the provider does it after `POST /batches` answered
//! `validating`: one streamed pass over the lines.
//!
//! File-level problems (bad JSON, duplicate or over-long `custom_id`, wrong or mismatched `url`,
//! unsupported or mixed models, test-model misuse, empty or oversized files) fail the whole batch
//! with `errors.data`. A line whose body the realtime endpoint would refuse does not fail the batch:
//! it is remembered here and answered with an error when the batch runs.

use std::collections::{BTreeMap, HashSet};
use std::io;

use serde_json::Value;

use super::config::{
    DASHSCOPE_MAX_CUSTOM_ID_CHARS, MAX_LINE_BYTES, MAX_REQUESTS_PER_FILE, SimFlavour, TEST_MODEL,
    TEST_MODEL_MAX_BYTES, TEST_MODEL_MAX_LINES, TEST_MODEL_URL,
};
use super::input_lines::{LineSource, scan_request_lines};
use super::responder::check_request;
use crate::wire::BatchError;

/// `errors.data` is cut to this many entries.
pub(crate) const MAX_REPORTED_ERRORS: usize = 1000;

/// What validation learned about an input file.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct InputValidation {
    pub(crate) request_count: u64,
    pub(crate) model: Option<String>,
    /// Non-empty means the batch fails.
    pub(crate) errors: Vec<BatchError>,
    /// Request index → why the realtime endpoint would refuse the line's body.
    pub(crate) refused_lines: BTreeMap<u64, String>,
}

pub(crate) fn validate_input(
    source: &mut dyn LineSource,
    file_bytes: u64,
    endpoint: &str,
    flavour: SimFlavour,
) -> io::Result<InputValidation> {
    let mut validation = InputValidation::default();
    let mut seen_custom_ids: HashSet<String> = HashSet::new();
    scan_request_lines(source, |line| {
        validation.request_count += 1;
        let line_number = line.line_number;
        match check_line(
            &line.bytes,
            endpoint,
            flavour,
            &mut seen_custom_ids,
            &validation.model,
        ) {
            Ok(checked) => {
                if validation.model.is_none() {
                    validation.model = Some(checked.model);
                }
                if let Some(refusal) = checked.refusal {
                    validation.refused_lines.insert(line.index, refusal);
                }
            }
            Err(mut error) => {
                error.line = Some(line_number);
                if validation.errors.len() < MAX_REPORTED_ERRORS {
                    validation.errors.push(error);
                }
            }
        }
        Ok(())
    })?;
    let file_error = |code: &str, message: String| BatchError {
        code: Some(code.to_owned()),
        message: Some(message),
        param: None,
        line: None,
    };
    if validation.request_count == 0 {
        validation.errors.push(file_error(
            "empty_file",
            "The input file contains no requests.".to_owned(),
        ));
    }
    if validation.request_count > MAX_REQUESTS_PER_FILE {
        validation.errors.push(file_error(
            "request_limit_exceeded",
            format!(
                "The input file has {} requests; a batch accepts at most {MAX_REQUESTS_PER_FILE}.",
                validation.request_count
            ),
        ));
    }
    if flavour == SimFlavour::Dashscope && validation.model.as_deref() == Some(TEST_MODEL) {
        if validation.request_count > TEST_MODEL_MAX_LINES {
            validation.errors.push(file_error(
                "test_model_limit_exceeded",
                format!(
                    "A batch for '{TEST_MODEL}' may have at most {TEST_MODEL_MAX_LINES} requests; this file has {}.",
                    validation.request_count
                ),
            ));
        }
        if file_bytes > TEST_MODEL_MAX_BYTES {
            validation.errors.push(file_error(
                "test_model_limit_exceeded",
                format!(
                    "An input file for '{TEST_MODEL}' may be at most 1 MB; this one has {file_bytes} bytes."
                ),
            ));
        }
    }
    Ok(validation)
}

struct CheckedLine {
    model: String,
    refusal: Option<String>,
}

fn line_error(code: &str, message: String, param: Option<&str>) -> BatchError {
    BatchError {
        code: Some(code.to_owned()),
        message: Some(message),
        param: param.map(str::to_owned),
        line: None,
    }
}

fn check_line(
    bytes: &[u8],
    endpoint: &str,
    flavour: SimFlavour,
    seen_custom_ids: &mut HashSet<String>,
    batch_model: &Option<String>,
) -> Result<CheckedLine, BatchError> {
    if bytes.len() > MAX_LINE_BYTES {
        return Err(line_error(
            "line_too_large",
            format!(
                "This line has {} bytes; a line may have at most 6 MB.",
                bytes.len()
            ),
            None,
        ));
    }
    let invalid_json = || {
        line_error(
            "invalid_json_line",
            "This line is not parseable as valid JSON.".to_owned(),
            None,
        )
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|_| invalid_json())?;
    let object = value.as_object().ok_or_else(invalid_json)?;
    let missing = |param: &str| {
        line_error(
            "missing_required_parameter",
            format!("Missing required parameter: '{param}'."),
            Some(param),
        )
    };
    let custom_id = object
        .get("custom_id")
        .and_then(Value::as_str)
        .filter(|custom_id| !custom_id.is_empty())
        .ok_or_else(|| missing("custom_id"))?;
    if flavour == SimFlavour::Dashscope && custom_id.chars().count() > DASHSCOPE_MAX_CUSTOM_ID_CHARS
    {
        let shown: String = custom_id.chars().take(32).collect();
        return Err(line_error(
            "custom_id_too_long",
            format!(
                "The custom_id '{shown}…' is longer than {DASHSCOPE_MAX_CUSTOM_ID_CHARS} characters."
            ),
            Some("custom_id"),
        ));
    }
    if !seen_custom_ids.insert(custom_id.to_owned()) {
        return Err(line_error(
            "duplicate_custom_id",
            format!(
                "The custom_id '{custom_id}' for this request is a duplicate of another request. The custom_id parameter must be unique for each request in a batch."
            ),
            Some("custom_id"),
        ));
    }
    let method = object
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("method"))?;
    if method != "POST" {
        return Err(line_error(
            "invalid_method",
            format!("The method '{method}' is not supported by the Batch API; only POST is."),
            Some("method"),
        ));
    }
    let url = object
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("url"))?;
    let body = object
        .get("body")
        .filter(|body| body.is_object())
        .ok_or_else(|| missing("body"))?;
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .filter(|model| !model.is_empty())
        .ok_or_else(|| missing("body.model"))?;
    if !flavour.batch_endpoints().contains(&url) {
        return Err(line_error(
            "url_not_found",
            format!("The provided url '{url}' is not supported by the Batch API."),
            Some("url"),
        ));
    }
    if flavour == SimFlavour::Dashscope {
        if model == TEST_MODEL && url != TEST_MODEL_URL {
            return Err(line_error(
                "mismatched_test_url",
                format!("The provided URL '{url}' does not match the test model '{TEST_MODEL}'."),
                Some("url"),
            ));
        }
        if model != TEST_MODEL && url == TEST_MODEL_URL {
            return Err(line_error(
                "mismatched_test_url",
                format!(
                    "The provided URL '{url}' can only be used with the test model '{TEST_MODEL}'."
                ),
                Some("url"),
            ));
        }
    }
    if url != endpoint {
        return Err(line_error(
            "mismatched_endpoint",
            format!("The provided url '{url}' does not match the batch endpoint '{endpoint}'."),
            Some("url"),
        ));
    }
    if !flavour.accepts_model(model) {
        return Err(line_error(
            "model_not_found",
            format!("The provided model '{model}' is not supported by the Batch API."),
            Some("body.model"),
        ));
    }
    if let Some(batch_model) = batch_model
        && batch_model != model
    {
        return Err(line_error(
            "mismatched_model",
            format!(
                "The model '{model}' for this request does not match the rest of the batch. Each batch must contain requests for a single model."
            ),
            Some("body.model"),
        ));
    }
    let refusal = check_request(url, body)
        .err()
        .map(|refusal| refusal.message);
    Ok(CheckedLine {
        model: model.to_owned(),
        refusal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Cursor;

    use super::super::test_support::{chat_lines, frozen_sim};
    use crate::wire::{BatchStatus, RequestCounts};

    fn chat_line(custom_id: &str, model: &str, url: &str) -> String {
        serde_json::json!({"custom_id": custom_id, "method": "POST", "url": url,
            "body": {"model": model, "messages": [{"role": "user", "content": "hi"}]}})
        .to_string()
    }

    fn validate(lines: &[String], endpoint: &str, flavour: SimFlavour) -> InputValidation {
        let text = lines.join("\n");
        let size = text.len() as u64;
        validate_input(&mut Cursor::new(text.into_bytes()), size, endpoint, flavour).unwrap()
    }

    fn codes(validation: &InputValidation) -> Vec<(String, Option<u64>)> {
        validation
            .errors
            .iter()
            .map(|error| (error.code.clone().unwrap(), error.line))
            .collect()
    }

    const CHAT: &str = "/v1/chat/completions";

    #[test]
    fn a_good_file_passes_and_refused_bodies_are_remembered() {
        let validation = validate(
            &[
                chat_line("a", "qwen-flash", CHAT),
                r#"{"custom_id":"b","method":"POST","url":"/v1/chat/completions","body":{"model":"qwen-flash","messages":[]}}"#.to_owned(),
            ],
            CHAT,
            SimFlavour::Dashscope,
        );
        assert!(validation.errors.is_empty(), "{:?}", validation.errors);
        assert_eq!(validation.request_count, 2);
        assert_eq!(validation.model.as_deref(), Some("qwen-flash"));
        assert_eq!(
            validation.refused_lines.keys().collect::<Vec<_>>(),
            vec![&1]
        );
    }

    #[test]
    fn each_file_level_problem_has_its_code_and_line() {
        let cases: Vec<(Vec<String>, &str, &str)> = vec![
            (vec![chat_line("a", "qwen-flash", CHAT), "{not json".to_owned()], CHAT, "invalid_json_line"),
            (vec![chat_line("a", "qwen-flash", CHAT), chat_line("a", "qwen-flash", CHAT)], CHAT, "duplicate_custom_id"),
            (vec![chat_line("a", "qwen-flash", CHAT), chat_line("b", "qwen-plus", CHAT)], CHAT, "mismatched_model"),
            (vec![chat_line("a", "qwen-flash", CHAT), chat_line("b", "qwen-flash", "/v1/chat/completion")], CHAT, "url_not_found"),
            (vec![chat_line("a", "qwen-flash", CHAT), chat_line("b", "qwen-flash", "/v1/embeddings")], CHAT, "mismatched_endpoint"),
            (vec![chat_line("a", "qwen-flash", CHAT), chat_line("b", "gpt-4o", CHAT)], CHAT, "model_not_found"),
            (vec![chat_line("a", "qwen-flash", CHAT), chat_line(&"x".repeat(257), "qwen-flash", CHAT)], CHAT, "custom_id_too_long"),
            (vec![chat_line("a", "qwen-flash", CHAT), r#"{"custom_id":"b","method":"GET","url":"/v1/chat/completions","body":{"model":"qwen-flash"}}"#.to_owned()], CHAT, "invalid_method"),
            (vec![chat_line("a", "qwen-flash", CHAT), r#"{"custom_id":"b","method":"POST","url":"/v1/chat/completions"}"#.to_owned()], CHAT, "missing_required_parameter"),
        ];
        for (lines, endpoint, code) in cases {
            let validation = validate(&lines, endpoint, SimFlavour::Dashscope);
            assert_eq!(
                codes(&validation),
                vec![(code.to_owned(), Some(2))],
                "{code}"
            );
        }
    }

    #[test]
    fn dashscope_messages_are_verbatim() {
        let validation = validate(
            &[chat_line("1", "qwen-flash", "/v1/chat/completion")],
            CHAT,
            SimFlavour::Dashscope,
        );
        let error = &validation.errors[0];
        assert_eq!(
            error.message.as_deref(),
            Some("The provided url '/v1/chat/completion' is not supported by the Batch API.")
        );
        assert_eq!(error.param.as_deref(), Some("url"));
        assert_eq!(error.line, Some(1));
    }

    #[test]
    fn the_test_model_needs_its_url_on_every_line_and_small_files() {
        let validation = validate(
            &[
                chat_line("1", TEST_MODEL, CHAT),
                chat_line("2", TEST_MODEL, CHAT),
            ],
            CHAT,
            SimFlavour::Dashscope,
        );
        assert_eq!(
            codes(&validation),
            vec![
                ("mismatched_test_url".to_owned(), Some(1)),
                ("mismatched_test_url".to_owned(), Some(2))
            ]
        );
        assert_eq!(
            validation.errors[0].message.as_deref(),
            Some(
                "The provided URL '/v1/chat/completions' does not match the test model 'batch-test-model'."
            )
        );
        let many: Vec<String> = (0..101)
            .map(|index| chat_line(&index.to_string(), TEST_MODEL, TEST_MODEL_URL))
            .collect();
        let validation = validate(&many, TEST_MODEL_URL, SimFlavour::Dashscope);
        assert_eq!(
            codes(&validation),
            vec![("test_model_limit_exceeded".to_owned(), None)]
        );
    }

    #[test]
    fn empty_files_fail() {
        let validation = validate(
            &["".to_owned(), "   ".to_owned()],
            CHAT,
            SimFlavour::Dashscope,
        );
        assert_eq!(codes(&validation), vec![("empty_file".to_owned(), None)]);
    }

    #[test]
    fn openai_accepts_any_model_and_long_custom_ids() {
        let validation = validate(
            &[chat_line(&"y".repeat(300), "gpt-4o-mini", CHAT)],
            CHAT,
            SimFlavour::Openai,
        );
        assert!(validation.errors.is_empty());
    }

    #[tokio::test]
    async fn a_file_with_a_bad_line_fails_validation_without_files_or_bills() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let content = chat_lines(1, "qwen-flash")
            + &json!({"custom_id": "b", "method": "POST", "url": "/v1/chat/completion",
                      "body": {"model": "qwen-flash", "messages": [{"role": "user", "content": "x"}]}}).to_string();
        let batch = sim.submit(&content).await;
        let failed = sim.finish(&batch.id).await;
        assert_eq!(failed.status, BatchStatus::Failed);
        let errors = failed.error_list();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].code.as_deref(), Some("url_not_found"));
        assert_eq!(errors[0].line, Some(2));
        assert_eq!(errors[0].param.as_deref(), Some("url"));
        assert_eq!(failed.errors.as_ref().unwrap().object, "list");
        assert_eq!(
            (
                failed.output_file_id.as_ref(),
                failed.error_file_id.as_ref()
            ),
            (None, None)
        );
        assert!(failed.failed_at.is_some() && failed.in_progress_at.is_none());
        assert_eq!(failed.request_counts, Some(RequestCounts::default()));
        assert!(sim.handle.ledger().await.billed_requests.is_empty());
    }
}
