//! `PriceMode`: whether a request is billed at the Batch API price or the realtime (synchronous) price.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which of a model's two prices applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PriceMode {
    /// Batch API price: the realtime price less the model's `batch_discount_percent` (50% by default).
    Batch,
    /// Realtime (synchronous API) list price.
    Realtime,
}

impl fmt::Display for PriceMode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            PriceMode::Batch => "batch",
            PriceMode::Realtime => "realtime",
        })
    }
}
