//! The serde model of a job file (`jobs/*.toml`): what to read, what to ask, what to write.
//!
//! Parsing is strict: unknown keys are errors (`deny_unknown_fields`), and every error names the
//! file and the key or line. Semantic checks that serde cannot express live in `job::validate`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::estimate_spec::{DecimalAmountText, EstimateSpec};
use crate::table::TableFormat;

/// The whole job file as written by the user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Names the job in run directories and in batch metadata (`ds_name`). Defaults to the file
    /// name without its extension.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub input: InputSpec,
    pub request: RequestSpec,
    #[serde(default)]
    pub output: OutputSpec,
    #[serde(default)]
    pub batch: BatchSpec,
    /// How cost estimates count tokens and guess answer lengths.
    #[serde(default)]
    pub estimate: EstimateSpec,
    /// Reusing answers: the answer store, and sending repeated requests once.
    #[serde(default)]
    pub reuse: ReuseSpec,
}

/// `[reuse]`: answers already paid for are not paid for again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReuseSpec {
    /// `true` (the default): the user's answer store; `false`: none; a path (relative to the job
    /// file): that store file.
    #[serde(default)]
    pub store: Option<StoreSpec>,
    /// Rows whose requests are identical are sent once and share the answer. Default true;
    /// `false` sends every row (for sampling several answers to one prompt).
    #[serde(default = "default_true")]
    pub deduplicate: bool,
}

impl Default for ReuseSpec {
    fn default() -> Self {
        ReuseSpec {
            store: None,
            deduplicate: true,
        }
    }
}

/// `[reuse] store`: on, off, or a file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StoreSpec {
    Enabled(bool),
    Path(PathBuf),
}

impl<'de> Deserialize<'de> for StoreSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StoreVisitor;
        impl serde::de::Visitor<'_> for StoreVisitor {
            type Value = StoreSpec;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str(
                    "`true` (your answer store), `false` (none) or a file path in quotes",
                )
            }
            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<StoreSpec, E> {
                Ok(StoreSpec::Enabled(value))
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<StoreSpec, E> {
                Ok(StoreSpec::Path(PathBuf::from(value)))
            }
        }
        deserializer.deserialize_any(StoreVisitor)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Relative paths are relative to the directory of the job file.
    pub path: PathBuf,
    /// `csv`, `parquet` or `jsonl`; taken from the extension when absent.
    #[serde(default)]
    pub format: Option<TableFormat>,
    /// A column whose values become each request's `custom_id`. Row numbers (from 1) otherwise.
    #[serde(default)]
    pub id_column: Option<String>,
    /// A row whose prompt renders to nothing but whitespace is not sent: its output row gets
    /// status `skipped` and error code `empty_prompt`. When false (the default) such a row is an
    /// error before anything is uploaded.
    #[serde(default)]
    pub skip_empty: bool,
    /// The text encoding of a CSV or JSON Lines input (a WHATWG label such as `gb18030`,
    /// `utf-16le`, `big5`); found from the file when absent.
    #[serde(default)]
    pub encoding: Option<String>,
    /// The field delimiter of a CSV input: one character (`";"`, `"\t"`, `"|"`) or `"tab"`;
    /// `.tsv` means tab; sniffed from the first lines when absent.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Whether a CSV input's first row names its columns (default true); false names them
    /// `column_1`, `column_2`, ...
    #[serde(default)]
    pub header: Option<bool>,
    /// The character that quotes a CSV field (`"` by default), or `""` when fields are never
    /// quoted (exports whose text holds stray quotes).
    #[serde(default)]
    pub quote: Option<String>,
    /// The sheet of a workbook input (`.xlsx`, `.xls`, `.ods`, ...): its name, or its number from
    /// 1 in tab order; the first visible sheet when absent.
    #[serde(default)]
    pub sheet: Option<crate::table::SheetChoice>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    pub model: String,
    /// The system message (chat endpoint only). A minijinja template like `template`.
    #[serde(default)]
    pub system: Option<String>,
    /// The user message (chat) or the text to embed (embeddings): a minijinja template over the
    /// row's columns, e.g. `"Classify: {{ text }}"`.
    pub template: String,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub stop: Option<Vec<String>>,
    #[serde(default)]
    pub seed: Option<u64>,
    /// `text` (default) or `json_object`. Declared output fields imply JSON.
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
    /// Thinking mode. When absent, models that think by default get `false` explicitly.
    #[serde(default)]
    pub enable_thinking: Option<bool>,
    #[serde(default)]
    pub thinking_budget: Option<u64>,
    /// Embeddings only: the vector size to ask for.
    #[serde(default)]
    pub dimensions: Option<u64>,
    /// Images sent with the user message (chat endpoint, vision models): templates that render
    /// per row to an http(s) URL, a local file path (relative to the input's directory) or a
    /// `data:` URL, or that name a binary column of a Parquet input (`"{{ photo }}"`). The user
    /// message becomes content parts: these images in order, then the rendered template.
    #[serde(default)]
    pub images: Vec<String>,
    /// What a row whose image renders to nothing gets: `refuse` (the default; an error before
    /// anything is uploaded) or `text_only` (that image is left out of the row's request).
    #[serde(default)]
    pub empty_image: EmptyImageRule,
    /// An embedded image that would not fit the line limit, or that is larger than the model
    /// uses: `refuse` (the default; an error naming the row) or `downscale` (resized and
    /// re-encoded as JPEG until it fits).
    #[serde(default)]
    pub image_fit: ImageFit,
    /// DashScope's `vl_high_resolution_images`: the model reads images at up to 16,384 tokens
    /// each instead of its default cap (dearer).
    #[serde(default)]
    pub vl_high_resolution_images: Option<bool>,
}

/// `[request] empty_image`: a row's image template rendered to nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmptyImageRule {
    /// The row is an error before anything is uploaded.
    #[default]
    Refuse,
    /// The image is left out; the row is sent with its other images, or text only.
    TextOnly,
}

/// `[request] image_fit`: an embedded image too large for the line or for the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageFit {
    /// A located error before anything is uploaded.
    #[default]
    Refuse,
    /// Resized and re-encoded until it fits.
    Downscale,
}

fn default_endpoint() -> String {
    "/v1/chat/completions".to_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Where the joined table goes; relative to the job file's directory. Defaults to
    /// `output.parquet` inside the run directory.
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub format: Option<TableFormat>,
    /// Input columns copied to the output, in this order. All input columns when absent.
    #[serde(default)]
    pub keep_columns: Option<Vec<String>>,
    /// Typed fields parsed out of a JSON answer into columns of their own.
    #[serde(default)]
    pub fields: Vec<OutputFieldSpec>,
    /// Put before the name of every column dashbatch adds (result columns and declared fields),
    /// so input columns named `status`, `cost`, ... can be kept. Empty by default.
    #[serde(default)]
    pub result_prefix: String,
    /// Start a CSV output with a UTF-8 byte-order mark, so that Excel opens Chinese text
    /// correctly instead of showing mojibake. CSV only.
    #[serde(default)]
    pub bom: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputFieldSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: OutputFieldType,
    /// The allowed values of a `label` field.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// Told to the model (in the JSON schema) to say what the field means.
    #[serde(default)]
    pub description: Option<String>,
    /// When false the answer may omit the field (the column is null then). Default true.
    #[serde(default = "default_true")]
    pub required: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFieldType {
    String,
    Integer,
    Float,
    Boolean,
    Label,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSpec {
    /// `24h` by default; DashScope accepts `24h`..`336h` (or `1d`..`14d`).
    #[serde(default = "default_window")]
    pub completion_window: String,
    /// Lowers the provider's per-file request limit (50,000 on DashScope).
    #[serde(default)]
    pub max_requests_per_file: Option<u64>,
    /// Lowers the provider's per-file byte limit (500 MB on DashScope).
    #[serde(default)]
    pub max_bytes_per_file: Option<u64>,
    /// Lowers the per-line byte limit (6 MB on DashScope).
    #[serde(default)]
    pub max_line_bytes: Option<u64>,
    /// How many times a request may be sent in all when it fails transiently (rate limit,
    /// server error, timeout, expiry). 1 turns retries off. Default 3.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Delete each shard's input, output and error files at the provider once its results are
    /// safely on disk (DashScope caps an account at 10,000 files). Default true.
    #[serde(default)]
    pub delete_remote_files: Option<bool>,
    /// Longest wait between two polls of one batch, in seconds.
    #[serde(default)]
    pub max_poll_interval_seconds: Option<u64>,
    /// Extra metadata keys sent with every batch (besides `ds_name`, `ds_description` and the
    /// `dashbatch_*` keys dashbatch writes itself).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The most this job may cost at batch price, in the model's currency: `run` refuses to
    /// submit when the estimate's upper bound is above it, and never submits past it.
    /// `--max-cost` wins over it.
    #[serde(default)]
    pub max_cost: Option<DecimalAmountText>,
}

fn default_window() -> String {
    "24h".to_owned()
}

impl Default for BatchSpec {
    fn default() -> Self {
        BatchSpec {
            completion_window: default_window(),
            max_requests_per_file: None,
            max_bytes_per_file: None,
            max_line_bytes: None,
            max_attempts: None,
            delete_remote_files: None,
            max_poll_interval_seconds: None,
            metadata: BTreeMap::new(),
            max_cost: None,
        }
    }
}
