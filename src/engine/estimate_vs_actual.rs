//! `EstimateVersusActual`: a shard's (or a run's) estimated tokens and cost next to what was billed, for `report.json`, so users can see how good the estimate was.

use serde::Serialize;

use super::totals::TokenTotals;
use crate::estimate::EstimateTotals;
use crate::pricing::Money;

/// Estimated and actual tokens and cost at batch price. Amounts are exact decimal text in the
/// report's currency; `None` where there is no figure (no price, or no bound).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EstimateVersusActual {
    /// Prompt tokens counted before submitting (exact with the Qwen tokenizer).
    pub prompt_tokens_estimated: u64,
    /// Prompt tokens the estimate's upper bound allowed.
    pub prompt_tokens_upper_bound: u64,
    /// Prompt tokens billed.
    pub prompt_tokens_actual: u64,
    pub output_tokens_expected: Option<u64>,
    pub output_tokens_upper_bound: Option<u64>,
    /// Output tokens billed (thinking included).
    pub output_tokens_actual: u64,
    pub cost_expected: Option<String>,
    pub cost_upper_bound: Option<String>,
    /// The billed cost (the same as the shard's or run's `cost`).
    pub cost_actual: Option<String>,
    /// Actual cost as a percentage of the expected cost, rounded to 0.1 (display only).
    pub actual_percent_of_expected: Option<f64>,
    /// Whether the actual cost stayed within the upper bound.
    pub within_upper_bound: Option<bool>,
}

impl EstimateVersusActual {
    /// Puts `estimate` next to the billed `tokens` and `actual` cost.
    #[must_use]
    pub fn new(
        estimate: &EstimateTotals,
        tokens: &TokenTotals,
        actual: Option<Money>,
    ) -> EstimateVersusActual {
        let expected = estimate.expected_cost.map(|cost| cost.batch);
        let upper = estimate.upper_bound_cost.map(|cost| cost.batch);
        let actual_percent_of_expected = match (actual, expected) {
            (Some(actual), Some(expected)) if !expected.is_zero() => {
                let ratio = actual.femto_units() as f64 / expected.femto_units() as f64;
                Some((ratio * 1000.0).round() / 10.0)
            }
            _ => None,
        };
        EstimateVersusActual {
            prompt_tokens_estimated: estimate.prompt_tokens,
            prompt_tokens_upper_bound: estimate.prompt_tokens_upper_bound,
            prompt_tokens_actual: tokens.prompt_tokens,
            output_tokens_expected: estimate.expected_output_tokens,
            output_tokens_upper_bound: estimate.max_output_tokens,
            output_tokens_actual: tokens.completion_tokens,
            cost_expected: expected.map(|money| money.to_decimal_string()),
            cost_upper_bound: upper.map(|money| money.to_decimal_string()),
            cost_actual: actual.map(|money| money.to_decimal_string()),
            actual_percent_of_expected,
            within_upper_bound: actual.zip(upper).map(|(actual, upper)| actual <= upper),
        }
    }

    /// One line for the run summary: `expected 0.05, upper bound 0.08, actual 0.04 CNY (80.1% of expected)`.
    #[must_use]
    pub fn summary_line(&self, currency: &str) -> String {
        let amount = |value: &Option<String>| value.clone().unwrap_or_else(|| "unknown".to_owned());
        format!(
            "expected {}, upper bound {}, actual {} {currency}{}",
            amount(&self.cost_expected),
            amount(&self.cost_upper_bound),
            amount(&self.cost_actual),
            self.actual_percent_of_expected
                .map(|percent| format!(" ({percent}% of expected)"))
                .unwrap_or_default()
        )
    }
}

/// Fills the report's estimate-versus-actual figures (per planned shard and for the run), its
/// tokenizer line and its budget section from the run's estimates.
///
/// # Errors
/// When a shard or result file cannot be read.
pub fn attach_estimates(
    report: &mut super::RunReport,
    budget: &mut super::RunBudget,
    shards: &[crate::ledger::ShardRecord],
    run_directory: &super::RunDirectory,
    ledger: &crate::ledger::Ledger,
) -> anyhow::Result<()> {
    report.tokens_counted_with = budget.tokens_counted_with();
    report.budget = budget.report(ledger, run_directory)?;
    let currency = report.cost_money.map(|money| money.currency());
    let mut run_total: Option<EstimateTotals> = None;
    for shard_report in &mut report.shards {
        let Some(record) = shards
            .iter()
            .find(|shard| shard.shard_index == shard_report.shard_index)
        else {
            continue;
        };
        let Some(estimate) = budget.shard_estimate(run_directory, record)? else {
            return Ok(());
        };
        let actual = shard_report
            .cost
            .as_deref()
            .zip(currency)
            .and_then(|(text, currency)| Money::parse_decimal(text, currency).ok());
        shard_report.estimate_vs_actual = Some(EstimateVersusActual::new(
            &estimate.totals,
            &shard_report.tokens,
            actual,
        ));
        match run_total.as_mut() {
            Some(total) => total.add_totals(&estimate.totals),
            None => run_total = Some(estimate.totals.clone()),
        }
    }
    if let Some(total) = run_total {
        report.estimate_vs_actual = Some(EstimateVersusActual::new(
            &total,
            &report.tokens,
            report.cost_money,
        ));
    }
    budget.save_estimates(ledger)?;
    Ok(())
}
