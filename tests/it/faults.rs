//! Network and provider faults injected by the simulator. Each run must still end with one
//! output row per input row, nothing billed twice, one batch per input file, the report's cost
//! equal to what was billed, and no key on disk.

use serde_json::{Value, json};

use super::harness::*;
use super::invariants::*;

struct FaultRun {
    run_directory: std::path::PathBuf,
    _workspace: Workspace,
    exit_code: Option<i32>,
    stderr: String,
    statuses: Vec<Option<String>>,
    error_codes: Vec<Option<String>>,
    simulator: StandaloneSimulator,
}

fn run_with_faults(rows: usize, per_shard: usize, plan: Value) -> FaultRun {
    let simulator = StandaloneSimulator::start(&[]);
    simulator.put_json("/_sim/faults", &plan);
    let workspace = review_workspace(rows, per_shard, "");
    let run_directory = workspace.path().join("run");
    let output = review_run_command(&workspace, &simulator, &run_directory)
        .env("DASHBATCH_LOG", "1")
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(
        !stderr.contains(SECRET_KEY),
        "the key leaked into the log:\n{stderr}"
    );
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "exit {:?}: {stderr}",
        output.status.code()
    );
    let (violations, notes) = check_finished_run(
        &simulator,
        &run_directory,
        &workspace.path().join("out.parquet"),
        &review_ids(rows),
    );
    assert!(violations.is_clean(), "{violations:?}: {notes}\n{stderr}");
    let batches = read_parquet(&workspace.path().join("out.parquet"));
    FaultRun {
        run_directory,
        _workspace: workspace,
        exit_code: output.status.code(),
        stderr,
        statuses: string_column(&batches, "status"),
        error_codes: string_column(&batches, "error_code"),
        simulator,
    }
}

/// How many side effects of `kind` the run's ledger records as adopted from the provider.
fn adopted_effects(run: &FaultRun, kind: &str) -> i64 {
    let connection = rusqlite::Connection::open(run.run_directory.join("ledger.sqlite")).unwrap();
    connection
        .query_row(
            "SELECT COUNT(*) FROM effects WHERE kind = ?1 AND detail LIKE 'adopted%'",
            [kind],
            |row| row.get(0),
        )
        .unwrap()
}

fn count(values: &[Option<String>], wanted: &str) -> usize {
    values
        .iter()
        .filter(|value| value.as_deref() == Some(wanted))
        .count()
}

fn route_fault(route: &str, nth: u64, kind: Value) -> Value {
    json!({ "routes": { route: [{ "nth": nth, "kind": kind }] }, "batches": [] })
}

#[test]
fn throttled_polls_honour_retry_after() {
    let run = run_with_faults(
        12,
        6,
        route_fault(
            "get_batch",
            2,
            json!({"status_429": {"retry_after_seconds": 1}}),
        ),
    );
    assert_eq!(run.exit_code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("retrying in 1s"), "{}", run.stderr);
}

#[test]
fn server_errors_on_polls_and_downloads_are_retried() {
    let plan = json!({ "routes": {
        "get_batch": [{ "nth": 1, "kind": "status_500" }, { "nth": 3, "kind": "status_500" }],
        "file_content": [{ "nth": 1, "kind": "status_500" }],
    }, "batches": [] });
    let run = run_with_faults(12, 6, plan);
    assert_eq!(run.exit_code, Some(0), "{}", run.stderr);
}

#[test]
fn a_create_whose_answer_is_lost_is_adopted_not_repeated() {
    let run = run_with_faults(
        12,
        6,
        route_fault("create_batch", 1, json!("drop_after_acting")),
    );
    assert_eq!(run.exit_code, Some(0), "{}", run.stderr);
    let ledger = run.simulator.ledger();
    assert_eq!(
        ledger["batches"].as_array().unwrap().len(),
        2,
        "two shards, two batches"
    );
    assert_eq!(
        adopted_effects(&run, "create_batch"),
        1,
        "the lost create was adopted"
    );
}

#[test]
fn a_create_that_never_happened_is_sent_again_after_looking() {
    let run = run_with_faults(
        12,
        6,
        route_fault("create_batch", 1, json!("drop_before_acting")),
    );
    assert_eq!(run.exit_code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.simulator.ledger()["batches"].as_array().unwrap().len(),
        2
    );
}

#[test]
fn an_upload_whose_answer_is_lost_is_adopted_not_repeated() {
    let run = run_with_faults(12, 6, route_fault("upload", 1, json!("drop_after_acting")));
    assert_eq!(run.exit_code, Some(0), "{}", run.stderr);
    let ledger = run.simulator.ledger();
    assert_eq!(ledger["uploads"], 2, "one upload per shard: {ledger:#}");
    assert_eq!(
        adopted_effects(&run, "upload"),
        1,
        "the lost upload was adopted"
    );
}

#[test]
fn a_throttled_create_is_reconciled_then_retried() {
    let run = run_with_faults(
        12,
        6,
        route_fault(
            "create_batch",
            1,
            json!({"status_429": {"retry_after_seconds": 1}}),
        ),
    );
    assert_eq!(run.exit_code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.simulator.ledger()["batches"].as_array().unwrap().len(),
        2
    );
}

#[test]
fn slow_answers_and_truncated_downloads_are_survived() {
    let plan = json!({ "routes": {
        "get_batch": [{ "nth": 1, "kind": {"slow": {"millis": 800}} }],
        "file_content": [{ "nth": 1, "kind": {"truncate_download": {"keep_fraction": 0.4}} }],
    }, "batches": [] });
    let run = run_with_faults(12, 6, plan);
    assert_eq!(run.exit_code, Some(0), "{}", run.stderr);
    assert_eq!(count(&run.statuses, "ok"), 12);
}

#[test]
fn an_expired_batch_keeps_its_finished_rows_and_resends_the_rest() {
    let plan = json!({ "routes": {}, "batches": [
        { "batches": { "nth_batch": 1 }, "behaviour": { "expire_with_partial": { "done_fraction": 0.5 } } }
    ] });
    let run = run_with_faults(20, 20, plan);
    assert_eq!(run.exit_code, Some(0), "{}", run.stderr);
    assert_eq!(count(&run.statuses, "ok"), 20, "{:?}", run.statuses);
    let ledger = run.simulator.ledger();
    assert_eq!(
        ledger["batches"].as_array().unwrap().len(),
        2,
        "the original and one retry batch"
    );
}

#[test]
fn transient_line_errors_are_resent_and_permanent_ones_are_not() {
    let plan = json!({ "routes": {}, "batches": [
        { "batches": { "nth_batch": 1 }, "behaviour": { "transient_line_errors": { "fraction": 0.3 } } },
        { "batches": { "nth_batch": 1 }, "behaviour": { "failed_lines_in_output": { "fraction": 0.3 } } }
    ] });
    let run = run_with_faults(30, 30, plan);
    let failed = count(&run.statuses, "failed");
    let ok = count(&run.statuses, "ok");
    assert_eq!(ok + failed, 30, "{:?}", run.statuses);
    assert!(ok >= 15, "{:?}", run.statuses);
    if failed > 0 {
        assert_eq!(run.exit_code, Some(1));
    }
}

#[test]
fn a_batch_that_fails_validation_maps_its_errors_to_rows() {
    let plan = json!({ "routes": {}, "batches": [
        { "batches": "all", "behaviour": { "fail_validation": {} } }
    ] });
    let run = run_with_faults(8, 8, plan);
    assert_eq!(run.exit_code, Some(1));
    assert_eq!(count(&run.statuses, "failed"), 8);
    assert!(run.error_codes.iter().all(Option::is_some));
}

#[test]
fn lost_lines_become_missing_rows_and_are_not_resent() {
    let plan = json!({ "routes": {}, "batches": [
        { "batches": "all", "behaviour": { "lose_lines": { "count": 3 } } }
    ] });
    let run = run_with_faults(10, 10, plan);
    assert_eq!(run.exit_code, Some(1));
    assert_eq!(count(&run.statuses, "missing"), 3, "{:?}", run.statuses);
    assert_eq!(
        run.simulator.ledger()["batches"].as_array().unwrap().len(),
        1
    );
}

#[test]
fn error_lines_in_the_helper_spelling_are_read() {
    let plan = json!({ "routes": {}, "batches": [
        { "batches": "all", "behaviour": { "transient_line_errors": { "fraction": 0.5 } } },
        { "batches": "all", "behaviour": "error_code_spelling_helper" }
    ] });
    let run = run_with_faults(10, 10, plan);
    // Every retry hits the same fault, so some rows end failed after all attempts.
    let failed = count(&run.statuses, "failed");
    assert!(failed > 0, "{:?}", run.statuses);
    for (status, code) in run.statuses.iter().zip(&run.error_codes) {
        if status.as_deref() == Some("failed") {
            assert!(
                code.is_some(),
                "error_code read from error_code/error_message"
            );
        }
    }
}

#[test]
fn server_errors_on_upload_and_create_are_reconciled_then_sent_once() {
    let plan = json!({ "routes": {
        "upload": [{ "nth": 1, "kind": "status_500" }],
        "create_batch": [{ "nth": 1, "kind": "status_500" }, { "nth": 2, "kind": "status_500" }],
    }, "batches": [] });
    let run = run_with_faults(12, 6, plan);
    assert_eq!(run.exit_code, Some(0), "{}", run.stderr);
    let ledger = run.simulator.ledger();
    assert_eq!(ledger["batches"].as_array().unwrap().len(), 2);
    assert_eq!(
        ledger["uploads"], 2,
        "a 500 stores nothing, so each shard is stored once"
    );
}

/// Shards of the run whose files at the provider are not deleted yet.
fn shards_with_remote_files(run_directory: &std::path::Path) -> i64 {
    let connection = rusqlite::Connection::open(run_directory.join("ledger.sqlite")).unwrap();
    connection
        .query_row(
            "SELECT COUNT(*) FROM shards WHERE remote_files_deleted = 0",
            [],
            |row| row.get(0),
        )
        .unwrap()
}

#[test]
fn the_output_is_written_before_remote_files_are_deleted_and_a_failed_delete_is_finished_by_resume()
{
    let simulator = StandaloneSimulator::start(&[]);
    simulator.put_json(
        "/_sim/faults",
        &route_fault("delete_file", 1, json!("status_400")),
    );
    let workspace = review_workspace(12, 6, "");
    let run_directory = workspace.path().join("run");
    let output = review_json_run_command(&workspace, &simulator, &run_directory)
        .output()
        .unwrap();
    let events = text(&output.stdout);
    // The rows are answered and written: the exit code says so, whatever the clean-up did.
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let cleanup_failed = events
        .lines()
        .find(|line| line.contains("\"remote_cleanup_failed\""))
        .unwrap_or_else(|| panic!("no remote_cleanup_failed event:\n{events}"));
    assert!(
        cleanup_failed.contains("the output is written")
            && cleanup_failed.contains("dashbatch resume"),
        "{cleanup_failed}"
    );
    assert!(
        events.lines().last().unwrap().contains("\"run_finished\""),
        "the final event is still run_finished:\n{events}"
    );
    let statuses = string_column(
        &read_parquet(&workspace.path().join("out.parquet")),
        "status",
    );
    assert_eq!(count(&statuses, "ok"), 12);
    assert!(shards_with_remote_files(&run_directory) > 0);

    simulator.put_json("/_sim/faults", &json!({ "routes": {}, "batches": [] }));
    let resumed = resume_command(&workspace, &run_directory).output().unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    assert_eq!(shards_with_remote_files(&run_directory), 0);
    assert_finished_cleanly(&simulator, &workspace, &run_directory, 12);
    // Finished now: another resume joins again without calling the provider.
    let again = resume_command(&workspace, &run_directory)
        .env_remove("DASHSCOPE_API_KEY")
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
}
