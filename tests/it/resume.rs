//! Resume, status, cancel and Ctrl-C: a finished run resumed changes nothing at the provider;
//! `status` reads only the ledger; `cancel` stops live batches and keeps the rows that finished;
//! Ctrl-C saves the state, cancels nothing remote, exits 130, and `resume` finishes the run.

use std::time::{Duration, Instant};

use serde_json::json;

use super::harness::*;
use super::invariants::*;

fn changing_calls(calls: &serde_json::Value) -> u64 {
    ["upload", "create_batch", "cancel_batch", "delete_file"]
        .iter()
        .map(|route| calls[route].as_u64().unwrap_or(0))
        .sum()
}

/// Waits until the run's ledger shows `count` batch ids.
fn wait_for_batches(run_directory: &std::path::Path, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(connection) = rusqlite::Connection::open(run_directory.join("ledger.sqlite"))
            && let Ok(found) = connection.query_row(
                "SELECT COUNT(*) FROM shards WHERE batch_id IS NOT NULL",
                [],
                |row| row.get::<_, i64>(0),
            )
            && found >= count
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the run never created its batches"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a run against a simulator whose clock is frozen, waits until it has created `batches`
/// batches, and kills it there: a run with live batches, ready to be resumed or cancelled.
fn run_killed_with_live_batches(
    simulator: &StandaloneSimulator,
    rows: usize,
    per_shard: usize,
    extra_batch: &str,
    batches: i64,
) -> (Workspace, std::path::PathBuf) {
    simulator.put_json("/_sim/clock", &json!({"time_scale": 0.0}));
    let workspace = review_workspace(rows, per_shard, extra_batch);
    let run_directory = workspace.path().join("run");
    let mut child = review_run_command(&workspace, simulator, &run_directory)
        .spawn()
        .unwrap();
    wait_for_batches(&run_directory, batches);
    child.kill().unwrap();
    child.wait().unwrap();
    (workspace, run_directory)
}

/// A review job of `rows` rows (`per_shard` a shard) run to the end in `run` against `simulator`.
fn finished_review_run(
    simulator: &StandaloneSimulator,
    rows: usize,
    per_shard: usize,
    extra_batch: &str,
) -> (Workspace, std::path::PathBuf) {
    let workspace = review_workspace(rows, per_shard, extra_batch);
    let run_directory = workspace.path().join("run");
    assert_success(
        &review_run_command(&workspace, simulator, &run_directory)
            .output()
            .unwrap(),
    );
    (workspace, run_directory)
}

#[test]
fn a_finished_run_resumed_makes_no_changing_call() {
    let simulator = StandaloneSimulator::start(&[]);
    let (workspace, run_directory) = finished_review_run(&simulator, 12, 6, "");
    let before = simulator.calls();
    let output = resume_command(&workspace, &run_directory).output().unwrap();
    assert_success(&output);
    let after = simulator.calls();
    assert_eq!(
        changing_calls(&before),
        changing_calls(&after),
        "{before} → {after}"
    );
    assert_eq!(before, after, "a finished run needs no call at all");
    // `run` on the same run directory is a resume too.
    assert_success(
        &review_run_command(&workspace, &simulator, &run_directory)
            .output()
            .unwrap(),
    );
    assert_eq!(simulator.calls(), before);
}

#[test]
fn status_reads_the_ledger_without_any_call() {
    let simulator = StandaloneSimulator::start(&[]);
    let (workspace, run_directory) = run_killed_with_live_batches(&simulator, 12, 6, "", 2);
    let before = simulator.calls();
    let output = workspace.run(&["status", run_directory.to_str().unwrap(), "--json"]);
    assert_success(&output);
    assert_eq!(simulator.calls(), before, "status makes no call");
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(status["planned_rows"], 12);
    assert_eq!(status["finished"], false);
    let shards = status["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2);
    assert!(shards.iter().all(|shard| shard["batch_id"].is_string()));
    let human = workspace.run(&["status", run_directory.to_str().unwrap()]);
    assert_success(&human);
    assert!(text(&human.stdout).contains("not finished"));
}

#[test]
fn cancel_stops_live_batches_and_keeps_the_rows_that_finished() {
    let simulator = StandaloneSimulator::start(&[]);
    let (workspace, run_directory) =
        run_killed_with_live_batches(&simulator, 40, 40, "max_attempts = 1\n", 1);
    // Let part of the batch run, then cancel it.
    super::harness::http_json(
        "POST",
        &format!("{}/_sim/clock/advance", simulator.root_url),
        Some(&json!({"seconds": 100.0})),
    );
    let output = resume_free_cancel(&workspace, &run_directory);
    assert_success(&output);
    assert!(
        text(&output.stderr).contains("cancel 1 batch"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(simulator.calls()["cancel_batch"], 1);
    simulator.put_json("/_sim/clock", &json!({"time_scale": 1000.0}));
    let output = resume_command(&workspace, &run_directory).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let batches = read_parquet(&workspace.path().join("out.parquet"));
    let statuses = string_column(&batches, "status");
    assert_eq!(statuses.len(), 40);
    let ok = statuses
        .iter()
        .filter(|s| s.as_deref() == Some("ok"))
        .count();
    let cancelled = statuses
        .iter()
        .filter(|s| s.as_deref() == Some("cancelled"))
        .count();
    assert!(
        ok > 0 && cancelled > 0 && ok + cancelled == 40,
        "{statuses:?}"
    );
    let (violations, notes) = check_finished_run(
        &simulator,
        &run_directory,
        &workspace.path().join("out.parquet"),
        &review_ids(40),
    );
    assert!(violations.is_clean(), "{notes}");
}

fn resume_free_cancel(
    workspace: &Workspace,
    run_directory: &std::path::Path,
) -> std::process::Output {
    let mut command = workspace.command(&["cancel", run_directory.to_str().unwrap()]);
    command.env("DASHSCOPE_API_KEY", SECRET_KEY);
    command.output().unwrap()
}

#[test]
fn ctrl_c_saves_the_state_cancels_nothing_and_resume_finishes() {
    let simulator = StandaloneSimulator::start(&[]);
    simulator.put_json("/_sim/clock", &json!({"time_scale": 0.0}));
    let workspace = review_workspace(12, 6, "");
    let run_directory = workspace.path().join("run");
    let child = review_run_command(&workspace, &simulator, &run_directory)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_batches(&run_directory, 2);
    // SAFETY: sending SIGINT to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("dashbatch resume"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(
        simulator.calls()["cancel_batch"],
        0,
        "Ctrl-C never cancels remote batches"
    );
    simulator.put_json("/_sim/clock", &json!({"time_scale": 1000.0}));
    assert_success(&resume_command(&workspace, &run_directory).output().unwrap());
    let (violations, notes) = check_finished_run(
        &simulator,
        &run_directory,
        &workspace.path().join("out.parquet"),
        &review_ids(12),
    );
    assert!(violations.is_clean(), "{notes}");
}

#[test]
fn results_the_provider_no_longer_serves_are_marked_and_their_spend_reported() {
    let simulator = StandaloneSimulator::start(&[]);
    let (workspace, run_directory) = run_killed_with_live_batches(&simulator, 12, 6, "", 2);
    // Both batches complete; then the first one's output file disappears at the provider.
    http_json(
        "POST",
        &format!("{}/_sim/clock/advance", simulator.root_url),
        Some(&json!({"seconds": 100000.0})),
    );
    let connection = rusqlite::Connection::open(run_directory.join("ledger.sqlite")).unwrap();
    let batch_id: String = connection
        .query_row(
            "SELECT batch_id FROM shards WHERE shard_index = 0",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let batch = http_json(
        "GET",
        &format!("{}/batches/{batch_id}", simulator.base_url),
        None,
    );
    let output_file = batch["output_file_id"].as_str().unwrap().to_owned();
    http_json(
        "DELETE",
        &format!("{}/files/{output_file}", simulator.base_url),
        None,
    );
    simulator.put_json("/_sim/clock", &json!({"time_scale": 1000.0}));

    let output = resume_command(&workspace, &run_directory).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let rows = read_parquet(&workspace.path().join("out.parquet"));
    let codes = string_column(&rows, "error_code");
    assert_eq!(codes.len(), 12, "every row still has its output row");
    assert_eq!(
        codes
            .iter()
            .filter(|c| c.as_deref() == Some("results_unavailable"))
            .count(),
        6
    );
    let report = read_report(&run_directory);
    let lost = report["lost_results"].as_array().unwrap();
    assert_eq!(lost.len(), 1, "{report:#}");
    assert_eq!(lost[0]["completed_requests"], 6);
}

#[test]
fn a_restarted_simulator_keeps_its_batches_and_the_run_finishes() {
    let state = tempfile::tempdir().unwrap();
    let mut simulator =
        StandaloneSimulator::start(&["--state-dir", state.path().to_str().unwrap()]);
    let (workspace, run_directory) = run_killed_with_live_batches(&simulator, 12, 6, "", 2);
    simulator.restart(state.path());
    simulator.put_json("/_sim/clock", &json!({"time_scale": 1000.0}));
    assert_success(&resume_command(&workspace, &run_directory).output().unwrap());
    assert_eq!(
        simulator.ledger()["batches"].as_array().unwrap().len(),
        2,
        "no batch created twice"
    );
    let (violations, notes) = check_finished_run(
        &simulator,
        &run_directory,
        &workspace.path().join("out.parquet"),
        &review_ids(12),
    );
    assert!(violations.is_clean(), "{notes}");
}

#[test]
fn run_without_a_run_directory_continues_the_unfinished_run_of_the_same_job() {
    let simulator = StandaloneSimulator::start(&[]);
    simulator.put_json("/_sim/clock", &json!({"time_scale": 0.0}));
    let workspace = review_workspace(12, 6, "");
    let run_in_default_directory = || review_run_in_default_directory(&workspace, &simulator, &[]);
    let mut child = run_in_default_directory().spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let run_directory = loop {
        if let Ok(entries) = std::fs::read_dir(workspace.path().join("runs"))
            && let Some(entry) = entries
                .flatten()
                .find(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
        {
            break entry.path();
        }
        assert!(Instant::now() < deadline, "no run directory appeared");
        std::thread::sleep(Duration::from_millis(20));
    };
    wait_for_batches(&run_directory, 2);
    child.kill().unwrap();
    child.wait().unwrap();

    simulator.put_json("/_sim/clock", &json!({"time_scale": 1000.0}));
    let output = run_in_default_directory().output().unwrap();
    assert_success(&output);
    assert!(
        text(&output.stderr).contains("continuing the unfinished run"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(
        workspace.single_run_directory(),
        run_directory,
        "no second run was started"
    );
    assert_eq!(simulator.ledger()["batches"].as_array().unwrap().len(), 2);
    let (violations, notes) = check_finished_run(
        &simulator,
        &run_directory,
        &workspace.path().join("out.parquet"),
        &review_ids(12),
    );
    assert!(violations.is_clean(), "{notes}");
}

#[test]
fn uploads_are_spaced_and_run_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let simulator = StandaloneSimulator::start(&[]);
    let (_workspace, run_directory) =
        finished_review_run(&simulator, 16, 2, "delete_remote_files = false\n");

    // At most 3 uploads a second: at the simulator's 1,000× speed, a third of a real second
    // between two uploads is over 300 simulated seconds. The client spaces the uploads' starts;
    // the simulator stamps each once it has read the whole file, which can come a quarter of a
    // real second late (seen: gaps of 570 then 98 simulated seconds). So the test is the
    // provider's: any four uploads in a row span a second (less that lateness: 700), and all
    // eight at least 7 × 300 seconds. Uploads sent in a burst would be seconds apart.
    let files = http_json("GET", &format!("{}/files", simulator.base_url), None);
    let mut uploaded_at: Vec<i64> = files["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|file| file["purpose"] == "batch")
        .map(|file| file["created_at"].as_i64().unwrap())
        .collect();
    uploaded_at.sort_unstable();
    assert_eq!(uploaded_at.len(), 8, "{files}");
    assert!(
        uploaded_at[7] - uploaded_at[0] >= 7 * 300,
        "uploads too close: {uploaded_at:?}"
    );
    for four in uploaded_at.windows(4) {
        assert!(
            four[3] - four[0] >= 700,
            "uploads too close: {uploaded_at:?}"
        );
    }

    let mut pending = vec![run_directory.clone()];
    while let Some(path) = pending.pop() {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "{} is readable by others ({mode:o})",
            path.display()
        );
        if path.is_dir() {
            pending.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .map(|entry| entry.unwrap().path()),
            );
        }
    }
}

/// A run that created batches never exits 2 ("nothing was spent"), even when what fails is
/// local and happens before the run starts again: here `resume` cannot read the job file that
/// was edited after the run. Exit 3, and the message says how to finish.
#[test]
fn resume_after_spending_never_claims_nothing_was_spent() {
    let simulator = StandaloneSimulator::start(&[]);
    let (workspace, run_directory) = finished_review_run(&simulator, 6, 6, "");
    workspace.write("reviews.toml", "[input\nbroken = ");
    let output = resume_command(&workspace, &run_directory).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    for piece in ["reviews.toml", "already created", "dashbatch resume"] {
        assert!(stderr.contains(piece), "expected `{piece}` in:\n{stderr}");
    }
}

#[test]
fn cancel_goes_on_past_a_batch_that_already_ended() {
    let simulator = StandaloneSimulator::start(&[]);
    simulator.put_json(
        "/_sim/faults",
        &json!({"routes": {}, "batches": [
            { "batches": { "nth_batch": 1 }, "behaviour": { "fail_validation": {} } }
        ]}),
    );
    let (workspace, run_directory) = run_killed_with_live_batches(&simulator, 18, 6, "", 3);
    // The first batch fails its validation while dashbatch is not looking; the ledger still
    // holds it live, and the provider refuses to cancel it.
    super::harness::http_json(
        "POST",
        &format!("{}/_sim/clock/advance", simulator.root_url),
        Some(&json!({"seconds": 45.0})),
    );
    let output = resume_free_cancel(&workspace, &run_directory);
    assert_success(&output);
    let said = text(&output.stderr);
    assert!(said.contains("had already ended, now failed"), "{said}");
    assert_eq!(simulator.calls()["cancel_batch"], 3);
    let statuses: Vec<String> = simulator.ledger()["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|batch| batch["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses[0], "failed", "{statuses:?}");
    assert!(
        statuses[1..]
            .iter()
            .all(|status| status == "cancelling" || status == "cancelled"),
        "{statuses:?}"
    );
    // Asked again, the ended batch is no longer asked; the two still `cancelling` are.
    let again = resume_free_cancel(&workspace, &run_directory);
    assert_success(&again);
    assert_eq!(simulator.calls()["cancel_batch"], 5);
}

#[test]
fn joining_again_reads_each_shards_estimate_kept_in_the_ledger() {
    let simulator = StandaloneSimulator::start(&[]);
    let (workspace, run_directory) = finished_review_run(&simulator, 12, 6, "");
    let expected = read_report(&run_directory)["shards"][0]["estimate_vs_actual"]["cost_expected"]
        .as_str()
        .unwrap()
        .to_owned();
    let ledger = rusqlite::Connection::open(run_directory.join("ledger.sqlite")).unwrap();
    let kept: i64 = ledger
        .query_row("SELECT COUNT(*) FROM shard_estimates", [], |row| row.get(0))
        .unwrap();
    assert_eq!(kept, 2, "one kept estimate per shard");
    // A doctored kept estimate shows in the report of a join run again: it was read, not
    // counted again from the shard file.
    ledger
        .execute(
            "UPDATE shard_estimates SET estimate = replace(estimate, ?1, '\"123.5\"') WHERE shard_index = 0",
            [format!("\"{expected}\"")],
        )
        .unwrap();
    drop(ledger);
    assert_success(&resume_command(&workspace, &run_directory).output().unwrap());
    assert_eq!(
        read_report(&run_directory)["shards"][0]["estimate_vs_actual"]["cost_expected"],
        "123.50"
    );
}
