//! The job file's cost-estimate keys: `[estimate]` (tokenizer vocabulary, expected answer length) and the decimal amount of `[batch] max_cost`.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `[estimate]`: how `dashbatch estimate` (and a run's budget cap) count tokens and guess answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstimateSpec {
    /// The Qwen tokenizer vocabulary (`qwen.tiktoken` from the `dashscope` Python package),
    /// relative to the job file. `--tokenizer` and `DASHBATCH_TOKENIZER` win over it.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// Output tokens one answer is expected to use (thinking included), for the expected cost.
    /// Default: half of each request's output bound (`max_tokens`, plus the thinking budget).
    #[serde(default)]
    pub expected_output_tokens: Option<u64>,
}

/// An amount of money as written in the job file: a decimal string (`"12.50"`) or a TOML number
/// (`12.5`, `12`). Kept as decimal text; it becomes exact money once the model's currency is
/// known (the price table says it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecimalAmountText(pub String);

impl fmt::Display for DecimalAmountText {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl Serialize for DecimalAmountText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DecimalAmountText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AmountVisitor;

        impl serde::de::Visitor<'_> for AmountVisitor {
            type Value = DecimalAmountText;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an amount of money such as \"12.50\" or 12.5")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(DecimalAmountText(text.trim().to_owned()))
            }

            fn visit_i64<E: serde::de::Error>(self, integer: i64) -> Result<Self::Value, E> {
                Ok(DecimalAmountText(integer.to_string()))
            }

            fn visit_u64<E: serde::de::Error>(self, integer: u64) -> Result<Self::Value, E> {
                Ok(DecimalAmountText(integer.to_string()))
            }

            fn visit_f64<E: serde::de::Error>(self, float: f64) -> Result<Self::Value, E> {
                // Rust prints the shortest decimal that reads back as the same f64: the number as
                // the user typed it, for any amount written with up to 15 significant digits.
                Ok(DecimalAmountText(float.to_string()))
            }
        }

        deserializer.deserialize_any(AmountVisitor)
    }
}

/// Checks `[estimate]` and `[batch] max_cost` of a parsed job file; the error is the key and what is
/// wrong with it.
pub(crate) fn check_estimate_keys(spec: &super::JobSpec) -> Result<(), (&'static str, String)> {
    if let Some(max_cost) = &spec.batch.max_cost {
        check_positive_amount(&max_cost.0).map_err(|problem| ("batch.max_cost", problem))?;
    }
    let is_embeddings = spec.request.endpoint == super::EMBEDDINGS_ENDPOINT;
    match spec.estimate.expected_output_tokens {
        Some(_) if is_embeddings => Err((
            "estimate.expected_output_tokens",
            format!(
                "does not apply to the `{}` endpoint (embeddings have no output tokens); remove it",
                super::EMBEDDINGS_ENDPOINT
            ),
        )),
        Some(0) => Err((
            "estimate.expected_output_tokens",
            "must be at least 1: the output tokens one answer is expected to use".to_owned(),
        )),
        _ => Ok(()),
    }
}

/// An amount as written, `12.50` or `12.50 USD`: the number's text and the currency, if named.
///
/// # Errors
/// When a word follows the number that is not a currency dashbatch bills in.
pub fn split_amount_and_currency(
    text: &str,
) -> Result<(&str, Option<crate::pricing::Currency>), String> {
    let text = text.trim();
    let Some((number, code)) = text.rsplit_once(char::is_whitespace) else {
        return Ok((text, None));
    };
    let currency = match code.to_ascii_uppercase().as_str() {
        "CNY" | "RMB" => crate::pricing::Currency::Cny,
        "USD" => crate::pricing::Currency::Usd,
        _ => {
            return Err(format!(
                "`{text}` is not an amount of money; write a decimal number, optionally with its currency: \"12.50\", \"12.50 CNY\" or \"12.50 USD\""
            ));
        }
    };
    Ok((number.trim_end(), Some(currency)))
}

/// The cap `text` as money in `bills_in`, the currency the provider bills `model` in; a
/// currency written after the number must be that one.
///
/// # Errors
/// When `text` is no amount, or names another currency (a cap in the wrong currency would be
/// wrong by the exchange rate).
pub fn amount_in_currency(
    text: &str,
    bills_in: crate::pricing::Currency,
    model: &str,
) -> Result<crate::pricing::Money, String> {
    let (number, written) = split_amount_and_currency(text)?;
    if let Some(written) = written
        && written != bills_in
    {
        return Err(format!(
            "`{text}` is in {written}, but this provider bills `{model}` in {bills_in}; write the cap in {bills_in}, or run with the provider whose currency it is"
        ));
    }
    crate::pricing::Money::parse_decimal(number, bills_in).map_err(|error| error.to_string())
}

/// Whether `text` is a decimal amount above zero, optionally followed by `CNY` or `USD`.
pub fn check_positive_amount(text: &str) -> Result<(), String> {
    let (number, _) = split_amount_and_currency(text)?;
    let amount = crate::pricing::Money::parse_decimal(number, crate::pricing::Currency::Cny)
        .map_err(|_| {
            format!(
                "`{text}` is not an amount of money; write a decimal number such as \"12.50\" or 12.5, optionally with its currency (\"12.50 USD\"); without one it is in the currency the provider bills in"
            )
        })?;
    if amount.femto_units() <= 0 {
        return Err(format!(
            "`{text}` must be more than 0; it is the most the job may cost at batch price"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Holder {
        amount: DecimalAmountText,
    }

    #[test]
    fn amounts_keep_the_digits_the_user_wrote() {
        for (toml_text, expected) in [
            ("amount = \"12.50\"", "12.50"),
            ("amount = 12.5", "12.5"),
            ("amount = 0.1", "0.1"),
            ("amount = 3", "3"),
            ("amount = 0.000001", "0.000001"),
        ] {
            let holder: Holder = toml::from_str(toml_text).expect("valid");
            assert_eq!(holder.amount.0, expected, "{toml_text}");
        }
        let error = toml::from_str::<Holder>("amount = true").expect_err("not an amount");
        assert!(error.to_string().contains("an amount of money"), "{error}");
    }
}
