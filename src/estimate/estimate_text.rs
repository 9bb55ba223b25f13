//! The human form of a `JobEstimate`: a header, a table of shards with expected and upper-bound costs at batch and realtime price, and the assumptions.

use std::fmt::Write;

use super::cost_at_both_prices::CostAtBothPrices;
use super::job_estimate::JobEstimate;
use super::shard_estimate::EstimateTotals;

pub use crate::readable_number::with_thousands;

fn tokens(count: Option<u64>) -> String {
    count.map_or_else(|| "unbounded".to_owned(), with_thousands)
}

fn money(cost: Option<CostAtBothPrices>, batch: bool) -> String {
    match cost {
        Some(cost) if batch => cost.batch.to_string(),
        Some(cost) => cost.realtime.to_string(),
        None => "unknown".to_owned(),
    }
}

fn table_row(label: &str, totals: &EstimateTotals) -> [String; 9] {
    [
        label.to_owned(),
        with_thousands(totals.requests),
        with_thousands(totals.prompt_tokens),
        tokens(totals.expected_output_tokens),
        tokens(totals.max_output_tokens),
        money(totals.expected_cost, true),
        money(totals.upper_bound_cost, true),
        money(totals.expected_cost, false),
        money(totals.upper_bound_cost, false),
    ]
}

/// The whole estimate as text for a terminal.
#[must_use]
pub fn render_estimate_text(estimate: &JobEstimate) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Estimate for job `{}`: {} requests to `{}` from `{}`, in {} shard(s) within provider `{}`'s limits. No network calls were made.",
        estimate.job,
        with_thousands(estimate.rows),
        estimate.model,
        estimate.input,
        estimate.shards.len(),
        estimate.provider
    );
    if let Some(warning) = &estimate.store_warning {
        let _ = writeln!(text, "warning: {warning}");
    }
    if estimate.rows_from_store + estimate.rows_deduplicated > 0 {
        let _ = writeln!(
            text,
            "Not counted: {} row(s) the answer store answers and {} row(s) repeating another row's request; they are not sent.",
            with_thousands(estimate.rows_from_store),
            with_thousands(estimate.rows_deduplicated)
        );
    }
    if estimate.total.images > 0 {
        let _ = writeln!(
            text,
            "Images: {} in all, {} input tokens (included in the input tokens below).",
            with_thousands(estimate.total.images),
            with_thousands(estimate.total.image_tokens)
        );
    }
    let _ = writeln!(
        text,
        "Prices in {} per 1M tokens (batch / realtime), price table as of {}:",
        estimate.currency, estimate.price_table_as_of
    );
    for tier in &estimate.price_tiers {
        let range = match (tier.from_input_tokens, tier.up_to_input_tokens) {
            (0, None) => "every prompt".to_owned(),
            (from, None) => format!(
                "prompts over {} tokens",
                with_thousands(from.saturating_sub(1))
            ),
            (from, Some(up_to)) => format!(
                "prompts of {} to {} tokens",
                with_thousands(from),
                with_thousands(up_to)
            ),
        };
        let _ = writeln!(
            text,
            "  {range}: input {} / {}, output {} / {}{}",
            tier.batch_input,
            tier.realtime_input,
            tier.batch_output,
            tier.realtime_output,
            if estimate.thinking_requests > 0 {
                format!(
                    ", thinking output {} / {}",
                    tier.batch_thinking_output, tier.realtime_thinking_output
                )
            } else {
                String::new()
            }
        );
    }
    text.push('\n');

    let header = [
        "shard",
        "requests",
        "input tokens",
        "expected output",
        "max output",
        "expected (batch)",
        "upper bound (batch)",
        "expected (realtime)",
        "upper bound (realtime)",
    ];
    let mut rows: Vec<[String; 9]> = vec![header.map(str::to_owned)];
    for shard in &estimate.shards {
        rows.push(table_row(&shard.shard_index.to_string(), &shard.totals));
    }
    rows.push(table_row("total", &estimate.total));
    let mut widths = [0usize; 9];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in &rows {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
            if index == 0 {
                let _ = write!(line, "{cell:<width$}");
            } else {
                let _ = write!(line, "  {cell:>width$}");
            }
        }
        let _ = writeln!(text, "{}", line.trim_end());
    }

    text.push_str("\nAssumptions:\n");
    for assumption in &estimate.assumptions {
        let _ = writeln!(text, "  - {assumption}");
    }
    text
}
