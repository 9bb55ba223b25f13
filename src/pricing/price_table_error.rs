//! `PriceTableError`: why a price file could not be used, worded for the user who wrote it.

use std::path::PathBuf;

use super::builtin_table::BuiltInTable;
use super::currency::Currency;
use super::model_price::PriceOrigin;

/// A price file could not be read or contains something that cannot be priced exactly.
///
/// Every message names the file, and where it can the line and the key (`models.qwen-plus.input`),
/// and says what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PriceTableError {
    /// The override file could not be read from disk.
    #[error("could not read the price file `{}`: {problem}; check the path given with `--prices` or DASHBATCH_PRICES", path.display())]
    ReadFile {
        /// The path as given.
        path: PathBuf,
        /// What went wrong, in words.
        problem: String,
    },
    /// The file is not TOML, or not shaped like a price table (unknown key, wrong type, missing field).
    /// The message comes from the TOML parser and shows the line and the offending key.
    #[error("{origin} is not a valid price table:\n{message}")]
    InvalidToml {
        /// The file.
        origin: PriceOrigin,
        /// The TOML parser's description, with line, column and an excerpt.
        message: String,
    },
    /// A value has the right type but cannot be used (too many decimals, tiers out of order, an alias clash, ...).
    #[error("{origin}, line {line}, `{key}`: {problem}")]
    InvalidValue {
        /// The file.
        origin: PriceOrigin,
        /// 1-based line of the offending value.
        line: usize,
        /// Dotted TOML key of the offending value, such as `models.qwen3-max.tiers[1].up_to_input_tokens`.
        key: String,
        /// What is wrong and what to do about it.
        problem: String,
    },
    /// The job's model is priced in another currency than the provider bills in.
    #[error(
        "the price of `{model}` in {origin} is in {price_currency}, but this provider bills in {}: the {provider_table} \
         table applies. Give the model's {} price in a price file (`--prices FILE`), or choose the provider \
         (`--provider`) whose region the prices are for",
        provider_table.currency(),
        provider_table.currency()
    )]
    WrongCurrency {
        /// The job's model.
        model: String,
        /// The file the mismatched price was read from.
        origin: PriceOrigin,
        /// The currency of that price.
        price_currency: Currency,
        /// The provider's table, which says its currency.
        provider_table: BuiltInTable,
    },
}
