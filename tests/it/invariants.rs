//! The invariants every run must keep, checked against the simulator's own ledger: one batch per
//! input file, no request billed twice, one output row per input row, the report's cost equal to
//! what the simulator billed, and no API key anywhere in the run directory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use dashbatch::pricing::{Money, PriceMode, PriceTable, Usage};

use super::harness::*;

/// A fake key given to runs so tests can prove it never lands on disk.
pub const SECRET_KEY: &str = "sk-test-3f9d2c-never-write-me";

#[derive(Debug, Default, Clone, Copy)]
pub struct Violations {
    pub duplicate_batches: u64,
    pub lost_rows: u64,
    pub double_billed: u64,
    pub cost_mismatches: u64,
    pub key_leaks: u64,
}

impl Violations {
    pub fn add(&mut self, other: Violations) {
        self.duplicate_batches += other.duplicate_batches;
        self.lost_rows += other.lost_rows;
        self.double_billed += other.double_billed;
        self.cost_mismatches += other.cost_mismatches;
        self.key_leaks += other.key_leaks;
    }

    pub fn is_clean(&self) -> bool {
        self.duplicate_batches
            + self.lost_rows
            + self.double_billed
            + self.cost_mismatches
            + self.key_leaks
            == 0
    }
}

fn files_below(directory: &Path, found: &mut Vec<std::path::PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(directory) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files_below(&path, found);
            } else {
                found.push(path);
            }
        }
    }
}

/// Checks a finished run. `expected_ids` are the input's custom ids in input order.
pub fn check_finished_run(
    simulator: &StandaloneSimulator,
    run_directory: &Path,
    output: &Path,
    expected_ids: &[String],
) -> (Violations, String) {
    let mut violations = Violations::default();
    let mut notes = Vec::new();
    let report = read_report(run_directory);
    let run_id = report["run_id"]
        .as_str()
        .expect("report names its run")
        .to_owned();
    let ledger = simulator.ledger();

    // One batch per input file, for every file this run created batches from.
    let run_batches: BTreeSet<String> = batch_ids_of_run(&ledger, &run_id).into_iter().collect();
    let mut batches_per_file: BTreeMap<String, u64> = BTreeMap::new();
    for batch in ledger["batches"].as_array().unwrap() {
        if batch["metadata"]["dashbatch_run"] == run_id.as_str() {
            *batches_per_file
                .entry(batch["input_file_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    for (file, count) in &batches_per_file {
        if *count > 1 {
            violations.duplicate_batches += count - 1;
            notes.push(format!("file {file} has {count} batches"));
        }
    }

    // Billing: each custom_id at most once, and the report's cost equals what was billed.
    let mut bills: BTreeMap<String, u64> = BTreeMap::new();
    // Priced by the table of the provider the run used, as the provider would bill it.
    let provider: dashbatch::provider::ProviderKind =
        serde_json::from_value(report["provider"].clone()).expect("report names its provider");
    let prices = PriceTable::for_provider(provider);
    let mut billed_total = Money::zero(prices.currency());
    for bill in ledger["billed_requests"].as_array().unwrap() {
        if !run_batches.contains(bill["batch_id"].as_str().unwrap()) || bill["free"] == true {
            continue;
        }
        *bills
            .entry(bill["custom_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
        let usage = Usage {
            prompt_tokens: bill["prompt_tokens"].as_u64().unwrap(),
            completion_tokens: bill["completion_tokens"].as_u64().unwrap(),
            reasoning_tokens: bill["reasoning_tokens"].as_u64().unwrap(),
        };
        let cost = prices
            .cost(
                bill["model"].as_str().unwrap(),
                &usage,
                false,
                PriceMode::Batch,
            )
            .expect("test jobs use priced models");
        billed_total = billed_total.checked_add(cost).unwrap();
    }
    for (custom_id, count) in &bills {
        if *count > 1 {
            violations.double_billed += count - 1;
            notes.push(format!("custom_id {custom_id} billed {count} times"));
        }
    }
    let reported = report["cost"].as_str().unwrap_or("missing").to_owned();
    if reported != billed_total.to_decimal_string() {
        violations.cost_mismatches += 1;
        notes.push(format!(
            "report says {reported}, simulator billed {}",
            billed_total.to_decimal_string()
        ));
    }

    // Exactly one output row per input row, in order.
    let batches = read_parquet(output);
    let output_ids: Vec<String> = string_column(&batches, "custom_id")
        .into_iter()
        .map(Option::unwrap)
        .collect();
    if output_ids != expected_ids {
        let expected: BTreeSet<&String> = expected_ids.iter().collect();
        let got: BTreeSet<&String> = output_ids.iter().collect();
        violations.lost_rows += expected.difference(&got).count() as u64
            + output_ids.len().abs_diff(expected_ids.len()) as u64;
        violations.lost_rows = violations.lost_rows.max(1);
        notes.push(format!(
            "output has {} rows, input {}",
            output_ids.len(),
            expected_ids.len()
        ));
    }
    // Rows answered by the answer store or by an earlier row of the run were not billed here.
    let statuses = string_column(&batches, "status");
    let sources = string_column(&batches, "answer_source");
    let ok_rows = statuses
        .iter()
        .zip(&sources)
        .filter(|(status, source)| {
            status.as_deref() == Some("ok") && source.as_deref() == Some("batch")
        })
        .count() as u64;
    if bills.len() as u64 != ok_rows {
        notes.push(format!(
            "{} billed requests but {ok_rows} ok rows answered by this run's batches",
            bills.len()
        ));
        violations.cost_mismatches += 1;
    }

    // The key is nowhere in the run directory.
    let mut files = Vec::new();
    files_below(run_directory, &mut files);
    for file in files {
        let bytes = std::fs::read(&file).unwrap_or_default();
        if bytes
            .windows(SECRET_KEY.len())
            .any(|window| window == SECRET_KEY.as_bytes())
        {
            violations.key_leaks += 1;
            notes.push(format!("key found in {}", file.display()));
        }
    }
    (violations, notes.join("; "))
}

/// The custom ids of the first `rows` Chinese reviews.
pub fn review_ids(rows: usize) -> Vec<String> {
    (1..=rows).map(|n| format!("zh-{n:04}")).collect()
}

/// A workspace with a job over the first `rows` Chinese reviews, `per_shard` requests a shard.
pub fn review_workspace(rows: usize, per_shard: usize, extra_batch: &str) -> Workspace {
    let workspace = Workspace::new();
    let source =
        std::fs::read_to_string(repository_root().join("fixtures/reviews/zh_reviews.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(source.as_bytes());
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(reader.headers().unwrap()).unwrap();
    for record in reader.records().take(rows) {
        writer.write_record(&record.unwrap()).unwrap();
    }
    workspace.write("reviews.csv", writer.into_inner().unwrap());
    workspace.write(
        "reviews.toml",
        format!(
            "name = \"reviews\"\n[input]\npath = \"reviews.csv\"\nid_column = \"review_id\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"Topic of: {{{{ text }}}}\"\nmax_tokens = 30\n[output]\npath = \"out.parquet\"\n[batch]\nmax_requests_per_file = {per_shard}\n{extra_batch}"
        ),
    );
    workspace
}

/// How many times the simulator billed each custom_id in the batches of run `run_id`.
pub fn billed_custom_ids(
    simulator: &StandaloneSimulator,
    run_id: &str,
) -> std::collections::BTreeMap<String, u64> {
    let ledger = simulator.ledger();
    let run_batches = batch_ids_of_run(&ledger, run_id);
    let mut billed = std::collections::BTreeMap::new();
    for bill in ledger["billed_requests"].as_array().unwrap() {
        if run_batches.iter().any(|id| bill["batch_id"] == id.as_str()) {
            *billed
                .entry(bill["custom_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    billed
}

/// The ids of the batches the run `run_id` created, from the simulator's ledger.
pub fn batch_ids_of_run(ledger: &serde_json::Value, run_id: &str) -> Vec<String> {
    ledger["batches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|batch| batch["metadata"]["dashbatch_run"] == run_id)
        .map(|batch| batch["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Makes the review job of `workspace` ask for `model` instead of qwen-flash.
pub fn set_review_model(workspace: &Workspace, model: &str) {
    let job = std::fs::read_to_string(workspace.path().join("reviews.toml")).unwrap();
    workspace.write(
        "reviews.toml",
        job.replace("model = \"qwen-flash\"", &format!("model = \"{model}\"")),
    );
}

/// `dashbatch run` of the review job against `simulator`, as a real provider with a key, with
/// `output_flag` (`--quiet` or `--json`).
fn review_command(
    workspace: &Workspace,
    simulator: &StandaloneSimulator,
    run_directory: &Path,
    output_flag: &str,
) -> std::process::Command {
    let mut command = workspace.run_against(
        simulator,
        "dashscope",
        "reviews.toml",
        run_directory,
        &[output_flag],
    );
    command.env("DASHSCOPE_API_KEY", SECRET_KEY);
    command
}

/// `run reviews.toml` against `simulator` as DashScope with the test key, in the default run
/// directory under `runs/` (no `--run-dir`), with `extra_arguments`.
pub fn review_run_in_default_directory(
    workspace: &Workspace,
    simulator: &StandaloneSimulator,
    extra_arguments: &[&str],
) -> std::process::Command {
    let mut arguments = vec![
        "run",
        "reviews.toml",
        "--provider",
        "dashscope",
        "--base-url",
        &simulator.base_url,
    ];
    arguments.extend_from_slice(extra_arguments);
    let mut command = workspace.command(&arguments);
    command.env("DASHSCOPE_API_KEY", SECRET_KEY);
    command
}

/// [`review_command`] printing nothing but errors.
pub fn review_run_command(
    workspace: &Workspace,
    simulator: &StandaloneSimulator,
    run_directory: &Path,
) -> std::process::Command {
    review_command(workspace, simulator, run_directory, "--quiet")
}

/// [`review_command`] with `--json` events on stdout.
pub fn review_json_run_command(
    workspace: &Workspace,
    simulator: &StandaloneSimulator,
    run_directory: &Path,
) -> std::process::Command {
    review_command(workspace, simulator, run_directory, "--json")
}

pub fn resume_command(workspace: &Workspace, run_directory: &Path) -> std::process::Command {
    let mut command = workspace.command(&["resume", run_directory.to_str().unwrap(), "--quiet"]);
    command.env("DASHSCOPE_API_KEY", SECRET_KEY);
    command
}

/// Asserts that the review job's run in `run_directory` (output `out.parquet`, `rows` rows)
/// finished with every invariant held.
pub fn assert_finished_cleanly(
    simulator: &StandaloneSimulator,
    workspace: &Workspace,
    run_directory: &Path,
    rows: usize,
) {
    let (violations, notes) = check_finished_run(
        simulator,
        run_directory,
        &workspace.path().join("out.parquet"),
        &review_ids(rows),
    );
    assert!(violations.is_clean(), "{violations:?}: {notes}");
}
