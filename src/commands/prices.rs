//! `dashbatch prices [MODEL]`: what a provider charges for its models, and where each figure comes from. No network.

use std::path::Path;

use super::terminal::print_error;
use crate::cli::ProviderArgument;
use crate::exit;
use crate::pricing::{
    BuiltInTable, PriceTable, model_price_json, model_price_text, price_table_json,
    price_table_text,
};
use crate::provider::ProviderKind;

pub fn prices_command(
    model: Option<&str>,
    provider: ProviderArgument,
    prices_file: Option<&Path>,
    json: bool,
) -> u8 {
    let provider = ProviderKind::from(provider);
    let table = match PriceTable::load_chosen(prices_file, provider) {
        Ok((table, _)) => table,
        Err(error) => {
            print_error(&error);
            return exit::INPUT_ERROR;
        }
    };
    let text = match model {
        None if json => pretty(&price_table_json(&table)),
        None => price_table_text(&table),
        Some(model) => match table.price_in_provider_currency(model) {
            Ok(Some(price)) if json => pretty(&model_price_json(price)),
            Ok(Some(price)) => model_price_text(&table, price, model),
            Ok(None) => {
                print_error(&unknown_model_message(model, provider, &table));
                return exit::INPUT_ERROR;
            }
            Err(error) => {
                print_error(&error);
                return exit::INPUT_ERROR;
            }
        },
    };
    // A closed pipe (`| head`) is not an error.
    crate::console::print_text(&text);
    exit::SUCCESS
}

fn pretty(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON serialises");
    text.push('\n');
    text
}

/// The priced name (or alias) closest to `model`, ignoring case, when close enough to be a typo.
fn nearest_priced_name(model: &str, table: &PriceTable) -> Option<String> {
    let asked = model.to_lowercase();
    table
        .models()
        .flat_map(|price| {
            std::iter::once(price.name()).chain(price.aliases().iter().map(String::as_str))
        })
        .map(|name| {
            (
                crate::model_check::edit_distance(&asked, &name.to_lowercase()),
                name,
            )
        })
        .filter(|(distance, name)| *distance <= 3.max(name.len() / 4))
        .min()
        .map(|(_, name)| name.to_owned())
}

/// Says which other provider prices the model, or that no table does.
fn unknown_model_message(model: &str, provider: ProviderKind, table: &PriceTable) -> String {
    let elsewhere: Vec<String> = BuiltInTable::ALL
        .into_iter()
        .filter(|other| *other != table.builtin_table())
        .filter(|other| PriceTable::builtin(*other).lookup(model).is_some())
        .map(|other| format!("{other}"))
        .collect();
    let hint = if let Some(nearest) = nearest_priced_name(model, table) {
        format!(
            "did you mean `{nearest}`? (`dashbatch prices --provider {provider}` lists every model it prices)"
        )
    } else if elsewhere.is_empty() {
        format!(
            "run `dashbatch prices --provider {provider}` for the models it prices, or give the model's price in a price file (`--prices FILE`, schema in docs/PRICES.md)"
        )
    } else {
        format!(
            "it is priced in the built-in {} table{}; choose that provider with `--provider`, or give its {} price in a price file (`--prices FILE`)",
            elsewhere.join(" and "),
            if elsewhere.len() > 1 { "s" } else { "" },
            table.currency()
        )
    };
    format!(
        "there is no price for model `{model}` with provider `{provider}` ({} table, as of {}): {hint}",
        table.builtin_table(),
        table.as_of()
    )
}
