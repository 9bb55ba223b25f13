//! Waiting on many batches: each settled shard's transient failures are sent again while other
//! batches still run, and many live batches are polled with list calls, not one GET each.

use serde_json::{Value, json};

use super::harness::*;
use super::invariants::*;

/// The `--json` events of a run of the review job against `simulator`.
fn run_with_events(
    simulator: &StandaloneSimulator,
    workspace: &Workspace,
    run_directory: &std::path::Path,
) -> Vec<Value> {
    let output = review_json_run_command(workspace, simulator, run_directory)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn a_settled_shards_transient_failures_are_resent_while_another_batch_still_runs() {
    // 200 rows in a slow first shard, one in a fast second shard whose line fails with a rate
    // limit; a tenth of real speed so the first batch runs for seconds.
    let simulator = StandaloneSimulator::start(&["--time-scale", "100"]);
    simulator.put_json(
        "/_sim/faults",
        &json!({ "routes": {}, "batches": [
            { "batches": { "nth_batch": 2 }, "behaviour": { "transient_line_errors": { "fraction": 1.0 } } }
        ] }),
    );
    let workspace = review_workspace(201, 200, "");
    let run_directory = workspace.path().join("run");
    let events = run_with_events(&simulator, &workspace, &run_directory);
    let position = |wanted: &dyn Fn(&Value) -> bool| {
        events
            .iter()
            .position(wanted)
            .unwrap_or_else(|| panic!("no such event in {events:#?}"))
    };
    let retry_planned = position(&|event| event["type"] == "retry_planned");
    let slow_shard_done = position(&|event| {
        event["type"] == "batch_status" && event["shard"] == 0 && event["status"] == "completed"
    });
    assert!(
        retry_planned < slow_shard_done,
        "the retry waited for the slow shard: {events:#?}"
    );
    assert_finished_cleanly(&simulator, &workspace, &run_directory, 201);
    let statuses = string_column(
        &read_parquet(&workspace.path().join("out.parquet")),
        "status",
    );
    assert!(
        statuses
            .iter()
            .all(|status| status.as_deref() == Some("ok"))
    );
}

#[test]
fn many_live_batches_are_polled_with_list_calls() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = review_workspace(90, 2, "");
    let run_directory = workspace.path().join("run");
    run_with_events(&simulator, &workspace, &run_directory);
    assert_finished_cleanly(&simulator, &workspace, &run_directory, 90);
    let calls = simulator.get_json("/_sim/requests")["calls"].clone();
    let (list_calls, get_calls) = (
        calls["list_batches"].as_u64().unwrap_or(0),
        calls["get_batch"].as_u64().unwrap_or(0),
    );
    // 45 live batches: 3 list calls a round (20 input files each) instead of 45 GETs.
    assert!(list_calls > 0, "{calls}");
    assert!(
        get_calls < list_calls * 20,
        "polled one by one: {get_calls} GETs, {list_calls} list calls"
    );
}

#[test]
fn a_refused_list_call_falls_back_to_one_get_per_batch() {
    let simulator = StandaloneSimulator::start(&[]);
    simulator.put_json(
        "/_sim/faults",
        &json!({ "routes": { "list_batches": [
            { "nth": 1, "kind": "status_400" }, { "nth": 2, "kind": "status_400" }
        ] }, "batches": [] }),
    );
    let workspace = review_workspace(90, 2, "");
    let run_directory = workspace.path().join("run");
    run_with_events(&simulator, &workspace, &run_directory);
    assert_finished_cleanly(&simulator, &workspace, &run_directory, 90);
    let calls = simulator.get_json("/_sim/requests")["calls"].clone();
    assert!(calls["get_batch"].as_u64().unwrap_or(0) >= 40, "{calls}");
}
