//! The budget cap: `run` refuses before the first upload when the estimate's upper bound is over
//! `max_cost`, saying by how much and what would fit, and while running it never submits a shard
//! that could take the money committed past the cap. The simulator's ledger proves what was
//! uploaded and submitted.

use std::path::Path;

use super::estimate::parse_exact_amount;
use super::harness::*;

/// Femto-units (1e-15) as decimal text, the way a user would type an amount.
fn decimal_text(femto_units: i128) -> String {
    let whole = femto_units / 1_000_000_000_000_000;
    let fraction = femto_units % 1_000_000_000_000_000;
    format!("{whole}.{fraction:015}")
}

const JOB: &str = "[input]\npath = \"zh_reviews.csv\"\nid_column = \"review_id\"\n\n[request]\nmodel = \"qwen-plus\"\n\
template = \"用一句话概括：{{ text }}\"\nmax_tokens = 100\n\n[batch]\nmax_requests_per_file = 100\n";

/// The estimate's upper bound at batch price: per shard, and in total (femto-units).
fn upper_bounds(workspace: &Workspace, job: &str) -> (Vec<i128>, i128) {
    let output = workspace.run(&["estimate", job, "--json"]);
    assert_success(&output);
    let estimate: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let shards = estimate["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|shard| parse_exact_amount(shard["upper_bound_cost"]["batch"].as_str().unwrap()))
        .collect();
    let total = parse_exact_amount(
        estimate["total"]["upper_bound_cost"]["batch"]
            .as_str()
            .unwrap(),
    );
    (shards, total)
}

fn ledger_counts(simulator: &StandaloneSimulator) -> (u64, usize) {
    let ledger = simulator.ledger();
    (
        ledger["uploads"].as_u64().unwrap(),
        ledger["batches"].as_array().unwrap().len(),
    )
}

fn run_with_cap(
    workspace: &Workspace,
    simulator: &StandaloneSimulator,
    run_directory: &Path,
    cap: Option<&str>,
) -> std::process::Output {
    let cap_arguments = cap.map(|cap| vec!["--max-cost", cap]).unwrap_or_default();
    workspace
        .run_against(simulator, "sim", "job.toml", run_directory, &cap_arguments)
        .output()
        .unwrap()
}

#[test]
fn a_cap_below_the_upper_bound_is_refused_before_anything_is_uploaded() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/reviews/zh_reviews.csv");
    workspace.write("job.toml", JOB);
    let (shards, total) = upper_bounds(&workspace, "job.toml");
    assert_eq!(shards.len(), 3);

    // Enough for the first shard and a half: refused, and the message says what would fit.
    let cap = decimal_text(shards[0] + shards[1] / 2);
    let output = run_with_cap(
        &workspace,
        &simulator,
        &workspace.path().join("run-a"),
        Some(&cap),
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let over_by = total - parse_exact_amount(&cap);
    for words in [
        "the upper bound of this run is",
        "over max_cost",
        "from `--max-cost`",
        "Within the cap fit the first",
        "(1 of 3 whole shard(s))",
        "Nothing was uploaded or spent",
        "dashbatch estimate",
    ] {
        assert!(stderr.contains(words), "no `{words}` in {stderr}");
    }
    // The excess, as printed (rounded to 9 decimal places), is the upper bound less the cap.
    let printed_excess = stderr
        .split(" CNY over max_cost")
        .next()
        .and_then(|before| before.rsplit(' ').next())
        .map(parse_exact_amount)
        .unwrap_or_else(|| panic!("no excess in {stderr}"));
    assert!(
        (printed_excess - over_by).abs() <= 500_000,
        "printed {printed_excess}, expected {over_by}"
    );
    assert_eq!(
        ledger_counts(&simulator),
        (0, 0),
        "nothing uploaded or submitted"
    );

    // The same cap in the job file.
    workspace.write("job.toml", format!("{JOB}max_cost = \"{cap}\"\n"));
    let output = run_with_cap(
        &workspace,
        &simulator,
        &workspace.path().join("run-b"),
        None,
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`[batch] max_cost` in the job file"),
        "{stderr}"
    );
    assert_eq!(ledger_counts(&simulator), (0, 0));

    // A cap of exactly the upper bound is kept, and the run costs no more than it.
    workspace.write("job.toml", JOB);
    let output = run_with_cap(
        &workspace,
        &simulator,
        &workspace.path().join("run-c"),
        Some(&decimal_text(total)),
    );
    assert_success(&output);
    assert_eq!(ledger_counts(&simulator), (3, 3));
    let report = read_report(&workspace.path().join("run-c"));
    let cost = parse_exact_amount(report["cost"].as_str().unwrap());
    assert!(cost > 0 && cost <= total, "{report:#}");
    assert_eq!(report["budget"]["source"], "flag");
    assert_eq!(
        report["budget"]["shards_not_submitted"],
        serde_json::json!([])
    );
    assert!(parse_exact_amount(report["budget"]["committed"].as_str().unwrap()) <= total);
}

#[test]
fn a_run_stops_submitting_at_the_cap_and_submits_the_rest_when_the_cap_is_raised() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/reviews/zh_reviews.csv");
    workspace.write("job.toml", JOB);
    let (shards, total) = upper_bounds(&workspace, "job.toml");
    let run_directory = workspace.path().join("run");

    // A first process submits shard 0 and dies before recording its batch.
    let killed = workspace
        .run_against(&simulator, "sim", "job.toml", &run_directory, &[])
        .env("DASHBATCH_TEST_KILL_AT", "after_create_before_record")
        .output()
        .unwrap();
    assert_eq!(killed.status.code(), None, "killed by its own SIGKILL");
    assert_eq!(ledger_counts(&simulator), (1, 1));

    // Continued with a cap that leaves room for shard 0 and a tenth of shard 1: shard 0 is
    // adopted and finished, shards 1 and 2 are not submitted.
    let cap = decimal_text(shards[0] + shards[1] / 10);
    let output = run_with_cap(&workspace, &simulator, &run_directory, Some(&cap));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not submitting shard 1"), "{stderr}");
    assert!(stderr.contains("--max-cost AMOUNT"), "{stderr}");
    assert_eq!(
        ledger_counts(&simulator),
        (1, 1),
        "nothing is uploaded or submitted past the cap"
    );
    let report = read_report(&run_directory);
    assert_eq!(report["rows_by_status"]["ok"], 100, "{report:#}");
    assert_eq!(report["rows_by_status"]["missing"], 200);
    assert_eq!(
        report["budget"]["shards_not_submitted"],
        serde_json::json!([1, 2])
    );
    assert_eq!(report["budget"]["rows_not_submitted"], 200);
    assert_eq!(
        report["budget"]["max_cost"]
            .as_str()
            .map(parse_exact_amount),
        Some(parse_exact_amount(&cap))
    );
    let batches = read_parquet(&run_directory.join("output.parquet"));
    let statuses = string_column(&batches, "status");
    let error_codes = string_column(&batches, "error_code");
    assert_eq!(statuses.len(), 300, "every row gets exactly one output row");
    for row in 100..300 {
        assert_eq!(statuses[row].as_deref(), Some("missing"), "row {row}");
        assert_eq!(error_codes[row].as_deref(), Some("budget_cap"), "row {row}");
    }
    let billed = simulator.ledger()["billed_requests"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(billed, 100);

    // The same cap again (resume keeps it): still nothing more is submitted.
    let again = workspace.run(&["resume", run_directory.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again.stderr));
    assert_eq!(ledger_counts(&simulator), (1, 1));

    // Raised to the whole upper bound: the rest is submitted once, and every row is answered.
    let output = run_with_cap(
        &workspace,
        &simulator,
        &run_directory,
        Some(&decimal_text(total)),
    );
    assert_success(&output);
    assert_eq!(ledger_counts(&simulator), (3, 3));
    let ledger = simulator.ledger();
    assert_eq!(ledger["billed_requests"].as_array().unwrap().len(), 300);
    assert!(
        ledger["bill_count_per_custom_id"]
            .as_object()
            .unwrap()
            .values()
            .all(|count| count == 1),
        "no row billed twice"
    );
    let report = read_report(&run_directory);
    assert_eq!(report["rows_by_status"]["ok"], 300, "{report:#}");
    assert!(parse_exact_amount(report["cost"].as_str().unwrap()) <= total);
}

#[test]
fn retries_of_failed_rows_fit_under_a_cap_of_the_upper_bound_because_failures_cost_nothing() {
    let simulator = StandaloneSimulator::start(&[]);
    simulator.put_json(
        "/_sim/faults",
        &serde_json::json!({"batches": [{"batches": {"nth_batch": 1}, "behaviour": {"transient_line_errors": {"fraction": 0.3}}}]}),
    );
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/reviews/zh_reviews.csv");
    workspace.write("job.toml", JOB);
    let (_, total) = upper_bounds(&workspace, "job.toml");
    let run_directory = workspace.path().join("run");
    let output = run_with_cap(
        &workspace,
        &simulator,
        &run_directory,
        Some(&decimal_text(total)),
    );
    assert_success(&output);
    let (uploads, batches) = ledger_counts(&simulator);
    assert_eq!(
        (uploads, batches),
        (4, 4),
        "three shards and one retry shard"
    );
    let report = read_report(&run_directory);
    assert_eq!(report["rows_by_status"]["ok"], 300, "{report:#}");
    assert!(parse_exact_amount(report["cost"].as_str().unwrap()) <= total);
    assert!(parse_exact_amount(report["budget"]["committed"].as_str().unwrap()) <= total);
}
