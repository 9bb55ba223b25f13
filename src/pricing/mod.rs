//! Prices and exact costs: the model price tables (built-in per provider region, dated, sourced, overridable by a user's TOML file) and the exact money arithmetic of token costs.
//!
//! Amounts are integers of femto-units (1e-15 of a yuan or dollar) and prices are integers of
//! nano-units per million tokens, so `tokens × price` and every sum of costs are exact. Nothing in
//! this module does network I/O; only [`PriceTable::load`] and [`PriceTable::with_override_file`]
//! read a file.

mod builtin_table;
mod currency;
mod decimal_text;
mod model_price;
mod money;
mod price_file;
mod price_listing;
mod price_mode;
mod price_per_million_tokens;
mod price_table;
mod price_table_error;
mod price_tier;
mod usage;

pub use builtin_table::BuiltInTable;
pub use currency::Currency;
pub use model_price::{ModelPrice, PriceOrigin};
pub use money::{FEMTO_UNITS_PER_UNIT, Money, MoneyError};
pub use price_file::toml_key;
pub use price_listing::{model_price_json, model_price_text, price_table_json, price_table_text};
pub use price_mode::PriceMode;
pub use price_per_million_tokens::PricePerMillionTokens;
pub use price_table::{PriceTable, read_price_file};
pub use price_table_error::PriceTableError;
pub use price_tier::{PriceTier, TokenPrices};
pub use usage::Usage;
