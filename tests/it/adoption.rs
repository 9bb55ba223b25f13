//! In-flight adoption: last night's run is still running when tonight's starts. Tonight's run
//! does not send the requests last night's has in flight: it waits for those answers (answer
//! source `adopted`, cost 0), sends only what is new, and, should last night's run die without
//! answering, sends the rest itself. `--no-adopt` sends everything at once. Billing is checked
//! against one standalone simulator's ledger.

use std::collections::BTreeMap;
use std::time::Duration;

use super::harness::*;
use super::invariants::*;

/// Writes `<name>.toml` reading `<name>.csv` (ids `<prefix>NN` over `texts`); every job of the
/// workspace has one template and model, so equal texts are equal requests, and one store.
fn write_job(workspace: &Workspace, name: &str, rows: &[(String, String)]) {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(["id", "text"]).unwrap();
    for (id, text) in rows {
        writer.write_record([id, text]).unwrap();
    }
    workspace.write(&format!("{name}.csv"), writer.into_inner().unwrap());
    workspace.write(
        &format!("{name}.toml"),
        format!(
            "name = \"{name}\"\n[input]\npath = \"{name}.csv\"\nid_column = \"id\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"Classify: {{{{ text }}}}\"\nmax_tokens = 20\n[output]\npath = \"{name}.parquet\"\n[reuse]\nstore = \"answers.sqlite\"\n"
        ),
    );
}

fn rows(prefix: &str, range: std::ops::RangeInclusive<usize>) -> Vec<(String, String)> {
    range
        .map(|n| {
            (
                format!("{prefix}{n:02}"),
                format!("{prefix}：第{n}条评论，质量不错，下次还买"),
            )
        })
        .collect()
}

fn start(
    workspace: &Workspace,
    simulator: &StandaloneSimulator,
    name: &str,
    extra: &[&str],
) -> std::process::Child {
    // `--json` and `--quiet` exclude each other.
    let mut arguments = if extra.contains(&"--json") {
        Vec::new()
    } else {
        vec!["--quiet"]
    };
    arguments.extend_from_slice(extra);
    let mut command = workspace.run_against(
        simulator,
        "dashscope",
        &format!("{name}.toml"),
        &workspace.path().join(format!("run-{name}")),
        &arguments,
    );
    command.env("DASHSCOPE_API_KEY", SECRET_KEY);
    spawn_piped(command)
}

/// custom_id → (answer_source, content).
type RowsById = BTreeMap<String, (Option<String>, Option<String>)>;

/// custom_id → (answer_source, content), and custom_id → times billed, for run `name`.
fn outcome(
    workspace: &Workspace,
    simulator: &StandaloneSimulator,
    name: &str,
) -> (RowsById, BTreeMap<String, u64>) {
    let batches = read_parquet(&workspace.path().join(format!("{name}.parquet")));
    let ids = string_column(&batches, "custom_id");
    let sources = string_column(&batches, "answer_source");
    let contents = string_column(&batches, "content");
    let statuses = string_column(&batches, "status");
    let mut rows = BTreeMap::new();
    for index in 0..ids.len() {
        assert_eq!(
            statuses[index].as_deref(),
            Some("ok"),
            "{name}: {:?}",
            ids[index]
        );
        rows.insert(
            ids[index].clone().unwrap(),
            (sources[index].clone(), contents[index].clone()),
        );
    }
    let report = read_report(&workspace.path().join(format!("run-{name}")));
    let billed = billed_custom_ids(simulator, report["run_id"].as_str().unwrap());
    let (violations, notes) = check_finished_run(
        simulator,
        &workspace.path().join(format!("run-{name}")),
        &workspace.path().join(format!("{name}.parquet")),
        &ids.into_iter().map(Option::unwrap).collect::<Vec<_>>(),
    );
    assert!(violations.is_clean(), "{name}: {violations:?}: {notes}");
    (rows, billed)
}

fn finished(child: std::process::Child) -> String {
    let output = wait_with_limit(child, Duration::from_secs(120));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    stderr
}

#[test]
fn a_run_waits_for_the_answers_a_running_run_has_in_flight_and_pays_only_for_the_rest() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = Workspace::new();
    let last_night = rows("a", 1..=20);
    write_job(&workspace, "last-night", &last_night);
    let mut tonight = last_night.clone();
    tonight.extend(rows("a", 21..=25));
    write_job(&workspace, "tonight", &tonight);

    freeze_clock(&simulator);
    let first = start(&workspace, &simulator, "last-night", &[]);
    wait_for_simulator_batches(&simulator, 1);
    let second = start(&workspace, &simulator, "tonight", &["--json"]);
    // Tonight's run sends only its five new requests while last night's batch is held.
    wait_for_simulator_batches(&simulator, 2);
    std::thread::sleep(Duration::from_millis(500));
    release_clock(&simulator);
    finished(first);
    let tonight_output = wait_with_limit(second, Duration::from_secs(120));
    assert_eq!(
        tonight_output.status.code(),
        Some(0),
        "{}",
        text(&tonight_output.stderr)
    );
    let events = text(&tonight_output.stdout);
    // Planned with twenty rows adopted (whether it then had to wait depends on which batch
    // the simulator finished first).
    assert!(events.contains("\"rows_adopted\":20"), "{events}");

    let (first_rows, first_billed) = outcome(&workspace, &simulator, "last-night");
    let (second_rows, second_billed) = outcome(&workspace, &simulator, "tonight");
    assert_eq!(first_billed.len(), 20);
    assert_eq!(
        second_billed.keys().cloned().collect::<Vec<_>>(),
        ["a21", "a22", "a23", "a24", "a25"]
    );
    for (id, _) in &last_night {
        assert_eq!(second_rows[id].0.as_deref(), Some("adopted"), "{id}");
        assert_eq!(second_rows[id].1, first_rows[id].1, "{id}");
    }
    let report = read_report(&workspace.path().join("run-tonight"));
    assert_eq!(report["reuse"]["rows_adopted"], 20, "{}", report["reuse"]);
    assert_eq!(report["reuse"]["requests_sent"], 5);
}

#[test]
fn when_the_running_run_dies_the_waiting_run_sends_the_requests_itself_once() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = Workspace::new();
    let last_night = rows("b", 1..=12);
    write_job(&workspace, "last-night", &last_night);
    let mut tonight = last_night.clone();
    tonight.extend(rows("b", 13..=15));
    // Two of tonight's rows repeat one adopted request: sent once, if sent at all.
    tonight.push(("b16".into(), last_night[0].1.clone()));
    write_job(&workspace, "tonight", &tonight);

    freeze_clock(&simulator);
    let mut first = start(&workspace, &simulator, "last-night", &[]);
    wait_for_simulator_batches(&simulator, 1);
    let second = start(&workspace, &simulator, "tonight", &[]);
    wait_for_simulator_batches(&simulator, 2);
    std::thread::sleep(Duration::from_millis(500));
    // Last night's process dies with its batch live; tonight's run stops waiting for it.
    first.kill().unwrap();
    first.wait().unwrap();
    release_clock(&simulator);
    finished(second);
    let (second_rows, second_billed) = outcome(&workspace, &simulator, "tonight");
    assert_eq!(second_billed.len(), 15, "{second_billed:?}");
    assert!(second_billed.values().all(|count| *count == 1));
    for (id, _) in &last_night {
        assert_eq!(second_rows[id].0.as_deref(), Some("batch"), "{id}");
    }
    assert_eq!(second_rows["b16"].0.as_deref(), Some("dedup"));
    assert_eq!(second_rows["b16"].1, second_rows["b01"].1);
    // `status` says what became of the adopted requests.
    let status = workspace.run(&[
        "status",
        workspace.path().join("run-tonight").to_str().unwrap(),
        "--json",
    ]);
    assert_success(&status);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        status["adopted_requests"],
        serde_json::json!({"waiting": 0, "answered": 0, "sent": 12, "waiting_for": []})
    );

    // Last night's run, resumed, finishes on its own batch: nothing sent twice within it.
    let resumed = workspace
        .command(&[
            "resume",
            workspace.path().join("run-last-night").to_str().unwrap(),
            "--quiet",
        ])
        .env("DASHSCOPE_API_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    let (_, first_billed) = outcome(&workspace, &simulator, "last-night");
    assert_eq!(first_billed.len(), 12);
}

#[test]
fn with_no_adopt_a_run_sends_what_another_run_has_in_flight() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = Workspace::new();
    let last_night = rows("c", 1..=6);
    write_job(&workspace, "last-night", &last_night);
    write_job(&workspace, "tonight", &last_night);
    freeze_clock(&simulator);
    let first = start(&workspace, &simulator, "last-night", &[]);
    wait_for_simulator_batches(&simulator, 1);
    let second = start(&workspace, &simulator, "tonight", &["--no-adopt"]);
    wait_for_simulator_batches(&simulator, 2);
    release_clock(&simulator);
    finished(first);
    finished(second);
    let (second_rows, second_billed) = outcome(&workspace, &simulator, "tonight");
    assert_eq!(second_billed.len(), 6);
    assert!(
        second_rows
            .values()
            .all(|(source, _)| source.as_deref() == Some("batch"))
    );
}

#[test]
fn a_run_never_waits_for_itself_nor_for_a_run_whose_directory_is_gone() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = Workspace::new();
    let night = rows("d", 1..=5);
    write_job(&workspace, "night", &night);
    // Last night's process killed with its batch live, and its directory deleted.
    freeze_clock(&simulator);
    let mut first = start(&workspace, &simulator, "night", &[]);
    wait_for_simulator_batches(&simulator, 1);
    first.kill().unwrap();
    first.wait().unwrap();
    std::fs::remove_dir_all(workspace.path().join("run-night")).unwrap();
    release_clock(&simulator);
    // The same job in the same directory again: it sends its rows, it does not wait.
    finished(start(&workspace, &simulator, "night", &[]));
    let (rows_by_id, billed) = outcome(&workspace, &simulator, "night");
    assert_eq!(billed.len(), 5);
    assert!(
        rows_by_id
            .values()
            .all(|(source, _)| source.as_deref() == Some("batch"))
    );

    // A run refused by its budget before anything was sent announced nothing: run again with
    // a cap that fits, in the same directory, it finishes.
    let again = rows("e", 1..=4);
    write_job(&workspace, "capped", &again);
    let refused = workspace
        .run_against(
            &simulator,
            "dashscope",
            "capped.toml",
            &workspace.path().join("run-capped"),
            &["--quiet", "--max-cost", "0.0000001"],
        )
        .env("DASHSCOPE_API_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    finished(start(
        &workspace,
        &simulator,
        "capped",
        &["--max-cost", "1"],
    ));
    let (_, billed) = outcome(&workspace, &simulator, "capped");
    assert_eq!(billed.len(), 4);
}
