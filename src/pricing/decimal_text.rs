//! Exact conversion between decimal text (`0.075`, `2`, `1.5e-3`, `1_000.25`) and integers scaled by a power of ten, with no floating point anywhere.
//!
//! Prices and amounts are stored as integers of a small unit (1e-9 or 1e-15 of a currency), so every
//! conversion from and to text goes through these two functions. Parsing refuses any digit that the
//! target unit cannot hold instead of rounding it away.

use std::fmt;

/// Why a piece of decimal text could not be turned into an exact scaled integer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecimalTextError {
    /// Not a plain decimal number (letters, several dots, an empty string, ...).
    NotADecimalNumber,
    /// `inf` or `nan`.
    NotFinite,
    /// More decimal places than the unit can represent exactly.
    TooManyDecimalPlaces { max_decimal_places: u32 },
    /// Larger than the scaled integer can hold.
    TooLarge,
}

impl fmt::Display for DecimalTextError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecimalTextError::NotADecimalNumber => {
                write!(formatter, "is not a decimal number such as `0.8` or `2`")
            }
            DecimalTextError::NotFinite => {
                write!(formatter, "must be a finite number, not inf or nan")
            }
            DecimalTextError::TooManyDecimalPlaces { max_decimal_places } => write!(
                formatter,
                "has more than {max_decimal_places} decimal places, which cannot be stored exactly"
            ),
            DecimalTextError::TooLarge => write!(formatter, "is too large"),
        }
    }
}

/// Parses decimal text into `value × 10^fractional_digits`, exactly.
///
/// Accepts an optional sign, digits with single underscores between them (as TOML allows), an
/// optional fraction and an optional exponent (`e`/`E`). Trailing zeros beyond `fractional_digits`
/// are fine (`0.80000000000` parses at 9 digits); any other digit beyond it is an error.
pub(crate) fn parse_scaled_decimal(
    text: &str,
    fractional_digits: u32,
) -> Result<i128, DecimalTextError> {
    let trimmed = text.trim();
    let (is_negative, unsigned) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let lowercase = unsigned.to_ascii_lowercase();
    if lowercase == "inf" || lowercase == "nan" || lowercase == "infinity" {
        return Err(DecimalTextError::NotFinite);
    }

    let (mantissa_text, exponent) = match unsigned.find(['e', 'E']) {
        Some(exponent_idx) => (
            &unsigned[..exponent_idx],
            parse_exponent(&unsigned[exponent_idx + 1..])?,
        ),
        None => (unsigned, 0),
    };
    let (integer_text, fraction_text) = match mantissa_text.split_once('.') {
        Some((integer_text, fraction_text)) => (integer_text, Some(fraction_text)),
        None => (mantissa_text, None),
    };
    let integer_digits = digits_without_underscores(integer_text)?;
    let fraction_digits = match fraction_text {
        Some(fraction_text) => digits_without_underscores(fraction_text)?,
        None => Vec::new(),
    };

    // The number is `all_digits × 10^(exponent − fraction length)`; scaled, the power becomes
    // `exponent − fraction length + fractional_digits`.
    let mut all_digits = integer_digits;
    let fraction_length =
        i64::try_from(fraction_digits.len()).map_err(|_| DecimalTextError::TooLarge)?;
    all_digits.extend(fraction_digits);
    let mut power_of_ten = exponent - fraction_length + i64::from(fractional_digits);

    // A negative power divides: only trailing zeros may be dropped, anything else would be rounding.
    while power_of_ten < 0 {
        match all_digits.last() {
            Some(0) => {
                all_digits.pop();
                power_of_ten += 1;
            }
            Some(_) => {
                return Err(DecimalTextError::TooManyDecimalPlaces {
                    max_decimal_places: fractional_digits,
                });
            }
            None => {
                // Every digit was a zero: the value is exactly zero.
                power_of_ten = 0;
            }
        }
    }

    let mut scaled: i128 = 0;
    for digit in all_digits {
        scaled = scaled
            .checked_mul(10)
            .and_then(|shifted| shifted.checked_add(i128::from(digit)))
            .ok_or(DecimalTextError::TooLarge)?;
    }
    if scaled != 0 {
        for _ in 0..power_of_ten {
            scaled = scaled.checked_mul(10).ok_or(DecimalTextError::TooLarge)?;
        }
    }
    Ok(if is_negative { -scaled } else { scaled })
}

/// Formats `scaled / 10^fractional_digits` as plain decimal text, exactly.
///
/// Trailing zeros of the fraction are trimmed, but at least `min_fraction_digits` are kept
/// (`format_scaled_decimal(1_500, 3, 2)` is `"1.50"`).
pub(crate) fn format_scaled_decimal(
    scaled: i128,
    fractional_digits: u32,
    min_fraction_digits: usize,
) -> String {
    let divisor = 10_u128.pow(fractional_digits);
    let magnitude = scaled.unsigned_abs();
    let integer_part = magnitude / divisor;
    let fraction_part = magnitude % divisor;
    let width = fractional_digits as usize;
    let mut fraction_text = format!("{fraction_part:0width$}");
    while fraction_text.len() > min_fraction_digits && fraction_text.ends_with('0') {
        fraction_text.pop();
    }
    let sign = if scaled < 0 { "-" } else { "" };
    if fraction_text.is_empty() {
        format!("{sign}{integer_part}")
    } else {
        format!("{sign}{integer_part}.{fraction_text}")
    }
}

/// Digits of `text` as numbers 0–9, allowing an underscore only between two digits.
fn digits_without_underscores(text: &str) -> Result<Vec<u8>, DecimalTextError> {
    let bytes = text.as_bytes();
    let mut digits = Vec::with_capacity(bytes.len());
    for (byte_idx, &byte) in bytes.iter().enumerate() {
        match byte {
            b'0'..=b'9' => digits.push(byte - b'0'),
            b'_' => {
                let follows_digit = byte_idx > 0 && bytes[byte_idx - 1].is_ascii_digit();
                let precedes_digit = bytes.get(byte_idx + 1).is_some_and(u8::is_ascii_digit);
                if !(follows_digit && precedes_digit) {
                    return Err(DecimalTextError::NotADecimalNumber);
                }
            }
            _ => return Err(DecimalTextError::NotADecimalNumber),
        }
    }
    if digits.is_empty() {
        return Err(DecimalTextError::NotADecimalNumber);
    }
    Ok(digits)
}

/// The exponent after `e`: an optional sign and digits, bounded so the arithmetic above stays small.
fn parse_exponent(text: &str) -> Result<i64, DecimalTextError> {
    let (is_negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let mut exponent: i64 = 0;
    for digit in digits_without_underscores(unsigned)? {
        exponent = exponent * 10 + i64::from(digit);
        if exponent > 10_000 {
            // 10^10000 is far outside any amount: a large positive exponent can only overflow, and a
            // large negative one can only leave digits the unit cannot hold (or a zero, which the
            // caller still recognises at this bound), so stop counting here.
            if is_negative {
                return Ok(-10_001);
            }
            return Err(DecimalTextError::TooLarge);
        }
    }
    Ok(if is_negative { -exponent } else { exponent })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_decimals_exactly_at_nine_digits() {
        assert_eq!(parse_scaled_decimal("0.8", 9), Ok(800_000_000));
        assert_eq!(parse_scaled_decimal("2", 9), Ok(2_000_000_000));
        assert_eq!(parse_scaled_decimal("0.075", 9), Ok(75_000_000));
        assert_eq!(parse_scaled_decimal("0.000000001", 9), Ok(1));
        assert_eq!(parse_scaled_decimal("1_000.25", 9), Ok(1_000_250_000_000));
        assert_eq!(parse_scaled_decimal("+0.5", 9), Ok(500_000_000));
        assert_eq!(parse_scaled_decimal("-0.5", 9), Ok(-500_000_000));
        assert_eq!(parse_scaled_decimal("0.80000000000000", 9), Ok(800_000_000));
        assert_eq!(parse_scaled_decimal("000.0", 9), Ok(0));
        assert_eq!(parse_scaled_decimal("0.0000000000000", 9), Ok(0));
    }

    #[test]
    fn parses_exponents_exactly() {
        assert_eq!(parse_scaled_decimal("5e-4", 9), Ok(500_000));
        assert_eq!(parse_scaled_decimal("0.0005e3", 9), Ok(500_000_000));
        assert_eq!(parse_scaled_decimal("1.5E+2", 9), Ok(150_000_000_000));
        assert_eq!(parse_scaled_decimal("1e-9", 9), Ok(1));
        assert_eq!(parse_scaled_decimal("0e-10000", 9), Ok(0));
    }

    #[test]
    fn refuses_digits_the_unit_cannot_hold() {
        assert_eq!(
            parse_scaled_decimal("0.0000000001", 9),
            Err(DecimalTextError::TooManyDecimalPlaces {
                max_decimal_places: 9
            })
        );
        assert_eq!(
            parse_scaled_decimal("1e-10", 9),
            Err(DecimalTextError::TooManyDecimalPlaces {
                max_decimal_places: 9
            })
        );
        assert_eq!(
            parse_scaled_decimal("1e100", 9),
            Err(DecimalTextError::TooLarge)
        );
    }

    #[test]
    fn refuses_text_that_is_not_a_number() {
        for text in [
            "", ".", "1.", ".5", "1..2", "abc", "1_", "_1", "1__0", "1e", "0x10", "1 2",
        ] {
            assert_eq!(
                parse_scaled_decimal(text, 9),
                Err(DecimalTextError::NotADecimalNumber),
                "text {text:?}"
            );
        }
        assert_eq!(
            parse_scaled_decimal("inf", 9),
            Err(DecimalTextError::NotFinite)
        );
        assert_eq!(
            parse_scaled_decimal("-nan", 9),
            Err(DecimalTextError::NotFinite)
        );
    }

    #[test]
    fn formats_with_trimmed_zeros_and_a_minimum_of_fraction_digits() {
        assert_eq!(format_scaled_decimal(1_500, 3, 2), "1.50");
        assert_eq!(format_scaled_decimal(2_000, 3, 2), "2.00");
        assert_eq!(format_scaled_decimal(2_000, 3, 0), "2");
        assert_eq!(format_scaled_decimal(123_456, 9, 2), "0.000123456");
        assert_eq!(format_scaled_decimal(-1, 15, 2), "-0.000000000000001");
        assert_eq!(format_scaled_decimal(0, 15, 2), "0.00");
    }

    #[test]
    fn formatting_then_parsing_is_the_identity() {
        for scaled in [
            0_i128,
            1,
            7,
            10,
            999_999_999,
            1_000_000_000,
            123_456_789_012_345,
            -42,
        ] {
            let text = format_scaled_decimal(scaled, 9, 0);
            assert_eq!(parse_scaled_decimal(&text, 9), Ok(scaled), "text {text}");
        }
    }
}
