//! How a simulator is configured ([`SimConfig`]) and what differs between the two provider
//! dialects it can speak ([`SimFlavour`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::faults::FaultPlan;

/// The default [`SimConfig::time_scale`]: simulated seconds per real second.
pub const DEFAULT_TIME_SCALE: f64 = 1000.0;

/// Which provider the simulator imitates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimFlavour {
    /// Alibaba Cloud DashScope's OpenAI-compatible mode, with its quirks (the default).
    #[default]
    Dashscope,
    /// OpenAI's own Files and Batches API.
    Openai,
}

/// Everything a simulator needs to start.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub flavour: SimFlavour,
    /// Simulated seconds per real second. The default ([`DEFAULT_TIME_SCALE`]) finishes a batch of
    /// a few hundred lines in about one real second; `1.0` runs at the pace of a quick real
    /// provider (minutes); `0.0` freezes the clock so a test moves it only through
    /// `POST /_sim/clock/advance` or [`super::SimHandle::advance_clock`].
    pub time_scale: f64,
    /// When set, files, batches, the ledger and the call counters live in this directory and
    /// survive a restart.
    pub state_dir: Option<PathBuf>,
    /// Ids and answers are a function of the seed and of the order of calls.
    pub seed: u64,
    /// The fault plan in force at start (it can be replaced over HTTP at `PUT /_sim/faults`).
    pub faults: FaultPlan,
    /// Request lines run per simulated second across all batches, first come first served (a
    /// provider under load; see `capacity.rs`). `None`: each batch runs at its own pace.
    pub capacity: Option<f64>,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            flavour: SimFlavour::Dashscope,
            time_scale: DEFAULT_TIME_SCALE,
            state_dir: None,
            seed: 0,
            faults: FaultPlan::default(),
            capacity: None,
        }
    }
}

/// The request URLs (and batch endpoints) DashScope's Batch API knows.
pub(crate) const DASHSCOPE_ENDPOINTS: [&str; 3] =
    ["/v1/chat/completions", "/v1/embeddings", "/v1/chat/ds-test"];

/// The batch endpoints the OpenAI flavour accepts (the ones the fake model can answer).
pub(crate) const OPENAI_ENDPOINTS: [&str; 2] = ["/v1/chat/completions", "/v1/embeddings"];

/// DashScope's free rehearsal model and the only URL it may be used with.
pub(crate) const TEST_MODEL: &str = "batch-test-model";
pub(crate) const TEST_MODEL_URL: &str = "/v1/chat/ds-test";
/// Limits of a `batch-test-model` input file.
pub(crate) const TEST_MODEL_MAX_LINES: u64 = 100;
pub(crate) const TEST_MODEL_MAX_BYTES: u64 = 1024 * 1024;

/// Lines per input file, on both providers.
pub(crate) const MAX_REQUESTS_PER_FILE: u64 = 50_000;
/// One line of an input file (the larger of DashScope's two documented figures).
pub(crate) const MAX_LINE_BYTES: usize = 6 * 1024 * 1024;
/// `custom_id` length DashScope documents.
pub(crate) const DASHSCOPE_MAX_CUSTOM_ID_CHARS: usize = 256;

impl SimFlavour {
    /// The path prefix of the base URL a client should use.
    pub(crate) fn base_path(self) -> &'static str {
        match self {
            SimFlavour::Dashscope => "/compatible-mode/v1",
            SimFlavour::Openai => "/v1",
        }
    }

    /// Upload size cap: 500 MB on DashScope, 200 MB on OpenAI.
    pub(crate) fn max_upload_bytes(self) -> u64 {
        match self {
            SimFlavour::Dashscope => 500 * 1024 * 1024,
            SimFlavour::Openai => 200 * 1024 * 1024,
        }
    }

    pub(crate) fn batch_endpoints(self) -> &'static [&'static str] {
        match self {
            SimFlavour::Dashscope => &DASHSCOPE_ENDPOINTS,
            SimFlavour::Openai => &OPENAI_ENDPOINTS,
        }
    }

    /// DashScope answers an empty list with `"data": null`, OpenAI with `"data": []`.
    pub(crate) fn empty_list_data_is_null(self) -> bool {
        self == SimFlavour::Dashscope
    }

    /// Whether a model may be used in a batch. OpenAI accepts any model name.
    pub(crate) fn accepts_model(self, model: &str) -> bool {
        match self {
            SimFlavour::Dashscope => {
                model.starts_with("sim-")
                    || crate::model_check::DASHSCOPE_BATCH_MODELS.contains(&model)
            }
            SimFlavour::Openai => !model.is_empty(),
        }
    }

    /// Parses `completion_window` into seconds, or says why it is refused.
    pub(crate) fn completion_window_seconds(self, window: &str) -> Result<u64, String> {
        match self {
            SimFlavour::Openai => {
                if window == "24h" {
                    Ok(24 * 3600)
                } else {
                    Err(format!(
                        "Invalid value for 'completion_window': '{window}'. Supported values are: '24h'."
                    ))
                }
            }
            SimFlavour::Dashscope => {
                let refusal = || {
                    format!(
                        "Invalid value for 'completion_window': '{window}'. It must be an integer followed by 'h' or 'd', between 24h and 336h."
                    )
                };
                let (digits, unit_hours) = if let Some(digits) = window.strip_suffix('h') {
                    (digits, 1)
                } else if let Some(digits) = window.strip_suffix('d') {
                    (digits, 24)
                } else {
                    return Err(refusal());
                };
                if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
                    return Err(refusal());
                }
                let hours = digits
                    .parse::<u64>()
                    .ok()
                    .and_then(|count| count.checked_mul(unit_hours))
                    .ok_or_else(refusal)?;
                if (24..=336).contains(&hours) {
                    Ok(hours * 3600)
                } else {
                    Err(refusal())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    use super::super::VALIDATION_SECONDS;
    use super::super::test_support::{CHAT, chat_lines, frozen_sim, is_lower_hex};
    use crate::wire::{BatchStatus, RequestCounts};

    #[test]
    fn dashscope_windows_accept_hours_and_days_between_one_and_fourteen_days() {
        let flavour = SimFlavour::Dashscope;
        assert_eq!(flavour.completion_window_seconds("24h"), Ok(86_400));
        assert_eq!(flavour.completion_window_seconds("7d"), Ok(7 * 86_400));
        assert_eq!(flavour.completion_window_seconds("336h"), Ok(336 * 3600));
        for refused in [
            "23h",
            "15d",
            "1.5d",
            "24",
            "h",
            "24H",
            "-24h",
            "99999999999999999999d",
        ] {
            assert!(
                flavour.completion_window_seconds(refused).is_err(),
                "{refused}"
            );
        }
    }

    #[test]
    fn openai_accepts_only_a_day() {
        assert_eq!(
            SimFlavour::Openai.completion_window_seconds("24h"),
            Ok(86_400)
        );
        assert!(SimFlavour::Openai.completion_window_seconds("48h").is_err());
    }

    #[test]
    fn model_lists() {
        assert!(SimFlavour::Dashscope.accepts_model("qwen-flash"));
        assert!(SimFlavour::Dashscope.accepts_model("sim-anything"));
        assert!(!SimFlavour::Dashscope.accepts_model("gpt-4o"));
        assert!(SimFlavour::Openai.accepts_model("gpt-4o"));
    }

    #[tokio::test]
    async fn the_openai_flavour_differs_where_openai_does() {
        let sim = frozen_sim(SimFlavour::Openai).await;
        assert!(
            sim.handle
                .base_url()
                .ends_with(&format!("{}/v1", sim.handle.addr.port()))
        );
        let good = chat_lines(3, "gpt-4o-mini");
        let refused = json!({"custom_id": "bad", "method": "POST", "url": CHAT, "body": {"model": "gpt-4o-mini", "messages": []}}).to_string();
        let file = sim.upload(&(good + &refused)).await;
        let suffix = file.id.strip_prefix("file-").unwrap();
        assert!(
            suffix.len() == 22
                && suffix
                    .chars()
                    .all(|character| character.is_ascii_alphanumeric()),
            "{}",
            file.id
        );
        assert_eq!(file.expires_at, Some(file.created_at + 30 * 86_400));
        // Input files can be read back on OpenAI.
        assert!(sim.download(&file.id).await.contains("row-0"));

        let sim_ref = &sim;
        let refuse =
            |body: Value| async move { sim_ref.try_create(body).await.unwrap().status().as_u16() };
        assert_eq!(
            refuse(json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "48h"}))
                .await,
            400
        );
        let many: serde_json::Map<String, Value> = (0..17)
            .map(|index| (format!("k{index}"), json!("v")))
            .collect();
        assert_eq!(refuse(json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h", "metadata": many})).await, 400);
        assert_eq!(refuse(json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h", "metadata": {"k".repeat(65): "v"}})).await, 400);
        assert_eq!(refuse(json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h", "metadata": {"k": "v".repeat(513)}})).await, 400);

        let created: Value = sim
            .try_create(json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h", "metadata": {"job": "nightly"}}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap();
        let hex = id.strip_prefix("batch_").unwrap();
        assert!(hex.len() == 32 && is_lower_hex(hex), "{id}");
        assert_eq!(created["model"], "gpt-4o-mini");
        assert_eq!(created["usage"]["input_tokens"], 0);
        assert_eq!(
            created["expires_at"].as_i64(),
            Some(created["created_at"].as_i64().unwrap() + 86_400)
        );
        assert_eq!(created["in_progress_at"], Value::Null);

        let done = sim.finish(id).await;
        assert_eq!(done.status, BatchStatus::Completed);
        assert_eq!(
            done.in_progress_at,
            Some(done.created_at + VALIDATION_SECONDS as i64)
        );
        assert!(done.finalizing_at.unwrap() < done.completed_at.unwrap());
        assert_eq!(
            done.request_counts,
            Some(RequestCounts {
                total: 4,
                completed: 3,
                failed: 1
            })
        );
        let usage = done.usage.as_ref().unwrap();
        assert!(usage["input_tokens"].as_u64().unwrap() > 0);
        assert_eq!(usage["input_tokens_details"]["cached_tokens"], 0);
        assert_eq!(
            usage["total_tokens"].as_u64(),
            Some(
                usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
            )
        );
        let output = sim
            .result_lines(done.output_file_id.as_ref().unwrap())
            .await;
        assert_eq!(output.len(), 3);
        let line_id = output[0].id.as_deref().unwrap();
        assert!(
            line_id.starts_with("batch_req_") && line_id.len() == "batch_req_".len() + 32,
            "{line_id}"
        );
        let errors = sim.result_lines(done.error_file_id.as_ref().unwrap()).await;
        assert_eq!(errors.len(), 1);
        let response = errors[0].response.as_ref().unwrap();
        assert_eq!(response.status_code, 400);
        assert!(response.body.as_ref().unwrap()["error"]["message"].is_string());
        let (_, files) = sim.get_json("/files").await;
        assert_eq!(files["first_id"], files["data"][0]["id"]);
    }
}
