//! `ModelPrice`: everything known about one model's price (tiers, batch discount, currency, provenance), and the cost of one request.

use std::fmt;
use std::path::PathBuf;

use super::builtin_table::BuiltInTable;
use super::currency::Currency;
use super::money::Money;
use super::price_mode::PriceMode;
use super::price_tier::{PriceTier, TokenPrices};
use super::usage::Usage;

/// Where a model's price was read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PriceOrigin {
    /// One of the tables compiled into dashbatch (`src/pricing/tables/`).
    BuiltIn(BuiltInTable),
    /// A user's price override file.
    OverrideFile(PathBuf),
}

impl fmt::Display for PriceOrigin {
    /// `the built-in price table` or the file path in backticks, so it reads inside a sentence.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PriceOrigin::BuiltIn(table) => write!(
                formatter,
                "the built-in {table} price table ({})",
                table.file()
            ),
            PriceOrigin::OverrideFile(path) => write!(formatter, "`{}`", path.display()),
        }
    }
}

/// The price of one model: one or more tiers by prompt length, each with realtime and batch prices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPrice {
    pub(crate) name: String,
    pub(crate) aliases: Vec<String>,
    pub(crate) currency: Currency,
    /// Never empty; sorted by prompt length; the last tier is unbounded.
    pub(crate) tiers: Vec<PriceTier>,
    pub(crate) batch_discount_percent: u8,
    pub(crate) source: Option<String>,
    pub(crate) evidence: Option<String>,
    pub(crate) origin: PriceOrigin,
    pub(crate) as_of: Option<String>,
    pub(crate) max_output_tokens: Option<u64>,
    pub(crate) max_thinking_tokens: Option<u64>,
    /// Whether the provider's batch page lists the model for the table's region; `None` when the
    /// price file does not say.
    pub(crate) batch_listed: Option<bool>,
    /// The region of the file the price was read from (its `region`), if it names one.
    pub(crate) region: Option<String>,
}

impl ModelPrice {
    /// The model name as written in the price file (the `model` field of requests).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Other model names priced like this one (for example `qwen-plus-latest` for `qwen-plus`).
    #[must_use]
    pub fn aliases(&self) -> &[String] {
        &self.aliases
    }

    /// The currency every price of this model is in.
    #[must_use]
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// Percent taken off the realtime price for batch requests (50 unless the price file says otherwise).
    #[must_use]
    pub fn batch_discount_percent(&self) -> u8 {
        self.batch_discount_percent
    }

    /// Where the price comes from, as written in the price file's `source`.
    #[must_use]
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// How trustworthy the source is, as written in the price file's `evidence` (the built-in
    /// table uses the reference's labels: `DOC` for official documentation, `3P` for third parties).
    #[must_use]
    pub fn evidence(&self) -> Option<&str> {
        self.evidence.as_deref()
    }

    /// Which file the price was read from.
    #[must_use]
    pub fn origin(&self) -> &PriceOrigin {
        &self.origin
    }

    /// The `as_of` date (`YYYY-MM-DD`) of the file the price was read from, if it has one.
    #[must_use]
    pub fn as_of(&self) -> Option<&str> {
        self.as_of.as_deref()
    }

    /// The most output tokens one answer can have when a request sets no `max_tokens`, as the price
    /// file's `max_output_tokens` says; `None` when it says nothing (then no upper bound can be
    /// given for such requests).
    #[must_use]
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.max_output_tokens
    }

    /// The most thinking tokens one answer can have when thinking is on and a request sets no
    /// `thinking_budget`, as the price file's `max_thinking_tokens` says.
    #[must_use]
    pub fn max_thinking_tokens(&self) -> Option<u64> {
        self.max_thinking_tokens
    }

    /// Whether the provider's batch page lists this model for the region (`batch_listed`); `None`
    /// when the price file does not say.
    #[must_use]
    pub fn batch_listed(&self) -> Option<bool> {
        self.batch_listed
    }

    /// The region named by the price file (`region`), such as `DashScope Beijing (Chinese mainland)`.
    #[must_use]
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The tiers, shortest prompts first; untiered models have exactly one.
    #[must_use]
    pub fn tiers(&self) -> &[PriceTier] {
        &self.tiers
    }

    /// Whether the price depends on prompt length.
    #[must_use]
    pub fn is_tiered(&self) -> bool {
        self.tiers.len() > 1
    }

    /// Index into [`ModelPrice::tiers`] of the tier a request with `prompt_tokens` input tokens is billed at.
    #[must_use]
    pub fn tier_index_for_prompt(&self, prompt_tokens: u64) -> usize {
        self.tiers
            .iter()
            .position(|tier| tier.contains_prompt_tokens(prompt_tokens))
            // Tiers are contiguous from 0 and the last is unbounded, so some tier always matches.
            .unwrap_or(self.tiers.len() - 1)
    }

    /// The prices of tier `tier_index` in `mode`, for an estimate screen; `None` if there is no such tier.
    #[must_use]
    pub fn per_million(&self, mode: PriceMode, tier_index: usize) -> Option<TokenPrices> {
        self.tiers
            .get(tier_index)
            .map(|tier| tier.per_million(mode))
    }

    /// The exact cost of one request.
    ///
    /// The tier is chosen by `usage.prompt_tokens`. Prompt tokens are billed at the tier's input
    /// price and all of `usage.completion_tokens` at its output price, or at its thinking output
    /// price when `thinking` is on. `usage.reasoning_tokens` is not billed separately because it is
    /// already part of `completion_tokens` (see [`Usage`]).
    ///
    /// Costs of requests that fall into the same tier add up exactly: summing per-request costs
    /// gives the cost of the summed usage.
    #[must_use]
    pub fn cost(&self, usage: &Usage, thinking: bool, mode: PriceMode) -> Money {
        let prices = self.tiers[self.tier_index_for_prompt(usage.prompt_tokens)].per_million(mode);
        let input_cost = prices.input.cost_of_tokens(usage.prompt_tokens);
        let output_cost = prices
            .output_price(thinking)
            .cost_of_tokens(usage.completion_tokens);
        // Every price of a model is in the model's currency (checked when the file is read), and
        // each part is at most 1.8e34 femto-units (see `PricePerMillionTokens::MAX_NANO_UNITS`), so
        // the sum cannot overflow i128 (1.7e38).
        Money::from_femto_units(
            input_cost.femto_units() + output_cost.femto_units(),
            self.currency,
        )
    }
}
