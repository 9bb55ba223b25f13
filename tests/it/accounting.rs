//! Exact accounting: the report's total equals the sum of the per-row costs, and both equal
//! price × usage recomputed here, independently of dashbatch's pricing code, from what the
//! simulator says it billed. Amounts are compared as exact integers of 1e-15, never as floats.

use std::collections::HashMap;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};

use super::estimate::parse_exact_amount;
use super::harness::*;

/// Realtime prices in nano-units (1e-9 CNY) per million tokens, tier by tier: (up to prompt
/// tokens, input, thinking output). The job thinks, so all output is billed as thinking output.
const TIERS: [(u64, i128, i128); 2] = [
    (60, 1_300_000_000, 11_900_000_000),
    (u64::MAX, 2_600_000_000, 23_800_000_000),
];

const PRICES: &str = "[models.sim-tiered]\ncurrency = \"CNY\"\nbatch_discount_percent = 50\n\
[[models.sim-tiered.tiers]]\nup_to_input_tokens = 60\ninput = 1.3\noutput = 3.7\nthinking_output = 11.9\n\
[[models.sim-tiered.tiers]]\ninput = 2.6\noutput = 7.4\nthinking_output = 23.8\n";

const JOB: &str = "[input]\npath = \"zh_reviews.csv\"\nid_column = \"review_id\"\n\n[request]\nmodel = \"sim-tiered\"\n\
system = \"You summarise reviews.\"\ntemplate = \"{{ text }}\"\nmax_tokens = 50\nenable_thinking = true\nthinking_budget = 64\n\n\
[batch]\nmax_requests_per_file = 150\n";

/// Cost in femto-units (1e-15 CNY) at realtime price; batch is exactly half.
fn realtime_cost(prompt_tokens: u64, completion_tokens: u64) -> i128 {
    let (_, input, output) = TIERS
        .iter()
        .find(|(up_to, _, _)| prompt_tokens <= *up_to)
        .copied()
        .unwrap();
    i128::from(prompt_tokens) * input + i128::from(completion_tokens) * output
}

fn exact_text(femto_units: i128) -> String {
    format!(
        "{}.{:015}",
        femto_units / 1_000_000_000_000_000,
        femto_units % 1_000_000_000_000_000
    )
}

#[test]
fn the_report_total_is_the_sum_of_row_costs_and_equals_price_times_billed_usage() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/reviews/zh_reviews.csv");
    workspace.write("prices.toml", PRICES);
    workspace.write("job.toml", JOB);
    let run_directory = workspace.path().join("run");
    let output = workspace
        .run_against(
            &simulator,
            "sim",
            "job.toml",
            &run_directory,
            &["--prices", "prices.toml"],
        )
        .output()
        .unwrap();
    assert_success(&output);
    let report = read_report(&run_directory);

    // What the simulator billed, priced here.
    let ledger = simulator.ledger();
    let billed = ledger["billed_requests"].as_array().unwrap();
    assert_eq!(billed.len(), 300);
    let mut billed_usage: HashMap<String, (u64, u64)> = HashMap::new();
    let mut realtime_from_ledger = 0i128;
    let mut tiers_seen = [false, false];
    for request in billed {
        let prompt = request["prompt_tokens"].as_u64().unwrap();
        let completion = request["completion_tokens"].as_u64().unwrap();
        assert!(
            request["reasoning_tokens"].as_u64().unwrap() > 0,
            "thinking is billed"
        );
        tiers_seen[usize::from(prompt > 60)] = true;
        realtime_from_ledger += realtime_cost(prompt, completion);
        billed_usage.insert(
            request["custom_id"].as_str().unwrap().to_owned(),
            (prompt, completion),
        );
    }
    assert_eq!(tiers_seen, [true, true], "both price tiers are exercised");
    assert_eq!(realtime_from_ledger % 2, 0);
    let batch_from_ledger = realtime_from_ledger / 2;

    // The report, exactly.
    assert_eq!(report["currency"], "CNY");
    assert_eq!(
        parse_exact_amount(report["cost"].as_str().unwrap()),
        batch_from_ledger
    );
    assert_eq!(
        parse_exact_amount(report["realtime_cost"].as_str().unwrap()),
        realtime_from_ledger
    );
    assert_eq!(
        parse_exact_amount(report["saving"].as_str().unwrap()),
        realtime_from_ledger - batch_from_ledger
    );
    let shard_sum: i128 = report["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|shard| parse_exact_amount(shard["cost"].as_str().unwrap()))
        .sum();
    assert_eq!(
        shard_sum, batch_from_ledger,
        "shard costs add up to the total"
    );

    // Every row: its usage is what was billed, its cost column is that usage priced (the
    // correctly rounded float of the exact amount), and the exact row costs add up to the total.
    let batches = read_parquet(&run_directory.join("output.parquet"));
    let custom_ids = string_column(&batches, "custom_id");
    let mut row_sum = 0i128;
    let mut row = 0;
    for batch in &batches {
        let prompts = batch
            .column_by_name("prompt_tokens")
            .unwrap()
            .as_primitive::<Int64Type>();
        let completions = batch
            .column_by_name("completion_tokens")
            .unwrap()
            .as_primitive::<Int64Type>();
        let costs = batch
            .column_by_name("cost")
            .unwrap()
            .as_primitive::<Float64Type>();
        for index in 0..batch.num_rows() {
            let custom_id = custom_ids[row].clone().unwrap();
            row += 1;
            assert!(!costs.is_null(index), "row {custom_id} has a cost");
            let prompt = prompts.value(index) as u64;
            let completion = completions.value(index) as u64;
            assert_eq!(
                billed_usage.get(&custom_id),
                Some(&(prompt, completion)),
                "{custom_id}"
            );
            let exact_row = realtime_cost(prompt, completion) / 2;
            assert_eq!(
                costs.value(index),
                exact_text(exact_row).parse::<f64>().unwrap(),
                "{custom_id}"
            );
            row_sum += exact_row;
        }
    }
    assert_eq!(row, 300);
    assert_eq!(row_sum, batch_from_ledger);

    // The estimate is reported next to the actual cost, per shard and in total, and held.
    let total = &report["estimate_vs_actual"];
    assert_eq!(total["cost_actual"], report["cost"]);
    assert_eq!(total["within_upper_bound"], true, "{total:#}");
    assert!(total["actual_percent_of_expected"].as_f64().unwrap() > 0.0);
    for shard in report["shards"].as_array().unwrap() {
        let versus = &shard["estimate_vs_actual"];
        assert_eq!(versus["cost_actual"], shard["cost"]);
        assert_eq!(versus["within_upper_bound"], true, "{shard:#}");
        assert!(
            versus["output_tokens_actual"].as_u64().unwrap()
                <= versus["output_tokens_upper_bound"].as_u64().unwrap()
        );
        assert!(parse_exact_amount(versus["cost_expected"].as_str().unwrap()) > 0);
    }
    let summary = text(&output.stderr);
    assert!(summary.contains("estimate: expected"), "{summary}");
    assert!(summary.contains("shard 1: expected"), "{summary}");
}
