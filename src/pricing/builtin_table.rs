//! `BuiltInTable`: the three price tables compiled into dashbatch (DashScope Beijing in CNY, DashScope Singapore in USD, OpenAI in USD), and which one a provider bills by.
//!
//! A provider bills in one currency (DashScope Beijing: CNY; Singapore and OpenAI: USD, reference
//! `prices-and-vision.md` §1–2), so the provider picks the table, and a price in another currency
//! is refused before anything is spent (see `PriceTable::price_for_job`).

use std::fmt;

use super::currency::Currency;
use crate::provider::ProviderKind;

/// One of the built-in price tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltInTable {
    /// DashScope, Beijing region (Chinese mainland), CNY. The simulator imitates it.
    DashscopeBeijing,
    /// DashScope, Singapore region (international), USD.
    DashscopeSingapore,
    /// OpenAI's Batch API, USD.
    Openai,
}

impl BuiltInTable {
    /// Every built-in table, for listings and tests.
    pub const ALL: [BuiltInTable; 3] = [
        BuiltInTable::DashscopeBeijing,
        BuiltInTable::DashscopeSingapore,
        BuiltInTable::Openai,
    ];

    /// The table `provider` bills by. The simulator imitates DashScope's Beijing region.
    #[must_use]
    pub fn for_provider(provider: ProviderKind) -> BuiltInTable {
        match provider {
            ProviderKind::Sim | ProviderKind::Dashscope => BuiltInTable::DashscopeBeijing,
            ProviderKind::DashscopeIntl => BuiltInTable::DashscopeSingapore,
            ProviderKind::Openai => BuiltInTable::Openai,
        }
    }

    /// The currency the provider bills in, and so the currency of every price used with it.
    #[must_use]
    pub fn currency(self) -> Currency {
        match self {
            BuiltInTable::DashscopeBeijing => Currency::Cny,
            BuiltInTable::DashscopeSingapore | BuiltInTable::Openai => Currency::Usd,
        }
    }

    /// The table's file in the source tree, named in messages so a user can read its sources.
    #[must_use]
    pub fn file(self) -> &'static str {
        match self {
            BuiltInTable::DashscopeBeijing => "src/pricing/tables/dashscope-beijing.toml",
            BuiltInTable::DashscopeSingapore => "src/pricing/tables/dashscope-singapore.toml",
            BuiltInTable::Openai => "src/pricing/tables/openai.toml",
        }
    }

    /// The TOML text of the table, compiled in.
    #[must_use]
    pub fn toml_text(self) -> &'static str {
        match self {
            BuiltInTable::DashscopeBeijing => include_str!("tables/dashscope-beijing.toml"),
            BuiltInTable::DashscopeSingapore => include_str!("tables/dashscope-singapore.toml"),
            BuiltInTable::Openai => include_str!("tables/openai.toml"),
        }
    }

    /// A short name for the region, as in `DashScope Beijing (CNY)`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            BuiltInTable::DashscopeBeijing => "DashScope Beijing",
            BuiltInTable::DashscopeSingapore => "DashScope Singapore",
            BuiltInTable::Openai => "OpenAI",
        }
    }
}

impl fmt::Display for BuiltInTable {
    /// `DashScope Beijing (CNY)`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} ({})", self.label(), self.currency())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_provider_bills_by_the_table_of_its_region_and_currency() {
        for (provider, table, currency) in [
            (
                ProviderKind::Sim,
                BuiltInTable::DashscopeBeijing,
                Currency::Cny,
            ),
            (
                ProviderKind::Dashscope,
                BuiltInTable::DashscopeBeijing,
                Currency::Cny,
            ),
            (
                ProviderKind::DashscopeIntl,
                BuiltInTable::DashscopeSingapore,
                Currency::Usd,
            ),
            (ProviderKind::Openai, BuiltInTable::Openai, Currency::Usd),
        ] {
            assert_eq!(BuiltInTable::for_provider(provider), table, "{provider}");
            assert_eq!(table.currency(), currency, "{provider}");
            assert!(
                table
                    .toml_text()
                    .contains(&format!("currency = \"{currency}\"")),
                "{table}"
            );
        }
    }
}
