//! Loading a job file: read, parse, check every value, resolve paths. The result is a [`Job`]
//! that the rest of the engine can trust.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::spec::{JobSpec, OutputFieldType, ResponseFormat};
use crate::table::TableFormat;

/// Result columns that declared output fields must not shadow (the one list lives in
/// `output_fields::ResultColumn`).
pub const RESERVED_COLUMN_NAMES: &[&str] = &crate::output_fields::RESULT_COLUMN_NAMES;

/// Endpoints a job may name. `/v1/chat/ds-test` is used only by rehearsals.
pub const CHAT_ENDPOINT: &str = "/v1/chat/completions";
pub const EMBEDDINGS_ENDPOINT: &str = "/v1/embeddings";

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The cause is in the message, not given as the error's source: printed with its
    /// sources, it would be said twice.
    #[error("failed to read job file `{path}`: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("job file `{path}` is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("job file `{path}`, key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// A checked job with absolute paths.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub job_file: PathBuf,
    /// SHA-256 of the job file's bytes, so a resumed run can tell when the job changed.
    pub job_file_sha256: String,
    pub input_path: PathBuf,
    pub input_format: TableFormat,
    /// How a text input is read: `[input] encoding`, `delimiter`, `header`.
    pub input_options: crate::table::InputOptions,
    pub output_path: Option<PathBuf>,
    pub output_format: Option<TableFormat>,
    /// `[estimate] tokenizer`, resolved against the job file's directory.
    pub estimate_tokenizer_path: Option<PathBuf>,
    /// `[reuse] store`, a path resolved against the job file's directory.
    pub answer_store: crate::store_location::JobStoreSetting,
    pub spec: JobSpec,
}

impl Job {
    pub fn is_embeddings(&self) -> bool {
        self.spec.request.endpoint == EMBEDDINGS_ENDPOINT
    }

    /// Whether the job's answers are billed as thinking output: a model that always thinks
    /// (QwQ, DeepSeek-R1) whatever the job says, else only with `enable_thinking = true` (a model
    /// that thinks by default is sent `enable_thinking: false` when the job does not say).
    pub fn bills_thinking(&self) -> bool {
        crate::model_facts::always_thinks(&self.spec.request.model)
            || self.spec.request.enable_thinking == Some(true)
    }
}

/// `[input] encoding`, `delimiter` and `header`, checked: a known encoding label, one ASCII
/// delimiter character that is not a quote or line break, and CSV-only keys only on CSV.
fn input_options(
    input: &super::spec::InputSpec,
    format: TableFormat,
) -> Result<crate::table::InputOptions, (&'static str, String)> {
    let mut options = crate::table::InputOptions::default();
    if let Some(label) = &input.encoding {
        if matches!(format, TableFormat::Parquet | TableFormat::Excel) {
            return Err((
                "input.encoding",
                format!(
                    "a {} input has no text encoding to name; remove the key",
                    format.display_name()
                ),
            ));
        }
        options.encoding = Some(crate::table::encoding_for_label(label).ok_or_else(|| {
            (
                "input.encoding",
                format!(
                    "`{label}` is not an encoding name; use a WHATWG label such as \"utf-8\", \"gb18030\", \"gbk\", \"utf-16le\", \"big5\" or \"shift_jis\""
                ),
            )
        })?);
    }
    if (input.delimiter.is_some() || input.quote.is_some()) && format != TableFormat::Csv {
        return Err((
            if input.delimiter.is_some() {
                "input.delimiter"
            } else {
                "input.quote"
            },
            "only a CSV or TSV input has a delimiter and quotes; remove the key".to_owned(),
        ));
    }
    if input.header.is_some() && !matches!(format, TableFormat::Csv | TableFormat::Excel) {
        return Err((
            "input.header",
            "only a CSV, TSV or workbook input has a header row; remove the key".to_owned(),
        ));
    }
    if let Some(sheet) = &input.sheet {
        if format != TableFormat::Excel {
            return Err((
                "input.sheet",
                "only a workbook input (.xlsx, .xls, .ods, ...) has sheets; remove the key"
                    .to_owned(),
            ));
        }
        if let crate::table::SheetChoice::Number(number) = sheet
            && *number < 1
        {
            return Err((
                "input.sheet",
                format!(
                    "sheets are numbered from 1 (the first tab); `{number}` names none. Give a number from 1 or the sheet's name"
                ),
            ));
        }
        options.sheet = Some(sheet.clone());
    }
    if let Some(text) = &input.quote {
        options.quote = match text.as_str() {
            "" => None,
            single => Some(one_ascii_byte(single).ok_or_else(|| {
                (
                    "input.quote",
                    format!(
                        "`{text}` cannot quote fields; give one ASCII character (\"\\\"\" or \"'\"), or \"\" when fields are never quoted"
                    ),
                )
            })?),
        };
        if options
            .quote
            .is_some_and(|quote| matches!(quote, b'\n' | b'\r'))
        {
            return Err((
                "input.quote",
                "a line break cannot quote fields; give one ASCII character such as \"'\", or \"\" when fields are never quoted".to_owned(),
            ));
        }
    }
    if let Some(text) = &input.delimiter {
        let delimiter = match text.as_str() {
            "tab" | "\\t" => b'\t',
            single => one_ascii_byte(single).unwrap_or(0),
        };
        if delimiter == 0 || matches!(delimiter, b'"' | b'\n' | b'\r') {
            return Err((
                "input.delimiter",
                format!(
                    "`{text}` cannot separate fields; give one ASCII character other than a quote or line break, such as \";\", \"|\" or \"tab\""
                ),
            ));
        }
        options.delimiter = Some(delimiter);
    }
    if options.delimiter.is_some() && options.delimiter == options.quote {
        return Err((
            "input.quote",
            "the quote and the delimiter are the same character; name different ones".to_owned(),
        ));
    }
    options.header = input.header.unwrap_or(true);
    Ok(options)
}

/// The byte of a one-character ASCII text (a delimiter or quote), `None` otherwise.
fn one_ascii_byte(text: &str) -> Option<u8> {
    match text.as_bytes() {
        [byte] if byte.is_ascii() => Some(*byte),
        _ => None,
    }
}

/// Removes `.` and `name/..` pairs so paths in messages read the way a person would write them.
fn normalize_path(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut normalized = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(
                    normalized.components().next_back(),
                    Some(Component::Normal(_))
                ) {
                    normalized.pop();
                } else {
                    normalized.push("..");
                }
            }
            other => normalized.push(other),
        }
    }
    if normalized.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        normalized
    }
}

/// Reads and checks a job file.
pub fn load_job(job_file: &Path) -> Result<Job, JobError> {
    let bytes = std::fs::read(job_file).map_err(|cause| JobError::Read {
        path: job_file.to_owned(),
        cause,
    })?;
    let text = String::from_utf8(bytes.clone()).map_err(|error| JobError::Parse {
        path: job_file.to_owned(),
        message: format!("the file is not UTF-8 ({error})"),
    })?;
    let spec: JobSpec = toml::from_str(&text).map_err(|error| JobError::Parse {
        path: job_file.to_owned(),
        message: error.to_string().trim_end().to_owned(),
    })?;
    let job_dir = job_file
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."));
    let job_dir = if job_dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        job_dir
    };
    let invalid = |key: &str, message: String| JobError::Invalid {
        path: job_file.to_owned(),
        key: key.to_owned(),
        message,
    };

    let name = match &spec.name {
        Some(name) => name.clone(),
        None => job_file
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| "job".to_owned()),
    };
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(invalid(
            "name",
            format!(
                "`{name}` must be 1 to 64 characters of letters, digits, `-`, `_` or `.` (it names run directories)"
            ),
        ));
    }

    let input_path = normalize_path(&job_dir.join(&spec.input.path));
    // A glob is the job's: wildcard characters in the job file's own directory are literal.
    let input_path = if crate::table::is_glob(&spec.input.path)
        && !input_path.exists()
        && crate::table::is_glob(&job_dir)
    {
        let directory = normalize_path(&job_dir);
        PathBuf::from(glob::Pattern::escape(&directory.to_string_lossy())).join(&spec.input.path)
    } else {
        input_path
    };
    let input_format = match spec.input.format {
        Some(format) => format,
        None => {
            input_format_from_path(&input_path).map_err(|message| invalid("input.path", message))?
        }
    };
    if !input_format.is_text()
        && crate::table::Compression::of_path(&input_path) != crate::table::Compression::None
    {
        return Err(invalid(
            "input.path",
            format!(
                "`{}` is a compressed {} file; {} files compress themselves, so decompress it first",
                spec.input.path.display(),
                input_format.display_name(),
                input_format.display_name()
            ),
        ));
    }
    let output_path = spec
        .output
        .path
        .as_ref()
        .map(|path| normalize_path(&job_dir.join(path)));
    let output_format = match (&spec.output.format, &output_path) {
        (Some(format), _) => Some(*format),
        (None, Some(path)) => Some(TableFormat::output_from_path(path).ok_or_else(|| {
            invalid(
                "output.path",
                format!(
                    "cannot tell the format of `{}` from its extension; use .parquet, .csv or .jsonl, or set `output.format`",
                    path.display()
                ),
            )
        })?),
        (None, None) => None,
    };
    if spec.output.bom && output_format.is_some_and(|format| format != TableFormat::Csv) {
        return Err(invalid(
            "output.bom",
            "a byte-order mark is for a CSV output; set `[output] path` to a .csv file (or `format = \"csv\"`), or remove `bom`".to_owned(),
        ));
    }

    check_request(&spec).map_err(|(key, message)| invalid(&key, message))?;
    check_output_columns(&spec).map_err(|(key, message)| invalid(&key, message))?;
    check_response_format(&spec).map_err(|(key, message)| invalid(&key, message))?;
    check_batch(&spec).map_err(|(key, message)| invalid(&key, message))?;
    super::estimate_spec::check_estimate_keys(&spec)
        .map_err(|(key, message)| invalid(key, message))?;
    let estimate_tokenizer_path = spec
        .estimate
        .tokenizer
        .as_ref()
        .map(|path| normalize_path(&job_dir.join(path)));

    let input_options =
        input_options(&spec.input, input_format).map_err(|(key, message)| invalid(key, message))?;
    let named_store = match &spec.reuse.store {
        None | Some(super::spec::StoreSpec::Enabled(true)) => {
            crate::store_location::JobStoreSetting::UserStore
        }
        Some(super::spec::StoreSpec::Enabled(false)) => crate::store_location::JobStoreSetting::Off,
        Some(super::spec::StoreSpec::Path(path)) => {
            let text = path.to_string_lossy();
            if text.trim().is_empty() {
                return Err(invalid(
                    "reuse.store",
                    "is empty; give a file path, `true` for your answer store or `false` for none"
                        .to_owned(),
                ));
            }
            if ["off", "none", "false", "no", "true", "on", "yes"]
                .contains(&text.trim().to_ascii_lowercase().as_str())
            {
                return Err(invalid(
                    "reuse.store",
                    format!(
                        "is the text \"{text}\"; write `store = false` for no store or `store = true` for your own (without quotes), or a file path"
                    ),
                ));
            }
            // `~/` is the home directory, as in a shell.
            let path = match (text.strip_prefix("~/"), std::env::var_os(crate::env::HOME)) {
                (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
                _ => path.clone(),
            };
            crate::store_location::JobStoreSetting::File(normalize_path(&job_dir.join(path)))
        }
    };
    // Without deduplication every row is its own sample: the store (one answer per request)
    // is not used at all, whatever else names one.
    let answer_store = if spec.reuse.deduplicate {
        named_store
    } else {
        crate::store_location::JobStoreSetting::NeverWithoutDeduplication
    };

    Ok(Job {
        name,
        job_file: job_file.to_owned(),
        job_file_sha256: hex::encode(Sha256::digest(&bytes)),
        input_path,
        input_format,
        input_options,
        output_path,
        output_format,
        estimate_tokenizer_path,
        answer_store,
        spec,
    })
}

/// The format of the input at `path`, from its extension, or for a directory or glob without
/// one, from its parts' extensions.
fn input_format_from_path(path: &Path) -> Result<TableFormat, String> {
    if let Some(format) = TableFormat::from_path(path) {
        return Ok(format);
    }
    let cannot_tell = || {
        format!(
            "cannot tell the format of `{}` from its extension; use .csv, .tsv, .jsonl (each may end in .gz, .zst, .bz2 or .xz), .parquet, .xlsx, .xls or .ods, or set `input.format`",
            path.display()
        )
    };
    if path.is_dir() || (!path.exists() && crate::table::is_glob(path)) {
        let files = crate::table::find_input_files(path)?;
        return crate::table::format_of_parts(&files.parts);
    }
    Err(cannot_tell())
}

/// A job key and what is wrong with it.
type KeyProblem = (String, String);

fn problem(key: &str, message: String) -> KeyProblem {
    (key.to_owned(), message)
}

/// The `[request]` keys: endpoint, prompt, sampling, limits, and what applies to embeddings.
fn check_request(spec: &JobSpec) -> Result<(), KeyProblem> {
    let request = &spec.request;
    if request.endpoint != CHAT_ENDPOINT && request.endpoint != EMBEDDINGS_ENDPOINT {
        return Err(problem(
            "request.endpoint",
            format!(
                "`{}` is not supported; use `{CHAT_ENDPOINT}` or `{EMBEDDINGS_ENDPOINT}`",
                request.endpoint
            ),
        ));
    }
    if request.model.trim().is_empty() {
        return Err(problem("request.model", "must not be empty".to_owned()));
    }
    if request.template.trim().is_empty() {
        return Err(problem(
            "request.template",
            "is empty; every request would be sent (and billed) with an empty prompt. Write the prompt, e.g. `template = \"Classify: {{ text }}\"`".to_owned(),
        ));
    }
    if let Some(system) = &request.system
        && system.trim().is_empty()
    {
        return Err(problem(
            "request.system",
            "is empty; write the system message or remove the key".to_owned(),
        ));
    }
    if let Some(temperature) = request.temperature
        && !(0.0..=2.0).contains(&temperature)
    {
        return Err(problem(
            "request.temperature",
            format!("{temperature} is outside 0 to 2"),
        ));
    }
    if let Some(top_p) = request.top_p
        && !(top_p > 0.0 && top_p <= 1.0)
    {
        return Err(problem(
            "request.top_p",
            format!("{top_p} is outside (0, 1]"),
        ));
    }
    if request.max_tokens == Some(0) {
        return Err(problem(
            "request.max_tokens",
            "must be at least 1".to_owned(),
        ));
    }
    if request.thinking_budget.is_some() && request.enable_thinking != Some(true) {
        return Err(problem(
            "request.thinking_budget",
            "only applies when `enable_thinking = true`; set it or remove the budget".to_owned(),
        ));
    }
    if let Some(stop) = &request.stop
        && stop.len() > 4
    {
        return Err(problem(
            "request.stop",
            format!(
                "{} stop sequences given; at most 4 are accepted",
                stop.len()
            ),
        ));
    }

    check_images(spec)?;
    if request.endpoint == EMBEDDINGS_ENDPOINT {
        for (present, key) in [
            (request.system.is_some(), "request.system"),
            (request.temperature.is_some(), "request.temperature"),
            (request.top_p.is_some(), "request.top_p"),
            (request.max_tokens.is_some(), "request.max_tokens"),
            (request.stop.is_some(), "request.stop"),
            (request.response_format.is_some(), "request.response_format"),
            (request.enable_thinking.is_some(), "request.enable_thinking"),
            (!spec.output.fields.is_empty(), "output.fields"),
        ] {
            if present {
                return Err(problem(
                    key,
                    format!("does not apply to the `{EMBEDDINGS_ENDPOINT}` endpoint; remove it"),
                ));
            }
        }
    } else if request.dimensions.is_some() {
        return Err(problem(
            "request.dimensions",
            format!("applies only to the `{EMBEDDINGS_ENDPOINT}` endpoint; remove it"),
        ));
    }
    Ok(())
}

/// `[request] images`: chat only, a model that reads images, no empty template.
fn check_images(spec: &JobSpec) -> Result<(), KeyProblem> {
    let request = &spec.request;
    if request.images.is_empty() {
        if request.vl_high_resolution_images.is_some() {
            return Err(problem(
                "request.vl_high_resolution_images",
                "applies only to requests with images (`[request] images`); remove it".to_owned(),
            ));
        }
        return Ok(());
    }
    if request.endpoint != CHAT_ENDPOINT {
        return Err(problem(
            "request.images",
            format!("images are sent only to the `{CHAT_ENDPOINT}` endpoint; remove them"),
        ));
    }
    if crate::model_facts::accepts_images(&request.model) == Some(false) {
        return Err(problem(
            "request.model",
            format!(
                "`{}` reads text only, and the job sends images (`[request] images`); use a vision model such as `qwen3-vl-flash`, `qwen3-vl-plus`, `qwen-vl-max`, `qwen-vl-plus` or `qwen3.6-flash`",
                request.model
            ),
        ));
    }
    if let Some(position) = request
        .images
        .iter()
        .position(|image| image.trim().is_empty())
    {
        return Err(problem(
            &format!("request.images[{position}]"),
            "is empty; write a template naming the image, e.g. `\"{{ photo }}\"`, or remove it"
                .to_owned(),
        ));
    }
    Ok(())
}

/// The `[output]` keys that name columns: the result prefix, declared fields, kept columns.
fn check_output_columns(spec: &JobSpec) -> Result<(), KeyProblem> {
    let prefix = &spec.output.result_prefix;
    if prefix.len() > 64
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(problem(
            "output.result_prefix",
            format!(
                "`{prefix}` must be at most 64 letters, digits, `_`, `-` or `.` (it starts column names), e.g. `result_`"
            ),
        ));
    }

    let mut seen_field_names = std::collections::BTreeSet::new();
    for (index, field) in spec.output.fields.iter().enumerate() {
        let key = format!("output.fields[{index}]");
        let valid_name = !field.name.is_empty()
            && field
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !field.name.starts_with(|c: char| c.is_ascii_digit());
        if !valid_name {
            return Err(problem(
                &format!("{key}.name"),
                format!(
                    "`{}` must be letters, digits and `_`, not starting with a digit",
                    field.name
                ),
            ));
        }
        if RESERVED_COLUMN_NAMES.contains(&field.name.as_str()) {
            return Err(problem(
                &format!("{key}.name"),
                format!(
                    "`{}` is a result column dashbatch writes itself; choose another name",
                    field.name
                ),
            ));
        }
        if !seen_field_names.insert(field.name.clone()) {
            return Err(problem(
                &format!("{key}.name"),
                format!("`{}` is declared twice", field.name),
            ));
        }
        match (field.field_type, &field.labels) {
            (OutputFieldType::Label, None) => {
                return Err(problem(
                    &format!("{key}.labels"),
                    "a `label` field needs `labels = [\"...\", ...]`".to_owned(),
                ));
            }
            (OutputFieldType::Label, Some(labels)) if labels.is_empty() => {
                return Err(problem(
                    &format!("{key}.labels"),
                    "must list at least one label".to_owned(),
                ));
            }
            (OutputFieldType::Label, Some(_)) => {}
            (_, Some(_)) => {
                return Err(problem(
                    &format!("{key}.labels"),
                    "only a field of type `label` takes labels".to_owned(),
                ));
            }
            (_, None) => {}
        }
    }
    if let Some(keep) = &spec.output.keep_columns {
        for column in keep {
            let unprefixed = column.strip_prefix(prefix.as_str());
            if let Some(name) = unprefixed
                && (RESERVED_COLUMN_NAMES.contains(&name) || seen_field_names.contains(name))
            {
                return Err(problem(
                    "output.keep_columns",
                    format!(
                        "input column `{column}` would clash with a result column of the same name; drop it from `keep_columns`, rename it in the input, or set `[output] result_prefix = \"result_\"`"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `json_object` answers need the word JSON in a prompt unless fields are declared.
fn check_response_format(spec: &JobSpec) -> Result<(), KeyProblem> {
    let request = &spec.request;
    if request.response_format == Some(ResponseFormat::JsonObject) && spec.output.fields.is_empty()
    {
        let mentions_json = request
            .system
            .iter()
            .chain(std::iter::once(&request.template))
            .any(|text| text.to_ascii_lowercase().contains("json"));
        if !mentions_json {
            return Err(problem(
                "request.response_format",
                "`json_object` needs the word JSON in the system or user prompt (DashScope rejects the request otherwise); mention it, or declare `[[output.fields]]`".to_owned(),
            ));
        }
    }
    Ok(())
}

/// The `[batch]` keys: completion window, limits of at least 1, metadata dashbatch keeps for itself.
fn check_batch(spec: &JobSpec) -> Result<(), KeyProblem> {
    crate::provider::parse_completion_window_hours(&spec.batch.completion_window)
        .map_err(|message| problem("batch.completion_window", message))?;
    for (key, value) in [
        (
            "batch.max_requests_per_file",
            spec.batch.max_requests_per_file,
        ),
        ("batch.max_bytes_per_file", spec.batch.max_bytes_per_file),
        ("batch.max_line_bytes", spec.batch.max_line_bytes),
        (
            "batch.max_poll_interval_seconds",
            spec.batch.max_poll_interval_seconds,
        ),
        ("batch.max_attempts", spec.batch.max_attempts.map(u64::from)),
    ] {
        if value == Some(0) {
            return Err(problem(key, "must be at least 1".to_owned()));
        }
    }
    for key in spec.batch.metadata.keys() {
        if key.starts_with("dashbatch_") || key == "ds_name" || key == "ds_description" {
            return Err(problem(
                "batch.metadata",
                format!("`{key}` is written by dashbatch itself; use another key"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Job, JobError> {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("job.toml");
        std::fs::write(&path, text).unwrap();
        load_job(&path)
    }

    const MINIMAL: &str = r#"
[input]
path = "rows.csv"
[request]
model = "qwen-plus"
template = "Say hi to {{ name }}"
"#;

    #[test]
    fn minimal_job_loads_with_defaults() {
        let job = load_text(MINIMAL).unwrap();
        assert_eq!(job.name, "job");
        assert_eq!(job.input_format, TableFormat::Csv);
        assert_eq!(job.spec.request.endpoint, CHAT_ENDPOINT);
        assert_eq!(job.spec.batch.completion_window, "24h");
    }

    #[test]
    fn unknown_key_is_an_error_that_names_it() {
        let error = load_text(&format!("{MINIMAL}\ntemprature = 1\n")).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("temprature"), "{message}");
    }

    #[test]
    fn label_field_without_labels_is_rejected() {
        let error = load_text(&format!(
            "{MINIMAL}\n[[output.fields]]\nname = \"sentiment\"\ntype = \"label\"\n"
        ))
        .unwrap_err();
        assert!(
            error.to_string().contains("output.fields[0].labels"),
            "{error}"
        );
    }

    #[test]
    fn bad_completion_window_is_rejected() {
        let error =
            load_text(&format!("{MINIMAL}\n[batch]\ncompletion_window = \"2w\"\n")).unwrap_err();
        assert!(
            error.to_string().contains("batch.completion_window"),
            "{error}"
        );
    }

    #[test]
    fn temperature_out_of_range_is_rejected() {
        let text = MINIMAL.replace("model =", "temperature = 3.5\nmodel =");
        let error = load_text(&text).unwrap_err();
        assert!(error.to_string().contains("request.temperature"), "{error}");
    }

    #[test]
    fn cost_keys_are_checked_and_the_tokenizer_path_is_resolved() {
        let job = load_text(&format!(
            "{MINIMAL}\n[batch]\nmax_cost = 12.5\n[estimate]\ntokenizer = \"vocab/qwen.tiktoken\"\nexpected_output_tokens = 40\n"
        ))
        .unwrap();
        assert_eq!(
            job.spec
                .batch
                .max_cost
                .as_ref()
                .map(|amount| amount.0.as_str()),
            Some("12.5")
        );
        assert!(
            job.estimate_tokenizer_path
                .as_ref()
                .is_some_and(|path| path.ends_with("vocab/qwen.tiktoken"))
        );
        for (extra, key, words) in [
            (
                "[batch]\nmax_cost = \"twelve\"\n",
                "batch.max_cost",
                "not an amount of money",
            ),
            (
                "[batch]\nmax_cost = 0\n",
                "batch.max_cost",
                "must be more than 0",
            ),
            (
                "[batch]\nmax_cost = -3\n",
                "batch.max_cost",
                "must be more than 0",
            ),
            (
                "[estimate]\nexpected_output_tokens = 0\n",
                "estimate.expected_output_tokens",
                "at least 1",
            ),
            (
                "[estimate]\ntokeniser = \"x\"\n",
                "tokeniser",
                "unknown field",
            ),
        ] {
            let message = load_text(&format!("{MINIMAL}\n{extra}"))
                .unwrap_err()
                .to_string();
            assert!(
                message.contains(key) && message.contains(words),
                "{extra}: {message}"
            );
        }
    }

    #[test]
    fn an_empty_template_or_system_message_is_rejected() {
        for (text, key) in [
            (
                MINIMAL.replace("Say hi to {{ name }}", ""),
                "request.template",
            ),
            (
                MINIMAL.replace("Say hi to {{ name }}", " \\n "),
                "request.template",
            ),
            (
                MINIMAL.replace("template =", "system = \"  \"\ntemplate ="),
                "request.system",
            ),
        ] {
            let message = load_text(&text).unwrap_err().to_string();
            assert!(
                message.contains(key) && message.contains("empty"),
                "{text}: {message}"
            );
        }
    }

    #[test]
    fn result_prefix_is_checked_and_moves_the_keep_columns_clash() {
        let error =
            load_text(&format!("{MINIMAL}\n[output]\nresult_prefix = \"a b\"\n")).unwrap_err();
        assert!(
            error.to_string().contains("output.result_prefix"),
            "{error}"
        );
        let job = load_text(&format!(
            "{MINIMAL}\n[output]\nresult_prefix = \"r_\"\nkeep_columns = [\"status\"]\n"
        ))
        .unwrap();
        assert_eq!(job.spec.output.result_prefix, "r_");
        let error = load_text(&format!(
            "{MINIMAL}\n[output]\nresult_prefix = \"r_\"\nkeep_columns = [\"r_status\"]\n"
        ))
        .unwrap_err();
        assert!(error.to_string().contains("`r_status`"), "{error}");
        assert!(!load_text(MINIMAL).unwrap().spec.input.skip_empty);
    }

    #[test]
    fn field_named_like_a_result_column_is_rejected() {
        let error = load_text(&format!(
            "{MINIMAL}\n[[output.fields]]\nname = \"status\"\ntype = \"string\"\n"
        ))
        .unwrap_err();
        assert!(error.to_string().contains("result column"), "{error}");
    }

    /// Found with the `job_file` fuzz target: a window too large to count in hours overflowed,
    /// a panic in debug builds; release builds wrapped around and could accept it.
    #[test]
    fn completion_window_too_large_to_count_is_rejected() {
        let reproducer =
            include_str!("../../fuzz/regressions/job_file/completion_window_overflow.toml");
        // 768614336404564652 days wrap around to exactly 32 hours.
        let wraps_to_32_hours =
            format!("{MINIMAL}\n[batch]\ncompletion_window = \"768614336404564652d\"\n");
        for text in [reproducer, wraps_to_32_hours.as_str()] {
            let error = load_text(text).unwrap_err().to_string();
            assert!(error.contains("batch.completion_window"), "{error}");
        }
    }
}
