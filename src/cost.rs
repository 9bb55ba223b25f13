//! Per-row cost of a run: the returned usage priced with the run's model, at batch and at
//! realtime price, in exact money.

use crate::pricing::{Currency, Money, PriceMode, PriceTable, Usage};
use crate::row_result::RowResult;

pub struct RunPricer {
    table: PriceTable,
    model: String,
    thinking: bool,
    currency: Option<Currency>,
}

/// A row's cost at both prices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowCost {
    pub batch: Money,
    pub realtime: Money,
}

impl RunPricer {
    pub fn new(table: PriceTable, model: &str, thinking: bool) -> RunPricer {
        let currency = table.lookup(model).map(|price| price.currency());
        RunPricer {
            table,
            model: model.to_owned(),
            thinking,
            currency,
        }
    }

    /// The currency of the run's model, when its price is known.
    pub fn currency(&self) -> Option<Currency> {
        self.currency
    }

    pub fn knows_price(&self) -> bool {
        self.currency.is_some()
    }

    pub fn table(&self) -> &PriceTable {
        &self.table
    }

    /// The billed usage of a row: only requests that ran and answered are billed.
    pub fn billed_usage(result: &RowResult) -> Option<Usage> {
        if !result.status().was_billed() {
            return None;
        }
        Some(Usage {
            prompt_tokens: result.prompt_tokens.unwrap_or(0),
            completion_tokens: result.completion_tokens.unwrap_or(0),
            reasoning_tokens: result.reasoning_tokens.unwrap_or(0),
        })
    }

    /// The row's cost, or `None` when it was not billed or the model's price is unknown.
    pub fn row_cost(&self, result: &RowResult) -> Option<RowCost> {
        let usage = Self::billed_usage(result)?;
        Some(RowCost {
            batch: self
                .table
                .cost(&self.model, &usage, self.thinking, PriceMode::Batch)?,
            realtime: self
                .table
                .cost(&self.model, &usage, self.thinking, PriceMode::Realtime)?,
        })
    }
}
