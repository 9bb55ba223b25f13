//! `PriceTier` and `TokenPrices`: the prices that apply to requests whose prompt length falls in one range.
//!
//! Untiered models have a single tier covering every prompt length.

use super::price_mode::PriceMode;
use super::price_per_million_tokens::PricePerMillionTokens;
use crate::readable_number::with_thousands;

/// The three per-million-token prices of one tier in one [`PriceMode`], all in the model's currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenPrices {
    /// Price of prompt (input) tokens.
    pub input: PricePerMillionTokens,
    /// Price of output tokens when thinking is off.
    pub output: PricePerMillionTokens,
    /// Price of output tokens when thinking is on; equals `output` unless the price file sets
    /// `thinking_output`.
    pub thinking_output: PricePerMillionTokens,
}

impl TokenPrices {
    /// The output price for a request with thinking on (`thinking_output`) or off (`output`).
    #[must_use]
    pub fn output_price(&self, thinking: bool) -> PricePerMillionTokens {
        if thinking {
            self.thinking_output
        } else {
            self.output
        }
    }
}

/// One price tier: prompts of `from_input_tokens..=up_to_input_tokens` tokens are billed at these prices.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PriceTier {
    from_input_tokens: u64,
    up_to_input_tokens: Option<u64>,
    realtime: TokenPrices,
    batch: TokenPrices,
}

impl PriceTier {
    pub(crate) fn new(
        from_input_tokens: u64,
        up_to_input_tokens: Option<u64>,
        realtime: TokenPrices,
        batch: TokenPrices,
    ) -> PriceTier {
        PriceTier {
            from_input_tokens,
            up_to_input_tokens,
            realtime,
            batch,
        }
    }

    /// The smallest prompt length (in tokens) billed at this tier; 0 for the first tier.
    #[must_use]
    pub fn from_input_tokens(&self) -> u64 {
        self.from_input_tokens
    }

    /// The largest prompt length billed at this tier (inclusive); `None` for the last tier, which
    /// covers every longer prompt.
    #[must_use]
    pub fn up_to_input_tokens(&self) -> Option<u64> {
        self.up_to_input_tokens
    }

    /// The prompt lengths of this tier in words: `0–131,072`, `262,145 and more`.
    #[must_use]
    pub fn prompt_range_label(&self) -> String {
        match self.up_to_input_tokens {
            Some(up_to) => format!(
                "{}–{}",
                with_thousands(self.from_input_tokens),
                with_thousands(up_to)
            ),
            None => format!("{} and more", with_thousands(self.from_input_tokens)),
        }
    }

    /// Whether a request with `prompt_tokens` input tokens is billed at this tier.
    #[must_use]
    pub fn contains_prompt_tokens(&self, prompt_tokens: u64) -> bool {
        prompt_tokens >= self.from_input_tokens
            && self
                .up_to_input_tokens
                .is_none_or(|up_to| prompt_tokens <= up_to)
    }

    /// The prices of this tier in `mode`.
    #[must_use]
    pub fn per_million(&self, mode: PriceMode) -> TokenPrices {
        match mode {
            PriceMode::Batch => self.batch,
            PriceMode::Realtime => self.realtime,
        }
    }
}
