//! Waiting on many batches: each settled shard's transient failures are sent again while other
//! batches still run, many live batches are polled with list calls, not one GET each, and a
//! simulator with a shared capacity runs batches one behind another.

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
    let calls = simulator.calls();
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
        // Every list call: the looks for batches made elsewhere before each of the 45 creates,
        // then the polls.
        &json!({ "routes": { "list_batches": (1..=120)
            .map(|nth| json!({ "nth": nth, "kind": "status_400" }))
            .collect::<Vec<_>>()
        }, "batches": [] }),
    );
    let workspace = review_workspace(90, 2, "");
    let run_directory = workspace.path().join("run");
    run_with_events(&simulator, &workspace, &run_directory);
    assert_finished_cleanly(&simulator, &workspace, &run_directory, 90);
    let calls = simulator.calls();
    assert!(calls["get_batch"].as_u64().unwrap_or(0) >= 40, "{calls}");
}

#[test]
fn under_a_shared_capacity_batches_queue_and_run_one_behind_another() {
    // One line per simulated second across all batches: three batches of 40 lines need 120
    // simulated seconds of processing, one after another, though they are created a few
    // simulated seconds apart (at a twentieth of the default time scale). At their own pace they
    // would run side by side, each for 101 s, and finish as far apart as they were created.
    let simulator = StandaloneSimulator::start(&["--capacity", "1", "--time-scale", "50"]);
    let workspace = review_workspace(120, 40, "");
    let run_directory = workspace.path().join("run");
    run_with_events(&simulator, &workspace, &run_directory);
    assert_finished_cleanly(&simulator, &workspace, &run_directory, 120);
    let listed = simulator.get_json("/compatible-mode/v1/batches?limit=100");
    let mut batches: Vec<(i64, i64)> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|batch| {
            (
                batch["in_progress_at"].as_i64().unwrap(),
                batch["finalizing_at"].as_i64().unwrap(),
            )
        })
        .collect();
    batches.sort_by_key(|(_, finalizing_at)| *finalizing_at);
    assert_eq!(batches.len(), 3, "{listed}");
    for pair in batches.windows(2) {
        // Whole seconds: each batch finishes its 40 lines at least 39 s after the one before.
        assert!(pair[1].1 - pair[0].1 >= 39, "{batches:?}");
    }
    // `in_progress_at` is the creation time (as on DashScope): 40 s of validation, then 120 s.
    assert!(
        batches[2].1 - batches[0].0 >= 159,
        "120 lines at one a second took less: {batches:?}"
    );
}

#[test]
fn a_capacity_that_is_not_a_positive_number_is_refused_before_the_simulator_starts() {
    for capacity in ["0", "-3", "NaN", "inf", "lots"] {
        let output = std::process::Command::new(binary())
            .args([
                "sim",
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--capacity",
                capacity,
            ])
            .output()
            .unwrap();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{capacity}: {stderr}");
        assert!(
            stderr.contains(&format!("`{capacity}` is not a capacity")),
            "{capacity}: {stderr}"
        );
    }
}
