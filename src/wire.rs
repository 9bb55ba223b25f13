//! Wire types of the OpenAI-compatible Files and Batches API and of the batch JSONL lines.
//!
//! These are the only types the engine's client and the embedded simulator share. Decoding is
//! liberal on purpose (see `shared/reference/dashscope-batch-api.md` §10): unknown fields are
//! ignored, almost every field is optional or nullable, `data` of an empty list may be `null`, and
//! a line error may say `code`/`message` or `error_code`/`error_message`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A file object as returned by `POST /files`, `GET /files/{id}` and inside `GET /files`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileObject {
    pub id: String,
    #[serde(default = "file_object_kind")]
    pub object: String,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub filename: String,
    #[serde(default)]
    pub purpose: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// OpenAI sends `expires_at`; DashScope files never expire and omit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// DashScope omits this field in live responses; OpenAI sends `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_details: Option<Value>,
}

fn file_object_kind() -> String {
    "file".to_owned()
}

/// The answer to `DELETE /files/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileDeleted {
    pub id: String,
    #[serde(default = "file_object_kind")]
    pub object: String,
    pub deleted: bool,
}

/// A page of `GET /files` or `GET /batches`.
///
/// DashScope sends `"data": null` for an empty page and no `first_id`/`last_id` on file lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListPage<T> {
    #[serde(default = "list_object_kind")]
    pub object: String,
    pub data: Option<Vec<T>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_id: Option<String>,
    #[serde(default)]
    pub has_more: bool,
}

fn list_object_kind() -> String {
    "list".to_owned()
}

impl<T> ListPage<T> {
    /// The items of the page, treating `data: null` as empty.
    pub fn into_items(self) -> Vec<T> {
        self.data.unwrap_or_default()
    }
}

/// The lifecycle states of a batch. Anything unknown decodes as [`BatchStatus::Unknown`] so a
/// new provider state never breaks a running client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    Validating,
    InProgress,
    Finalizing,
    Completed,
    Failed,
    Expired,
    Cancelling,
    Cancelled,
    #[serde(other)]
    Unknown,
}

impl BatchStatus {
    /// `completed`, `failed`, `expired` and `cancelled` never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            BatchStatus::Completed
                | BatchStatus::Failed
                | BatchStatus::Expired
                | BatchStatus::Cancelled
        )
    }

    /// The status named by `text` (as `as_str` writes it), `Unknown` for anything else.
    pub fn parse(text: &str) -> BatchStatus {
        serde_json::from_value(Value::String(text.to_owned())).unwrap_or(BatchStatus::Unknown)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Validating => "validating",
            BatchStatus::InProgress => "in_progress",
            BatchStatus::Finalizing => "finalizing",
            BatchStatus::Completed => "completed",
            BatchStatus::Failed => "failed",
            BatchStatus::Expired => "expired",
            BatchStatus::Cancelling => "cancelling",
            BatchStatus::Cancelled => "cancelled",
            BatchStatus::Unknown => "unknown",
        }
    }
}

/// `request_counts` of a batch. DashScope reports `total: 0` while validating.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub completed: u64,
    #[serde(default)]
    pub failed: u64,
}

/// One validation error of a batch (`errors.data[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub param: Option<String>,
    /// 1-based line of the input file the error is about.
    #[serde(default)]
    pub line: Option<u64>,
}

/// `errors` of a batch: `{ "object": "list", "data": [...] }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchErrors {
    #[serde(default = "list_object_kind")]
    pub object: String,
    #[serde(default)]
    pub data: Option<Vec<BatchError>>,
}

/// A batch object as returned by create, retrieve, list and cancel.
///
/// Every timestamp is nullable; DashScope leaves `expires_at` null and omits `model` and `usage`,
/// which OpenAI sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub id: String,
    #[serde(default = "batch_object_kind")]
    pub object: String,
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub errors: Option<BatchErrors>,
    #[serde(default)]
    pub input_file_id: String,
    #[serde(default)]
    pub completion_window: String,
    pub status: BatchStatus,
    #[serde(default)]
    pub output_file_id: Option<String>,
    #[serde(default)]
    pub error_file_id: Option<String>,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub in_progress_at: Option<i64>,
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub finalizing_at: Option<i64>,
    #[serde(default)]
    pub completed_at: Option<i64>,
    #[serde(default)]
    pub failed_at: Option<i64>,
    #[serde(default)]
    pub expired_at: Option<i64>,
    #[serde(default)]
    pub cancelling_at: Option<i64>,
    #[serde(default)]
    pub cancelled_at: Option<i64>,
    #[serde(default)]
    pub request_counts: Option<RequestCounts>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// OpenAI only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// OpenAI only (batches created after 2025-09-07).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
}

fn batch_object_kind() -> String {
    "batch".to_owned()
}

impl Batch {
    /// The validation errors of a failed batch, empty when there are none.
    pub fn error_list(&self) -> &[BatchError] {
        self.errors
            .as_ref()
            .and_then(|errors| errors.data.as_deref())
            .unwrap_or(&[])
    }

    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata.as_ref()?.get(key).map(String::as_str)
    }
}

/// The body of `POST /batches`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateBatchRequest {
    pub input_file_id: String,
    pub endpoint: String,
    pub completion_window: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// The body of every non-2xx answer: `{ "error": { "message", "type", "code", "param" } }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub error: ApiError,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub code: Option<Value>,
    #[serde(default)]
    pub param: Option<String>,
}

/// One line of a batch input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestLine {
    pub custom_id: String,
    pub method: String,
    pub url: String,
    pub body: Value,
}

/// One line of a batch output or error file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultLine {
    #[serde(default)]
    pub id: Option<String>,
    pub custom_id: String,
    #[serde(default)]
    pub response: Option<ResultResponse>,
    #[serde(default)]
    pub error: Option<LineError>,
}

/// `response` of a result line: the HTTP status and body the request would have had realtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultResponse {
    pub status_code: u16,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub body: Option<Value>,
}

/// `error` of a result line. The spec says `code`/`message`; DashScope's own CSV helper reads
/// `error_code`/`error_message`, so both spellings are accepted (reference §5.2, §10 item 16).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LineError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

impl LineError {
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref().or(self.error_code.as_deref())
    }

    pub fn message(&self) -> Option<&str> {
        self.message.as_deref().or(self.error_message.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_batch_list_with_null_data_decodes_as_empty() {
        let page: ListPage<Batch> = serde_json::from_str(
            r#"{ "object": "list", "data": null, "first_id": null, "last_id": null, "has_more": false }"#,
        )
        .unwrap();
        assert!(page.into_items().is_empty());
    }

    #[test]
    fn live_cancelling_batch_decodes() {
        let batch: Batch = serde_json::from_str(
            r#"{"id":"batch_2ecfc43e","object":"batch","endpoint":"/v1/chat/completions",
            "errors":null,"input_file_id":"file-batch-c015","completion_window":"24h",
            "status":"cancelling","output_file_id":null,"error_file_id":null,
            "created_at":1776420698,"in_progress_at":1776420698,"expires_at":null,"finalizing_at":null,
            "completed_at":null,"failed_at":null,"expired_at":null,"cancelling_at":null,"cancelled_at":null,
            "request_counts":{"total":2,"completed":0,"failed":0},
            "metadata":{"ds_name":"测试任务"}, "some_future_field": 1}"#,
        )
        .unwrap();
        assert_eq!(batch.status, BatchStatus::Cancelling);
        assert_eq!(batch.metadata_value("ds_name"), Some("测试任务"));
        assert!(batch.error_list().is_empty());
    }

    #[test]
    fn unknown_status_does_not_fail_decoding() {
        let batch: Batch =
            serde_json::from_str(r#"{"id":"b","status":"paused_for_maintenance"}"#).unwrap();
        assert_eq!(batch.status, BatchStatus::Unknown);
        assert!(!batch.status.is_terminal());
    }

    /// A recorded provider answer from `fixtures/api` (copied from the reference; see its README).
    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/api")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn recorded_dashscope_batches_decode() {
        let created: Batch = serde_json::from_str(&fixture("batch_created.json")).unwrap();
        assert_eq!(created.status, BatchStatus::Validating);
        assert_eq!(created.endpoint, "/v1/chat/ds-test");
        assert_eq!(created.request_counts, Some(RequestCounts::default()));
        assert_eq!(created.metadata_value("ds_description"), Some("任务描述"));
        assert_eq!(
            (created.model.as_deref(), created.usage.as_ref()),
            (None, None)
        );

        let completed: Batch = serde_json::from_str(&fixture("batch_completed.json")).unwrap();
        assert_eq!(completed.status, BatchStatus::Completed);
        assert_eq!(completed.expires_at, None);
        assert_eq!(completed.in_progress_at, Some(completed.created_at));
        assert_eq!(completed.finalizing_at, completed.completed_at);
        assert!(
            completed
                .output_file_id
                .as_deref()
                .is_some_and(|id| id.starts_with("file-batch_output-"))
        );

        let cancelling: Batch = serde_json::from_str(&fixture("batch_cancelling.json")).unwrap();
        assert_eq!(cancelling.status, BatchStatus::Cancelling);
        assert_eq!(cancelling.cancelling_at, None);
        let cancelled: Batch = serde_json::from_str(&fixture("batch_cancelled.json")).unwrap();
        assert_eq!(cancelled.status, BatchStatus::Cancelled);
        assert_eq!(cancelled.cancelling_at, cancelled.cancelled_at);
        assert_eq!(cancelled.output_file_id, None);
        // Live error files use the output prefix (reference §10 #3).
        assert!(
            cancelled
                .error_file_id
                .as_deref()
                .is_some_and(|id| id.starts_with("file-batch_output-"))
        );
        assert_eq!(
            cancelled.request_counts,
            Some(RequestCounts {
                total: 2,
                completed: 0,
                failed: 2
            })
        );

        let failed: Batch = serde_json::from_str(&fixture("batch_failed_validation.json")).unwrap();
        assert_eq!(failed.status, BatchStatus::Failed);
        assert_eq!(
            failed.error_list(),
            [BatchError {
                code: Some("url_not_found".to_owned()),
                message: Some(
                    "The provided url '/v1/chat/completion' is not supported by the Batch API."
                        .to_owned()
                ),
                param: Some("url".to_owned()),
                line: Some(1),
            }]
        );
    }

    #[test]
    fn recorded_dashscope_lists_and_files_decode() {
        let list: ListPage<Batch> = serde_json::from_str(&fixture("batch_list.json")).unwrap();
        assert_eq!(
            list.first_id,
            list.data.as_ref().unwrap().first().map(|b| b.id.clone())
        );
        let statuses: Vec<BatchStatus> = list.into_items().iter().map(|b| b.status).collect();
        assert_eq!(
            statuses,
            [
                BatchStatus::Completed,
                BatchStatus::Cancelled,
                BatchStatus::Failed
            ]
        );
        let empty: ListPage<Batch> =
            serde_json::from_str(&fixture("batch_list_empty.json")).unwrap();
        assert_eq!(empty.data, None);
        assert!(empty.into_items().is_empty());

        let file: FileObject = serde_json::from_str(&fixture("file_object.json")).unwrap();
        assert_eq!(file.purpose, "file-extract");
        assert_eq!((file.status_details, file.expires_at), (None, None));
        let files: ListPage<FileObject> = serde_json::from_str(&fixture("file_list.json")).unwrap();
        assert_eq!(
            (files.first_id.as_deref(), files.last_id.as_deref()),
            (None, None)
        );
        assert_eq!(files.into_items()[0].bytes, 1314);
        let deleted: FileDeleted = serde_json::from_str(&fixture("file_deleted.json")).unwrap();
        assert!(deleted.deleted);
    }

    #[test]
    fn recorded_result_lines_decode() {
        let lines: Vec<ResultLine> = fixture("output_lines.jsonl")
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        let success = lines[0].response.as_ref().unwrap();
        assert_eq!(success.status_code, 200);
        assert_eq!(success.request_id, lines[0].id);
        assert_eq!(lines[1].error.as_ref().unwrap().code(), Some("<code>"));
        assert_eq!(lines[2].response.as_ref().unwrap().status_code, 400);
        // The spelling of DashScope's CSV helper (reference §5.2, §10 #16).
        assert_eq!(lines[3].error.as_ref().unwrap().code(), Some("<code>"));
        assert_eq!(
            lines[3].error.as_ref().unwrap().message(),
            Some("<message>")
        );

        let openai: Vec<ResultLine> = fixture("openai_output_lines.jsonl")
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(openai[0].response.as_ref().unwrap().status_code, 200);
        assert_eq!(
            openai[1].error.as_ref().unwrap().code(),
            Some("batch_expired")
        );
    }

    #[test]
    fn recorded_openai_batch_decodes_with_model_and_usage() {
        let batch: Batch = serde_json::from_str(&fixture("openai_batch_completed.json")).unwrap();
        assert_eq!(batch.model.as_deref(), Some("gpt-5-2025-08-07"));
        assert_eq!(batch.usage.as_ref().unwrap()["total_tokens"], 2000);
        assert_eq!(batch.expires_at, Some(batch.created_at + 86_400));
    }

    #[test]
    fn line_error_accepts_both_spellings() {
        let spec: LineError = serde_json::from_str(r#"{"code":"a","message":"b"}"#).unwrap();
        let helper: LineError =
            serde_json::from_str(r#"{"error_code":"a","error_message":"b"}"#).unwrap();
        assert_eq!(spec.code(), helper.code());
        assert_eq!(spec.message(), helper.message());
    }
}
