//! `dashbatch estimate JOB.toml`: the whole planning pass (every row read and rendered, shards cut within the provider's limits, in a scratch directory), then every request's tokens and cost, per shard and in total. No network.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::assumptions::estimate_assumptions;
use super::estimator_setup::{load_price_table, request_estimator_for_job, vocabulary_for_job};
use super::shard_estimate::{EstimateTotals, ShardEstimate, estimate_shard_file};
use crate::engine::{ShardDurability, plan_scratch_shards};
use crate::job::load_job;
use crate::ledger::Ledger;
use crate::pricing::{PriceMode, PriceTier};
use crate::provider::{ProviderKind, ProviderProfile};

/// What `dashbatch estimate` is asked.
#[derive(Debug, Clone)]
pub struct EstimateOptions {
    /// Whose limits cut the shards.
    pub provider: ProviderKind,
    /// `--prices FILE` (DASHBATCH_PRICES otherwise).
    pub prices_file: Option<PathBuf>,
    /// `--tokenizer FILE` (DASHBATCH_TOKENIZER, then `[estimate] tokenizer` otherwise).
    pub tokenizer: Option<PathBuf>,
    /// `--base-url`: whose answers in the answer store count.
    pub base_url: Option<String>,
}

/// One tier's prices as shown with an estimate, exact decimal text per 1M tokens.
#[derive(Debug, Clone, Serialize)]
pub struct TierPrices {
    pub from_input_tokens: u64,
    pub up_to_input_tokens: Option<u64>,
    pub batch_input: String,
    pub batch_output: String,
    pub batch_thinking_output: String,
    pub realtime_input: String,
    pub realtime_output: String,
    pub realtime_thinking_output: String,
}

impl TierPrices {
    fn of(tier: &PriceTier) -> TierPrices {
        let batch = tier.per_million(PriceMode::Batch);
        let realtime = tier.per_million(PriceMode::Realtime);
        TierPrices {
            from_input_tokens: tier.from_input_tokens(),
            up_to_input_tokens: tier.up_to_input_tokens(),
            batch_input: batch.input.to_decimal_string(),
            batch_output: batch.output.to_decimal_string(),
            batch_thinking_output: batch.thinking_output.to_decimal_string(),
            realtime_input: realtime.input.to_decimal_string(),
            realtime_output: realtime.output.to_decimal_string(),
            realtime_thinking_output: realtime.thinking_output.to_decimal_string(),
        }
    }
}

/// The estimate of a whole job.
#[derive(Debug, Clone, Serialize)]
pub struct JobEstimate {
    pub job: String,
    pub job_file: String,
    pub input: String,
    pub provider: String,
    pub model: String,
    /// The model's currency; every amount is in it.
    pub currency: String,
    /// Requests that would be sent (what the estimate counts).
    pub rows: u64,
    /// Rows the answer store would answer, and rows repeating another row's request: not sent,
    /// not counted.
    pub rows_from_store: u64,
    pub rows_deduplicated: u64,
    /// Why the user's answer store could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_warning: Option<String>,
    pub tokens_counted_with: String,
    pub exact_token_counts: bool,
    pub thinking_requests: u64,
    pub price_table_as_of: String,
    pub price_tiers: Vec<TierPrices>,
    pub shards: Vec<ShardEstimate>,
    pub total: EstimateTotals,
    pub assumptions: Vec<String>,
}

/// Estimates the job at `job_file`. Reads the input once (streamed), writes shard files to a
/// scratch directory that is removed afterwards, and makes no network call.
///
/// # Errors
/// Everything `dashbatch validate` reports (job file, input rows, limits), an unknown model price,
/// or an unusable tokenizer vocabulary.
pub fn estimate_job(job_file: &Path, options: &EstimateOptions) -> anyhow::Result<JobEstimate> {
    let job = load_job(job_file)?;
    let profile = ProviderProfile::for_kind(options.provider);
    profile.check_job(&job)?;
    let prices = load_price_table(options.prices_file.as_deref(), options.provider)?;
    let vocabulary = vocabulary_for_job(options.tokenizer.as_deref(), None, &job);
    let estimator = request_estimator_for_job(&job, &prices, vocabulary.as_ref())?;
    // The same checks of the model as `validate` and `run` (endpoint, output limit).
    crate::model_check::check_model(&job, options.provider, false, &prices)?;

    let scratch = crate::scratch_directory::scratch_directory()?;
    let ledger = Ledger::open_path(&scratch.path().join("estimate.sqlite"))?;
    let (reuse, store_preview) =
        crate::engine::previewed_reuse(&job, options.provider, options.base_url.as_deref())?;
    let plan = plan_scratch_shards(
        &job,
        &profile,
        scratch.path(),
        // Read back below to count their tokens.
        ShardDurability::Scratch,
        &ledger,
        &reuse,
        0,
    )?;

    let mut total = EstimateTotals::empty(&estimator);
    let mut shards = Vec::with_capacity(plan.shards.len());
    let mut thinking_requests = 0u64;
    for shard in &plan.shards {
        // Counting a big job takes seconds: a signal stops it between shards.
        crate::interrupt::check()?;
        let totals = estimate_shard_file(
            &scratch.path().join(&shard.file_name),
            &estimator,
            |_, request| thinking_requests += u64::from(request.thinking),
        )?;
        total.add_totals(&totals);
        shards.push(ShardEstimate {
            shard_index: shard.shard_index,
            first_row: shard.first_row,
            attempt: shard.attempt,
            totals,
        });
    }
    let price = estimator.price();
    Ok(JobEstimate {
        job: job.name.clone(),
        job_file: job.job_file.display().to_string(),
        input: job.input_path.display().to_string(),
        provider: options.provider.to_string(),
        model: job.spec.request.model.clone(),
        currency: price.currency().code().to_owned(),
        rows: plan.row_count,
        rows_from_store: plan.rows_from_store,
        rows_deduplicated: plan.rows_deduplicated,
        store_warning: store_preview.warning,
        tokens_counted_with: estimator.counter().description(),
        exact_token_counts: estimator.counter().is_exact(),
        thinking_requests,
        price_table_as_of: prices.as_of().to_owned(),
        price_tiers: price.tiers().iter().map(TierPrices::of).collect(),
        shards,
        total,
        assumptions: estimate_assumptions(&job, &estimator, options.provider, thinking_requests),
    })
}
