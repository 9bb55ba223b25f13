//! The run report: rows by status, tokens, cost at batch price, what realtime would have cost,
//! and the saving. Written as `report.json` in the run directory and printed as a summary.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::pricing::{Currency, Money};
use crate::row_result::RowStatus;

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TokenTotals {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub reasoning_tokens: u64,
    pub total_tokens: u64,
}

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
    pub tokens: TokenTotals,
    /// `None` when the model has no known price.
    pub currency: Option<String>,
    /// Exact decimal text: what the batch run costs (billed requests only, batch price).
    pub cost: Option<String>,
    /// What the same requests would have cost at realtime price.
    pub realtime_cost: Option<String>,
    pub saving: Option<String>,
    pub price_table_as_of: String,
    /// Result files the provider would no longer serve. Their completed requests were billed
    /// even though their answers are lost; the rows say `results_unavailable`.
    pub lost_results: Vec<LostResults>,
    pub shards: Vec<ShardReport>,
    #[serde(skip)]
    pub cost_money: Option<Money>,
}

impl RunReport {
    pub fn count(&self, status: RowStatus) -> u64 {
        self.rows_by_status
            .get(status.as_str())
            .copied()
            .unwrap_or(0)
    }

    pub fn all_rows_ok(&self) -> bool {
        self.count(RowStatus::Ok) == self.rows
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
        format!(
            "{} rows: {statuses}\n  tokens: {} prompt, {} completion ({} reasoning)\n  {money}\n  output: {}",
            self.rows,
            self.tokens.prompt_tokens,
            self.tokens.completion_tokens,
            self.tokens.reasoning_tokens,
            self.output
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LostResults {
    pub shard_index: u64,
    pub batch_id: Option<String>,
    pub completed_requests: u64,
    pub reason: String,
}

/// Sums money without drift; `None` stays `None` once any part is unknown.
#[derive(Debug, Clone, Copy)]
pub struct MoneySum {
    pub total: Option<Money>,
}

impl MoneySum {
    pub fn new(currency: Option<Currency>) -> MoneySum {
        MoneySum {
            total: currency.map(Money::zero),
        }
    }

    pub fn add(&mut self, amount: Money) {
        if let Some(total) = self.total {
            self.total = total.checked_add(amount).ok();
        }
    }
}
