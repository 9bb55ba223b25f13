//! Reading one price file (the built-in table or a user's override file): the TOML schema, and its checked conversion into [`ModelPrice`]s.
//!
//! Prices are read exactly. A TOML float such as `0.075` is not taken from the `f64` the TOML parser
//! produces (which is only the nearest binary fraction) but from the literal text in the file,
//! located through its span and parsed as a decimal. Integers (`2`) and strings (`"0.075"`) are
//! accepted too.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde::Deserialize;
use toml::{Spanned, Value};

use super::currency::Currency;
use super::decimal_text::{format_scaled_decimal, parse_scaled_decimal};
use super::model_price::{ModelPrice, PriceOrigin};
use super::price_per_million_tokens::{NANO_DECIMAL_PLACES, PricePerMillionTokens};
use super::price_table_error::PriceTableError;
use super::price_tier::{PriceTier, TokenPrices};

/// The batch discount when a model does not give `batch_discount_percent`: batch costs half.
pub(crate) const DEFAULT_BATCH_DISCOUNT_PERCENT: u8 = 50;

/// One price file, checked.
#[derive(Debug)]
pub(crate) struct ParsedPriceFile {
    pub(crate) as_of: Option<String>,
    pub(crate) note: Option<String>,
    pub(crate) models: Vec<ParsedModel>,
}

/// One model entry, checked, with what the table needs to merge it with other files.
#[derive(Debug)]
pub(crate) struct ParsedModel {
    pub(crate) price: ModelPrice,
    /// Whether the entry has an `aliases` key; without one an override keeps the aliases it replaces.
    pub(crate) aliases_were_given: bool,
    /// Line of the `aliases` key, or of the entry when there is none, for alias clash messages.
    pub(crate) aliases_line: usize,
}

/// Parses and checks a whole price file.
pub(crate) fn parse_price_file(
    text: &str,
    origin: &PriceOrigin,
) -> Result<ParsedPriceFile, PriceTableError> {
    let raw_file: RawPriceFile =
        toml::from_str(text).map_err(|toml_error| PriceTableError::InvalidToml {
            origin: origin.clone(),
            message: toml_error.to_string().trim_end().to_owned(),
        })?;
    let context = FileContext { text, origin };

    let as_of = match &raw_file.as_of {
        Some(as_of) => Some(context.as_of_date(as_of)?),
        None => None,
    };
    let file_facts = FileFacts {
        as_of: as_of.as_deref(),
        region: raw_file.region.as_deref(),
        currency: raw_file.currency,
    };
    let mut models = Vec::with_capacity(raw_file.models.len());
    for (model_name, raw_model) in &raw_file.models {
        models.push(context.model(model_name, raw_model, &file_facts)?);
    }
    context.check_aliases_within_file(&models)?;
    Ok(ParsedPriceFile {
        as_of,
        note: raw_file.note,
        models,
    })
}

/// The top level of a price file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPriceFile {
    /// Date the prices were checked, `YYYY-MM-DD` (a string or a TOML date).
    as_of: Option<Spanned<Value>>,
    /// Free text shown with the table, such as how far the prices are confirmed.
    note: Option<String>,
    /// The region the prices are for, shown with every price read from the file.
    region: Option<String>,
    /// The currency of every model in the file, when they share one (each model still says it).
    currency: Option<Currency>,
    #[serde(default)]
    models: BTreeMap<String, Spanned<RawModelPrice>>,
}

/// `[models.<name>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModelPrice {
    currency: Spanned<Currency>,
    input: Option<Spanned<Value>>,
    output: Option<Spanned<Value>>,
    thinking_output: Option<Spanned<Value>>,
    tiers: Option<Spanned<Vec<Spanned<RawPriceTier>>>>,
    batch_discount_percent: Option<Spanned<i64>>,
    source: Option<String>,
    evidence: Option<String>,
    aliases: Option<Spanned<Vec<Spanned<String>>>>,
    /// The most output tokens one answer can have when a request sets no `max_tokens` (the
    /// model's documented limit); what an upper-bound estimate assumes then.
    max_output_tokens: Option<Spanned<i64>>,
    /// The most thinking tokens one answer can have when thinking is on and a request sets no
    /// `thinking_budget`.
    max_thinking_tokens: Option<Spanned<i64>>,
    /// Whether the provider's batch page lists the model for the file's region.
    batch_listed: Option<bool>,
}

/// `[[models.<name>.tiers]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPriceTier {
    up_to_input_tokens: Option<Spanned<i64>>,
    input: Spanned<Value>,
    output: Spanned<Value>,
    thinking_output: Option<Spanned<Value>>,
}

/// The prices of one tier as written, before the batch prices are derived.
struct RealtimeTierPrices<'raw> {
    up_to_input_tokens: Option<u64>,
    input: PriceAt<'raw>,
    output: PriceAt<'raw>,
    thinking_output: Option<PriceAt<'raw>>,
}

/// A parsed price with the place it was written, to point at it if its batch price is not exact.
struct PriceAt<'raw> {
    price: PricePerMillionTokens,
    value: &'raw Spanned<Value>,
    key: String,
}

/// What the top of a file says about each of its models.
struct FileFacts<'file> {
    as_of: Option<&'file str>,
    region: Option<&'file str>,
    currency: Option<Currency>,
}

/// The file being read, for error messages with file, line and key.
struct FileContext<'file> {
    text: &'file str,
    origin: &'file PriceOrigin,
}

impl FileContext<'_> {
    fn error(&self, span: Range<usize>, key: &str, problem: impl Into<String>) -> PriceTableError {
        let line = self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1;
        PriceTableError::InvalidValue {
            origin: self.origin.clone(),
            line,
            key: key.to_owned(),
            problem: problem.into(),
        }
    }

    fn line_of(&self, span: &Range<usize>) -> usize {
        self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn as_of_date(&self, as_of: &Spanned<Value>) -> Result<String, PriceTableError> {
        let date_text = match as_of.get_ref() {
            Value::String(text) => text.clone(),
            Value::Datetime(datetime) => datetime.to_string(),
            other => other.type_str().to_owned(),
        };
        if is_iso_date(&date_text) {
            Ok(date_text)
        } else {
            Err(self.error(
                as_of.span(),
                "as_of",
                format!("`{date_text}` is not a date; write the date the prices were checked as \"YYYY-MM-DD\""),
            ))
        }
    }

    fn model(
        &self,
        model_name: &str,
        raw_model: &Spanned<RawModelPrice>,
        file_facts: &FileFacts<'_>,
    ) -> Result<ParsedModel, PriceTableError> {
        let model_key = format!("models.{}", toml_key(model_name));
        let model_span = raw_model.span();
        if model_name.trim().is_empty() || model_name.trim() != model_name {
            return Err(self.error(
                model_span,
                &model_key,
                "a model name must not be empty or start or end with spaces; use the exact `model` value sent to the API",
            ));
        }
        let raw_model = raw_model.get_ref();
        let currency = *raw_model.currency.get_ref();
        if let Some(file_currency) = file_facts.currency
            && file_currency != currency
        {
            return Err(self.error(
                raw_model.currency.span(),
                &format!("{model_key}.currency"),
                format!(
                    "the file says every price is in {file_currency} (`currency` at the top), but this model is priced in {currency}; \
                     keep models of another currency in a price file of their own"
                ),
            ));
        }

        let batch_discount_percent = match &raw_model.batch_discount_percent {
            None => DEFAULT_BATCH_DISCOUNT_PERCENT,
            Some(percent) => u8::try_from(*percent.get_ref())
                .ok()
                .filter(|percent| *percent <= 100)
                .ok_or_else(|| {
                    self.error(
                        percent.span(),
                        &format!("{model_key}.batch_discount_percent"),
                        format!(
                            "{} is not a percentage from 0 to 100; it is the percent taken off the realtime price \
                             for batch requests (50 means batch costs half)",
                            percent.get_ref()
                        ),
                    )
                })?,
        };

        let max_output_tokens = self.token_limit(
            &model_key,
            "max_output_tokens",
            &raw_model.max_output_tokens,
        )?;
        let max_thinking_tokens = self.token_limit(
            &model_key,
            "max_thinking_tokens",
            &raw_model.max_thinking_tokens,
        )?;

        let realtime_tiers =
            self.realtime_tiers(&model_key, model_span.clone(), raw_model, currency)?;
        let mut tiers = Vec::with_capacity(realtime_tiers.len());
        let mut from_input_tokens = 0;
        for tier in &realtime_tiers {
            let realtime = TokenPrices {
                input: tier.input.price,
                output: tier.output.price,
                thinking_output: tier.thinking_output.as_ref().unwrap_or(&tier.output).price,
            };
            let batch = TokenPrices {
                input: self.batch_price(&tier.input, batch_discount_percent)?,
                output: self.batch_price(&tier.output, batch_discount_percent)?,
                thinking_output: self.batch_price(
                    tier.thinking_output.as_ref().unwrap_or(&tier.output),
                    batch_discount_percent,
                )?,
            };
            tiers.push(PriceTier::new(
                from_input_tokens,
                tier.up_to_input_tokens,
                realtime,
                batch,
            ));
            from_input_tokens = tier.up_to_input_tokens.map_or(0, |up_to| up_to + 1);
        }

        let (aliases, aliases_were_given, aliases_line) = match &raw_model.aliases {
            None => (Vec::new(), false, self.line_of(&model_span)),
            Some(aliases) => (
                self.aliases(&model_key, model_name, aliases)?,
                true,
                self.line_of(&aliases.span()),
            ),
        };

        Ok(ParsedModel {
            price: ModelPrice {
                name: model_name.to_owned(),
                aliases,
                currency,
                tiers,
                batch_discount_percent,
                source: raw_model.source.clone(),
                evidence: raw_model.evidence.clone(),
                origin: self.origin.clone(),
                as_of: file_facts.as_of.map(str::to_owned),
                max_output_tokens,
                max_thinking_tokens,
                batch_listed: raw_model.batch_listed,
                region: file_facts.region.map(str::to_owned),
            },
            aliases_were_given,
            aliases_line,
        })
    }

    /// The tiers as written; an untiered model becomes one unbounded tier.
    fn realtime_tiers<'raw>(
        &self,
        model_key: &str,
        model_span: Range<usize>,
        raw_model: &'raw RawModelPrice,
        currency: Currency,
    ) -> Result<Vec<RealtimeTierPrices<'raw>>, PriceTableError> {
        let Some(raw_tiers) = &raw_model.tiers else {
            let missing_price_problem = |key: &str, meaning: &str| {
                format!(
                    "`{key}` is missing: give the realtime price in {currency} per 1M {meaning} tokens \
                     (for example `{key} = 0.8`), or a list of `[[{model_key}.tiers]]`"
                )
            };
            let input = raw_model.input.as_ref().ok_or_else(|| {
                self.error(
                    model_span.clone(),
                    model_key,
                    missing_price_problem("input", "input"),
                )
            })?;
            let output = raw_model.output.as_ref().ok_or_else(|| {
                self.error(
                    model_span.clone(),
                    model_key,
                    missing_price_problem("output", "output"),
                )
            })?;
            return Ok(vec![RealtimeTierPrices {
                up_to_input_tokens: None,
                input: self.price(input, format!("{model_key}.input"), currency)?,
                output: self.price(output, format!("{model_key}.output"), currency)?,
                thinking_output: match &raw_model.thinking_output {
                    Some(value) => {
                        Some(self.price(value, format!("{model_key}.thinking_output"), currency)?)
                    }
                    None => None,
                },
            }]);
        };

        for (field_name, field) in [
            ("input", &raw_model.input),
            ("output", &raw_model.output),
            ("thinking_output", &raw_model.thinking_output),
        ] {
            if let Some(value) = field {
                return Err(self.error(
                    value.span(),
                    &format!("{model_key}.{field_name}"),
                    format!(
                        "a model with `tiers` takes every price from its tiers; move `{field_name}` into each \
                         `[[{model_key}.tiers]]` entry or remove the tiers"
                    ),
                ));
            }
        }
        let tier_count = raw_tiers.get_ref().len();
        if tier_count == 0 {
            return Err(self.error(
                raw_tiers.span(),
                &format!("{model_key}.tiers"),
                "the list of tiers is empty; give at least one tier, or remove `tiers` and give `input` and `output`",
            ));
        }

        let mut tiers = Vec::with_capacity(tier_count);
        let mut previous_up_to: Option<u64> = None;
        for (tier_idx, raw_tier) in raw_tiers.get_ref().iter().enumerate() {
            let tier_key = format!("{model_key}.tiers[{tier_idx}]");
            let is_last_tier = tier_idx + 1 == tier_count;
            let raw_tier_span = raw_tier.span();
            let raw_tier = raw_tier.get_ref();
            let up_to_key = format!("{tier_key}.up_to_input_tokens");
            let up_to_input_tokens = match (&raw_tier.up_to_input_tokens, is_last_tier) {
                (None, true) => None,
                (Some(up_to), true) => {
                    return Err(self.error(
                        up_to.span(),
                        &up_to_key,
                        "the last tier must not have `up_to_input_tokens`: it prices every longer prompt. \
                         Remove it (note the model's context limit in a comment if useful)",
                    ));
                }
                (None, false) => {
                    return Err(self.error(
                        raw_tier_span,
                        &tier_key,
                        "`up_to_input_tokens` is missing; every tier except the last needs the largest prompt \
                         length (in tokens, inclusive) it applies to, for example `up_to_input_tokens = 32768`",
                    ));
                }
                (Some(up_to), false) => {
                    let up_to_value = u64::try_from(*up_to.get_ref())
                        .ok()
                        .filter(|value| *value > previous_up_to.unwrap_or(0))
                        .ok_or_else(|| {
                            let after = previous_up_to
                                .map_or_else(|| "0".to_owned(), |previous| format!("the previous tier's {previous}"));
                            self.error(
                                up_to.span(),
                                &up_to_key,
                                format!(
                                    "{} must be larger than {after}; list tiers from the shortest prompts to the \
                                     longest",
                                    up_to.get_ref()
                                ),
                            )
                        })?;
                    previous_up_to = Some(up_to_value);
                    Some(up_to_value)
                }
            };
            tiers.push(RealtimeTierPrices {
                up_to_input_tokens,
                input: self.price(&raw_tier.input, format!("{tier_key}.input"), currency)?,
                output: self.price(&raw_tier.output, format!("{tier_key}.output"), currency)?,
                thinking_output: match &raw_tier.thinking_output {
                    Some(value) => {
                        Some(self.price(value, format!("{tier_key}.thinking_output"), currency)?)
                    }
                    None => None,
                },
            });
        }
        Ok(tiers)
    }

    /// A per-answer token limit (`max_output_tokens`, `max_thinking_tokens`): a whole number of at least 1.
    fn token_limit(
        &self,
        model_key: &str,
        field_name: &str,
        value: &Option<Spanned<i64>>,
    ) -> Result<Option<u64>, PriceTableError> {
        let Some(value) = value else {
            return Ok(None);
        };
        u64::try_from(*value.get_ref())
            .ok()
            .filter(|limit| *limit >= 1)
            .map(Some)
            .ok_or_else(|| {
                self.error(
                    value.span(),
                    &format!("{model_key}.{field_name}"),
                    format!(
                        "{} is not a token count; give the model's documented limit as a whole number of at least 1, \
                         or remove the key",
                        value.get_ref()
                    ),
                )
            })
    }

    /// Reads one price exactly from its literal text.
    fn price<'raw>(
        &self,
        value: &'raw Spanned<Value>,
        key: String,
        currency: Currency,
    ) -> Result<PriceAt<'raw>, PriceTableError> {
        let span = value.span();
        let fail = |problem: String| Err(self.error(span.clone(), &key, problem));
        let (literal, parsed) = match value.get_ref() {
            Value::Integer(integer) => (
                integer.to_string(),
                Ok(i128::from(*integer) * 10_i128.pow(NANO_DECIMAL_PLACES)),
            ),
            Value::Float(float) => {
                let literal = self
                    .text
                    .get(span.clone())
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                let parsed = parse_scaled_decimal(&literal, NANO_DECIMAL_PLACES);
                // Guard against ever pricing from the wrong text: the exact value must be the number
                // the TOML parser read (both conversions to f64 are correctly rounded).
                if let Ok(nano_units) = parsed {
                    let exact_as_float: Option<f64> =
                        format_scaled_decimal(nano_units, NANO_DECIMAL_PLACES, 0)
                            .parse()
                            .ok();
                    if exact_as_float != Some(*float) {
                        return fail(format!(
                            "could not read the exact digits of the number {float}; write the price as a string, \
                             for example \"{float}\""
                        ));
                    }
                }
                (literal, parsed)
            }
            Value::String(text) => (
                format!("\"{text}\""),
                parse_scaled_decimal(text, NANO_DECIMAL_PLACES),
            ),
            other => {
                return fail(format!(
                    "must be a number such as `0.8` (the price in {currency} per 1M tokens), not a {}",
                    other.type_str()
                ));
            }
        };
        let nano_units = match parsed {
            Ok(nano_units) => nano_units,
            Err(problem) => {
                return fail(format!(
                    "the price {literal} {problem}; prices are exact to 0.000000001 {currency} per 1M tokens"
                ));
            }
        };
        if nano_units < 0 {
            return fail(format!(
                "the price {literal} is negative; prices must be 0 or more"
            ));
        }
        let price = u64::try_from(nano_units)
            .ok()
            .and_then(|nano_units| PricePerMillionTokens::from_nano_units(nano_units, currency));
        match price {
            Some(price) => Ok(PriceAt { price, value, key }),
            None => fail(format!(
                "the price {literal} is above the limit of 1000000 {currency} per 1M tokens; \
                 prices are per million tokens, not per token"
            )),
        }
    }

    /// The batch price derived from a realtime price, refusing any rounding.
    fn batch_price(
        &self,
        realtime: &PriceAt<'_>,
        batch_discount_percent: u8,
    ) -> Result<PricePerMillionTokens, PriceTableError> {
        let percent_paid = 100 - u64::from(batch_discount_percent);
        realtime.price.scaled_by_percent(percent_paid).ok_or_else(|| {
            self.error(
                realtime.value.span(),
                &realtime.key,
                format!(
                    "the batch price ({} less {batch_discount_percent}%) is not a whole number of 0.000000001 {} \
                     per 1M tokens, so it cannot be computed exactly; give this price with at most 7 decimal places",
                    realtime.price.to_decimal_string(),
                    realtime.price.currency()
                ),
            )
        })
    }

    fn aliases(
        &self,
        model_key: &str,
        model_name: &str,
        aliases: &Spanned<Vec<Spanned<String>>>,
    ) -> Result<Vec<String>, PriceTableError> {
        let aliases_key = format!("{model_key}.aliases");
        let mut seen = BTreeSet::new();
        let mut checked = Vec::with_capacity(aliases.get_ref().len());
        for alias in aliases.get_ref() {
            let alias_text = alias.get_ref();
            let problem = if alias_text.trim().is_empty() || alias_text.trim() != alias_text {
                Some(format!(
                    "alias `{alias_text}` must not be empty or start or end with spaces"
                ))
            } else if alias_text == model_name {
                Some(format!(
                    "alias `{alias_text}` is the model's own name; remove it"
                ))
            } else if !seen.insert(alias_text.as_str()) {
                Some(format!("alias `{alias_text}` is listed twice; remove one"))
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(self.error(alias.span(), &aliases_key, problem));
            }
            checked.push(alias_text.clone());
        }
        Ok(checked)
    }

    /// Within one file, an alias must name exactly one model and must not shadow a model's name.
    fn check_aliases_within_file(&self, models: &[ParsedModel]) -> Result<(), PriceTableError> {
        let model_names: BTreeSet<&str> = models
            .iter()
            .map(|model| model.price.name.as_str())
            .collect();
        let mut owner_by_alias: BTreeMap<&str, &str> = BTreeMap::new();
        for model in models {
            let model_name = model.price.name.as_str();
            for alias in &model.price.aliases {
                let problem = if model_names.contains(alias.as_str()) {
                    Some(format!(
                        "alias `{alias}` is also the name of a model in this file; a model's own entry always wins, \
                         so remove the alias"
                    ))
                } else {
                    owner_by_alias.insert(alias, model_name).map(|other_model| {
                        format!("alias `{alias}` is also an alias of `{other_model}`; keep it on one model only")
                    })
                };
                if let Some(problem) = problem {
                    return Err(PriceTableError::InvalidValue {
                        origin: self.origin.clone(),
                        line: model.aliases_line,
                        key: format!("models.{}.aliases", toml_key(model_name)),
                        problem,
                    });
                }
            }
        }
        Ok(())
    }
}

/// `name` as a TOML key: bare if it can be, quoted otherwise (`qwen-plus`, `"qwen2.5-max"`).
pub fn toml_key(name: &str) -> String {
    let is_bare = !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if is_bare {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

/// Whether `text` is `YYYY-MM-DD` with a plausible month and day.
fn is_iso_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits_at = |range: Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    if bytes.len() != 10
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !digits_at(0..4)
        || !digits_at(5..7)
        || !digits_at(8..10)
    {
        return false;
    }
    let month: u32 = text[5..7].parse().unwrap_or(0);
    let day: u32 = text[8..10].parse().unwrap_or(0);
    (1..=12).contains(&month) && (1..=31).contains(&day)
}
