//! Provider profiles: the base URL, limits and rules of each Batch API dashbatch talks to.
//!
//! Figures come from `shared/reference/dashscope-batch-api.md` (§1 hosts, §2.1 upload rate,
//! §3.1 windows and metadata, §4.2 file limits, §8 OpenAI).

use std::fmt;

/// Which API a run talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// The embedded simulator (DashScope behaviour), started in-process.
    Sim,
    /// DashScope, China (Beijing).
    Dashscope,
    /// DashScope, International (Singapore).
    DashscopeIntl,
    /// OpenAI's Batch API.
    Openai,
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            ProviderKind::Sim => "sim",
            ProviderKind::Dashscope => "dashscope",
            ProviderKind::DashscopeIntl => "dashscope-intl",
            ProviderKind::Openai => "openai",
        })
    }
}

/// The limits and rules of one provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderProfile {
    pub kind: ProviderKind,
    /// Base URL ending in `/v1`; `None` for the simulator, whose address is known only once it runs.
    pub default_base_url: Option<&'static str>,
    /// The environment variable holding the API key.
    pub api_key_variable: &'static str,
    pub max_requests_per_file: u64,
    pub max_bytes_per_file: u64,
    pub max_line_bytes: u64,
    pub max_custom_id_chars: usize,
    pub min_window_hours: u64,
    pub max_window_hours: u64,
    pub max_uploads_per_second: u32,
    /// DashScope rejects metadata longer than this in `ds_name`/`ds_description`.
    pub uses_dashscope_metadata: bool,
    pub max_metadata_keys: Option<usize>,
    pub max_metadata_key_chars: Option<usize>,
    pub max_metadata_value_chars: Option<usize>,
    /// Batches that may run at once (DashScope: 1,000 per account; its test model: 2).
    pub max_live_batches: usize,
}

/// Metadata keys dashbatch writes on every batch: run, shard, the shard's content and job (see
/// `engine::submit`).
pub const DASHBATCH_METADATA_KEYS: usize = 4;

/// 500 MB as DashScope counts it (reference §4.2); decimal megabytes to stay on the safe side.
const DASHSCOPE_MAX_FILE_BYTES: u64 = 500 * 1000 * 1000;
/// Each line may be up to 6 MB: the newest official batch page ("每个JSON对象不超过 6 MB", B1 in
/// `prices-and-vision.md` §3; an older console page said 1 MB, reference §4.2 [CONFLICT]).
/// Decimal megabytes to stay on the safe side; `[batch] max_line_bytes` lowers it.
const DASHSCOPE_MAX_LINE_BYTES: u64 = 6 * 1000 * 1000;

impl ProviderProfile {
    pub fn for_kind(kind: ProviderKind) -> ProviderProfile {
        let dashscope = ProviderProfile {
            kind,
            default_base_url: None,
            api_key_variable: crate::env::DASHSCOPE_API_KEY,
            max_requests_per_file: 50_000,
            max_bytes_per_file: DASHSCOPE_MAX_FILE_BYTES,
            max_line_bytes: DASHSCOPE_MAX_LINE_BYTES,
            max_custom_id_chars: 256,
            min_window_hours: 24,
            max_window_hours: 336,
            max_uploads_per_second: 3,
            uses_dashscope_metadata: true,
            max_metadata_keys: None,
            max_metadata_key_chars: None,
            max_metadata_value_chars: None,
            max_live_batches: 1000,
        };
        match kind {
            ProviderKind::Sim => dashscope,
            ProviderKind::Dashscope => ProviderProfile {
                default_base_url: Some("https://dashscope.aliyuncs.com/compatible-mode/v1"),
                ..dashscope
            },
            ProviderKind::DashscopeIntl => ProviderProfile {
                default_base_url: Some("https://dashscope-intl.aliyuncs.com/compatible-mode/v1"),
                ..dashscope
            },
            ProviderKind::Openai => ProviderProfile {
                kind,
                default_base_url: Some("https://api.openai.com/v1"),
                api_key_variable: crate::env::OPENAI_API_KEY,
                max_requests_per_file: 50_000,
                max_bytes_per_file: 200 * 1000 * 1000,
                max_line_bytes: DASHSCOPE_MAX_LINE_BYTES,
                max_custom_id_chars: 512,
                min_window_hours: 24,
                max_window_hours: 24,
                max_uploads_per_second: 10,
                uses_dashscope_metadata: false,
                max_metadata_keys: Some(16),
                max_metadata_key_chars: Some(64),
                max_metadata_value_chars: Some(512),
                max_live_batches: 1000,
            },
        }
    }

    /// The limits of DashScope's free test model `batch-test-model` (reference §4.2): at most 100
    /// lines and 1 MB per file, 2 tasks at once.
    pub fn for_rehearsal(&self) -> ProviderProfile {
        ProviderProfile {
            max_requests_per_file: 100,
            max_bytes_per_file: 1000 * 1000,
            max_line_bytes: self.max_line_bytes.min(1000 * 1000),
            max_live_batches: 2,
            ..self.clone()
        }
    }

    /// Whether this provider takes a JSON schema in `response_format` for `model`. DashScope's
    /// JSON Schema mode covers only part of the qwen-plus family (Model Studio "Structured output"
    /// page, 2026); elsewhere the schema goes into the prompt with `json_object`.
    pub fn accepts_json_schema(&self, model: &str) -> bool {
        match self.kind {
            ProviderKind::Openai | ProviderKind::Sim => true,
            ProviderKind::Dashscope | ProviderKind::DashscopeIntl => {
                model.starts_with("qwen-plus") || model.starts_with("qwen3.7-plus")
            }
        }
    }

    /// Checks what of the job this provider constrains (window, metadata), before anything is
    /// planned or sent.
    pub fn check_job(&self, job: &crate::job::Job) -> Result<(), crate::job::JobError> {
        let invalid = |key: &str, message: String| crate::job::JobError::Invalid {
            path: job.job_file.clone(),
            key: key.to_owned(),
            message,
        };
        let batch = &job.spec.batch;
        self.check_window(&batch.completion_window)
            .map_err(|message| invalid("batch.completion_window", message))?;
        let own_keys = DASHBATCH_METADATA_KEYS + if self.uses_dashscope_metadata { 2 } else { 0 };
        if let Some(limit) = self.max_metadata_keys
            && batch.metadata.len() + own_keys > limit
        {
            return Err(invalid(
                "batch.metadata",
                format!(
                    "{} keys given; {} accepts {limit} in all and dashbatch needs {own_keys}, so at most {}",
                    batch.metadata.len(),
                    self.kind,
                    limit - own_keys
                ),
            ));
        }
        for (key, value) in &batch.metadata {
            if let Some(limit) = self.max_metadata_key_chars
                && key.chars().count() > limit
            {
                return Err(invalid(
                    "batch.metadata",
                    format!(
                        "key `{key}` is longer than the {limit} characters {} accepts",
                        self.kind
                    ),
                ));
            }
            if let Some(limit) = self.max_metadata_value_chars
                && value.chars().count() > limit
            {
                return Err(invalid(
                    "batch.metadata",
                    format!(
                        "the value of `{key}` is longer than the {limit} characters {} accepts",
                        self.kind
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks a completion window against this provider's range.
    pub fn check_window(&self, window: &str) -> Result<(), String> {
        let hours = parse_completion_window_hours(window)?;
        if hours < self.min_window_hours || hours > self.max_window_hours {
            return Err(if self.min_window_hours == self.max_window_hours {
                format!(
                    "`{window}` is not accepted by {}; only `{}h` is",
                    self.kind, self.min_window_hours
                )
            } else {
                format!(
                    "`{window}` is outside what {} accepts ({}h to {}h)",
                    self.kind, self.min_window_hours, self.max_window_hours
                )
            });
        }
        Ok(())
    }
}

/// Parses `24h`, `72h`, `7d`, `14d`: an integer followed by `h` or `d`.
pub fn parse_completion_window_hours(window: &str) -> Result<u64, String> {
    let (number, unit_hours) = if let Some(number) = window.strip_suffix('h') {
        (number, 1)
    } else if let Some(number) = window.strip_suffix('d') {
        (number, 24)
    } else {
        return Err(format!(
            "`{window}` must be a whole number of hours or days, like `24h` or `7d`"
        ));
    };
    let value: u64 = number.parse().map_err(|_| {
        format!("`{window}` must be a whole number of hours or days, like `24h` or `7d`")
    })?;
    // Saturating: a number too large to multiply is simply out of range, not a panic.
    let hours = value.saturating_mul(unit_hours);
    if !(24..=336).contains(&hours) {
        return Err(format!(
            "`{window}` is outside 24h to 336h, the widest range any provider accepts"
        ));
    }
    Ok(hours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_in_hours_and_days() {
        assert_eq!(parse_completion_window_hours("24h"), Ok(24));
        assert_eq!(parse_completion_window_hours("14d"), Ok(336));
        assert!(parse_completion_window_hours("23h").is_err());
        assert!(parse_completion_window_hours("337h").is_err());
        assert!(parse_completion_window_hours("1.5d").is_err());
        assert!(parse_completion_window_hours("24").is_err());
    }

    #[test]
    fn openai_accepts_only_a_day() {
        let openai = ProviderProfile::for_kind(ProviderKind::Openai);
        assert!(openai.check_window("24h").is_ok());
        assert!(openai.check_window("1d").is_ok());
        assert!(openai.check_window("48h").is_err());
        let dashscope = ProviderProfile::for_kind(ProviderKind::Dashscope);
        assert!(dashscope.check_window("7d").is_ok());
    }

    #[test]
    fn openai_metadata_limits_leave_room_for_dashbatch_keys() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("job.toml");
        let keys: String = (0..13).map(|n| format!("k{n} = \"v\", ")).collect();
        std::fs::write(
            &path,
            format!(
                "[input]\npath = \"rows.csv\"\n[request]\nmodel = \"m\"\ntemplate = \"x\"\n[batch]\nmetadata = {{ {} }}\n",
                keys.trim_end_matches(", ")
            ),
        )
        .unwrap();
        let job = crate::job::load_job(&path).unwrap();
        let openai = ProviderProfile::for_kind(ProviderKind::Openai);
        let error = openai.check_job(&job).unwrap_err().to_string();
        assert!(
            error.contains("13 keys given") && error.contains("at most 12"),
            "{error}"
        );
        assert!(
            ProviderProfile::for_kind(ProviderKind::Dashscope)
                .check_job(&job)
                .is_ok()
        );
    }
}
