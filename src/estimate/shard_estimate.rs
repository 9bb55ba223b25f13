//! `ShardEstimate`: the estimate of every request of one shard file (or of a whole job), summed exactly; unknown as soon as one request is.

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Serialize;

use super::cost_at_both_prices::CostAtBothPrices;
use super::request_estimate::{RequestEstimate, RequestEstimator};

/// Sums of request estimates. `None` fields stay `None` once any request had no figure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EstimateTotals {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub prompt_tokens_upper_bound: u64,
    /// Images sent, and the prompt tokens they cost (counted in `prompt_tokens`).
    pub images: u64,
    pub image_tokens: u64,
    pub expected_output_tokens: Option<u64>,
    pub max_output_tokens: Option<u64>,
    pub expected_cost: Option<CostAtBothPrices>,
    pub upper_bound_cost: Option<CostAtBothPrices>,
}

impl EstimateTotals {
    /// Nothing yet: zero requests, zero tokens, zero cost in the estimator's currency.
    #[must_use]
    pub fn empty(estimator: &RequestEstimator) -> EstimateTotals {
        let zero = CostAtBothPrices {
            batch: crate::pricing::Money::zero(estimator.price().currency()),
            realtime: crate::pricing::Money::zero(estimator.price().currency()),
        };
        EstimateTotals {
            requests: 0,
            prompt_tokens: 0,
            prompt_tokens_upper_bound: 0,
            images: 0,
            image_tokens: 0,
            expected_output_tokens: Some(0),
            max_output_tokens: Some(0),
            expected_cost: Some(zero),
            upper_bound_cost: Some(zero),
        }
    }

    /// Adds one request's estimate.
    pub fn add_request(&mut self, estimate: &RequestEstimate) {
        self.requests += 1;
        self.prompt_tokens = self.prompt_tokens.saturating_add(estimate.prompt_tokens);
        self.prompt_tokens_upper_bound = self
            .prompt_tokens_upper_bound
            .saturating_add(estimate.prompt_tokens_upper_bound);
        self.images += estimate.images;
        self.image_tokens = self.image_tokens.saturating_add(estimate.image_tokens);
        self.expected_output_tokens =
            add_tokens(self.expected_output_tokens, estimate.expected_output_tokens);
        self.max_output_tokens = add_tokens(self.max_output_tokens, estimate.max_output_tokens);
        self.expected_cost = add_costs(self.expected_cost, estimate.expected_cost);
        self.upper_bound_cost = add_costs(self.upper_bound_cost, estimate.upper_bound_cost);
    }

    /// Adds another total (of another shard).
    pub fn add_totals(&mut self, other: &EstimateTotals) {
        self.requests += other.requests;
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.prompt_tokens_upper_bound = self
            .prompt_tokens_upper_bound
            .saturating_add(other.prompt_tokens_upper_bound);
        self.images += other.images;
        self.image_tokens = self.image_tokens.saturating_add(other.image_tokens);
        self.expected_output_tokens =
            add_tokens(self.expected_output_tokens, other.expected_output_tokens);
        self.max_output_tokens = add_tokens(self.max_output_tokens, other.max_output_tokens);
        self.expected_cost = add_costs(self.expected_cost, other.expected_cost);
        self.upper_bound_cost = add_costs(self.upper_bound_cost, other.upper_bound_cost);
    }
}

/// A shard's estimate as kept in the run's ledger, so a join (or a join run again) reads it
/// instead of counting every request's tokens again. Amounts are exact decimal text.
#[derive(Debug, Serialize, serde::Deserialize)]
struct StoredShardEstimate {
    shard_index: u64,
    first_row: u64,
    attempt: u32,
    requests: u64,
    prompt_tokens: u64,
    prompt_tokens_upper_bound: u64,
    images: u64,
    image_tokens: u64,
    expected_output_tokens: Option<u64>,
    max_output_tokens: Option<u64>,
    /// (batch, realtime)
    expected_cost: Option<(String, String)>,
    upper_bound_cost: Option<(String, String)>,
}

impl ShardEstimate {
    /// The estimate as JSON for the ledger.
    #[must_use]
    pub fn to_stored(&self) -> String {
        let cost = |cost: Option<CostAtBothPrices>| {
            cost.map(|cost| {
                (
                    cost.batch.to_decimal_string(),
                    cost.realtime.to_decimal_string(),
                )
            })
        };
        let totals = &self.totals;
        serde_json::to_string(&StoredShardEstimate {
            shard_index: self.shard_index,
            first_row: self.first_row,
            attempt: self.attempt,
            requests: totals.requests,
            prompt_tokens: totals.prompt_tokens,
            prompt_tokens_upper_bound: totals.prompt_tokens_upper_bound,
            images: totals.images,
            image_tokens: totals.image_tokens,
            expected_output_tokens: totals.expected_output_tokens,
            max_output_tokens: totals.max_output_tokens,
            expected_cost: cost(totals.expected_cost),
            upper_bound_cost: cost(totals.upper_bound_cost),
        })
        .expect("an estimate serialises")
    }

    /// An estimate [`Self::to_stored`] wrote, its amounts in `currency`; `None` when the text
    /// is not one (then the estimate is counted again).
    #[must_use]
    pub fn from_stored(text: &str, currency: crate::pricing::Currency) -> Option<ShardEstimate> {
        let stored: StoredShardEstimate = serde_json::from_str(text).ok()?;
        let cost = |cost: Option<(String, String)>| -> Option<Option<CostAtBothPrices>> {
            match cost {
                None => Some(None),
                Some((batch, realtime)) => Some(Some(CostAtBothPrices {
                    batch: crate::pricing::Money::parse_decimal(&batch, currency).ok()?,
                    realtime: crate::pricing::Money::parse_decimal(&realtime, currency).ok()?,
                })),
            }
        };
        Some(ShardEstimate {
            shard_index: stored.shard_index,
            first_row: stored.first_row,
            attempt: stored.attempt,
            totals: EstimateTotals {
                requests: stored.requests,
                prompt_tokens: stored.prompt_tokens,
                prompt_tokens_upper_bound: stored.prompt_tokens_upper_bound,
                images: stored.images,
                image_tokens: stored.image_tokens,
                expected_output_tokens: stored.expected_output_tokens,
                max_output_tokens: stored.max_output_tokens,
                expected_cost: cost(stored.expected_cost)?,
                upper_bound_cost: cost(stored.upper_bound_cost)?,
            },
        })
    }
}

fn add_tokens(total: Option<u64>, more: Option<u64>) -> Option<u64> {
    total
        .zip(more)
        .map(|(total, more)| total.saturating_add(more))
}

fn add_costs(
    total: Option<CostAtBothPrices>,
    more: Option<CostAtBothPrices>,
) -> Option<CostAtBothPrices> {
    // One currency per job and sums far below the overflow limit, so `ok()` never drops a figure.
    total
        .zip(more)
        .and_then(|(total, more)| total.checked_add(more).ok())
}

/// The estimate of one shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardEstimate {
    pub shard_index: u64,
    pub first_row: u64,
    /// 1 for planned shards; retry shards count up.
    pub attempt: u32,
    #[serde(flatten)]
    pub totals: EstimateTotals,
}

/// Estimates every request line of the shard file at `path`, calling `visit` with each line's
/// custom_id and estimate (for per-row budgets), and returns the totals.
///
/// # Errors
/// When the file cannot be read or a line is not a request line; the error names file and line.
pub fn estimate_shard_file(
    path: &Path,
    estimator: &RequestEstimator,
    mut visit: impl FnMut(&str, &RequestEstimate),
) -> anyhow::Result<EstimateTotals> {
    let file = std::fs::File::open(path)
        .map_err(|error| anyhow::anyhow!("cannot read shard file `{}`: {error}", path.display()))?;
    let mut totals = EstimateTotals::empty(estimator);
    for (index, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (custom_id, estimate) = estimator.estimate_line(&line).map_err(|error| {
            anyhow::anyhow!(
                "shard file `{}`, line {}: {error}",
                path.display(),
                index + 1
            )
        })?;
        visit(&custom_id, &estimate);
        totals.add_request(&estimate);
    }
    Ok(totals)
}
