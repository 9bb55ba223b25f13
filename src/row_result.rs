//! What happened to one request: its status, answer, usage and error, classified from a result
//! line. Pure: no I/O.
//!
//! Success is only `response.status_code == 200` with a null `error`: DashScope puts some failed
//! lines in the output file (reference §5.3), so which file a line came from proves nothing.

use serde_json::Value;

use crate::wire::{BatchStatus, ResultLine};

pub use crate::chat_success_line::{ChatSuccessLine, read_chat_success_line};

/// The status column of the output. Every input row gets exactly one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    Ok,
    Failed,
    Expired,
    Cancelled,
    /// The batch finished but never answered this row.
    Missing,
    /// The model answered, but not with JSON that fits the declared output fields.
    InvalidOutput,
    /// Not sent, as the job asked (`[input] skip_empty`): its prompt was empty.
    Skipped,
}

impl RowStatus {
    pub const ALL: [RowStatus; 7] = [
        RowStatus::Ok,
        RowStatus::Failed,
        RowStatus::Expired,
        RowStatus::Cancelled,
        RowStatus::Missing,
        RowStatus::InvalidOutput,
        RowStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RowStatus::Ok => "ok",
            RowStatus::Failed => "failed",
            RowStatus::Expired => "expired",
            RowStatus::Cancelled => "cancelled",
            RowStatus::Missing => "missing",
            RowStatus::InvalidOutput => "invalid_output",
            RowStatus::Skipped => "skipped",
        }
    }

    /// Whether the provider billed the request: it ran and answered 200.
    pub fn was_billed(self) -> bool {
        matches!(self, RowStatus::Ok | RowStatus::InvalidOutput)
    }
}

/// One request's outcome, ready to become an output row.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct RowResult {
    pub status: Option<RowStatus>,
    pub content: Option<String>,
    pub finish_reason: Option<String>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub request_id: Option<String>,
    pub embedding: Option<Vec<f32>>,
}

impl RowResult {
    pub fn status(&self) -> RowStatus {
        self.status.unwrap_or(RowStatus::Missing)
    }

    /// A row the batch never answered, given how the batch ended.
    pub fn unanswered(batch_status: Option<BatchStatus>) -> RowResult {
        let (status, code, message) = match batch_status {
            Some(BatchStatus::Expired) => (
                RowStatus::Expired,
                "batch_expired",
                "the batch's completion window ended before this request ran; it was not billed",
            ),
            Some(BatchStatus::Cancelled) => (
                RowStatus::Cancelled,
                "batch_cancelled",
                "the batch was cancelled before this request ran; it was not billed",
            ),
            Some(BatchStatus::Failed) => (
                RowStatus::Failed,
                "batch_failed",
                "the batch failed validation, so no request in it ran",
            ),
            _ => (
                RowStatus::Missing,
                "missing_result",
                "the batch ended without a result line for this request",
            ),
        };
        RowResult {
            status: Some(status),
            error_code: Some(code.to_owned()),
            error_message: Some(message.to_owned()),
            ..RowResult::default()
        }
    }
}

fn as_count(value: Option<&Value>) -> Option<u64> {
    value.and_then(Value::as_u64)
}

/// The vector as f32 values, or `None` when one is not a number or not finite as an f32.
fn finite_f32_vector(vector: &[Value]) -> Option<Vec<f32>> {
    vector
        .iter()
        .map(|number| {
            let value = number.as_f64()? as f32;
            value.is_finite().then_some(value)
        })
        .collect()
}

/// The error code of a 200 line whose body is neither a JSON object nor a string holding one.
pub const UNDECODABLE_BODY_ERROR_CODE: &str = "undecodable_response_body";
/// The error code of a 200 line that carries an answer but no token usage: billed, cost unknown.
pub const USAGE_MISSING_ERROR_CODE: &str = "usage_missing";

/// A response body as a JSON object. Some Batch APIs (llama-stack's) send the body as a JSON
/// *string* holding the object; that is decoded too. `Err` carries why it cannot be read.
fn decode_body(body: &Value) -> Result<std::borrow::Cow<'_, Value>, String> {
    match body {
        Value::Object(_) => Ok(std::borrow::Cow::Borrowed(body)),
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(decoded @ Value::Object(_)) => Ok(std::borrow::Cow::Owned(decoded)),
            Ok(other) => Err(format!(
                "the response body is a string holding JSON {}, not an object",
                json_kind(&other)
            )),
            Err(error) => Err(format!(
                "the response body is a string that is not JSON ({error})"
            )),
        },
        other => Err(format!(
            "the response body is JSON {}, not an object",
            json_kind(other)
        )),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An answered request's usage: without a reasoning count no reasoning was billed; without any
/// usage it was billed by an unknown amount, said on the row and never counted as zero.
fn settle_usage(result: &mut RowResult) {
    if result.prompt_tokens.is_some() {
        result.reasoning_tokens.get_or_insert(0);
    } else {
        result.error_code = Some(USAGE_MISSING_ERROR_CODE.to_owned());
        result.error_message = Some(
            "the provider answered without token usage, so this row's cost is unknown (left empty, not 0)"
                .to_owned(),
        );
    }
}

/// Classifies one result line of a batch that ended in `batch_status`.
pub fn classify_result_line(line: &ResultLine, batch_status: BatchStatus) -> RowResult {
    let mut result = RowResult::default();
    let response = line.response.as_ref();
    result.request_id = response
        .and_then(|response| response.request_id.clone())
        .or_else(|| line.id.clone());
    let decoded = response
        .and_then(|response| response.body.as_ref())
        .map(decode_body);
    let status_code = response.map(|response| response.status_code);
    let line_has_error = line
        .error
        .as_ref()
        .is_some_and(|error| error.code().is_some() || error.message().is_some());
    let unreadable = match &decoded {
        Some(Ok(_)) => None,
        Some(Err(reason)) => Some(reason.clone()),
        None => Some("the response has no body".to_owned()),
    };
    if status_code == Some(200)
        && !line_has_error
        && let Some(reason) = unreadable
    {
        // Liberal in what is decoded, strict in what is counted: an answer that cannot be read
        // is a failed row with its reason, never an empty `ok`.
        result.status = Some(RowStatus::Failed);
        result.error_code = Some(UNDECODABLE_BODY_ERROR_CODE.to_owned());
        result.error_message = Some(format!(
            "{reason}; the provider may have billed this request, see its request id"
        ));
        return result;
    }
    let body = decoded.as_ref().and_then(|decoded| decoded.as_ref().ok());
    let body = body.map(|body| body.as_ref());
    if let Some(usage) = body.and_then(|body| body.get("usage")) {
        result.prompt_tokens = as_count(usage.get("prompt_tokens"));
        result.completion_tokens = as_count(usage.get("completion_tokens"));
        result.total_tokens = as_count(usage.get("total_tokens"));
        result.reasoning_tokens = as_count(
            usage
                .get("completion_tokens_details")
                .and_then(|details| details.get("reasoning_tokens")),
        )
        .or_else(|| as_count(usage.get("reasoning_tokens")));
    }
    let succeeded = response.map(|response| response.status_code) == Some(200)
        && line
            .error
            .as_ref()
            .is_none_or(|error| error.code().is_none() && error.message().is_none());
    if succeeded {
        let body = body.unwrap_or(&Value::Null);
        let choice = body.get("choices").and_then(|choices| choices.get(0));
        result.content = choice
            .and_then(|choice| choice.get("message"))
            .and_then(|message| message.get("content"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        result.finish_reason = choice
            .and_then(|choice| choice.get("finish_reason"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut status = RowStatus::Ok;
        if let Some(vector) = body
            .get("data")
            .and_then(|data| data.get(0))
            .and_then(|item| item.get("embedding"))
            .and_then(Value::as_array)
        {
            result.completion_tokens.get_or_insert(0);
            // Every value must be a number that is finite as an f32: anything else (a string, a
            // number past f32's range) is not a usable vector, and NaN or infinity would be
            // stored as JSON `null` in a retried row's override, which does not read back.
            match finite_f32_vector(vector) {
                Some(values) => result.embedding = Some(values),
                None => status = RowStatus::InvalidOutput,
            }
        }
        settle_usage(&mut result);
        if status == RowStatus::InvalidOutput {
            // Like the join's own output checks, an unusable answer's code wins.
            result.error_code = Some("invalid_output".to_owned());
            result.error_message =
                Some("the embedding holds a value that is not a finite 32-bit number".to_owned());
        }
        result.status = Some(status);
        return result;
    }

    let body_error = body.and_then(|body| body.get("error"));
    result.error_code = line
        .error
        .as_ref()
        .and_then(|error| error.code().map(str::to_owned))
        .or_else(|| {
            body_error.and_then(|error| error.get("code")).map(|code| {
                code.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| code.to_string())
            })
        })
        .or_else(|| response.map(|response| format!("http_{}", response.status_code)));
    result.error_message = line
        .error
        .as_ref()
        .and_then(|error| error.message().map(str::to_owned))
        .or_else(|| {
            body_error
                .and_then(|error| error.get("message"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    let code = result.error_code.as_deref().unwrap_or_default();
    result.status = Some(
        if code == "batch_expired" || (batch_status == BatchStatus::Expired && response.is_none()) {
            RowStatus::Expired
        } else if code == "batch_cancelled"
            || (batch_status == BatchStatus::Cancelled && response.is_none())
        {
            RowStatus::Cancelled
        } else {
            RowStatus::Failed
        },
    );
    // A failed request is not billed (reference §7.1); keep its token counts out of the sums.
    result.prompt_tokens = None;
    result.completion_tokens = None;
    result.reasoning_tokens = None;
    result.total_tokens = None;
    result
}

/// Classifies one result line's text: its custom_id and result, as [`classify_result_line`]
/// classifies the parsed line. The common shape (a 200 chat answer without error) is read into
/// borrowed typed fields without building a JSON tree; any other shape, or anything the typed
/// reading does not take (a body sent as a string, an embedding, a count that is not a whole
/// number, a repeated key), is parsed in full.
///
/// # Errors
/// When the text is not a result line.
pub fn classify_result_text(
    text: &str,
    batch_status: BatchStatus,
) -> Result<(String, RowResult), serde_json::Error> {
    if let Some(line) = read_chat_success_line(text) {
        return Ok(line.into_owned_result());
    }
    classify_result_text_in_full(text, batch_status)
}

/// Classifies one result line's text by parsing it in full, as [`classify_result_text`] does
/// for a line that [`read_chat_success_line`] does not take.
///
/// # Errors
/// When the text is not a result line.
pub fn classify_result_text_in_full(
    text: &str,
    batch_status: BatchStatus,
) -> Result<(String, RowResult), serde_json::Error> {
    let parsed: ResultLine = serde_json::from_str(text)?;
    let result = classify_result_line(&parsed, batch_status);
    Ok((parsed.custom_id, result))
}

/// The token counts of a 200 chat answer, as its line gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChatUsage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
}

impl ChatUsage {
    /// The `ok` result of a chat answer with these counts and texts.
    pub fn into_result(
        self,
        request_id: Option<String>,
        content: Option<String>,
        finish_reason: Option<String>,
    ) -> RowResult {
        let mut result = RowResult {
            status: Some(RowStatus::Ok),
            request_id,
            content,
            finish_reason,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            total_tokens: self.total_tokens,
            reasoning_tokens: self.reasoning_tokens,
            ..RowResult::default()
        };
        settle_usage(&mut result);
        result
    }
}

/// Whether a failed request may succeed if sent again (rate limits, server errors, expiry).
pub fn is_transient_failure(result: &RowResult) -> bool {
    match result.status() {
        RowStatus::Expired => true,
        // A line lost by the provider may still have been billed: never resend it blindly.
        RowStatus::Missing => false,
        RowStatus::Failed => {
            let code = result
                .error_code
                .as_deref()
                .unwrap_or_default()
                .to_ascii_lowercase();
            code.contains("rate")
                || code.contains("throttl")
                || code.contains("timeout")
                || code.contains("server_error")
                || code.contains("internal")
                || code.contains("unavailable")
                || code == "http_429"
                || code.starts_with("http_5")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> ResultLine {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn reading_the_text_gives_what_classifying_the_parsed_line_gives() {
        let body = |inner: &str| {
            format!(
                r#"{{"id":"L","custom_id":"c-1","response":{{"status_code":200,"request_id":"R","body":{inner}}},"error":null}}"#
            )
        };
        let mut lines: Vec<String> = [
            r#"{"usage":{"prompt_tokens":26,"completion_tokens":49,"total_tokens":75},"choices":[{"finish_reason":"stop","index":0,"message":{"role":"assistant","content":"你好"}}]}"#,
            r#"{"usage":{"prompt_tokens":1,"completion_tokens":9,"total_tokens":10,"completion_tokens_details":{"reasoning_tokens":7}},"choices":[{"message":{"content":"{\"a\":\"\u4e2d\\n\"}"},"finish_reason":"length"}]}"#,
            r#"{"usage":{"prompt_tokens":1,"completion_tokens":9,"reasoning_tokens":4},"choices":[{"message":{"content":null}}]}"#,
            r#"{"usage":null,"choices":[{"message":{"content":"x"}}]}"#,
            r#"{"choices":[]}"#,
            r#"{"usage":{"prompt_tokens":1.0,"completion_tokens":2},"choices":[{"message":{"content":"x"}}]}"#,
            r#"{"usage":{"prompt_tokens":-1},"choices":[{"message":{"content":"x"}}]}"#,
            r#"{"usage":{"prompt_tokens":3},"choices":[{"message":{"content":["part"]}}]}"#,
            r#"{"usage":{"prompt_tokens":3},"choices":{"0":{"message":{"content":"x"}}}}"#,
            r#"{"usage":{"prompt_tokens":3},"usage":{"prompt_tokens":4},"choices":[]}"#,
            r#"{"usage":{"prompt_tokens":3},"data":null,"choices":[{"message":{"content":"x"}}]}"#,
            r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-0.25]}],"usage":{"prompt_tokens":3,"total_tokens":3}}"#,
            r#""{\"usage\":{\"prompt_tokens\":5},\"choices\":[{\"message\":{\"content\":\"hi\"}}]}""#,
            r#"null"#,
            r#"[1]"#,
            r#"[]"#,
            r#"[{"prompt_tokens":3},[{"message":{"content":"x"}}]]"#,
            r#"{"usage":[3,4,7],"choices":[{"message":{"content":"x"}}]}"#,
            r#"{"usage":{"prompt_tokens":3,"completion_tokens_details":[7]},"choices":[{"message":{"content":"x"}}]}"#,
            r#"{"usage":{"prompt_tokens":3},"choices":[{"message":["hi"]}]}"#,
            r#"{"usage":{"prompt_tokens":3},"choices":[[{"content":"x"},"stop"]]}"#,
            r#"{"usage":{"prompt_tokens":3},"choices":[{"message":{"content":"a"}},{"message":{"content":"b"}}]}"#,
            r#"{"usage":{"prompt_tokens":3},"choices":[{"message":{"content":"a"}},5,[null]]}"#,
            r#"{"usage":{"prompt_tokens":3},"choices":[5,{"message":{"content":"a"}}]}"#,
        ]
        .iter()
        .map(|inner| body(inner))
        .collect();
        lines.extend(
            [
                r#"{"custom_id":"7","response":null,"error":{"code":"rate_limit_exceeded","message":"slow down"}}"#,
                r#"{"custom_id":"7","response":{"status_code":200,"body":{"choices":[{"message":{"content":"x"}}]}},"error":{"code":null,"message":null}}"#,
                r#"{"custom_id":"7","response":{"status_code":200,"body":{"choices":[{"message":{"content":"x"}}]}},"error":{"code":"x"}}"#,
                r#"{"custom_id":"8","response":{"status_code":400,"request_id":"r","body":{"error":{"code":"InvalidParameter","message":"bad"}}},"error":null}"#,
                r#"{"custom_id":"9","response":{"status_code":200,"body":{"usage":{"prompt_tokens":2},"choices":[{"message":{"content":"x"}}]}}}"#,
                r#"{"custom_id":"9","response":{"status_code":200,"request_id":null,"body":{"choices":[{"message":{"content":"x"}}]}}}"#,
                r#"{"custom_id":"9","response":[200,"r",{"choices":[{"message":{"content":"x"}}]}]}"#,
            ]
            .map(str::to_owned),
        );
        for text in &lines {
            for batch_status in [BatchStatus::Completed, BatchStatus::Expired] {
                let parsed = line(text);
                let expected = (
                    parsed.custom_id.clone(),
                    classify_result_line(&parsed, batch_status),
                );
                assert_eq!(
                    classify_result_text(text, batch_status).unwrap(),
                    expected,
                    "{text}"
                );
            }
        }
        assert!(classify_result_text(r#"{"custom_id":5}"#, BatchStatus::Completed).is_err());
    }

    #[test]
    fn live_success_line_is_ok_with_usage() {
        let result = classify_result_line(
            &line(
                r#"{"id":"153f","custom_id":"1","response":{"status_code":200,"request_id":"153f","body":{"created":1776432582,"usage":{"completion_tokens":49,"prompt_tokens":26,"total_tokens":75},"model":"qwen-flash","id":"chatcmpl-153f","choices":[{"finish_reason":"stop","index":0,"message":{"role":"assistant","content":"你好"}}],"object":"chat.completion"}},"error":null}"#,
            ),
            BatchStatus::Completed,
        );
        assert_eq!(result.status(), RowStatus::Ok);
        assert_eq!(result.content.as_deref(), Some("你好"));
        assert_eq!(result.finish_reason.as_deref(), Some("stop"));
        assert_eq!(result.prompt_tokens, Some(26));
        assert_eq!(result.completion_tokens, Some(49));
        assert_eq!(result.request_id.as_deref(), Some("153f"));
    }

    #[test]
    fn failed_line_inside_the_output_file_is_failed() {
        let result = classify_result_line(
            &line(
                r#"{"id":"x","custom_id":"8","response":{"status_code":400,"request_id":"r","body":{"error":{"code":"InvalidParameter","message":"bad"}}},"error":null}"#,
            ),
            BatchStatus::Completed,
        );
        assert_eq!(result.status(), RowStatus::Failed);
        assert_eq!(result.error_code.as_deref(), Some("InvalidParameter"));
        assert_eq!(result.error_message.as_deref(), Some("bad"));
        assert!(!is_transient_failure(&result));
    }

    #[test]
    fn both_error_spellings_are_read() {
        for text in [
            r#"{"custom_id":"7","response":null,"error":{"code":"rate_limit_exceeded","message":"slow down"}}"#,
            r#"{"custom_id":"7","response":null,"error":{"error_code":"rate_limit_exceeded","error_message":"slow down"}}"#,
        ] {
            let result = classify_result_line(&line(text), BatchStatus::Completed);
            assert_eq!(result.status(), RowStatus::Failed);
            assert_eq!(result.error_code.as_deref(), Some("rate_limit_exceeded"));
            assert_eq!(result.error_message.as_deref(), Some("slow down"));
            assert!(is_transient_failure(&result));
        }
    }

    #[test]
    fn expired_and_cancelled_lines() {
        let expired = classify_result_line(
            &line(
                r#"{"id":"b","custom_id":"3","response":null,"error":{"code":"batch_expired","message":"late"}}"#,
            ),
            BatchStatus::Expired,
        );
        assert_eq!(expired.status(), RowStatus::Expired);
        let cancelled = classify_result_line(
            &line(
                r#"{"custom_id":"3","response":null,"error":{"code":"something","message":"stopped"}}"#,
            ),
            BatchStatus::Cancelled,
        );
        assert_eq!(cancelled.status(), RowStatus::Cancelled);
        assert_eq!(
            RowResult::unanswered(Some(BatchStatus::Completed)).status(),
            RowStatus::Missing
        );
        assert_eq!(
            RowResult::unanswered(Some(BatchStatus::Expired)).status(),
            RowStatus::Expired
        );
    }

    #[test]
    fn reasoning_tokens_are_read_from_either_place() {
        let nested = classify_result_line(
            &line(
                r#"{"custom_id":"1","response":{"status_code":200,"body":{"usage":{"prompt_tokens":1,"completion_tokens":9,"total_tokens":10,"completion_tokens_details":{"reasoning_tokens":7}},"choices":[{"message":{"content":"x"},"finish_reason":"stop"}]}},"error":null}"#,
            ),
            BatchStatus::Completed,
        );
        assert_eq!(nested.reasoning_tokens, Some(7));
        let flat = classify_result_line(
            &line(
                r#"{"custom_id":"1","response":{"status_code":200,"body":{"usage":{"prompt_tokens":1,"completion_tokens":9,"reasoning_tokens":4},"choices":[{"message":{"content":"x"}}]}},"error":null}"#,
            ),
            BatchStatus::Completed,
        );
        assert_eq!(flat.reasoning_tokens, Some(4));
    }

    #[test]
    fn a_body_sent_as_a_json_string_is_decoded() {
        let result = classify_result_line(
            &line(
                r#"{"custom_id":"1","response":{"status_code":200,"body":"{\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7},\"choices\":[{\"message\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}"},"error":null}"#,
            ),
            BatchStatus::Completed,
        );
        assert_eq!(result.status(), RowStatus::Ok);
        assert_eq!(result.content.as_deref(), Some("hi"));
        assert_eq!(result.prompt_tokens, Some(5));
        assert_eq!(result.error_code, None);
    }

    #[test]
    fn an_undecodable_body_fails_its_row_with_a_code() {
        for body in [r#""not json""#, "[1,2]", "42", r#""[1]""#] {
            let text = format!(
                r#"{{"custom_id":"1","response":{{"status_code":200,"body":{body}}},"error":null}}"#
            );
            let result = classify_result_line(&line(&text), BatchStatus::Completed);
            assert_eq!(result.status(), RowStatus::Failed, "{body}");
            assert_eq!(
                result.error_code.as_deref(),
                Some(UNDECODABLE_BODY_ERROR_CODE),
                "{body}"
            );
            assert!(!is_transient_failure(&result));
        }
    }

    #[test]
    fn an_answer_without_usage_says_so_and_has_no_cost() {
        let result = classify_result_line(
            &line(
                r#"{"custom_id":"1","response":{"status_code":200,"body":{"choices":[{"message":{"content":"x"}}]}},"error":null}"#,
            ),
            BatchStatus::Completed,
        );
        assert_eq!(result.status(), RowStatus::Ok);
        assert_eq!(result.error_code.as_deref(), Some(USAGE_MISSING_ERROR_CODE));
        assert_eq!(crate::cost::RunPricer::billed_usage(&result), None);
    }

    #[test]
    fn embedding_lines_carry_their_vector() {
        let result = classify_result_line(
            &line(
                r#"{"custom_id":"e","response":{"status_code":200,"body":{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-0.25]}],"usage":{"prompt_tokens":3,"total_tokens":3}}},"error":null}"#,
            ),
            BatchStatus::Completed,
        );
        assert_eq!(result.embedding, Some(vec![0.5, -0.25]));
        assert_eq!(result.completion_tokens, Some(0));
    }

    /// Found by the `result_line` fuzz target: an embedding value past f32's range became
    /// infinity, which a retried row's override stored as `null` and the join could not read
    /// back, so the run could never finish its output.
    #[test]
    fn embedding_values_that_are_not_finite_f32_make_the_answer_invalid() {
        let reproducer =
            include_bytes!("../fuzz/regressions/result_line/embedding_out_of_f32_range.json");
        let non_number = r#"{"custom_id":"e","response":{"status_code":200,"body":{"data":[{"embedding":[0.5,"x"]}],"usage":{"prompt_tokens":3}}},"error":null}"#;
        for text in [std::str::from_utf8(reproducer).unwrap(), non_number] {
            let result = classify_result_line(&line(text), BatchStatus::Completed);
            assert_eq!(result.status(), RowStatus::InvalidOutput, "{text}");
            assert_eq!(result.error_code.as_deref(), Some("invalid_output"));
            assert_eq!(result.embedding, None);
            // What a retry stores in the ledger reads back.
            let stored = serde_json::to_string(&result).unwrap();
            assert_eq!(serde_json::from_str::<RowResult>(&stored).unwrap(), result);
        }
    }
}
