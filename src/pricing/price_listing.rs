//! What `dashbatch prices` shows: a provider's price table (built-in plus the user's price file) as text or JSON, one model in full or every model in a line, each figure with where it comes from. Pure: no I/O.

use std::fmt::Write;

use serde_json::{Value, json};

use super::model_price::ModelPrice;
use super::price_mode::PriceMode;
use super::price_table::PriceTable;
use super::price_tier::{PriceTier, TokenPrices};

/// What an evidence label means, for people who have not read the reference.
fn evidence_meaning(evidence: &str) -> &'static str {
    match evidence {
        "DOC" => "quoted from the provider's own page",
        "INF" => "worked out from the provider's page, not quoted by it",
        "3P" => "third-party figure, not confirmed by the provider",
        _ => "as the price file labels it",
    }
}

/// The tier's prompt lengths, or `any length` for an untiered model.
fn tier_range(tier: &PriceTier, tiered: bool) -> String {
    if tiered {
        tier.prompt_range_label()
    } else {
        "any length".to_owned()
    }
}

fn batch_listing_text(price: &ModelPrice) -> String {
    let region = price.region().unwrap_or("this region");
    match price.batch_listed() {
        Some(true) => format!("listed for {region}"),
        Some(false) => format!(
            "NOT listed for {region} on the provider's batch page (a batch may fail with model_not_found)"
        ),
        None => "the price file does not say".to_owned(),
    }
}

/// One model in full: every tier at batch and realtime price, and the provenance of the figures.
#[must_use]
pub fn model_price_text(table: &PriceTable, price: &ModelPrice, asked_name: &str) -> String {
    let currency = price.currency();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{}{} — {}, {currency} per 1M tokens",
        price.name(),
        if asked_name == price.name() {
            String::new()
        } else {
            format!(" (asked for `{asked_name}`, an alias)")
        },
        table.builtin_table()
    );
    let _ = writeln!(
        text,
        "  from {}{}",
        price.origin(),
        price
            .as_of()
            .map(|date| format!(", checked {date}"))
            .unwrap_or_default()
    );
    if let Some(source) = price.source() {
        let _ = writeln!(text, "  source: {source}");
    }
    if let Some(evidence) = price.evidence() {
        let _ = writeln!(
            text,
            "  evidence: {evidence} ({})",
            evidence_meaning(evidence)
        );
    }
    let _ = writeln!(text, "  batch: {}", batch_listing_text(price));
    let _ = writeln!(
        text,
        "  batch price: realtime less {}%",
        price.batch_discount_percent()
    );
    if !price.aliases().is_empty() {
        let _ = writeln!(text, "  also named: {}", price.aliases().join(", "));
    }
    let header = [
        "prompt tokens",
        "batch input",
        "batch output",
        "batch thinking",
        "realtime input",
        "realtime output",
        "realtime thinking",
    ];
    let mut rows = vec![header.map(str::to_owned).to_vec()];
    for tier in price.tiers() {
        let batch = tier.per_million(PriceMode::Batch);
        let realtime = tier.per_million(PriceMode::Realtime);
        let mut row = vec![tier_range(tier, price.is_tiered())];
        row.extend(prices_cells(&batch));
        row.extend(prices_cells(&realtime));
        rows.push(row);
    }
    text.push_str(&aligned_rows(&rows, "  "));
    text.push_str(
        "  A request is billed wholly at the tier its prompt length falls in; thinking output applies when thinking is on.\n",
    );
    text
}

fn prices_cells(prices: &TokenPrices) -> [String; 3] {
    [
        prices.input.to_decimal_string(),
        prices.output.to_decimal_string(),
        prices.thinking_output.to_decimal_string(),
    ]
}

/// Every model of the table, a line each, with its first tier's batch prices.
#[must_use]
pub fn price_table_text(table: &PriceTable) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{} prices, {} per 1M tokens at batch price (the realtime price less each model's batch discount), as of {}",
        table.builtin_table(),
        table.currency(),
        table.as_of()
    );
    if let Some(note) = table.note() {
        let _ = writeln!(text, "{note}");
    }
    let mut rows = vec![
        [
            "model", "currency", "tiers", "input", "output", "thinking", "batch", "evidence",
            "from",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for price in table.models() {
        let first_tier = price.tiers()[0].per_million(PriceMode::Batch);
        let [input, output, thinking] = prices_cells(&first_tier);
        rows.push(vec![
            price.name().to_owned(),
            if price.currency() == table.currency() {
                price.currency().code().to_owned()
            } else {
                format!("{} (NOT what this provider bills in)", price.currency())
            },
            price.tiers().len().to_string(),
            input,
            output,
            thinking,
            match price.batch_listed() {
                Some(true) => "listed",
                Some(false) => "not listed",
                None => "?",
            }
            .to_owned(),
            price.evidence().unwrap_or("-").to_owned(),
            match price.origin() {
                super::PriceOrigin::BuiltIn(_) => "built in".to_owned(),
                super::PriceOrigin::OverrideFile(path) => path.display().to_string(),
            },
        ]);
    }
    text.push_str(&aligned_rows(&rows, ""));
    text.push_str(
        "Prices shown are the first tier's; `dashbatch prices MODEL` shows every tier and the source. \
         Evidence: DOC quoted from the provider, INF worked out from its page, 3P third party.\n",
    );
    text
}

/// Rows as columns padded to their widest cell (counted in characters), each line indented.
fn aligned_rows(rows: &[Vec<String>], indent: &str) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let mut line = indent.to_owned();
        for (column, cell) in row.iter().enumerate() {
            if column > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let padding = widths[column].saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', padding));
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

fn token_prices_json(prices: &TokenPrices) -> Value {
    json!({
        "input": prices.input.to_decimal_string(),
        "output": prices.output.to_decimal_string(),
        "thinking_output": prices.thinking_output.to_decimal_string(),
    })
}

/// One model as JSON; amounts are exact decimal strings per 1M tokens.
#[must_use]
pub fn model_price_json(price: &ModelPrice) -> Value {
    json!({
        "model": price.name(),
        "aliases": price.aliases(),
        "currency": price.currency().code(),
        "region": price.region(),
        "batch_listed": price.batch_listed(),
        "batch_discount_percent": price.batch_discount_percent(),
        "source": price.source(),
        "evidence": price.evidence(),
        "as_of": price.as_of(),
        "from": price.origin().to_string(),
        "tiers": price.tiers().iter().map(|tier| json!({
            "from_input_tokens": tier.from_input_tokens(),
            "up_to_input_tokens": tier.up_to_input_tokens(),
            "batch": token_prices_json(&tier.per_million(PriceMode::Batch)),
            "realtime": token_prices_json(&tier.per_million(PriceMode::Realtime)),
        })).collect::<Vec<_>>(),
    })
}

/// The whole table as JSON.
#[must_use]
pub fn price_table_json(table: &PriceTable) -> Value {
    json!({
        "table": table.builtin_table().label(),
        "currency": table.currency().code(),
        "as_of": table.as_of(),
        "note": table.note(),
        "models": table.models().map(model_price_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::BuiltInTable;

    #[test]
    fn one_model_shows_every_tier_at_both_prices_with_its_provenance() {
        let table = PriceTable::builtin(BuiltInTable::DashscopeBeijing);
        let text = model_price_text(
            &table,
            table.lookup("qwen-plus-latest").unwrap(),
            "qwen-plus-latest",
        );
        for words in [
            "qwen-plus (asked for `qwen-plus-latest`, an alias) — DashScope Beijing (CNY), CNY per 1M tokens",
            "checked 2026-12-01",
            "evidence: DOC (quoted from the provider's own page)",
            "listed for DashScope Beijing (Chinese mainland)",
            "realtime less 50%",
            "0–131,072",
            "131,073–262,144",
            "262,145 and more",
        ] {
            assert!(text.contains(words), "no `{words}` in\n{text}");
        }
        // The first tier: batch 0.4 / 1 / 4, realtime 0.8 / 2 / 8.
        let first_tier_line = text
            .lines()
            .find(|line| line.contains("0–131,072"))
            .unwrap();
        let cells: Vec<&str> = first_tier_line.split_whitespace().collect();
        assert_eq!(
            cells,
            ["0–131,072", "0.40", "1.00", "4.00", "0.80", "2.00", "8.00"]
        );
    }

    #[test]
    fn the_listing_has_a_line_per_model_and_says_which_are_not_listed_for_batch() {
        let table = PriceTable::builtin(BuiltInTable::DashscopeSingapore);
        let text = price_table_text(&table);
        assert!(text.starts_with("DashScope Singapore (USD) prices, USD per 1M tokens"));
        let line_of = |model: &str| {
            text.lines()
                .find(|line| line.split_whitespace().next() == Some(model))
                .unwrap_or_else(|| panic!("no line for {model} in\n{text}"))
                .to_owned()
        };
        assert!(line_of("qwen-plus").contains("listed"));
        assert!(line_of("text-embedding-v4").contains("not listed"));
        assert_eq!(text.lines().count(), table.models().count() + 4);
    }

    #[test]
    fn json_amounts_are_exact_decimal_strings() {
        let table = PriceTable::builtin(BuiltInTable::Openai);
        let json = price_table_json(&table);
        assert_eq!(json["currency"], "USD");
        let mini = json["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|model| model["model"] == "gpt-4o-mini")
            .unwrap();
        assert_eq!(mini["tiers"][0]["batch"]["input"], "0.075");
        assert_eq!(mini["tiers"][0]["realtime"]["output"], "0.60");
        assert_eq!(mini["evidence"], "3P");
    }
}
