//! The currencies prices and costs are expressed in.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A currency a provider bills in. Written as its ISO 4217 code (`"CNY"`, `"USD"`) in price files and output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Currency {
    /// Chinese yuan (renminbi): DashScope's Beijing (Chinese mainland) region bills in it.
    #[serde(rename = "CNY")]
    Cny,
    /// US dollar: OpenAI and DashScope's international regions bill in it.
    #[serde(rename = "USD")]
    Usd,
}

impl Currency {
    /// The ISO 4217 code, such as `"CNY"`.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Currency::Cny => "CNY",
            Currency::Usd => "USD",
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.code())
    }
}
