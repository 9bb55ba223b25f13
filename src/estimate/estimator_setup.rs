//! Building a job's `RequestEstimator`: its model's price (an unknown model is an error, saying how to price it) and its token counter (the vocabulary from flag, environment or job file, else the heuristic).

use std::path::{Path, PathBuf};

use super::request_estimate::RequestEstimator;
use crate::job::Job;
use crate::pricing::{PriceOrigin, PriceTable, PriceTableError};
use crate::provider::ProviderKind;
use crate::settings::Setting;
use crate::tokens::{TokenizerChoiceError, choose_vocabulary, load_token_counter};

/// Why a job cannot be estimated.
#[derive(Debug, thiserror::Error)]
pub enum EstimateSetupError {
    #[error(transparent)]
    Prices(#[from] PriceTableError),
    #[error(
        "job file `{job_file}`, key `request.model`: there is no price for model `{model}` in {where_looked}; \
         add `[models.{}]` with `currency`, `input` and `output` (realtime prices per 1M tokens) to a price file \
         and pass it with `--prices FILE` (or DASHBATCH_PRICES). The schema is in docs/PRICES.md; \
         `dashbatch prices` lists the models priced for each provider",
        crate::pricing::toml_key(model)
    )]
    UnknownModel {
        job_file: PathBuf,
        model: String,
        where_looked: String,
    },
    #[error(transparent)]
    Tokenizer(#[from] TokenizerChoiceError),
}

/// The built-in price table of `provider` with the price file from `flag`, else from
/// DASHBATCH_PRICES, on top.
///
/// # Errors
/// When the price file cannot be read or is invalid (the error names file, line and key).
pub fn load_price_table(
    flag: Option<&Path>,
    provider: ProviderKind,
) -> Result<PriceTable, PriceTableError> {
    PriceTable::load_chosen(flag, provider).map(|(table, _)| table)
}

/// The vocabulary path a job's estimates use: `flag`, else DASHBATCH_TOKENIZER, else the job's
/// `[estimate] tokenizer`.
#[must_use]
pub fn vocabulary_for_job(
    flag: Option<&Path>,
    run_ledger: Option<PathBuf>,
    job: &Job,
) -> Option<Setting<PathBuf>> {
    choose_vocabulary(flag, run_ledger, job.estimate_tokenizer_path.as_deref())
}

/// The estimator of `job`'s requests with `prices`, counting tokens with the chosen vocabulary.
///
/// # Errors
/// When the model has no price, or a chosen vocabulary cannot be used.
pub fn request_estimator_for_job(
    job: &Job,
    prices: &PriceTable,
    vocabulary: Option<&Setting<PathBuf>>,
) -> Result<RequestEstimator, EstimateSetupError> {
    let model = &job.spec.request.model;
    let price = prices.price_in_provider_currency(model)?.ok_or_else(|| {
        let override_files: Vec<String> = prices
            .models()
            .filter_map(|price| match price.origin() {
                PriceOrigin::OverrideFile(path) => Some(format!("`{}`", path.display())),
                PriceOrigin::BuiltIn(_) => None,
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let where_looked = if override_files.is_empty() {
            format!(
                "the built-in {} price table (as of {})",
                prices.builtin_table(),
                prices.as_of()
            )
        } else {
            format!(
                "the built-in {} price table (as of {}) or {}",
                prices.builtin_table(),
                prices.as_of(),
                override_files.join(", ")
            )
        };
        EstimateSetupError::UnknownModel {
            job_file: job.job_file.clone(),
            model: model.clone(),
            where_looked,
        }
    })?;
    let counter = load_token_counter(model, vocabulary)?;
    Ok(RequestEstimator::new(
        counter,
        price.clone(),
        job.spec.estimate.expected_output_tokens,
    ))
}
