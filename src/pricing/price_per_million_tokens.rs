//! `PricePerMillionTokens`: one exact per-token rate, stored as whole nano-units (1e-9 of the currency) per million tokens.

use std::fmt;

use super::currency::Currency;
use super::decimal_text::format_scaled_decimal;
use super::money::Money;

/// Decimal places of the nano-unit a price is counted in.
pub(crate) const NANO_DECIMAL_PLACES: u32 = 9;

/// A price for one million tokens, exact to 1e-9 of the currency.
///
/// The cost of `tokens` tokens is `tokens × nano_units` femto-units (1e-9 / 1e6 = 1e-15), so
/// [`PricePerMillionTokens::cost_of_tokens`] never rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PricePerMillionTokens {
    nano_units: u64,
    currency: Currency,
}

impl PricePerMillionTokens {
    /// The largest price accepted: 1,000,000 units of currency per million tokens (one unit per token).
    ///
    /// The cap keeps every cost computation far inside `i128`: `u64::MAX` tokens at this price is
    /// about 1.8e34 femto-units, against an `i128` limit of 1.7e38.
    pub const MAX_NANO_UNITS: u64 = 1_000_000 * 1_000_000_000;

    /// A price of `nano_units` × 1e-9 `currency` per million tokens; `None` above [`Self::MAX_NANO_UNITS`].
    #[must_use]
    pub const fn from_nano_units(
        nano_units: u64,
        currency: Currency,
    ) -> Option<PricePerMillionTokens> {
        if nano_units > Self::MAX_NANO_UNITS {
            None
        } else {
            Some(PricePerMillionTokens {
                nano_units,
                currency,
            })
        }
    }

    /// The price in nano-units (1e-9 of the currency) per million tokens.
    #[must_use]
    pub const fn nano_units(&self) -> u64 {
        self.nano_units
    }

    /// The currency of the price.
    #[must_use]
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    /// The exact cost of `tokens` tokens at this price.
    #[must_use]
    pub fn cost_of_tokens(&self, tokens: u64) -> Money {
        // Cannot overflow: tokens ≤ 1.8e19 and nano_units ≤ 1e15 (MAX_NANO_UNITS), product ≤ 1.8e34.
        let femto_units = i128::from(tokens) * i128::from(self.nano_units);
        Money::from_femto_units(femto_units, self.currency)
    }

    /// The exact price per million tokens as decimal text without the currency, at least two
    /// decimals: `"0.80"`, `"0.075"`, `"2.00"`.
    #[must_use]
    pub fn to_decimal_string(&self) -> String {
        format_scaled_decimal(i128::from(self.nano_units), NANO_DECIMAL_PLACES, 2)
    }

    /// The price per million tokens as the nearest `f64`, for display only.
    #[must_use]
    pub fn to_f64(&self) -> f64 {
        // The text is always a valid decimal, so the NaN fallback is never taken.
        self.to_decimal_string().parse().unwrap_or(f64::NAN)
    }

    /// This price scaled by `percent` / 100, if the result is still a whole number of nano-units.
    pub(crate) fn scaled_by_percent(&self, percent: u64) -> Option<PricePerMillionTokens> {
        let scaled_times_hundred = u128::from(self.nano_units) * u128::from(percent);
        if scaled_times_hundred % 100 != 0 {
            return None;
        }
        let nano_units = u64::try_from(scaled_times_hundred / 100).ok()?;
        PricePerMillionTokens::from_nano_units(nano_units, self.currency)
    }
}

impl fmt::Display for PricePerMillionTokens {
    /// For example `0.80 CNY per 1M tokens`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} {} per 1M tokens",
            self.to_decimal_string(),
            self.currency
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_tokens_times_nano_units_in_femto_units() {
        let price =
            PricePerMillionTokens::from_nano_units(800_000_000, Currency::Cny).expect("in range");
        assert_eq!(price.cost_of_tokens(1_000_000).to_decimal_string(), "0.80");
        assert_eq!(price.cost_of_tokens(1).to_decimal_string(), "0.0000008");
        assert_eq!(price.cost_of_tokens(0), Money::zero(Currency::Cny));
        let largest = PricePerMillionTokens::from_nano_units(
            PricePerMillionTokens::MAX_NANO_UNITS,
            Currency::Usd,
        )
        .expect("the cap itself is allowed");
        assert_eq!(
            largest.cost_of_tokens(u64::MAX).femto_units(),
            i128::from(u64::MAX) * 1_000_000_000_000_000
        );
    }

    #[test]
    fn refuses_prices_above_the_cap() {
        assert_eq!(
            PricePerMillionTokens::from_nano_units(
                PricePerMillionTokens::MAX_NANO_UNITS + 1,
                Currency::Cny
            ),
            None
        );
    }

    #[test]
    fn displays_exactly() {
        let price =
            PricePerMillionTokens::from_nano_units(75_000_000, Currency::Cny).expect("in range");
        assert_eq!(price.to_string(), "0.075 CNY per 1M tokens");
        assert_eq!(price.to_f64(), 0.075);
    }

    #[test]
    fn scaling_by_percent_is_exact_or_refused() {
        let price =
            PricePerMillionTokens::from_nano_units(150_000_000, Currency::Cny).expect("in range");
        assert_eq!(
            price.scaled_by_percent(50).map(|half| half.nano_units()),
            Some(75_000_000)
        );
        let one_nano = PricePerMillionTokens::from_nano_units(1, Currency::Cny).expect("in range");
        assert_eq!(one_nano.scaled_by_percent(50), None);
        assert_eq!(one_nano.scaled_by_percent(100), Some(one_nano));
    }
}
