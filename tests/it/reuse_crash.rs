//! The crash harness for runs that reuse and send at once: yesterday's answers are in the
//! answer store, today's table repeats most of yesterday's rows, adds new ones and repeats some
//! of its own; the simulator fails a fifth of the lines. Each cycle kills today's run at a named
//! step (the store write included) or at a random moment, or starts two runs of the job on one
//! store together, then resumes until it finishes. After each cycle: nothing billed twice,
//! nothing lost, the report's cost is what was billed, and the store holds no failed answer.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::harness::*;
use super::invariants::*;

const YESTERDAY_ROWS: usize = 20;
const TODAY_ROWS: usize = 30;
const REPEATS: usize = 5;

/// Writes `reviews.csv` (the first `rows` reviews, then `repeats` rows repeating reviews 21..)
/// and `reviews.toml` into `workspace`; returns the custom ids in input order.
fn write_day(workspace: &Workspace, rows: usize, repeats: usize) -> Vec<String> {
    let source =
        std::fs::read_to_string(repository_root().join("fixtures/reviews/zh_reviews.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(source.as_bytes());
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(reader.headers().unwrap()).unwrap();
    let records: Vec<csv::StringRecord> = reader.records().take(rows).map(Result::unwrap).collect();
    let mut ids = Vec::new();
    for record in &records {
        writer.write_record(record).unwrap();
        ids.push(record[0].to_owned());
    }
    for repeat in 0..repeats {
        let original = &records[YESTERDAY_ROWS + repeat];
        let id = format!("repeat-{repeat}");
        writer
            .write_record([&id, &original[1], &original[2]])
            .unwrap();
        ids.push(id);
    }
    workspace.write("reviews.csv", writer.into_inner().unwrap());
    workspace.write(
        "reviews.toml",
        "name = \"reviews\"\n[input]\npath = \"reviews.csv\"\nid_column = \"review_id\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"Topic of: {{ text }}\"\nmax_tokens = 30\n[output]\npath = \"out.parquet\"\n[batch]\nmax_requests_per_file = 6\n",
    );
    ids
}

fn store_path(workspace: &Workspace) -> PathBuf {
    workspace.path().join(".cache/dashbatch/answers.sqlite")
}

/// Every answer in the store was an `ok` one: a 200 line with a body and no error.
fn failed_answers_in_store(store: &Path) -> Vec<String> {
    let connection = rusqlite::Connection::open(store).unwrap();
    let mut statement = connection
        .prepare("SELECT result_line FROM answers")
        .unwrap();
    let lines: Vec<String> = statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    lines
        .into_iter()
        .filter(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["response"]["status_code"] != 200
                || !value["error"].is_null()
                || value["response"]["body"]["choices"].is_null()
        })
        .collect()
}

enum Kill {
    AtStep(&'static str, u32),
    After(Duration),
    TwoRunsAtOnce,
}

fn run_command(
    workspace: &Workspace,
    simulator: &StandaloneSimulator,
    run: &Path,
) -> std::process::Command {
    review_run_command(workspace, simulator, run)
}

/// Runs (or resumes) until the run in `run` finishes.
fn finish(workspace: &Workspace, simulator: &StandaloneSimulator, run: &Path) {
    let mut tries = Vec::new();
    for _ in 0..5 {
        let recorded = run.join("ledger.sqlite").exists()
            && rusqlite::Connection::open(run.join("ledger.sqlite"))
                .and_then(|connection| {
                    connection.query_row(
                        "SELECT COUNT(*) FROM run_facts WHERE key = 'job_sha256'",
                        [],
                        |row| row.get::<_, i64>(0),
                    )
                })
                .map(|count| count > 0)
                .unwrap_or(false);
        let output = if recorded {
            resume_command(workspace, run).output().unwrap()
        } else {
            run_command(workspace, simulator, run).output().unwrap()
        };
        if matches!(output.status.code(), Some(0 | 1)) {
            return;
        }
        tries.push(format!(
            "{} ({:?}): {}",
            if recorded { "resume" } else { "run" },
            output.status,
            text(&output.stderr)
        ));
    }
    panic!(
        "the run in `{}` did not finish after 5 tries:\n{}",
        run.display(),
        tries.join("\n")
    );
}

#[test]
fn killing_a_run_that_reuses_and_sends_keeps_every_invariant_and_stores_only_ok_answers() {
    let simulator = StandaloneSimulator::start(&[]);
    simulator.put_json(
        "/_sim/faults",
        &serde_json::json!({"routes": {}, "batches": [
            {"batches": "all", "behaviour": {"failed_lines_in_output": {"fraction": 0.2}}}
        ]}),
    );
    // Yesterday: the first 20 reviews, run once; its store is today's starting point.
    let yesterday = Workspace::new();
    write_day(&yesterday, YESTERDAY_ROWS, 0);
    let output = run_command(&yesterday, &simulator, &yesterday.path().join("run"))
        .output()
        .unwrap();
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "{}",
        text(&output.stderr)
    );
    let yesterday_store = store_path(&yesterday);
    assert!(failed_answers_in_store(&yesterday_store).is_empty());

    let mut kills = Vec::new();
    for step in dashbatch::kill_point::STEPS {
        for nth in 1..=2 {
            kills.push(Kill::AtStep(step, nth));
        }
    }
    let mut moment = 0x2026_1202_u64;
    for _ in 0..6 {
        moment = moment
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        kills.push(Kill::After(Duration::from_millis((moment >> 33) % 700)));
    }
    kills.push(Kill::TwoRunsAtOnce);

    let mut failures = Vec::new();
    let mut killed = 0;
    let mut reused_rows = 0;
    for kill in &kills {
        let workspace = Workspace::new();
        let ids = write_day(&workspace, TODAY_ROWS, REPEATS);
        std::fs::create_dir_all(store_path(&workspace).parent().unwrap()).unwrap();
        std::fs::copy(&yesterday_store, store_path(&workspace)).unwrap();
        let run = workspace.path().join("run");
        let mut runs = vec![run.clone()];
        match kill {
            Kill::AtStep(step, nth) => {
                let status = run_command(&workspace, &simulator, &run)
                    .env("DASHBATCH_TEST_KILL_AT", format!("{step}:{nth}"))
                    .status()
                    .unwrap();
                killed += u32::from(status.signal() == Some(libc::SIGKILL));
            }
            Kill::After(delay) => {
                let mut child = run_command(&workspace, &simulator, &run).spawn().unwrap();
                let started = Instant::now();
                while child.try_wait().unwrap().is_none() {
                    if started.elapsed() >= *delay {
                        child.kill().unwrap();
                        child.wait().unwrap();
                        killed += 1;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Kill::TwoRunsAtOnce => {
                // Two runs of one job on one store, each in its own directory.
                let second = workspace.path().join("run-2");
                let (first_child, second_child) = (
                    run_command(&workspace, &simulator, &run).spawn().unwrap(),
                    run_command(&workspace, &simulator, &second)
                        .spawn()
                        .unwrap(),
                );
                for child in [first_child, second_child] {
                    let output = wait_with_limit(child, Duration::from_secs(60));
                    assert!(
                        matches!(output.status.code(), Some(0 | 1)),
                        "{}",
                        text(&output.stderr)
                    );
                }
                runs.push(second);
            }
        }
        for run in &runs {
            finish(&workspace, &simulator, run);
            let (violations, notes) =
                check_finished_run(&simulator, run, &workspace.path().join("out.parquet"), &ids);
            if !violations.is_clean() {
                failures.push(format!("{:?}: {violations:?}: {notes}", kill_name(kill)));
            }
            let report = read_report(run);
            reused_rows += report["reuse"]["rows_from_store"].as_u64().unwrap();
        }
        let failed = failed_answers_in_store(&store_path(&workspace));
        if !failed.is_empty() {
            failures.push(format!(
                "{}: the store holds {} failed answer(s)",
                kill_name(kill),
                failed.len()
            ));
        }
    }
    record_summary(
        "reuse-crash",
        &format!(
            "reuse crash cycles: {}, killed: {killed}, rows reused from the store: {reused_rows}, failures: {}",
            kills.len(),
            failures.len()
        ),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(reused_rows > 0, "the cycles must really reuse answers");
}

fn kill_name(kill: &Kill) -> String {
    match kill {
        Kill::AtStep(step, nth) => format!("at {step}:{nth}"),
        Kill::After(delay) => format!("after {delay:?}"),
        Kill::TwoRunsAtOnce => "two runs at once".to_owned(),
    }
}
