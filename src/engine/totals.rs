//! Running totals of a run or a shard: billed tokens, and money summed exactly.

use serde::Serialize;

use crate::pricing::{Currency, Money};

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TokenTotals {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub reasoning_tokens: u64,
    pub total_tokens: u64,
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
