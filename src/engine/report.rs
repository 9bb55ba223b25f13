//! The run report: rows by status, tokens, cost at batch price, what realtime would have cost,
//! and the saving. Written as `report.json` in the run directory and printed as a summary.

use std::collections::BTreeMap;

use serde::Serialize;

use super::budget::BudgetReport;
use super::estimate_vs_actual::EstimateVersusActual;
use super::totals::TokenTotals;
use crate::pricing::Money;
use crate::row_result::RowStatus;

#[derive(Debug, Clone, Serialize)]
pub struct ShardReport {
    pub shard_index: u64,
    pub first_row: u64,
    pub row_count: u64,
    pub batch_id: Option<String>,
    pub batch_status: Option<String>,
    pub rows_by_status: BTreeMap<String, u64>,
    pub tokens: TokenTotals,
    /// Exact decimal text in `currency`.
    pub cost: Option<String>,
    /// Billed requests by the price tier they were billed at (prompt lengths of the tier).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub billed_requests_by_price_tier: BTreeMap<String, u64>,
    /// The shard's estimate next to what it was billed (its rows once each, retries included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate_vs_actual: Option<EstimateVersusActual>,
}

/// Which price entry a run was priced with, and where its figures come from.
#[derive(Debug, Clone, Serialize)]
pub struct PriceEntryReport {
    /// The entry's model name (the job's model may be one of its aliases).
    pub model: String,
    /// The provider's built-in table, such as `DashScope Beijing (CNY)`.
    pub table: String,
    /// The region the entry's file names.
    pub region: Option<String>,
    pub currency: String,
    /// When the entry's file was checked.
    pub as_of: Option<String>,
    /// The file the entry was read from.
    pub from: String,
    pub source: Option<String>,
    pub evidence: Option<String>,
    pub batch_discount_percent: u8,
}

impl PriceEntryReport {
    pub fn new(table: &crate::pricing::PriceTable, price: &crate::pricing::ModelPrice) -> Self {
        PriceEntryReport {
            model: price.name().to_owned(),
            table: table.builtin_table().to_string(),
            region: price.region().map(str::to_owned),
            currency: price.currency().code().to_owned(),
            as_of: price.as_of().map(str::to_owned),
            from: price.origin().to_string(),
            source: price.source().map(str::to_owned),
            evidence: price.evidence().map(str::to_owned),
            batch_discount_percent: price.batch_discount_percent(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub job: String,
    pub run_id: String,
    pub provider: String,
    pub model: String,
    pub input: String,
    pub output: String,
    pub rows: u64,
    pub rows_by_status: BTreeMap<String, u64>,
    /// Answered rows whose usage the provider did not give: billed, cost unknown, not in `cost`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rows_without_usage: u64,
    /// Texts cut to what an Excel cell holds (32,767 characters) in an `.xlsx` output; the run
    /// directory's results keep them whole (`dashbatch resume --output other.parquet`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub output_texts_cut: u64,
    pub tokens: TokenTotals,
    /// `None` when the model has no known price.
    pub currency: Option<String>,
    /// Exact decimal text: what the batch run costs (billed requests only, batch price).
    pub cost: Option<String>,
    /// What the same requests would have cost at realtime price.
    pub realtime_cost: Option<String>,
    pub saving: Option<String>,
    pub price_table_as_of: String,
    /// The price entry every shard was priced with; `None` when the model has no known price.
    pub price: Option<PriceEntryReport>,
    /// Result files the provider would no longer serve. Their completed requests were billed
    /// even though their answers are lost; the rows say `results_unavailable`.
    pub lost_results: Vec<LostResults>,
    /// How the estimates counted tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_counted_with: Option<String>,
    /// The whole run's estimate next to what it was billed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate_vs_actual: Option<EstimateVersusActual>,
    /// The budget cap, when the run has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetReport>,
    /// Answers reused instead of paid for again.
    pub reuse: ReuseReport,
    pub shards: Vec<ShardReport>,
    #[serde(skip)]
    pub cost_money: Option<Money>,
    /// The run directory, for the commands the summary suggests.
    #[serde(skip)]
    pub run_directory: String,
}

/// What the answer store and deduplication did for a run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReuseReport {
    /// The answer store the run used; `None` without one.
    pub answer_store: Option<String>,
    /// Rows with a request of their own in the run's batches.
    pub requests_sent: u64,
    /// Rows answered from the store: not sent, cost 0 in this run.
    pub rows_from_store: u64,
    /// Rows whose request an earlier row of the run made: not sent, cost 0.
    pub rows_deduplicated: u64,
    /// Rows whose request another running run had in flight: its answer, cost 0 here.
    pub rows_adopted: u64,
    /// What those rows would have cost sent again, at batch price (exact decimal text); `None`
    /// when the model has no known price.
    pub saved: Option<String>,
}

impl ReuseReport {
    /// The summary's line, when anything was reused.
    pub fn summary_line(&self, currency: Option<&str>) -> Option<String> {
        if self.rows_from_store + self.rows_deduplicated + self.rows_adopted == 0 {
            return None;
        }
        let saved = match (&self.saved, currency) {
            (Some(saved), Some(currency)) => {
                format!("; reuse saved {saved} {currency} at batch price")
            }
            _ => String::new(),
        };
        let adopted = if self.rows_adopted > 0 {
            format!(
                ", {} row(s) answered by another run's request in flight",
                self.rows_adopted
            )
        } else {
            String::new()
        };
        Some(format!(
            "reused: {} row(s) from the answer store, {} row(s) repeating another row's request{adopted}; {} request(s) sent{saved}",
            self.rows_from_store, self.rows_deduplicated, self.requests_sent
        ))
    }
}

impl RunReport {
    pub fn count(&self, status: RowStatus) -> u64 {
        self.rows_by_status
            .get(status.as_str())
            .copied()
            .unwrap_or(0)
    }

    /// Every row answered (or skipped, as the job asked), and every answer's cost known.
    pub fn all_rows_ok(&self) -> bool {
        self.count(RowStatus::Ok) + self.count(RowStatus::Skipped) == self.rows
            && self.rows_without_usage == 0
    }

    /// The human summary printed at the end of a run.
    pub fn summary(&self) -> String {
        let statuses = RowStatus::ALL
            .iter()
            .filter_map(|status| {
                let count = self.count(*status);
                (count > 0).then(|| format!("{count} {}", status.as_str()))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let money = match (
            &self.cost,
            &self.realtime_cost,
            &self.saving,
            &self.currency,
        ) {
            (Some(cost), Some(realtime), Some(saving), Some(currency)) => format!(
                "cost {cost} {currency} at batch price (realtime would be {realtime} {currency}; saved {saving} {currency})"
            ),
            _ => format!(
                "cost unknown: no price for model `{}` (add it with a prices file)",
                self.model
            ),
        };
        let money = if self.rows_without_usage > 0 {
            format!(
                "{money}\n  warning: {} answered row(s) came without token usage; their cost is unknown and not in this total (error_code `usage_missing`)",
                self.rows_without_usage
            )
        } else {
            money
        };
        let mut summary = format!(
            "{} rows: {statuses}\n  tokens: {} prompt, {} completion ({} reasoning)\n  {money}",
            self.rows,
            self.tokens.prompt_tokens,
            self.tokens.completion_tokens,
            self.tokens.reasoning_tokens,
        );
        if let Some(line) = self.reuse.summary_line(self.currency.as_deref()) {
            summary.push_str(&format!("\n  {line}"));
        }
        if self.output_texts_cut > 0 {
            summary.push_str(&format!(
                "\n  warning: {} text(s) were longer than an Excel cell holds (32,767 characters) and were cut in `{}`; write the results whole with `dashbatch resume {} --output results.parquet` (or .csv)",
                self.output_texts_cut, self.output, self.run_directory
            ));
        }
        if let (Some(estimate), Some(currency)) = (&self.estimate_vs_actual, &self.currency) {
            summary.push_str(&format!(
                "\n  estimate: {}",
                estimate.summary_line(currency)
            ));
            if self.shards.len() > 1 && self.shards.len() <= 20 {
                for shard in &self.shards {
                    if let Some(shard_estimate) = &shard.estimate_vs_actual {
                        summary.push_str(&format!(
                            "\n    shard {}: {}",
                            shard.shard_index,
                            shard_estimate.summary_line(currency)
                        ));
                    }
                }
            }
        }
        if let (Some(budget), Some(currency)) = (&self.budget, &self.currency) {
            summary.push_str(&format!(
                "\n  budget: max_cost {} {currency}, committed {} {currency}",
                budget.max_cost, budget.committed
            ));
            if !budget.shards_not_submitted.is_empty() {
                summary.push_str(&format!(
                    "; {} shard(s) with {} row(s) were not submitted (status `missing`, error_code `budget_cap`)",
                    budget.shards_not_submitted.len(),
                    budget.rows_not_submitted
                ));
            }
        }
        summary.push_str(&format!("\n  output: {}", self.output));
        summary
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LostResults {
    pub shard_index: u64,
    pub batch_id: Option<String>,
    pub completed_requests: u64,
    pub reason: String,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}
