//! The job's model checked against the provider before anything is planned or uploaded: a model
//! the provider's batch service does not know, an embeddings model on the chat endpoint (or the
//! reverse), or a `max_tokens` above the model's known output limit would all be paid for or
//! refused only after upload. Pure: no I/O.
//!
//! DashScope has no API that lists batch-capable models (reference `dashscope-batch-api.md` §4.4,
//! "an unsupported model shows up as `model_not_found` after creation"), so the known names are
//! the price table's (built-in plus the user's price file) and the batch model lists of §4.4.
//! A custom `--base-url` serves models of its own: only the endpoint pairing is left unchecked
//! there too, since its model names follow no convention.

use crate::job::{Job, JobError};
use crate::pricing::PriceTable;
use crate::provider::ProviderKind;

/// Models DashScope's Batch API accepts, from the supported-model lists of the reference
/// (`dashscope-batch-api.md` §4.4, Beijing A1/A3 and Singapore A1/A2/A3, checked 2026-11). The
/// simulator accepts the same names (besides its own `sim-...` models).
pub const DASHSCOPE_BATCH_MODELS: &[&str] = &[
    "qwen3.8-max",
    "qwen3.7-max",
    "qwen3-max",
    "qwen-max",
    "qwen-max-latest",
    "qwen3.7-plus",
    "qwen3.6-plus",
    "qwen3.5-plus",
    "qwen-plus",
    "qwen-plus-latest",
    "qwen3.8-flash",
    "qwen3.7-flash",
    "qwen3.6-flash",
    "qwen3.5-flash",
    "qwen-flash",
    "qwen-turbo",
    "qwen-long",
    "qwen-long-latest",
    "qwq-plus",
    "deepseek-r1",
    "deepseek-v3.2",
    "deepseek-v3",
    "qwen3-vl-plus",
    "qwen3-vl-flash",
    "qwen-vl-max",
    "qwen-vl-plus",
    "qwen-vl-ocr",
    "qwen-vl-ocr-latest",
    "qwen3.5-omni-plus",
    "qwen3.5-omni-flash",
    "text-embedding-v1",
    "text-embedding-v2",
    "text-embedding-v3",
    "text-embedding-v4",
    "qwen3.7-text-embedding",
    "qwen3.7-text-embedding-flash",
    "batch-test-model",
];

/// Whether a model name is an embeddings model (every provider we know names them so).
fn is_embeddings_model(model: &str) -> bool {
    model.to_ascii_lowercase().contains("embedding")
}

/// Checks the job's model for `provider`. `custom_base_url` is true with `--base-url`.
pub fn check_model(
    job: &Job,
    provider: ProviderKind,
    custom_base_url: bool,
    prices: &PriceTable,
) -> Result<(), JobError> {
    let request = &job.spec.request;
    let model = request.model.as_str();
    let invalid = |key: &str, message: String| JobError::Invalid {
        path: job.job_file.clone(),
        key: key.to_owned(),
        message,
    };
    // A price in another currency than the provider bills in is wrong whatever the base URL.
    let price = prices
        .price_in_provider_currency(model)
        .map_err(|error| invalid("request.model", error.to_string()))?;
    if custom_base_url {
        return Ok(());
    }
    if job.is_embeddings() && !is_embeddings_model(model) {
        return Err(invalid(
            "request.model",
            format!(
                "`{model}` is not an embeddings model, but `request.endpoint` is `{}`; use an embeddings model (for example `text-embedding-v4`) or the chat endpoint",
                request.endpoint
            ),
        ));
    }
    if !job.is_embeddings() && is_embeddings_model(model) {
        return Err(invalid(
            "request.model",
            format!(
                "`{model}` is an embeddings model, but `request.endpoint` is `{}`; set `endpoint = \"/v1/embeddings\"`",
                request.endpoint
            ),
        ));
    }
    if matches!(
        provider,
        ProviderKind::Dashscope | ProviderKind::DashscopeIntl
    ) && price.is_none()
        && !DASHSCOPE_BATCH_MODELS.contains(&model)
    {
        let nearest = nearest_known_model(model, prices);
        return Err(invalid(
            "request.model",
            format!(
                "`{model}` is not a model DashScope's Batch API is known to accept{}. Check the spelling; if it is a new model, add it to a prices file (`--prices FILE`, see README) so dashbatch knows it and its price",
                nearest
                    .map(|name| format!(" (did you mean `{name}`?)"))
                    .unwrap_or_default()
            ),
        ));
    }
    if let (Some(limit), Some(asked)) = (
        price.and_then(|price| price.max_output_tokens()),
        request.max_tokens,
    ) && asked > limit
    {
        return Err(invalid(
            "request.max_tokens",
            format!(
                "{asked} is more than the {limit} output tokens `{model}` can produce; set at most {limit}"
            ),
        ));
    }
    Ok(())
}

/// The known model name closest to `model` by edit distance, when it is close enough to be a typo.
fn nearest_known_model(model: &str, prices: &PriceTable) -> Option<String> {
    let priced: Vec<String> = prices
        .models()
        .map(|price| price.name().to_owned())
        .collect();
    DASHSCOPE_BATCH_MODELS
        .iter()
        .map(|name| (*name).to_owned())
        .chain(priced)
        .map(|name| (edit_distance(model, &name), name))
        .filter(|(distance, name)| *distance <= 3.max(name.len() / 4))
        .min()
        .map(|(_, name)| name)
}

/// Levenshtein distance over characters.
pub(crate) fn edit_distance(first: &str, second: &str) -> usize {
    let second: Vec<char> = second.chars().collect();
    let mut previous: Vec<usize> = (0..=second.len()).collect();
    for (row, first_char) in first.chars().enumerate() {
        let mut current = vec![row + 1; second.len() + 1];
        for (column, second_char) in second.iter().enumerate() {
            let substitution = previous[column] + usize::from(first_char != *second_char);
            current[column + 1] = substitution
                .min(previous[column + 1] + 1)
                .min(current[column] + 1);
        }
        previous = current;
    }
    previous[second.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(model: &str, endpoint: &str, max_tokens: Option<u64>) -> (tempfile::TempDir, Job) {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join("in.csv"), "id,text\n1,a\n").unwrap();
        let path = directory.path().join("job.toml");
        let max_tokens = max_tokens
            .map(|tokens| format!("max_tokens = {tokens}\n"))
            .unwrap_or_default();
        let template = "template = \"{{ text }}\"";
        std::fs::write(
            &path,
            format!(
                "[input]\npath = \"in.csv\"\nid_column = \"id\"\n[request]\nmodel = \"{model}\"\nendpoint = \"{endpoint}\"\n{template}\n{max_tokens}"
            ),
        )
        .unwrap();
        let loaded = crate::job::load_job(&path);
        (directory, loaded.unwrap())
    }

    #[test]
    fn a_misspelt_model_is_refused_with_a_suggestion() {
        let (_directory, job) = job("qwen-plsu", "/v1/chat/completions", None);
        let error = check_model(
            &job,
            ProviderKind::Dashscope,
            false,
            &PriceTable::for_provider(ProviderKind::Dashscope),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("`qwen-plsu`"), "{error}");
        assert!(error.contains("did you mean `qwen-plus`"), "{error}");
        // A custom base URL serves its own models.
        check_model(
            &job,
            ProviderKind::Dashscope,
            true,
            &PriceTable::for_provider(ProviderKind::Dashscope),
        )
        .unwrap();
    }

    #[test]
    fn a_listed_batch_model_without_a_price_is_accepted() {
        let (_directory, job) = job("qwen3.5-flash", "/v1/chat/completions", None);
        check_model(
            &job,
            ProviderKind::Dashscope,
            false,
            &PriceTable::for_provider(ProviderKind::Dashscope),
        )
        .unwrap();
    }

    #[test]
    fn a_chat_model_on_the_embeddings_endpoint_is_refused() {
        let (_directory, job) = job("qwen-plus", "/v1/embeddings", None);
        let error = check_model(
            &job,
            ProviderKind::Sim,
            false,
            &PriceTable::for_provider(ProviderKind::Dashscope),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("not an embeddings model"), "{error}");
    }

    #[test]
    fn max_tokens_above_a_known_limit_is_refused() {
        let (_directory, job) = job("sim-limits", "/v1/chat/completions", Some(100_000));
        let prices = PriceTable::for_provider(ProviderKind::Dashscope)
            .with_override_toml(
                "[models.sim-limits]\ncurrency = \"CNY\"\ninput = 1\noutput = 1\nmax_output_tokens = 8192\n",
                std::path::Path::new("prices.toml"),
            )
            .unwrap();
        let error = check_model(&job, ProviderKind::Sim, false, &prices)
            .unwrap_err()
            .to_string();
        assert!(error.contains("8192"), "{error}");
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("qwen-plsu", "qwen-plus"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
