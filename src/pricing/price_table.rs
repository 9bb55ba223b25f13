//! `PriceTable`: the built-in, dated model price table, optionally overridden by a user's price file, with model lookup (names and aliases) and exact request costs.

use std::collections::BTreeMap;
use std::path::Path;

use super::builtin_table::BuiltInTable;
use super::currency::Currency;
use super::model_price::{ModelPrice, PriceOrigin};
use super::money::Money;
use super::price_file::{ParsedPriceFile, parse_price_file, toml_key};
use super::price_mode::PriceMode;
use super::price_table_error::PriceTableError;
use super::usage::Usage;
use crate::provider::ProviderKind;

/// Model prices by model name, for one provider's region and currency.
///
/// Start from [`PriceTable::builtin`] (or [`PriceTable::load`]) and layer a user's override file on
/// top: an override entry replaces the built-in entry of the same name as a whole, and new names add
/// models. An override entry without an `aliases` key keeps the aliases of the entry it replaces.
///
/// Lookup tries the exact model name first, then the `aliases` lists. Nothing else is guessed: a
/// dated snapshot such as `qwen-plus-2025-07-28` may be priced differently from `qwen-plus`, so it
/// is unknown unless a price file lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceTable {
    builtin_table: BuiltInTable,
    as_of: String,
    note: Option<String>,
    models: BTreeMap<String, ModelPrice>,
    model_name_by_alias: BTreeMap<String, String>,
}

impl PriceTable {
    /// One built-in table alone.
    ///
    /// # Panics
    /// Only if a table in `src/pricing/tables/` is invalid, which the tests of this module rule out.
    #[must_use]
    pub fn builtin(builtin_table: BuiltInTable) -> PriceTable {
        PriceTable::from_builtin_toml(builtin_table)
            .expect("the built-in price tables are valid (checked by the pricing tests)")
    }

    /// The built-in table `provider` bills by, alone.
    #[must_use]
    pub fn for_provider(provider: ProviderKind) -> PriceTable {
        PriceTable::builtin(BuiltInTable::for_provider(provider))
    }

    /// The built-in table of `provider` with the prices file chosen by `--prices` (`flag`), else
    /// by `DASHBATCH_PRICES`, on top; and that choice, to record for resuming and to name in
    /// messages. The one loader every command uses.
    ///
    /// # Errors
    /// When the chosen file cannot be read or is invalid.
    pub fn load_chosen(
        flag: Option<&Path>,
        provider: ProviderKind,
    ) -> Result<
        (
            PriceTable,
            Option<crate::settings::Setting<std::path::PathBuf>>,
        ),
        PriceTableError,
    > {
        let chosen = crate::env::chosen_prices_file(flag);
        let table = PriceTable::load(
            chosen.as_ref().map(|setting| setting.value.as_path()),
            provider,
        )?;
        Ok((table, chosen))
    }

    /// The built-in table of `provider`, with the user's override file on top when one is given.
    ///
    /// # Errors
    /// When the override file cannot be read or is not a valid price table; the error names the
    /// file, line and key.
    pub fn load(
        override_file: Option<&Path>,
        provider: ProviderKind,
    ) -> Result<PriceTable, PriceTableError> {
        let builtin = PriceTable::for_provider(provider);
        match override_file {
            Some(path) => builtin.with_override_file(path),
            None => Ok(builtin),
        }
    }

    /// This table with the price file at `path` layered on top.
    ///
    /// # Errors
    /// As [`PriceTable::load`].
    pub fn with_override_file(self, path: &Path) -> Result<PriceTable, PriceTableError> {
        let toml_text = read_price_file(path)?;
        self.with_override_toml(&toml_text, path)
    }

    /// This table with price file text layered on top; `path` is only used to name the file in
    /// errors and in [`ModelPrice::origin`].
    ///
    /// # Errors
    /// When the text is not a valid price table, or its aliases clash with the table's.
    pub fn with_override_toml(
        mut self,
        toml_text: &str,
        path: &Path,
    ) -> Result<PriceTable, PriceTableError> {
        let origin = PriceOrigin::OverrideFile(path.to_owned());
        let parsed_file = parse_price_file(toml_text, &origin)?;
        self.merge(parsed_file, &origin)?;
        Ok(self)
    }

    /// The built-in table this one starts from, which says the region and the currency.
    #[must_use]
    pub fn builtin_table(&self) -> BuiltInTable {
        self.builtin_table
    }

    /// The currency the provider bills in: every price used for a job must be in it.
    #[must_use]
    pub fn currency(&self) -> Currency {
        self.builtin_table.currency()
    }

    /// The price of the job's `model`, checked to be in the provider's currency: `Ok(None)` for an
    /// unknown model (the caller decides whether that is an error).
    ///
    /// # Errors
    /// When a price file prices the model in another currency than the provider bills in: a cost
    /// or a budget in the wrong currency would be silently wrong by the exchange rate.
    pub fn price_in_provider_currency(
        &self,
        model: &str,
    ) -> Result<Option<&ModelPrice>, PriceTableError> {
        let Some(price) = self.lookup(model) else {
            return Ok(None);
        };
        if price.currency() == self.currency() {
            return Ok(Some(price));
        }
        Err(PriceTableError::WrongCurrency {
            model: model.to_owned(),
            origin: price.origin().clone(),
            price_currency: price.currency(),
            provider_table: self.builtin_table,
        })
    }

    /// The date the built-in prices were checked, `YYYY-MM-DD`.
    #[must_use]
    pub fn as_of(&self) -> &str {
        &self.as_of
    }

    /// The built-in table's note on how far its prices are confirmed.
    #[must_use]
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// The price of `model`: by exact name first, then by alias. `None` for an unknown model; the
    /// caller decides whether that is an error.
    #[must_use]
    pub fn lookup(&self, model: &str) -> Option<&ModelPrice> {
        self.models.get(model).or_else(|| {
            self.model_name_by_alias
                .get(model)
                .and_then(|model_name| self.models.get(model_name))
        })
    }

    /// Every model, sorted by name.
    pub fn models(&self) -> impl Iterator<Item = &ModelPrice> {
        self.models.values()
    }

    /// The exact cost of one request (or of several requests' summed usage when they fall into the
    /// same tier) to `model`; `None` when the model is unknown. See [`ModelPrice::cost`] for how
    /// tiers, thinking and reasoning tokens are billed.
    #[must_use]
    pub fn cost(
        &self,
        model: &str,
        usage: &Usage,
        thinking: bool,
        mode: PriceMode,
    ) -> Option<Money> {
        self.lookup(model)
            .map(|model_price| model_price.cost(usage, thinking, mode))
    }

    fn from_builtin_toml(builtin_table: BuiltInTable) -> Result<PriceTable, PriceTableError> {
        PriceTable::from_table_text(builtin_table, builtin_table.toml_text())
    }

    fn from_table_text(
        builtin_table: BuiltInTable,
        toml_text: &str,
    ) -> Result<PriceTable, PriceTableError> {
        let origin = PriceOrigin::BuiltIn(builtin_table);
        let parsed_file = parse_price_file(toml_text, &origin)?;
        let Some(as_of) = parsed_file.as_of.clone() else {
            return Err(PriceTableError::InvalidValue {
                origin,
                line: 1,
                key: "as_of".to_owned(),
                problem: "the built-in table must say when its prices were checked: add `as_of = \"YYYY-MM-DD\"`"
                    .to_owned(),
            });
        };
        let mut table = PriceTable {
            builtin_table,
            as_of,
            note: parsed_file.note.clone(),
            models: BTreeMap::new(),
            model_name_by_alias: BTreeMap::new(),
        };
        table.merge(parsed_file, &origin)?;
        Ok(table)
    }

    /// Adds or replaces the file's models, then rebuilds the alias index, refusing aliases that
    /// would make a name mean two models.
    fn merge(
        &mut self,
        parsed_file: ParsedPriceFile,
        origin: &PriceOrigin,
    ) -> Result<(), PriceTableError> {
        let mut aliases_line_by_model = BTreeMap::new();
        for mut parsed_model in parsed_file.models {
            let model_name = parsed_model.price.name.clone();
            if !parsed_model.aliases_were_given
                && let Some(replaced) = self.models.get(&model_name)
            {
                parsed_model.price.aliases.clone_from(&replaced.aliases);
            }
            aliases_line_by_model.insert(model_name.clone(), parsed_model.aliases_line);
            self.models.insert(model_name, parsed_model.price);
        }

        // A model's own name always wins over an alias: drop aliases that now name a model.
        let model_names: Vec<String> = self.models.keys().cloned().collect();
        for model in self.models.values_mut() {
            model
                .aliases
                .retain(|alias| model_names.binary_search(alias).is_err());
        }

        let mut model_name_by_alias: BTreeMap<String, String> = BTreeMap::new();
        for model in self.models.values() {
            for alias in &model.aliases {
                let Some(other_model_name) =
                    model_name_by_alias.insert(alias.clone(), model.name.clone())
                else {
                    continue;
                };
                // Blame the entry from the file being merged (the other one was fine before it).
                let (blamed_model, other_model) = if aliases_line_by_model.contains_key(&model.name)
                {
                    (model, &self.models[&other_model_name])
                } else {
                    (&self.models[&other_model_name], model)
                };
                return Err(PriceTableError::InvalidValue {
                    origin: origin.clone(),
                    line: aliases_line_by_model
                        .get(&blamed_model.name)
                        .copied()
                        .unwrap_or(1),
                    key: format!("models.{}.aliases", toml_key(&blamed_model.name)),
                    problem: format!(
                        "alias `{alias}` already belongs to model `{}` in {}; remove it here, or override \
                         `[models.{}]` with the `aliases` it should keep (for example `aliases = []`)",
                        other_model.name,
                        other_model.origin,
                        toml_key(&other_model.name)
                    ),
                });
            }
        }
        self.model_name_by_alias = model_name_by_alias;
        Ok(())
    }
}

/// No price file is larger than this; a bigger one (or an endless device) is refused unread.
const LARGEST_PRICE_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The text of a price file: a regular UTF-8 file of at most [`LARGEST_PRICE_FILE_BYTES`].
///
/// # Errors
/// When it cannot be read, is not a regular file, is too large or is not UTF-8.
pub fn read_price_file(path: &Path) -> Result<String, PriceTableError> {
    let read_error = |problem: String| PriceTableError::ReadFile {
        path: path.to_owned(),
        problem,
    };
    let bytes = crate::bounded_read::read_regular_file_at_most(path, LARGEST_PRICE_FILE_BYTES)
        .map_err(|error| read_error(error.to_string()))?;
    String::from_utf8(bytes)
        .map_err(|_| read_error("it is not UTF-8 text; a price file is TOML".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::{Currency, PricePerMillionTokens};
    use std::path::PathBuf;

    fn override_path() -> PathBuf {
        PathBuf::from("my-prices.toml")
    }

    fn with_overrides(toml_text: &str) -> PriceTable {
        PriceTable::for_provider(crate::provider::ProviderKind::Dashscope)
            .with_override_toml(toml_text, &override_path())
            .expect("override file is valid")
    }

    fn override_error(toml_text: &str) -> String {
        PriceTable::for_provider(crate::provider::ProviderKind::Dashscope)
            .with_override_toml(toml_text, &override_path())
            .expect_err("override file is invalid")
            .to_string()
    }

    fn usage(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            reasoning_tokens: 0,
        }
    }

    fn cny(text: &str) -> Money {
        Money::parse_decimal(text, Currency::Cny).expect("valid amount")
    }

    /// Small deterministic generator for property-style tests (SplitMix64), so failures reproduce.
    struct TestRandom(u64);

    impl TestRandom {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut mixed = self.0;
            mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            mixed ^ (mixed >> 31)
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound
        }
    }

    // ---- The built-in table -------------------------------------------------------------------

    #[test]
    fn every_builtin_table_is_dated_sourced_labelled_and_in_its_currency() {
        for builtin_table in BuiltInTable::ALL {
            let table = PriceTable::builtin(builtin_table);
            assert_eq!(table.as_of(), "2026-12-01");
            assert!(table.note().is_some(), "{builtin_table}");
            assert!(table.models().count() >= 10, "{builtin_table}");
            for model in table.models() {
                let name = model.name();
                assert!(
                    model.source().is_some_and(|source| !source.is_empty()),
                    "{builtin_table}: {name} has no source"
                );
                assert!(
                    matches!(model.evidence(), Some("DOC" | "INF" | "3P")),
                    "{builtin_table}: {name} has no evidence label"
                );
                assert!(model.batch_listed().is_some(), "{builtin_table}: {name}");
                assert!(model.region().is_some(), "{builtin_table}: {name}");
                assert_eq!(model.origin(), &PriceOrigin::BuiltIn(builtin_table));
                assert_eq!(model.as_of(), Some("2026-12-01"));
                assert_eq!(model.currency(), builtin_table.currency(), "{name}");
                assert_eq!(model.batch_discount_percent(), 50);
                assert_eq!(table.price_in_provider_currency(name).unwrap(), Some(model));
            }
        }
    }

    /// The figures of `shared/reference/prices-and-vision.md` (§1a Beijing CNY, §1b Singapore
    /// USD, §2 OpenAI USD), written out again here so that a wrong table entry cannot hide: (model,
    /// prompt tokens selecting the tier, realtime input, output, thinking output).
    /// (model, prompt tokens selecting the tier, realtime input, output, thinking output).
    type ReferenceRow = (&'static str, u64, &'static str, &'static str, &'static str);

    const REFERENCE_FIGURES: [(BuiltInTable, &[ReferenceRow]); 3] = [
        (
            BuiltInTable::DashscopeBeijing,
            &[
                ("qwen-plus", 131_072, "0.80", "2.00", "8.00"),
                ("qwen-plus", 131_073, "2.40", "20.00", "24.00"),
                ("qwen-plus", 262_145, "4.80", "48.00", "64.00"),
                ("qwen-flash", 131_072, "0.15", "1.50", "1.50"),
                ("qwen-flash", 131_073, "0.60", "6.00", "6.00"),
                ("qwen-flash", 262_145, "1.20", "12.00", "12.00"),
                ("qwen-turbo", 0, "0.30", "0.60", "3.00"),
                ("qwen-max", 0, "2.40", "9.60", "9.60"),
                ("qwen3-max", 32_768, "2.50", "10.00", "10.00"),
                ("qwen3-max", 32_769, "4.00", "16.00", "16.00"),
                ("qwen3-max", 131_073, "7.00", "28.00", "28.00"),
                ("qwen3.5-plus", 0, "0.80", "4.80", "4.80"),
                ("qwen3.5-plus", 131_073, "2.00", "12.00", "12.00"),
                ("qwen3.5-plus", 262_145, "4.00", "24.00", "24.00"),
                ("qwen3.6-plus", 262_144, "2.00", "12.00", "12.00"),
                ("qwen3.6-plus", 262_145, "8.00", "48.00", "48.00"),
                ("qwen3.7-plus", 0, "2.00", "8.00", "8.00"),
                ("qwen3.7-plus", 262_145, "6.00", "24.00", "24.00"),
                ("qwen3.5-flash", 0, "0.20", "2.00", "2.00"),
                ("qwen3.5-flash", 131_073, "0.80", "8.00", "8.00"),
                ("qwen3.5-flash", 262_145, "1.20", "12.00", "12.00"),
                ("qwen3.6-flash", 0, "1.20", "7.20", "7.20"),
                ("qwen3.6-flash", 262_145, "4.80", "28.80", "28.80"),
                ("qwen3.7-max", 900_000, "12.00", "36.00", "36.00"),
                ("qwen-long", 0, "0.50", "2.00", "2.00"),
                ("qwen3-vl-plus", 0, "1.00", "10.00", "10.00"),
                ("qwen3-vl-plus", 32_769, "1.50", "15.00", "15.00"),
                ("qwen3-vl-plus", 131_073, "3.00", "30.00", "30.00"),
                ("qwen3-vl-flash", 0, "0.15", "1.50", "1.50"),
                ("qwen3-vl-flash", 32_769, "0.30", "3.00", "3.00"),
                ("qwen3-vl-flash", 131_073, "0.60", "6.00", "6.00"),
                ("qwen-vl-max", 0, "1.60", "4.00", "4.00"),
                ("qwen-vl-plus", 0, "0.80", "2.00", "2.00"),
                ("text-embedding-v4", 0, "0.50", "0.00", "0.00"),
                ("text-embedding-v3", 0, "0.50", "0.00", "0.00"),
                ("text-embedding-v2", 0, "0.70", "0.00", "0.00"),
                ("text-embedding-v1", 0, "0.70", "0.00", "0.00"),
                ("batch-test-model", 0, "0.00", "0.00", "0.00"),
            ],
        ),
        (
            BuiltInTable::DashscopeSingapore,
            &[
                ("qwen-plus", 262_144, "0.40", "1.20", "4.00"),
                ("qwen-plus", 262_145, "1.20", "3.60", "12.00"),
                ("qwen-flash", 0, "0.05", "0.40", "0.40"),
                ("qwen-flash", 262_145, "0.25", "2.00", "2.00"),
                ("qwen-turbo", 0, "0.05", "0.20", "0.50"),
                ("qwen-max", 0, "1.60", "6.40", "6.40"),
                ("qwen3-max", 0, "1.20", "6.00", "6.00"),
                ("qwen3-max", 32_769, "2.40", "12.00", "12.00"),
                ("qwen3-max", 131_073, "3.00", "15.00", "15.00"),
                ("qwen3.5-plus", 0, "0.40", "2.40", "2.40"),
                ("qwen3.5-plus", 262_145, "0.50", "3.00", "3.00"),
                ("qwen3.6-plus", 0, "0.50", "3.00", "3.00"),
                ("qwen3.6-plus", 262_145, "2.00", "6.00", "6.00"),
                ("qwen3.7-plus", 0, "0.40", "1.60", "1.60"),
                ("qwen3.7-plus", 262_145, "1.20", "4.80", "4.80"),
                ("qwen3.5-flash", 0, "0.10", "0.40", "0.40"),
                ("qwen3.6-flash", 0, "0.25", "1.50", "1.50"),
                ("qwen3.6-flash", 262_145, "1.00", "4.00", "4.00"),
                ("qwen3.7-max", 0, "2.50", "7.50", "7.50"),
                ("qwen3-vl-plus", 0, "0.20", "1.60", "1.60"),
                ("qwen3-vl-plus", 32_769, "0.30", "2.40", "2.40"),
                ("qwen3-vl-plus", 131_073, "0.60", "4.80", "4.80"),
                ("qwen3-vl-flash", 0, "0.05", "0.40", "0.40"),
                ("qwen3-vl-flash", 32_769, "0.075", "0.60", "0.60"),
                ("qwen3-vl-flash", 131_073, "0.12", "0.96", "0.96"),
                ("qwen-vl-max", 0, "0.80", "3.20", "3.20"),
                ("qwen-vl-plus", 0, "0.21", "0.63", "0.63"),
                ("text-embedding-v4", 0, "0.07", "0.00", "0.00"),
                ("text-embedding-v3", 0, "0.07", "0.00", "0.00"),
            ],
        ),
        (
            BuiltInTable::Openai,
            &[
                ("gpt-4o-mini", 0, "0.15", "0.60", "0.60"),
                ("gpt-4o", 0, "2.50", "10.00", "10.00"),
                ("gpt-4.1", 0, "2.00", "8.00", "8.00"),
                ("gpt-4.1-mini", 0, "0.40", "1.60", "1.60"),
                ("gpt-4.1-nano", 0, "0.10", "0.40", "0.40"),
                ("gpt-5", 0, "1.25", "10.00", "10.00"),
                ("gpt-5-mini", 0, "0.25", "2.00", "2.00"),
                ("gpt-5-nano", 0, "0.05", "0.40", "0.40"),
                ("o4-mini", 0, "1.10", "4.40", "4.40"),
                ("text-embedding-3-small", 0, "0.02", "0.00", "0.00"),
                ("text-embedding-3-large", 0, "0.13", "0.00", "0.00"),
            ],
        ),
    ];

    #[test]
    fn builtin_tables_have_the_reference_figures_and_nothing_else() {
        for (builtin_table, expected) in REFERENCE_FIGURES {
            let table = PriceTable::builtin(builtin_table);
            for &(model_name, prompt_tokens, input, output, thinking_output) in expected {
                let model = table
                    .lookup(model_name)
                    .unwrap_or_else(|| panic!("{builtin_table}: {model_name} is built in"));
                let tier_index = model.tier_index_for_prompt(prompt_tokens);
                let prices = model
                    .per_million(PriceMode::Realtime, tier_index)
                    .expect("tier exists");
                let actual = (
                    prices.input.to_decimal_string(),
                    prices.output.to_decimal_string(),
                    prices.thinking_output.to_decimal_string(),
                );
                assert_eq!(
                    actual,
                    (
                        input.to_owned(),
                        output.to_owned(),
                        thinking_output.to_owned()
                    ),
                    "{builtin_table}: {model_name} at {prompt_tokens} prompt tokens"
                );
            }
            let listed: std::collections::BTreeSet<&str> =
                expected.iter().map(|row| row.0).collect();
            let built_in: std::collections::BTreeSet<&str> =
                table.models().map(ModelPrice::name).collect();
            assert_eq!(built_in, listed, "{builtin_table}");
        }
    }

    #[test]
    fn batch_listing_follows_the_newest_batch_pages_of_each_region() {
        let beijing = PriceTable::builtin(BuiltInTable::DashscopeBeijing);
        let singapore = PriceTable::builtin(BuiltInTable::DashscopeSingapore);
        let listed = |table: &PriceTable, model: &str| table.lookup(model).unwrap().batch_listed();
        assert_eq!(listed(&beijing, "qwen-plus"), Some(true));
        assert_eq!(listed(&beijing, "qwen-turbo"), Some(false));
        assert_eq!(listed(&beijing, "qwen3.6-plus"), Some(true));
        for model in [
            "qwen-max",
            "qwen-plus",
            "qwen-turbo",
            "qwen-flash",
            "qwen3.7-plus",
        ] {
            assert_eq!(listed(&singapore, model), Some(true), "{model}");
        }
        for model in ["qwen3-vl-plus", "text-embedding-v4", "qwen3.5-flash"] {
            assert_eq!(listed(&singapore, model), Some(false), "{model}");
        }
    }

    #[test]
    fn a_price_in_another_currency_than_the_provider_bills_in_is_refused() {
        let table = PriceTable::for_provider(crate::provider::ProviderKind::DashscopeIntl)
            .with_override_toml(
                "[models.my-model]\ncurrency = \"CNY\"\ninput = 1\noutput = 1\n",
                &override_path(),
            )
            .unwrap();
        let error = table
            .price_in_provider_currency("my-model")
            .expect_err("CNY price for a USD provider")
            .to_string();
        for words in [
            "my-model",
            "my-prices.toml",
            "in CNY",
            "bills in USD",
            "Singapore",
        ] {
            assert!(error.contains(words), "no `{words}` in {error}");
        }
        assert_eq!(table.price_in_provider_currency("unknown").unwrap(), None);
        assert!(
            table
                .price_in_provider_currency("qwen-plus")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_file_level_currency_binds_every_model_of_the_file() {
        let error = override_error(
            "currency = \"USD\"\n[models.a]\ncurrency = \"CNY\"\ninput = 1\noutput = 1\n",
        );
        assert!(error.contains("models.a.currency"), "{error}");
        assert!(error.contains("in USD"), "{error}");
    }

    #[test]
    fn embedding_batch_price_matches_the_official_per_thousand_quote() {
        // A11: "0.0005元/千Token, Batch 0.00025元" — per thousand tokens.
        let table = PriceTable::for_provider(crate::provider::ProviderKind::Dashscope);
        let thousand_tokens = usage(1_000, 0);
        assert_eq!(
            table.cost(
                "text-embedding-v4",
                &thousand_tokens,
                false,
                PriceMode::Realtime
            ),
            Some(cny("0.0005"))
        );
        assert_eq!(
            table.cost(
                "text-embedding-v4",
                &thousand_tokens,
                false,
                PriceMode::Batch
            ),
            Some(cny("0.00025"))
        );
    }

    #[test]
    fn aliases_resolve_after_exact_names_and_nothing_else_is_guessed() {
        let table = PriceTable::for_provider(crate::provider::ProviderKind::Dashscope);
        for (alias, model_name) in [
            ("qwen-plus-latest", "qwen-plus"),
            ("qwen-max-latest", "qwen-max"),
            ("qwen-long-latest", "qwen-long"),
            ("qwen-turbo-latest", "qwen-turbo"),
        ] {
            assert_eq!(
                table.lookup(alias).map(ModelPrice::name),
                Some(model_name),
                "alias {alias}"
            );
        }
        for unknown in [
            "qwen-plus-2025-07-28",
            "QWEN-PLUS",
            "qwen-plus ",
            "sim-echo",
            "sim-",
            "gpt-4o-mini",
            "",
        ] {
            assert!(
                table.lookup(unknown).is_none(),
                "{unknown:?} must be unknown"
            );
            assert!(
                table
                    .cost(unknown, &usage(1, 1), false, PriceMode::Batch)
                    .is_none()
            );
        }
    }

    #[test]
    fn builtin_toml_reads_prices_exactly_from_their_text() {
        // 0.075 and 0.0005 × 1000 are not exact in binary floating point; the table must be.
        let table = PriceTable::for_provider(crate::provider::ProviderKind::Dashscope);
        let flash = table.lookup("qwen-flash").expect("built in");
        assert_eq!(
            flash
                .per_million(PriceMode::Batch, 0)
                .map(|prices| prices.input.nano_units()),
            Some(75_000_000)
        );
        let embedding = table.lookup("text-embedding-v3").expect("built in");
        let realtime = embedding
            .per_million(PriceMode::Realtime, 0)
            .expect("one tier");
        assert_eq!(realtime.input.nano_units(), 500_000_000);
        assert_eq!(
            realtime.input.cost_of_tokens(1_000).femto_units(),
            500_000_000_000
        );
    }

    // ---- Costs --------------------------------------------------------------------------------

    #[test]
    fn cost_bills_prompt_at_input_and_completion_at_output_or_thinking_price() {
        let table = PriceTable::for_provider(crate::provider::ProviderKind::Dashscope);
        // 100,000 prompt tokens stay in qwen-plus's first tier (0.8 in, 2 out, 8 thinking out).
        let first_tier_usage = usage(100_000, 1_000_000);
        let cost = |thinking, mode| table.cost("qwen-plus", &first_tier_usage, thinking, mode);
        assert_eq!(cost(false, PriceMode::Realtime), Some(cny("2.08")));
        assert_eq!(cost(true, PriceMode::Realtime), Some(cny("8.08")));
        assert_eq!(cost(false, PriceMode::Batch), Some(cny("1.04")));
        assert_eq!(cost(true, PriceMode::Batch), Some(cny("4.04")));
        // Reasoning tokens are part of completion_tokens and never billed on top.
        let with_reasoning = Usage {
            reasoning_tokens: 900_000,
            ..first_tier_usage
        };
        assert_eq!(
            table.cost("qwen-plus", &with_reasoning, true, PriceMode::Batch),
            Some(cny("4.04"))
        );
        // Thinking off falls back to the output price for models without a thinking price.
        assert_eq!(
            table.cost("qwen-max", &first_tier_usage, true, PriceMode::Realtime),
            table.cost("qwen-max", &first_tier_usage, false, PriceMode::Realtime)
        );
    }

    #[test]
    fn small_requests_cost_exact_fractions() {
        let table = PriceTable::for_provider(crate::provider::ProviderKind::Dashscope);
        // 26 prompt + 49 completion tokens on qwen-flash in batch: 26 × 0.075 + 49 × 0.75 per 1M.
        let cost = table
            .cost("qwen-flash", &usage(26, 49), false, PriceMode::Batch)
            .expect("known");
        assert_eq!(cost.to_decimal_string(), "0.0000387");
        assert_eq!(cost.to_string(), "0.0000387 CNY");
        assert_eq!(
            table.cost(
                "batch-test-model",
                &usage(500, 500),
                false,
                PriceMode::Batch
            ),
            Some(cny("0"))
        );
    }

    #[test]
    fn tier_is_chosen_by_prompt_tokens_at_and_one_past_each_boundary() {
        let table = PriceTable::for_provider(crate::provider::ProviderKind::Dashscope);
        let qwen3_max = table.lookup("qwen3-max").expect("built in");
        assert_eq!(qwen3_max.tier_index_for_prompt(0), 0);
        assert_eq!(qwen3_max.tier_index_for_prompt(32_768), 0);
        assert_eq!(qwen3_max.tier_index_for_prompt(32_769), 1);
        assert_eq!(qwen3_max.tier_index_for_prompt(131_072), 1);
        assert_eq!(qwen3_max.tier_index_for_prompt(131_073), 2);
        assert_eq!(qwen3_max.tier_index_for_prompt(u64::MAX), 2);
        assert_eq!(qwen3_max.tiers()[1].from_input_tokens(), 32_769);
        assert_eq!(qwen3_max.tiers()[1].up_to_input_tokens(), Some(131_072));
        assert_eq!(qwen3_max.tiers()[2].up_to_input_tokens(), None);

        // Realtime: 32768 × 2.5 + 1000 × 10 per 1M; 32769 × 4 + 1000 × 16 per 1M.
        let at_boundary = table.cost(
            "qwen3-max",
            &usage(32_768, 1_000),
            false,
            PriceMode::Realtime,
        );
        let one_past = table.cost(
            "qwen3-max",
            &usage(32_769, 1_000),
            false,
            PriceMode::Realtime,
        );
        assert_eq!(at_boundary, Some(cny("0.09192")));
        assert_eq!(one_past, Some(cny("0.147076")));
        assert_eq!(qwen3_max.per_million(PriceMode::Batch, 3), None);
    }

    #[test]
    fn batch_costs_exactly_half_of_realtime_for_every_model_and_usage() {
        let table = PriceTable::for_provider(crate::provider::ProviderKind::Dashscope);
        let mut random = TestRandom(7);
        for model in table.models() {
            for _ in 0..200 {
                let request = Usage {
                    prompt_tokens: random.below(1_100_000),
                    completion_tokens: random.below(100_000),
                    reasoning_tokens: 0,
                };
                let thinking = random.below(2) == 1;
                let batch = model.cost(&request, thinking, PriceMode::Batch);
                let realtime = model.cost(&request, thinking, PriceMode::Realtime);
                assert_eq!(
                    batch.femto_units() * 2,
                    realtime.femto_units(),
                    "{} {request:?} thinking={thinking}",
                    model.name()
                );
            }
        }
    }

    #[test]
    fn sum_of_row_costs_equals_cost_of_summed_usage_within_one_tier() {
        let table = PriceTable::for_provider(crate::provider::ProviderKind::Dashscope);
        let mut random = TestRandom(42);
        for (model_name, max_prompt_tokens_in_first_tier) in [
            ("qwen-plus", 131_072),
            ("qwen3-max", 32_768),
            ("qwen-flash", 131_072),
            ("text-embedding-v4", u64::MAX),
        ] {
            for mode in [PriceMode::Batch, PriceMode::Realtime] {
                for _ in 0..50 {
                    let row_count = 1 + random.below(40);
                    // Rows are small enough that even their sum stays inside the first tier.
                    let per_row_limit =
                        (max_prompt_tokens_in_first_tier / row_count).min(20_000) + 1;
                    let rows: Vec<Usage> = (0..row_count)
                        .map(|_| usage(random.below(per_row_limit), random.below(5_000)))
                        .collect();
                    let row_costs = rows
                        .iter()
                        .map(|row| table.cost(model_name, row, true, mode).expect("known"));
                    let sum_of_row_costs =
                        Money::try_sum(Currency::Cny, row_costs).expect("one currency");
                    let summed_usage = rows
                        .iter()
                        .try_fold(Usage::default(), |total, row| total.checked_add(row))
                        .expect("no overflow");
                    let cost_of_summed_usage = table
                        .cost(model_name, &summed_usage, true, mode)
                        .expect("known");
                    assert_eq!(
                        sum_of_row_costs, cost_of_summed_usage,
                        "{model_name} {mode} {rows:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn per_row_f64_display_values_may_drift_but_the_exact_total_does_not() {
        // 0.1 + 0.2 style drift: ten thousand 1-token rows at 0.3 per 1M.
        let table = PriceTable::for_provider(crate::provider::ProviderKind::Dashscope);
        let row_cost = table
            .cost("qwen-turbo", &usage(1, 0), false, PriceMode::Realtime)
            .expect("known");
        let exact_total =
            Money::try_sum(Currency::Cny, std::iter::repeat_n(row_cost, 10_000)).expect("adds");
        assert_eq!(exact_total, cny("0.003"));
        assert_eq!(exact_total.to_string(), "0.003 CNY");
    }

    // ---- Override files ----------------------------------------------------------------------

    #[test]
    fn override_file_adds_models_and_replaces_builtin_entries() {
        let table = with_overrides(
            r#"
            as_of = "2026-12-01"

            [models.sim-echo]
            currency = "USD"
            input = 0.15
            output = "0.6"
            batch_discount_percent = 50
            source = "simulator test price"

            [models.qwen-plus]
            currency = "CNY"
            input = 1
            output = 3
            "#,
        );
        let simulator = table.lookup("sim-echo").expect("added by the override");
        assert_eq!(simulator.currency(), Currency::Usd);
        assert_eq!(
            simulator.origin(),
            &PriceOrigin::OverrideFile(override_path())
        );
        assert_eq!(simulator.as_of(), Some("2026-12-01"));
        assert_eq!(
            table.cost(
                "sim-echo",
                &usage(1_000_000, 1_000_000),
                false,
                PriceMode::Batch
            ),
            Some(Money::parse_decimal("0.375", Currency::Usd).expect("valid"))
        );

        let replaced = table.lookup("qwen-plus").expect("still there");
        assert_eq!(replaced.source(), None);
        // Replaced as a whole: no thinking price unless the override gives one.
        assert_eq!(
            table.cost("qwen-plus", &usage(0, 1_000_000), true, PriceMode::Realtime),
            Some(cny("3"))
        );
        // Without an `aliases` key, the override keeps the built-in aliases.
        assert_eq!(
            table.lookup("qwen-plus-latest").map(ModelPrice::name),
            Some("qwen-plus")
        );
        // Untouched built-in models and the table date stay.
        assert_eq!(
            table.lookup("qwen-max").map(ModelPrice::origin),
            Some(&PriceOrigin::BuiltIn(BuiltInTable::DashscopeBeijing))
        );
        assert_eq!(table.as_of(), "2026-12-01");
    }

    #[test]
    fn override_file_can_replace_aliases_and_name_a_former_alias_directly() {
        let table = with_overrides(
            r#"
            [models.qwen-max]
            currency = "CNY"
            input = 2.4
            output = 9.6
            aliases = []

            [models.qwen-plus-latest]
            currency = "CNY"
            input = 0.9
            output = 2.5

            [models.qwen3-max]
            currency = "CNY"
            aliases = ["qwen3-max-2026-01-23"]
            [[models.qwen3-max.tiers]]
            up_to_input_tokens = 32768
            input = 3
            output = 12
            [[models.qwen3-max.tiers]]
            input = 6
            output = 24
            thinking_output = 30
            "#,
        );
        assert!(table.lookup("qwen-max-latest").is_none());
        assert_eq!(
            table.lookup("qwen-plus-latest").map(ModelPrice::name),
            Some("qwen-plus-latest")
        );
        assert!(
            !table
                .lookup("qwen-plus")
                .expect("built in")
                .aliases()
                .contains(&"qwen-plus-latest".to_owned())
        );
        assert_eq!(
            table.lookup("qwen3-max-2026-01-23").map(ModelPrice::name),
            Some("qwen3-max")
        );
        assert_eq!(
            table.cost(
                "qwen3-max-2026-01-23",
                &usage(32_769, 1_000_000),
                true,
                PriceMode::Batch
            ),
            Some(cny("15.098307"))
        );
    }

    #[test]
    fn override_prices_are_exact_in_every_notation() {
        let table = with_overrides(
            r#"
            [models.sim-notation]
            currency = "CNY"
            input = 5e-4
            output = 0.0005e3
            thinking_output = 1_000.000_000_2
            "#,
        );
        let prices = table
            .lookup("sim-notation")
            .expect("added")
            .per_million(PriceMode::Realtime, 0)
            .expect("one tier");
        assert_eq!(prices.input.nano_units(), 500_000);
        assert_eq!(prices.output.nano_units(), 500_000_000);
        assert_eq!(prices.thinking_output.nano_units(), 1_000_000_000_200);
        assert_eq!(
            PricePerMillionTokens::from_nano_units(500_000, Currency::Cny)
                .map(|price| price.to_string()),
            Some("0.0005 CNY per 1M tokens".to_owned())
        );
    }

    #[test]
    fn inline_tables_and_dotted_keys_are_read_exactly_too() {
        // Exact reading goes through each value's position in the file, so check the other TOML layouts.
        let table = with_overrides(
            r#"
            [models]
            sim-dotted.currency = "CNY"
            sim-dotted.input = 0.35
            sim-dotted.output = 0.0000001
            sim-inline = { currency = "USD", input = 0.075, output = 1e-3, thinking_output = "0.5" }
            sim-tiered = { currency = "USD", tiers = [
                { up_to_input_tokens = 10, input = 0.25, output = 1.5 },
                { input = 2.5, output = 3.125 },
            ] }
            "#,
        );
        let realtime = |model_name: &str, tier_idx: usize| {
            let prices = table
                .lookup(model_name)
                .and_then(|model| model.per_million(PriceMode::Realtime, tier_idx))
                .expect("model and tier exist");
            [prices.input, prices.output, prices.thinking_output].map(|price| price.nano_units())
        };
        assert_eq!(realtime("sim-dotted", 0), [350_000_000, 100, 100]);
        assert_eq!(
            realtime("sim-inline", 0),
            [75_000_000, 1_000_000, 500_000_000]
        );
        assert_eq!(
            realtime("sim-tiered", 0),
            [250_000_000, 1_500_000_000, 1_500_000_000]
        );
        assert_eq!(
            realtime("sim-tiered", 1),
            [2_500_000_000, 3_125_000_000, 3_125_000_000]
        );
        assert_eq!(
            table
                .lookup("sim-tiered")
                .expect("added")
                .tier_index_for_prompt(11),
            1
        );
    }

    #[test]
    fn custom_batch_discount_is_applied_as_percent_off() {
        let table = with_overrides(
            r#"
            [models.sim-discount]
            currency = "USD"
            input = 1
            output = 2
            batch_discount_percent = 30
            "#,
        );
        assert_eq!(
            table.cost(
                "sim-discount",
                &usage(1_000_000, 1_000_000),
                false,
                PriceMode::Batch
            ),
            Some(Money::parse_decimal("2.1", Currency::Usd).expect("valid"))
        );
    }

    #[test]
    fn load_reads_the_override_file_from_disk_or_names_it_when_missing() {
        let directory =
            std::env::temp_dir().join(format!("dashbatch-pricing-test-{}", std::process::id()));
        std::fs::create_dir_all(&directory).expect("temp dir");
        let path = directory.join("prices.toml");
        std::fs::write(
            &path,
            "[models.sim-disk]\ncurrency = \"CNY\"\ninput = 1\noutput = 1\n",
        )
        .expect("write");
        let table =
            PriceTable::load(Some(&path), crate::provider::ProviderKind::Dashscope).expect("loads");
        assert!(table.lookup("sim-disk").is_some());
        assert!(
            PriceTable::load(None, crate::provider::ProviderKind::Dashscope)
                .expect("built in")
                .lookup("sim-disk")
                .is_none()
        );
        std::fs::remove_dir_all(&directory).expect("clean up");

        let error = PriceTable::load(Some(&path), crate::provider::ProviderKind::Dashscope)
            .expect_err("file is gone");
        assert!(matches!(error, PriceTableError::ReadFile { .. }));
        assert!(
            error.to_string().contains(&format!("`{}`", path.display())),
            "{error}"
        );
    }

    // ---- Errors name the file, the line and the key --------------------------------------------

    #[test]
    fn toml_syntax_and_schema_errors_name_the_file_and_the_key() {
        let unknown_key =
            override_error("[models.sim-a]\ncurrency = \"CNY\"\ninptu = 1\noutput = 1\n");
        assert!(
            unknown_key.starts_with("`my-prices.toml` is not a valid price table:"),
            "{unknown_key}"
        );
        assert!(unknown_key.contains("line 3"), "{unknown_key}");
        assert!(
            unknown_key.contains("unknown field `inptu`"),
            "{unknown_key}"
        );

        let wrong_type = override_error(
            "[models.sim-a]\ncurrency = \"CNY\"\ninput = 1\noutput = 1\nbatch_discount_percent = \"half\"\n",
        );
        assert!(
            wrong_type.contains("my-prices.toml") && wrong_type.contains("batch_discount_percent"),
            "{wrong_type}"
        );

        let bad_currency =
            override_error("[models.sim-a]\ncurrency = \"EUR\"\ninput = 1\noutput = 1\n");
        assert!(
            bad_currency.contains("currency = \"EUR\"") && bad_currency.contains("CNY"),
            "{bad_currency}"
        );

        let not_toml = override_error("[models.sim-a\ncurrency = \"CNY\"\n");
        assert!(
            not_toml.contains("my-prices.toml") && not_toml.contains("line 1"),
            "{not_toml}"
        );
    }

    #[test]
    fn value_errors_name_the_file_line_and_dotted_key() {
        let cases = [
            (
                "[models.sim-a]\ncurrency = \"CNY\"\ninput = 0.1234567891\noutput = 1\n",
                "`my-prices.toml`, line 3, `models.sim-a.input`: the price 0.1234567891 has more than 9 decimal places, \
                 which cannot be stored exactly; prices are exact to 0.000000001 CNY per 1M tokens",
            ),
            (
                "[models.sim-a]\ncurrency = \"CNY\"\ninput = 0.000000001\noutput = 1\n",
                "`my-prices.toml`, line 3, `models.sim-a.input`: the batch price (0.000000001 less 50%) is not a whole \
                 number of 0.000000001 CNY per 1M tokens, so it cannot be computed exactly; give this price with at most \
                 7 decimal places",
            ),
            (
                "[models.sim-a]\ncurrency = \"CNY\"\ninput = -1.5\noutput = 1\n",
                "`my-prices.toml`, line 3, `models.sim-a.input`: the price -1.5 is negative; prices must be 0 or more",
            ),
            (
                "[models.sim-a]\ncurrency = \"CNY\"\ninput = true\noutput = 1\n",
                "`my-prices.toml`, line 3, `models.sim-a.input`: must be a number such as `0.8` (the price in CNY per \
                 1M tokens), not a boolean",
            ),
            (
                "[models.sim-a]\ncurrency = \"CNY\"\ninput = \"cheap\"\noutput = 1\n",
                "`my-prices.toml`, line 3, `models.sim-a.input`: the price \"cheap\" is not a decimal number such as \
                 `0.8` or `2`; prices are exact to 0.000000001 CNY per 1M tokens",
            ),
            (
                "[models.sim-a]\ncurrency = \"CNY\"\ninput = inf\noutput = 1\n",
                "`my-prices.toml`, line 3, `models.sim-a.input`: the price inf must be a finite number, not inf or nan; \
                 prices are exact to 0.000000001 CNY per 1M tokens",
            ),
            (
                "[models.sim-a]\ncurrency = \"CNY\"\ninput = 2000000\noutput = 1\n",
                "`my-prices.toml`, line 3, `models.sim-a.input`: the price 2000000 is above the limit of 1000000 CNY \
                 per 1M tokens; prices are per million tokens, not per token",
            ),
            (
                "[models.sim-a]\ncurrency = \"CNY\"\noutput = 1\n",
                "`my-prices.toml`, line 1, `models.sim-a`: `input` is missing: give the realtime price in CNY per 1M \
                 input tokens (for example `input = 0.8`), or a list of `[[models.sim-a.tiers]]`",
            ),
            (
                "[models.sim-a]\ncurrency = \"CNY\"\ninput = 1\noutput = 1\nbatch_discount_percent = 150\n",
                "`my-prices.toml`, line 5, `models.sim-a.batch_discount_percent`: 150 is not a percentage from 0 to \
                 100; it is the percent taken off the realtime price for batch requests (50 means batch costs half)",
            ),
            (
                "as_of = \"last week\"\n",
                "`my-prices.toml`, line 1, `as_of`: `last week` is not a date; write the date the prices were checked \
                 as \"YYYY-MM-DD\"",
            ),
        ];
        for (toml_text, expected) in cases {
            assert_eq!(override_error(toml_text), expected, "for:\n{toml_text}");
        }
    }

    #[test]
    fn tier_errors_point_at_the_tier() {
        let tiers = |body: &str| format!("[models.sim-t]\ncurrency = \"CNY\"\n{body}");
        let cases = [
            (
                tiers("input = 1\n[[models.sim-t.tiers]]\ninput = 1\noutput = 1\n"),
                "`my-prices.toml`, line 3, `models.sim-t.input`: a model with `tiers` takes every price from its tiers; \
                 move `input` into each `[[models.sim-t.tiers]]` entry or remove the tiers",
            ),
            (
                tiers(
                    "[[models.sim-t.tiers]]\ninput = 1\noutput = 1\n[[models.sim-t.tiers]]\ninput = 2\noutput = 2\n",
                ),
                "`my-prices.toml`, line 3, `models.sim-t.tiers[0]`: `up_to_input_tokens` is missing; every tier except \
                 the last needs the largest prompt length (in tokens, inclusive) it applies to, for example \
                 `up_to_input_tokens = 32768`",
            ),
            (
                tiers(
                    "[[models.sim-t.tiers]]\nup_to_input_tokens = 100\ninput = 1\noutput = 1\n\
                     [[models.sim-t.tiers]]\nup_to_input_tokens = 100\ninput = 2\noutput = 2\n\
                     [[models.sim-t.tiers]]\ninput = 3\noutput = 3\n",
                ),
                "`my-prices.toml`, line 8, `models.sim-t.tiers[1].up_to_input_tokens`: 100 must be larger than the \
                 previous tier's 100; list tiers from the shortest prompts to the longest",
            ),
            (
                tiers("[[models.sim-t.tiers]]\nup_to_input_tokens = 100\ninput = 1\noutput = 1\n"),
                "`my-prices.toml`, line 4, `models.sim-t.tiers[0].up_to_input_tokens`: the last tier must not have \
                 `up_to_input_tokens`: it prices every longer prompt. Remove it (note the model's context limit in a \
                 comment if useful)",
            ),
            (
                tiers(
                    "[[models.sim-t.tiers]]\nup_to_input_tokens = 0\ninput = 1\noutput = 1\n[[models.sim-t.tiers]]\ninput = 2\noutput = 2\n",
                ),
                "`my-prices.toml`, line 4, `models.sim-t.tiers[0].up_to_input_tokens`: 0 must be larger than 0; \
                 list tiers from the shortest prompts to the longest",
            ),
            (
                tiers("tiers = []\n"),
                "`my-prices.toml`, line 3, `models.sim-t.tiers`: the list of tiers is empty; give at least one tier, \
                 or remove `tiers` and give `input` and `output`",
            ),
            (
                tiers(
                    "[[models.sim-t.tiers]]\nup_to_input_tokens = 10\ninput = 1\noutput = 1\n[[models.sim-t.tiers]]\ninput = 2\noutput = 0.00000000025\n",
                ),
                "`my-prices.toml`, line 9, `models.sim-t.tiers[1].output`: the price 0.00000000025 has more than 9 \
                 decimal places, which cannot be stored exactly; prices are exact to 0.000000001 CNY per 1M tokens",
            ),
        ];
        for (toml_text, expected) in cases {
            assert_eq!(override_error(&toml_text), expected, "for:\n{toml_text}");
        }
    }

    #[test]
    fn alias_clashes_are_refused_with_the_model_to_change() {
        let stolen = override_error(
            "[models.sim-plus]\ncurrency = \"CNY\"\ninput = 1\noutput = 1\naliases = [\"qwen-plus-latest\"]\n",
        );
        assert_eq!(
            stolen,
            "`my-prices.toml`, line 5, `models.sim-plus.aliases`: alias `qwen-plus-latest` already belongs to model \
             `qwen-plus` in the built-in DashScope Beijing (CNY) price table (src/pricing/tables/dashscope-beijing.toml); remove it here, or override \
             `[models.qwen-plus]` with the `aliases` it should keep (for example `aliases = []`)"
        );
        let shadowing = override_error(
            "[models.sim-a]\ncurrency = \"CNY\"\ninput = 1\noutput = 1\naliases = [\"sim-b\"]\n\
             [models.sim-b]\ncurrency = \"CNY\"\ninput = 1\noutput = 1\n",
        );
        assert!(
            shadowing.contains(
                "line 5, `models.sim-a.aliases`: alias `sim-b` is also the name of a model"
            ),
            "{shadowing}"
        );
        let twice = override_error(
            "[models.sim-a]\ncurrency = \"CNY\"\ninput = 1\noutput = 1\naliases = [\"x\", \"x\"]\n",
        );
        assert!(
            twice.contains("`models.sim-a.aliases`: alias `x` is listed twice"),
            "{twice}"
        );
    }

    #[test]
    fn output_limits_are_read_and_checked() {
        let table = with_overrides(
            "[models.sim-limits]\ncurrency = \"CNY\"\ninput = 1\noutput = 1\nmax_output_tokens = 8192\nmax_thinking_tokens = 38912\n",
        );
        let model = table.lookup("sim-limits").expect("added");
        assert_eq!(model.max_output_tokens(), Some(8192));
        assert_eq!(model.max_thinking_tokens(), Some(38912));
        assert_eq!(
            table.lookup("qwen-plus").map(ModelPrice::max_output_tokens),
            Some(None),
            "the built-in table gives no limits"
        );
        let error = override_error(
            "[models.sim-limits]\ncurrency = \"CNY\"\ninput = 1\noutput = 1\nmax_output_tokens = 0\n",
        );
        assert!(
            error.contains("line 5, `models.sim-limits.max_output_tokens`: 0 is not a token count"),
            "{error}"
        );
    }

    #[test]
    fn quoted_model_names_appear_quoted_in_errors() {
        let error = override_error(
            "[models.\"qwen2.5-max\"]\ncurrency = \"CNY\"\ninput = 1\noutput = 1.0000000001\n",
        );
        assert!(error.contains("`models.\"qwen2.5-max\".output`"), "{error}");
    }

    #[test]
    fn builtin_without_a_date_is_refused() {
        let error = PriceTable::from_table_text(
            BuiltInTable::DashscopeBeijing,
            "[models.a]\ncurrency = \"CNY\"\ninput = 1\noutput = 1\n",
        )
        .expect_err("no as_of");
        assert!(error.to_string().contains("`as_of`"), "{error}");
    }
}
