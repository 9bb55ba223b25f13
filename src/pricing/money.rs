//! `Money`: an exact amount in one currency, counted in femto-units (1e-15 of a yuan or dollar), so that summing costs never rounds.
//!
//! Why femto-units: prices are stored as nano-units (1e-9) per million tokens, so the cost of
//! `tokens` at a price is `tokens × nano_units_per_million` femto-units, an exact integer
//! (1e-9 / 1e6 = 1e-15). Costs of millions of rows can then be added without any rounding, and the
//! total shown to the user is the total that was computed, to the last digit.

use std::cmp::Ordering;
use std::fmt;

use serde::{Serialize, Serializer};

use super::currency::Currency;
use super::decimal_text::{format_scaled_decimal, parse_scaled_decimal};

/// How many femto-units make one unit of currency (one yuan, one dollar).
pub const FEMTO_UNITS_PER_UNIT: i128 = 1_000_000_000_000_000;

/// Decimal places of the femto-unit.
const FEMTO_DECIMAL_PLACES: u32 = 15;

/// Decimal places `Display` shows; the exact form is [`Money::to_decimal_string`].
const DISPLAY_DECIMAL_PLACES: u32 = 9;

/// Fraction digits always shown, so amounts read as money (`2.00`, not `2`).
const MIN_FRACTION_DIGITS: usize = 2;

/// An exact amount of money in one currency.
///
/// Amounts in different currencies are never mixed: [`Money::checked_add`] and [`Money::try_sum`]
/// return [`MoneyError::CurrencyMismatch`], and comparing them (`<`, `>`) is `false` both ways
/// (`partial_cmp` is `None`). There is deliberately no `+` operator, so every addition is checked.
///
/// Serializes (serde) as its exact decimal text without the currency, for example `"0.000123456"`;
/// write [`Money::currency`] next to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    femto_units: i128,
    currency: Currency,
}

/// Why an amount could not be added or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyError {
    /// Two amounts in different currencies were added.
    #[error(
        "cannot add an amount in {right} to an amount in {left}; \
         costs in different currencies must be totalled separately"
    )]
    CurrencyMismatch {
        /// Currency of the running total.
        left: Currency,
        /// Currency of the amount that was being added.
        right: Currency,
    },
    /// The sum is beyond about 1.7e23 units of currency.
    #[error("the amount is too large to calculate exactly (over 1.7e23 {currency})")]
    Overflow {
        /// Currency of the amounts.
        currency: Currency,
    },
    /// Text given as an amount of money is not a usable decimal number.
    #[error("`{text}` is not a valid amount of {currency}: it {reason}")]
    InvalidAmount {
        /// The text as given.
        text: String,
        /// Currency the amount was meant to be in.
        currency: Currency,
        /// What is wrong with it, as a sentence fragment ("has more than 15 decimal places, ...").
        reason: String,
    },
}

impl Money {
    /// Zero in `currency`; the start of a sum.
    #[must_use]
    pub const fn zero(currency: Currency) -> Money {
        Money {
            femto_units: 0,
            currency,
        }
    }

    /// An amount of `femto_units` × 1e-15 of `currency`.
    #[must_use]
    pub const fn from_femto_units(femto_units: i128, currency: Currency) -> Money {
        Money {
            femto_units,
            currency,
        }
    }

    /// Parses decimal text such as `"12.5"` as an amount of `currency`, exactly (no floating point).
    /// Meant for user input such as a spending limit.
    ///
    /// # Errors
    /// [`MoneyError::InvalidAmount`] when the text is not a decimal number, has more than 15 decimal
    /// places, or is too large.
    pub fn parse_decimal(text: &str, currency: Currency) -> Result<Money, MoneyError> {
        match parse_scaled_decimal(text, FEMTO_DECIMAL_PLACES) {
            Ok(femto_units) => Ok(Money {
                femto_units,
                currency,
            }),
            Err(problem) => Err(MoneyError::InvalidAmount {
                text: text.to_owned(),
                currency,
                reason: problem.to_string(),
            }),
        }
    }

    /// The amount in femto-units (1e-15 of the currency).
    #[must_use]
    pub const fn femto_units(&self) -> i128 {
        self.femto_units
    }

    /// The currency of the amount.
    #[must_use]
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    /// Whether the amount is exactly zero.
    #[must_use]
    pub const fn is_zero(&self) -> bool {
        self.femto_units == 0
    }

    /// `self + other`, exactly.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] when the currencies differ, [`MoneyError::Overflow`] when
    /// the sum does not fit (beyond about 1.7e23 units).
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            });
        }
        let femto_units =
            self.femto_units
                .checked_add(other.femto_units)
                .ok_or(MoneyError::Overflow {
                    currency: self.currency,
                })?;
        Ok(Money {
            femto_units,
            currency: self.currency,
        })
    }

    /// The exact sum of `amounts`, all of which must be in `currency`; zero when there are none.
    ///
    /// # Errors
    /// As [`Money::checked_add`], for the first amount that cannot be added.
    pub fn try_sum<I>(currency: Currency, amounts: I) -> Result<Money, MoneyError>
    where
        I: IntoIterator<Item = Money>,
    {
        amounts
            .into_iter()
            .try_fold(Money::zero(currency), Money::checked_add)
    }

    /// The amount as the nearest `f64`, for display columns and charts only; never add these up.
    #[must_use]
    pub fn to_f64(&self) -> f64 {
        // Up to 2^53 femto units (about 9 units of a currency: every row's cost), both the count
        // and 10^15 are exact f64 values, and IEEE division of exact values is correctly rounded:
        // the nearest f64 to the exact amount, with no text made. Larger amounts go through the
        // exact decimal text, whose parsing is correctly rounded too.
        const EXACT_IN_F64: u128 = 1 << 53;
        if self.femto_units.unsigned_abs() <= EXACT_IN_F64 {
            return self.femto_units as f64 / FEMTO_UNITS_PER_UNIT as f64;
        }
        // The text is always a valid decimal, so the NaN fallback is never taken.
        self.to_decimal_string().parse().unwrap_or(f64::NAN)
    }

    /// The exact amount as plain decimal text without the currency: all significant digits (up to 15
    /// decimal places), trailing zeros trimmed but at least two decimals kept (`"2.00"`,
    /// `"0.000000000000001"`).
    #[must_use]
    pub fn to_decimal_string(&self) -> String {
        format_scaled_decimal(self.femto_units, FEMTO_DECIMAL_PLACES, MIN_FRACTION_DIGITS)
    }
}

impl PartialOrd for Money {
    /// Orders amounts of the same currency; amounts of different currencies are not comparable (`None`).
    fn partial_cmp(&self, other: &Money) -> Option<Ordering> {
        if self.currency == other.currency {
            Some(self.femto_units.cmp(&other.femto_units))
        } else {
            None
        }
    }
}

impl fmt::Display for Money {
    /// Plain decimal and currency code, rounded (half away from zero) to 9 decimal places, trailing
    /// zeros trimmed but at least two kept: `0.000123456 CNY`, `1.50 USD`, `2.00 CNY`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let femto_per_displayed_unit = 10_i128.pow(FEMTO_DECIMAL_PLACES - DISPLAY_DECIMAL_PLACES);
        let whole = self.femto_units / femto_per_displayed_unit;
        let remainder = self.femto_units % femto_per_displayed_unit;
        let rounded = if remainder.abs() * 2 >= femto_per_displayed_unit {
            whole + self.femto_units.signum()
        } else {
            whole
        };
        let text = format_scaled_decimal(rounded, DISPLAY_DECIMAL_PLACES, MIN_FRACTION_DIGITS);
        write!(formatter, "{text} {}", self.currency)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_decimal_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cny(femto_units: i128) -> Money {
        Money::from_femto_units(femto_units, Currency::Cny)
    }

    #[test]
    fn display_shows_up_to_nine_decimals_and_at_least_two() {
        assert_eq!(cny(123_456 * 1_000_000).to_string(), "0.000123456 CNY");
        assert_eq!(cny(FEMTO_UNITS_PER_UNIT * 3 / 2).to_string(), "1.50 CNY");
        assert_eq!(cny(FEMTO_UNITS_PER_UNIT * 2).to_string(), "2.00 CNY");
        assert_eq!(cny(0).to_string(), "0.00 CNY");
        assert_eq!(
            cny(FEMTO_UNITS_PER_UNIT * 1234 + 5 * FEMTO_UNITS_PER_UNIT / 100).to_string(),
            "1234.05 CNY"
        );
        assert_eq!(
            Money::from_femto_units(-FEMTO_UNITS_PER_UNIT / 4, Currency::Usd).to_string(),
            "-0.25 USD"
        );
    }

    #[test]
    fn display_rounds_half_away_from_zero_at_the_ninth_decimal() {
        // 0.0000000015 → 0.000000002; 0.00000000149 → 0.000000001.
        assert_eq!(cny(1_500_000).to_string(), "0.000000002 CNY");
        assert_eq!(cny(1_499_999).to_string(), "0.000000001 CNY");
        assert_eq!(cny(-1_500_000).to_string(), "-0.000000002 CNY");
        // Below half a nano-unit shows as zero, never as "-0.00".
        assert_eq!(cny(400_000).to_string(), "0.00 CNY");
        assert_eq!(cny(-400_000).to_string(), "0.00 CNY");
        // 0.9999999996 rounds up into the integer part.
        assert_eq!(cny(999_999_999_600_000).to_string(), "1.00 CNY");
    }

    #[test]
    fn decimal_string_is_exact_to_the_femto_unit() {
        assert_eq!(cny(1).to_decimal_string(), "0.000000000000001");
        assert_eq!(
            cny(FEMTO_UNITS_PER_UNIT + 1).to_decimal_string(),
            "1.000000000000001"
        );
        assert_eq!(cny(FEMTO_UNITS_PER_UNIT * 7).to_decimal_string(), "7.00");
        assert_eq!(cny(-FEMTO_UNITS_PER_UNIT / 2).to_decimal_string(), "-0.50");
    }

    #[test]
    fn serializes_as_exact_decimal_text() {
        let amounts = vec![cny(123_456_789), cny(FEMTO_UNITS_PER_UNIT)];
        let toml_text = toml::to_string(&std::collections::BTreeMap::from([("costs", amounts)]))
            .expect("money serializes");
        assert_eq!(toml_text.trim(), r#"costs = ["0.000000123456789", "1.00"]"#);
    }

    #[test]
    fn parse_decimal_is_exact_and_round_trips() {
        let parsed = Money::parse_decimal("0.000000000000001", Currency::Usd).expect("parses");
        assert_eq!(parsed, Money::from_femto_units(1, Currency::Usd));
        let parsed = Money::parse_decimal("12.5", Currency::Cny).expect("parses");
        assert_eq!(
            Money::parse_decimal(&parsed.to_decimal_string(), Currency::Cny),
            Ok(parsed)
        );
        let error =
            Money::parse_decimal("0.0000000000000001", Currency::Cny).expect_err("too precise");
        assert_eq!(
            error.to_string(),
            "`0.0000000000000001` is not a valid amount of CNY: it has more than 15 decimal places, \
             which cannot be stored exactly"
        );
    }

    #[test]
    fn adding_is_exact_and_refuses_mixed_currencies() {
        // 0.1 + 0.2 is 0.3 exactly, unlike f64.
        let sum = Money::parse_decimal("0.1", Currency::Cny)
            .and_then(|tenth| tenth.checked_add(Money::parse_decimal("0.2", Currency::Cny)?))
            .expect("adds");
        assert_eq!(
            sum,
            Money::parse_decimal("0.3", Currency::Cny).expect("parses")
        );

        let mismatch = cny(1).checked_add(Money::from_femto_units(1, Currency::Usd));
        assert_eq!(
            mismatch,
            Err(MoneyError::CurrencyMismatch {
                left: Currency::Cny,
                right: Currency::Usd
            })
        );
        assert_eq!(
            mismatch.expect_err("mismatch").to_string(),
            "cannot add an amount in USD to an amount in CNY; costs in different currencies must be totalled separately"
        );
        assert_eq!(
            cny(i128::MAX).checked_add(cny(1)),
            Err(MoneyError::Overflow {
                currency: Currency::Cny
            })
        );
    }

    #[test]
    fn try_sum_adds_everything_or_reports_the_mismatch() {
        assert_eq!(
            Money::try_sum(Currency::Usd, []),
            Ok(Money::zero(Currency::Usd))
        );
        assert_eq!(
            Money::try_sum(Currency::Cny, [cny(1), cny(2), cny(3)]),
            Ok(cny(6))
        );
        assert!(matches!(
            Money::try_sum(Currency::Cny, [cny(1), Money::zero(Currency::Usd)]),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
        // The running total's currency is the one asked for, even for the first amount.
        assert!(Money::try_sum(Currency::Usd, [cny(1)]).is_err());
    }

    #[test]
    fn compares_within_a_currency_only() {
        assert!(cny(1) < cny(2));
        assert!(cny(2) >= cny(2));
        let dollar = Money::from_femto_units(1, Currency::Usd);
        assert_eq!(cny(1).partial_cmp(&dollar), None);
        assert_eq!(dollar.partial_cmp(&cny(1)), None);
        assert_ne!(cny(1), dollar);
    }

    #[test]
    fn to_f64_is_the_nearest_float() {
        assert_eq!(cny(FEMTO_UNITS_PER_UNIT / 10).to_f64(), 0.1);
        assert_eq!(cny(123_456 * 1_000_000).to_f64(), 0.000_123_456);
        assert_eq!(cny(-FEMTO_UNITS_PER_UNIT * 5).to_f64(), -5.0);
    }

    #[test]
    fn to_f64_by_division_is_what_parsing_the_exact_text_gives() {
        let through_text = |money: Money| -> f64 { money.to_decimal_string().parse().unwrap() };
        // Amounts spread over every magnitude up to and past 2^53 femto units, both signs, with
        // the digits of a row's cost (odd femto counts, long repeating fractions).
        let mut femto_units: i128 = 1;
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        while femto_units < (1 << 56) {
            for _ in 0..200 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let amount = femto_units + (state as i128 % femto_units.max(1));
                for signed in [amount, -amount] {
                    let money = cny(signed);
                    assert_eq!(
                        money.to_f64().to_bits(),
                        through_text(money).to_bits(),
                        "{signed} femto units"
                    );
                }
            }
            femto_units = femto_units * 3 / 2 + 1;
        }
        let largest_exact = cny(1 << 53);
        assert_eq!(largest_exact.to_f64(), through_text(largest_exact));
    }
}
