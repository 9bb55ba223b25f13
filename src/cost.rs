//! Per-row cost of a run: the returned usage priced with the run's model, at batch and at
//! realtime price, in exact money.

use crate::pricing::{Currency, ModelPrice, Money, PriceMode, PriceTable, Usage};
use crate::row_result::RowResult;

pub struct RunPricer {
    table: PriceTable,
    /// The run's model's price entry, looked up once: every row is priced with it.
    model_price: Option<ModelPrice>,
    thinking: bool,
    currency: Option<Currency>,
}

/// A row's cost at both prices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowCost {
    pub batch: Money,
    pub realtime: Money,
    /// Index into the model's price tiers of the tier the row was billed at.
    pub tier_index: usize,
}

impl RunPricer {
    pub fn new(table: PriceTable, model: &str, thinking: bool) -> RunPricer {
        let model_price = table.lookup(model).cloned();
        let currency = model_price.as_ref().map(ModelPrice::currency);
        RunPricer {
            table,
            model_price,
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

    /// The price entry the run's rows are billed by, when the model is priced.
    pub fn model_price(&self) -> Option<&ModelPrice> {
        self.model_price.as_ref()
    }

    /// How the report names tier `tier_index` of the run's model: its prompt lengths.
    pub fn tier_label(&self, tier_index: usize) -> String {
        self.model_price()
            .and_then(|price| price.tiers().get(tier_index))
            .map_or_else(
                || format!("tier {tier_index}"),
                |tier| format!("{} prompt tokens", tier.prompt_range_label()),
            )
    }

    /// The billed usage of a row: only requests that ran and answered are billed.
    pub fn billed_usage(result: &RowResult) -> Option<Usage> {
        if !result.status().was_billed() {
            return None;
        }
        // Without the provider's usage the cost is unknown: never priced as zero tokens.
        Some(Usage {
            prompt_tokens: result.prompt_tokens?,
            completion_tokens: result.completion_tokens.unwrap_or(0),
            reasoning_tokens: result.reasoning_tokens.unwrap_or(0),
        })
    }

    /// The row's cost, or `None` when it was not billed or the model's price is unknown.
    pub fn row_cost(&self, result: &RowResult) -> Option<RowCost> {
        let usage = Self::billed_usage(result)?;
        let price = self.model_price.as_ref()?;
        Some(RowCost {
            tier_index: price.tier_index_for_prompt(usage.prompt_tokens),
            batch: price.cost(&usage, self.thinking, PriceMode::Batch),
            realtime: price.cost(&usage, self.thinking, PriceMode::Realtime),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row_result::RowStatus;

    fn result(status: RowStatus, prompt: u64, completion: u64) -> RowResult {
        RowResult {
            status: Some(status),
            prompt_tokens: Some(prompt),
            completion_tokens: Some(completion),
            ..RowResult::default()
        }
    }

    #[test]
    fn only_answered_requests_are_priced_at_half_of_realtime() {
        let pricer = RunPricer::new(
            PriceTable::for_provider(crate::provider::ProviderKind::Dashscope),
            "qwen-flash",
            false,
        );
        assert_eq!(pricer.currency(), Some(Currency::Cny));
        // qwen-flash ≤128K: 0.15 in / 1.5 out per 1M realtime, so 0.075 / 0.75 at batch price.
        let cost = pricer
            .row_cost(&result(RowStatus::Ok, 100_000, 50_000))
            .unwrap();
        assert_eq!(cost.batch.to_decimal_string(), "0.045");
        assert_eq!(cost.realtime.to_decimal_string(), "0.09");
        // A prompt past 256K tokens falls in the dearest tier: 0.6 / 6 at batch price.
        let long = pricer
            .row_cost(&result(RowStatus::Ok, 300_000, 1_000))
            .unwrap();
        assert_eq!(long.batch.to_decimal_string(), "0.186");
        assert!(
            pricer
                .row_cost(&result(RowStatus::Failed, 10, 10))
                .is_none()
        );
        assert!(
            pricer
                .row_cost(&result(RowStatus::Expired, 10, 10))
                .is_none()
        );
        assert!(
            pricer
                .row_cost(&result(RowStatus::InvalidOutput, 10, 10))
                .is_some()
        );
    }

    #[test]
    fn an_unknown_model_has_no_price() {
        let pricer = RunPricer::new(
            PriceTable::for_provider(crate::provider::ProviderKind::Dashscope),
            "sim-unknown",
            false,
        );
        assert!(!pricer.knows_price());
        assert!(pricer.row_cost(&result(RowStatus::Ok, 1, 1)).is_none());
    }
}
