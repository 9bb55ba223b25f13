//! Trust under real use, through the real binary: one live process per run directory (several
//! processes started together bill every row once), signals at any moment, exit codes that mean
//! what they say, outputs that never land in the wrong place or format, and result lines of
//! other shapes decoded or failed explicitly.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::harness::*;
use super::invariants::*;

fn uploads(simulator: &StandaloneSimulator) -> u64 {
    simulator.ledger()["uploads"].as_u64().unwrap()
}

/// How many batches the simulator has created.
fn simulator_batches(simulator: &StandaloneSimulator) -> usize {
    simulator.ledger()["batches"].as_array().unwrap().len()
}

/// A killed run's simulator and workspace, its run directory, and the copy made of it.
type KilledRunAndCopy = (
    StandaloneSimulator,
    Workspace,
    std::path::PathBuf,
    std::path::PathBuf,
);

/// A review run killed at `point` in its default run directory, and a copy of that directory
/// made then at `copy_name` in the workspace: (simulator, workspace, run, copy).
fn killed_run_copied_to(point: &str, copy_name: &str) -> KilledRunAndCopy {
    killed_run_of_reviews_copied_to(12, 6, point, copy_name)
}

/// As [`killed_run_copied_to`], for a review job of `rows` rows, `per_shard` a shard.
fn killed_run_of_reviews_copied_to(
    rows: usize,
    per_shard: usize,
    point: &str,
    copy_name: &str,
) -> KilledRunAndCopy {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = review_workspace(rows, per_shard, "");
    kill_review_run_at(&workspace, &simulator, point, &["--quiet"]);
    let run = workspace.single_run_directory();
    let copy = workspace.path().join(copy_name);
    copy_tree(&run, &copy);
    (simulator, workspace, run, copy)
}

/// Asserts that the review job's `out.parquet` has its 12 rows `ok` with `answers`.
fn assert_output_answers(workspace: &Workspace, answers: &[Option<String>]) {
    let output = read_parquet(&workspace.path().join("out.parquet"));
    assert_eq!(
        string_column(&output, "status"),
        vec![Some("ok".to_owned()); 12]
    );
    assert_eq!(string_column(&output, "content"), answers);
}

/// How many of the `--json` lines in `events` are of type `kind`.
fn events_of_type(events: &str, kind: &str) -> usize {
    events.matches(&format!(r#""type":"{kind}""#)).count()
}

/// Runs the review job in its default run directory again with `--json`; its events, once it
/// exited 0.
fn run_again_with_json_events(workspace: &Workspace, simulator: &StandaloneSimulator) -> String {
    let again = review_run_in_default_directory(workspace, simulator, &["--json"])
        .output()
        .unwrap();
    let events = text(&again.stdout);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}\n{events}",
        text(&again.stderr)
    );
    events
}

fn assert_busy(output: &Output, run_directory: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("in use by another dashbatch process") && stderr.contains(run_directory),
        "{stderr}"
    );
    assert!(stderr.contains("pid "), "the holder is named: {stderr}");
}

#[test]
fn processes_started_together_on_one_run_directory_bill_every_row_once() {
    let rows = 60;
    let simulator = StandaloneSimulator::start(&[]);
    freeze_clock(&simulator);
    let workspace = review_workspace(rows, 20, "");
    let run_directory = workspace.path().join("run");
    // Two runs started at the same moment: exactly one may work on the run.
    let first = spawn_piped(review_run_command(&workspace, &simulator, &run_directory));
    let second = spawn_piped(review_run_command(&workspace, &simulator, &run_directory));
    wait_for_simulator_batches(&simulator, 1);
    // A resume in a second terminal and a third run while the first is live: refused at once.
    let resume = wait_with_limit(
        spawn_piped(resume_command(&workspace, &run_directory)),
        Duration::from_secs(30),
    );
    assert_busy(&resume, "run");
    let third = wait_with_limit(
        spawn_piped(review_run_command(&workspace, &simulator, &run_directory)),
        Duration::from_secs(30),
    );
    assert_busy(&third, "run");
    // An orchestrator's retry with --wait waits for the first, then finishes the same run.
    let mut waiting = review_run_command(&workspace, &simulator, &run_directory);
    waiting.arg("--wait");
    let waiting = spawn_piped(waiting);
    std::thread::sleep(Duration::from_millis(500));
    release_clock(&simulator);
    let outputs: Vec<Output> = [first, second, waiting]
        .into_iter()
        .map(|child| wait_with_limit(child, Duration::from_secs(120)))
        .collect();
    let codes: Vec<Option<i32>> = outputs.iter().map(|output| output.status.code()).collect();
    assert_eq!(
        codes.iter().filter(|code| **code == Some(2)).count(),
        1,
        "exactly one of the two simultaneous runs is refused: {codes:?}\n{}",
        outputs
            .iter()
            .map(|output| text(&output.stderr))
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    assert_eq!(codes[2], Some(0), "{}", text(&outputs[2].stderr));
    assert_finished_cleanly(&simulator, &workspace, &run_directory, rows);
    let billed = simulator.ledger()["billed_requests"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(billed, rows, "every row billed exactly once");
}

/// A run of 12 rows in two shards (in `run/`), started against a simulator whose clock is
/// frozen, once both its batches exist: it waits on them until the clock is released.
fn run_waiting_on_two_frozen_batches() -> (
    StandaloneSimulator,
    Workspace,
    std::path::PathBuf,
    std::process::Child,
) {
    let simulator = StandaloneSimulator::start(&[]);
    freeze_clock(&simulator);
    let workspace = review_workspace(12, 6, "");
    let run_directory = workspace.path().join("run");
    let run = spawn_piped(review_run_command(&workspace, &simulator, &run_directory));
    wait_for_simulator_batches(&simulator, 2);
    (simulator, workspace, run_directory, run)
}

#[test]
fn an_input_replaced_during_a_run_with_its_size_and_time_kept_is_not_joined() {
    // `cp -p` or `rsync -t` of another file of the same size while the run waits for its
    // batches: the size and modification time the run saw at planning pass, the bytes do not.
    let (simulator, workspace, run_directory, run) = run_waiting_on_two_frozen_batches();
    let input = workspace.path().join("reviews.csv");
    let planned = std::fs::read_to_string(&input).unwrap();
    let modified = std::fs::metadata(&input).unwrap().modified().unwrap();
    // Two rows' ids swapped: same size, and every row would take the other's answer.
    let swapped = planned
        .replacen("\nzh-0001,", "\nzh-000X,", 1)
        .replacen("\nzh-0002,", "\nzh-0001,", 1)
        .replacen("\nzh-000X,", "\nzh-0002,", 1);
    assert_ne!(swapped, planned);
    assert_eq!(swapped.len(), planned.len());
    std::fs::write(&input, &swapped).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&input)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    release_clock(&simulator);
    let run = wait_with_limit(run, Duration::from_secs(120));
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("changed since run"), "{stderr}");
    assert!(!workspace.path().join("out.parquet").exists());
    // The planned input put back, the paid answers are joined to their own rows.
    std::fs::write(&input, &planned).unwrap();
    let resumed = resume_command(&workspace, &run_directory).output().unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    assert_finished_cleanly(&simulator, &workspace, &run_directory, 12);
}

#[test]
fn a_process_refused_the_lock_never_writes_the_ledger_being_founded() {
    // The moment a founder has created `ledger.sqlite` and not yet its tables: a process refused
    // the lock (or only reading) that opened it to write would race the founder's own schema,
    // and the founder could fail and discard the run (seen once in CI as two refused runs).
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = review_workspace(6, 6, "");
    let run_directory = workspace.path().join("run");
    std::fs::create_dir(&run_directory).unwrap();
    let ledger = run_directory.join("ledger.sqlite");
    std::fs::write(&ledger, b"").unwrap();
    let lock = std::fs::File::create(run_directory.join("dashbatch.lock")).unwrap();
    lock.try_lock().unwrap();
    std::io::Write::write_all(
        &mut &lock,
        format!("pid {} on host `test`\n", std::process::id()).as_bytes(),
    )
    .unwrap();
    let run = review_run_with(&workspace, &simulator, &run_directory, &[]);
    assert_busy(&run, "run");
    let resume = resume_command(&workspace, &run_directory).output().unwrap();
    assert_busy(&resume, "run");
    let cancel = workspace
        .command(&["cancel", run_directory.to_str().unwrap()])
        .env("DASHSCOPE_API_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert_busy(&cancel, "run");
    let _status = workspace
        .command(&["status", run_directory.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        std::fs::metadata(&ledger).unwrap().len(),
        0,
        "only the lock's holder writes the ledger"
    );
    assert_eq!(uploads(&simulator), 0);
    // The holder goes; a run founds its ledger whole under another name, then renames it.
    drop(lock);
    std::fs::remove_file(&ledger).unwrap();
    let run = review_run_with(&workspace, &simulator, &run_directory, &[]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert!(!run_directory.join("ledger.sqlite.founding").exists());
    assert_finished_cleanly(&simulator, &workspace, &run_directory, 6);
}

#[test]
fn status_names_an_older_ledger_and_a_resume_brings_it_up_to_date_without_a_call() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = review_workspace(6, 6, "");
    let run_directory = workspace.path().join("run");
    let run = review_run_with(&workspace, &simulator, &run_directory, &[]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    // What an older dashbatch left: a table this one reads is missing.
    rusqlite::Connection::open(run_directory.join("ledger.sqlite"))
        .unwrap()
        .execute_batch("DROP TABLE adoptions")
        .unwrap();
    let status = || {
        workspace
            .command(&["status", run_directory.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let refused = status();
    let stderr = text(&refused.stderr);
    assert_ne!(refused.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("older dashbatch") && stderr.contains("dashbatch resume"),
        "{stderr}"
    );
    let calls_before = simulator.calls();
    let resumed = resume_command(&workspace, &run_directory).output().unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    assert_eq!(
        simulator.calls(),
        calls_before,
        "a finished run makes no call"
    );
    let read = status();
    assert_eq!(read.status.code(), Some(0), "{}", text(&read.stderr));
}

#[test]
fn two_runs_of_one_job_without_run_dir_become_one_run() {
    let rows = 40;
    let simulator = StandaloneSimulator::start(&[]);
    freeze_clock(&simulator);
    let workspace = review_workspace(rows, 20, "");
    let command = || review_run_in_default_directory(&workspace, &simulator, &["--quiet"]);
    let first = spawn_piped(command());
    let second = spawn_piped(command());
    wait_for_simulator_batches(&simulator, 1);
    let mut waiting = command();
    waiting.arg("--wait");
    let waiting = spawn_piped(waiting);
    std::thread::sleep(Duration::from_millis(500));
    release_clock(&simulator);
    let outputs: Vec<Output> = [first, second, waiting]
        .into_iter()
        .map(|child| wait_with_limit(child, Duration::from_secs(120)))
        .collect();
    let codes: Vec<Option<i32>> = outputs.iter().map(|output| output.status.code()).collect();
    assert!(
        codes[..2].contains(&Some(0)) && codes[..2].contains(&Some(2)),
        "{codes:?}"
    );
    // The refused one never said it was waiting: it was not asked to.
    for output in &outputs[..2] {
        assert!(
            !text(&output.stderr).contains("waiting"),
            "{}",
            text(&output.stderr)
        );
    }
    assert_eq!(codes[2], Some(0), "{}", text(&outputs[2].stderr));
    let run_directory = workspace.single_run_directory();
    assert_finished_cleanly(&simulator, &workspace, &run_directory, rows);
    assert_eq!(
        simulator.ledger()["billed_requests"]
            .as_array()
            .unwrap()
            .len(),
        rows
    );
}

/// A job over `rows` generated rows: long enough to plan that a signal lands while planning.
fn large_workspace(rows: usize) -> Workspace {
    large_workspace_in(rows, InputKind::Csv)
}

/// The format of a large workspace's input `big.csv` or `big.jsonl`: a CSV file is hashed as
/// planning reads it, a JSON Lines file in a pass of its own first.
#[derive(Clone, Copy)]
enum InputKind {
    Csv,
    JsonLines,
}

fn large_workspace_in(rows: usize, kind: InputKind) -> Workspace {
    let workspace = Workspace::new();
    let text = |row: usize| format!("这是第{row}条评论，质量不错，物流很快");
    let file_name = match kind {
        InputKind::Csv => {
            let mut csv = String::from("id,text\n");
            for row in 0..rows {
                csv.push_str(&format!("r{row},{}\n", text(row)));
            }
            workspace.write("big.csv", csv);
            "big.csv"
        }
        InputKind::JsonLines => {
            let mut lines = String::new();
            for row in 0..rows {
                lines.push_str(&format!(
                    "{{\"id\":\"r{row}\",\"text\":\"{}\"}}\n",
                    text(row)
                ));
            }
            workspace.write("big.jsonl", lines);
            "big.jsonl"
        }
    };
    workspace.write(
        "big.toml",
        format!("name = \"big\"\n[input]\npath = \"{file_name}\"\nid_column = \"id\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"Topic of: {{{{ text }}}}\"\nmax_tokens = 10\n[output]\npath = \"out.parquet\"\n"),
    );
    workspace
}

/// Starts `command` (a `run` or `resume` with `--json`), sends it `signal` as soon as it says the
/// run started, and waits for it; what it printed on stdout after that first event.
fn signalled_once_started(command: std::process::Command, signal: i32) -> (Output, String) {
    let mut child = spawn_piped(command);
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert!(line.contains("run_started"), "{line}");
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    (wait_with_limit(child, Duration::from_secs(60)), rest)
}

fn signal_while_planning(signal: i32, expected_code: i32) {
    signal_while_planning_in(signal, expected_code, InputKind::Csv, true);
}

/// Signals a run of a large input as soon as it started; with `finish_after`, the same run is
/// then finished (over a minute in a debug build).
fn signal_while_planning_in(signal: i32, expected_code: i32, kind: InputKind, finish_after: bool) {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = large_workspace_in(300_000, kind);
    let run_directory = workspace.path().join("run");
    let mut command = workspace.run_against(
        &simulator,
        "dashscope",
        "big.toml",
        &run_directory,
        &["--json"],
    );
    command.env("DASHSCOPE_API_KEY", SECRET_KEY);
    let (output, rest) = signalled_once_started(command, signal);
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(expected_code),
        "{:?}\n{stderr}",
        output.status.signal()
    );
    assert!(!rest.contains("\"planned\""), "planning went on: {rest}");
    // What it says matches what it left: a removed directory is not offered for resuming.
    if run_directory.exists() {
        assert!(
            stderr.contains("Continue with `dashbatch resume"),
            "{stderr}"
        );
    } else {
        assert!(
            stderr.contains("nothing was uploaded, and the run directory"),
            "{stderr}"
        );
    }
    assert!(
        rest.trim_end()
            .lines()
            .last()
            .is_some_and(|last| last.contains("run_interrupted")),
        "{rest}"
    );
    assert_eq!(
        uploads(&simulator),
        0,
        "nothing may be uploaded after a signal"
    );
    // A removed directory leaves nothing to check; a kept one is consistent: the same run
    // finishes normally afterwards (300,000 rows: over a minute in a debug build, so only then).
    if !run_directory.exists() || !finish_after {
        return;
    }
    let output = workspace
        .run_against(
            &simulator,
            "dashscope",
            "big.toml",
            &run_directory,
            &["--quiet"],
        )
        .env("DASHSCOPE_API_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert_success(&output);
}

#[test]
fn sigterm_while_planning_exits_143_before_anything_is_uploaded() {
    signal_while_planning(libc::SIGTERM, 143);
}

#[test]
fn ctrl_c_while_planning_exits_130_before_anything_is_uploaded() {
    signal_while_planning(libc::SIGINT, 130);
}

/// A JSON Lines input is hashed (and its columns' types found) in passes before planning: a
/// signal there stops the run as it does while planning.
#[test]
fn sigterm_while_a_json_lines_input_is_read_before_planning_exits_143_before_anything_is_uploaded()
{
    signal_while_planning_in(libc::SIGTERM, 143, InputKind::JsonLines, false);
}

/// Runs the review job with `extra` arguments against a fresh simulator; returns the output.
fn review_run_with(
    workspace: &Workspace,
    simulator: &StandaloneSimulator,
    run_directory: &Path,
    extra: &[&str],
) -> Output {
    let mut command = review_run_command(workspace, simulator, run_directory);
    command.args(extra);
    command.output().unwrap()
}

fn assert_refused_before_upload(output: &Output, simulator: &StandaloneSimulator, says: &[&str]) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for phrase in says {
        assert!(stderr.contains(phrase), "missing `{phrase}` in:\n{stderr}");
    }
    assert_eq!(uploads(simulator), 0, "nothing may be uploaded: {stderr}");
}

#[test]
fn outputs_that_would_be_wrong_are_refused_before_anything_is_uploaded() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = review_workspace(6, 6, "");
    let input_before = std::fs::read(workspace.path().join("reviews.csv")).unwrap();
    let run = |name: &str, extra: &[&str]| {
        review_run_with(&workspace, &simulator, &workspace.path().join(name), extra)
    };
    // The input itself.
    let output = run("run-a", &["--output", "reviews.csv"]);
    assert_refused_before_upload(&output, &simulator, &["is the job's input"]);
    assert_eq!(
        std::fs::read(workspace.path().join("reviews.csv")).unwrap(),
        input_before
    );
    // A refused run leaves no run directory that a later run would take for one to continue.
    assert!(!workspace.path().join("run-a").exists());
    // Formats dashbatch does not write, under names that promise them.
    for name in ["out.xls", "out.csv.gz"] {
        let output = run("run-b", &["--output", name]);
        assert_refused_before_upload(&output, &simulator, &["cannot write", name]);
        assert!(!workspace.path().join(name).exists());
    }
    // A directory that cannot be created (its parent is a file).
    workspace.write("not-a-directory", "x");
    let output = run("run-c", &["--output", "not-a-directory/out.parquet"]);
    assert_refused_before_upload(&output, &simulator, &["cannot be written"]);
    // An unrelated directory as --run-dir: its files are left alone.
    workspace.write("mine/output.parquet", "my own file");
    let output = run("mine", &[]);
    assert_refused_before_upload(
        &output,
        &simulator,
        &["not a dashbatch run directory", "output.parquet"],
    );
    assert_eq!(
        std::fs::read_to_string(workspace.path().join("mine/output.parquet")).unwrap(),
        "my own file"
    );
    // Inside the run directory's own files: a new run, and a finished run joined again, refuse
    // to write where the downloaded (paid) results are.
    let output = run(
        "run-d",
        &["--output", "run-d/results/shard-00000.output.jsonl"],
    );
    assert_refused_before_upload(
        &output,
        &simulator,
        &["inside the run directory's `results`"],
    );
    assert_success(&run("run-e", &[]));
    let results = workspace
        .path()
        .join("run-e/results/shard-00000.output.jsonl");
    let results_before = std::fs::read(&results).unwrap();
    for inside in [
        "run-e/results/shard-00000.output.jsonl",
        "run-e/shards/new/out.csv",
    ] {
        let output = workspace.run(&["resume", "run-e", "--output", inside, "--quiet"]);
        assert_ne!(output.status.code(), Some(0), "{inside}");
        assert!(
            text(&output.stderr).contains("where the run keeps its own files"),
            "{}",
            text(&output.stderr)
        );
    }
    assert_eq!(std::fs::read(&results).unwrap(), results_before);
}

#[test]
fn an_output_extension_that_disagrees_with_the_declared_format_is_refused() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = review_workspace(6, 6, "");
    let job = std::fs::read_to_string(workspace.path().join("reviews.toml")).unwrap();
    workspace.write(
        "reviews.toml",
        job.replace("path = \"out.parquet\"", "format = \"csv\""),
    );
    let output = review_run_with(
        &workspace,
        &simulator,
        &workspace.path().join("run"),
        &["--output", "x.parquet"],
    );
    assert_refused_before_upload(&output, &simulator, &["names a Parquet file", "`csv`"]);
    assert!(!workspace.path().join("x.parquet").exists());
}

#[test]
fn a_bad_base_url_is_a_usage_error_before_any_run_directory_exists() {
    let workspace = review_workspace(6, 6, "");
    let output = workspace
        .command(&[
            "run",
            "reviews.toml",
            "--provider",
            "dashscope",
            "--base-url",
            "not a url",
        ])
        .env("DASHSCOPE_API_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("is not a URL"));
    assert!(!workspace.path().join("runs").exists());
}

/// A run of 12 rows in two shards (in `run/`) killed while it polled its batches: a live run
/// left for `resume`.
fn run_killed_while_polling() -> (StandaloneSimulator, Workspace, std::path::PathBuf) {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = review_workspace(12, 6, "");
    let run_directory = workspace.path().join("run");
    let killed = review_run_command(&workspace, &simulator, &run_directory)
        .env("DASHBATCH_TEST_KILL_AT", "during_poll")
        .status()
        .unwrap();
    assert_eq!(killed.signal(), Some(libc::SIGKILL));
    (simulator, workspace, run_directory)
}

#[test]
fn a_failure_after_batches_were_created_never_exits_2() {
    let (_simulator, workspace, run_directory) = run_killed_while_polling();
    // The input changes under the live run: resuming must refuse, but money was spent.
    let input = std::fs::read_to_string(workspace.path().join("reviews.csv")).unwrap();
    workspace.write("reviews.csv", input.replace("zh-0001", "zh-9999"));
    let output = resume_command(&workspace, &run_directory).output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("changed since"), "{stderr}");
    assert!(stderr.contains("already created"), "{stderr}");
}

#[test]
fn an_input_that_cannot_be_read_under_a_live_run_is_said_unreadable_not_changed() {
    let (_simulator, workspace, run_directory) = run_killed_while_polling();
    // There but unreadable, even to root: a link to itself.
    let input = workspace.path().join("reviews.csv");
    let planned = std::fs::read(&input).unwrap();
    std::fs::remove_file(&input).unwrap();
    std::os::unix::fs::symlink(&input, &input).unwrap();
    let output = resume_command(&workspace, &run_directory).output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cannot read input"), "{stderr}");
    assert!(!stderr.contains("changed since"), "{stderr}");
    // Readable again, the run goes on to its end.
    std::fs::remove_file(&input).unwrap();
    std::fs::write(&input, planned).unwrap();
    let output = resume_command(&workspace, &run_directory).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
}

#[test]
fn a_definite_refusal_of_batch_creation_cleans_up_and_does_not_say_resume() {
    let simulator = StandaloneSimulator::start(&[]);
    simulator.put_json(
        "/_sim/faults",
        &json!({"routes": {"create_batch": [{"nth": 1, "kind": "status_400"}]}}),
    );
    let workspace = review_workspace(6, 6, "");
    let run_directory = workspace.path().join("run");
    let output = review_json_run_command(&workspace, &simulator, &run_directory)
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("refused shard 0"), "{stderr}");
    assert!(stderr.contains("resuming would be refused"), "{stderr}");
    assert!(
        !stderr.contains("continue it with `dashbatch resume"),
        "{stderr}"
    );
    let ledger = simulator.ledger();
    assert_eq!(ledger["batches"].as_array().unwrap().len(), 0);
    assert_eq!(ledger["uploads"], 1);
    assert_eq!(ledger["files_deleted"], 1, "the uploaded file is deleted");
    // --json always ends with a final event.
    let stdout = text(&output.stdout);
    let last: Value = serde_json::from_str(stdout.trim_end().lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "run_failed", "{stdout}");
    assert_eq!(last["exit_code"], 3);
}

#[test]
fn resuming_a_finished_run_needs_no_key_and_makes_no_call() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = review_workspace(6, 6, "");
    let run_directory = workspace.path().join("run");
    assert_success(&review_run_with(
        &workspace,
        &simulator,
        &run_directory,
        &[],
    ));
    let calls_before = simulator.get_json("/_sim/requests");
    let output = workspace
        .command(&["resume", run_directory.to_str().unwrap(), "--quiet"])
        .output()
        .unwrap();
    assert_success(&output);
    assert_eq!(simulator.get_json("/_sim/requests"), calls_before);
}

#[test]
fn result_bodies_sent_as_json_strings_are_decoded_and_priced() {
    let simulator = StandaloneSimulator::start(&[]);
    simulator.put_json(
        "/_sim/faults",
        &json!({"batches": [{"batches": "all", "behaviour": "body_as_json_string"}]}),
    );
    let workspace = review_workspace(6, 6, "");
    let run_directory = workspace.path().join("run");
    assert_success(&review_run_with(
        &workspace,
        &simulator,
        &run_directory,
        &[],
    ));
    assert_finished_cleanly(&simulator, &workspace, &run_directory, 6);
    let batches = read_parquet(&workspace.path().join("out.parquet"));
    assert!(
        string_column(&batches, "content")
            .iter()
            .all(|content| content.as_deref().is_some_and(|text| !text.is_empty()))
    );
}

#[test]
fn answers_without_usage_say_so_and_are_not_priced_as_free() {
    let simulator = StandaloneSimulator::start(&[]);
    simulator.put_json(
        "/_sim/faults",
        &json!({"batches": [{"batches": "all", "behaviour": "omit_usage"}]}),
    );
    let workspace = review_workspace(6, 6, "");
    let run_directory = workspace.path().join("run");
    let output = review_run_with(&workspace, &simulator, &run_directory, &[]);
    let batches = read_parquet(&workspace.path().join("out.parquet"));
    assert!(
        string_column(&batches, "error_code")
            .iter()
            .all(|code| code.as_deref() == Some("usage_missing")),
        "{}",
        text(&output.stderr)
    );
    use arrow_array::Array;
    let cost = batches[0].column_by_name("cost").expect("cost column");
    assert_eq!(
        cost.null_count(),
        cost.len(),
        "unknown cost is empty, not 0"
    );
}

#[test]
fn models_the_provider_cannot_serve_are_refused_by_validate() {
    let workspace = review_workspace(6, 6, "");
    let job = std::fs::read_to_string(workspace.path().join("reviews.toml")).unwrap();
    workspace.write(
        "typo.toml",
        job.replace("qwen-flash", "qwen-flsah")
            .replace("name = \"reviews\"", "name = \"typo\""),
    );
    let output = workspace.run(&["validate", "typo.toml", "--provider", "dashscope"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("did you mean `qwen-flash`"),
        "{}",
        text(&output.stderr)
    );
    workspace.write(
        "embed.toml",
        job.replace("max_tokens = 30", "endpoint = \"/v1/embeddings\"")
            .replace("name = \"reviews\"", "name = \"embed\""),
    );
    let output = workspace.run(&["validate", "embed.toml", "--provider", "dashscope"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("not an embeddings model"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn sigterm_while_batches_run_exits_143_and_resume_finishes_without_paying_twice() {
    let (simulator, workspace, run_directory, child) = run_waiting_on_two_frozen_batches();
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let output = wait_with_limit(child, Duration::from_secs(30));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains("SIGTERM") && stderr.contains("dashbatch resume"),
        "{stderr}"
    );
    assert_eq!(simulator.ledger()["batches"].as_array().unwrap().len(), 2);
    release_clock(&simulator);
    assert_success(&resume_command(&workspace, &run_directory).output().unwrap());
    assert_finished_cleanly(&simulator, &workspace, &run_directory, 12);
}

#[test]
fn a_definite_refusal_of_an_upload_says_what_to_change_and_spends_nothing() {
    let simulator = StandaloneSimulator::start(&[]);
    simulator.put_json(
        "/_sim/faults",
        &json!({"routes": {"upload": [{"nth": 1, "kind": "status_400"}]}}),
    );
    let workspace = review_workspace(6, 6, "");
    let output = review_run_with(&workspace, &simulator, &workspace.path().join("run"), &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("refused shard 0") && stderr.contains("Nothing was uploaded"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("continue it with `dashbatch resume"),
        "{stderr}"
    );
    assert_eq!(uploads(&simulator), 0);
    assert!(simulator.ledger()["batches"].as_array().unwrap().is_empty());
}

#[test]
fn a_live_run_whose_ledger_was_damaged_is_taken_up_and_refused_not_sent_again() {
    for (case, damage, said) in [
        (
            "digest lost",
            "DELETE FROM run_facts WHERE key = 'input_digest'",
            "no digest of the input",
        ),
        (
            "rows unreadable",
            "UPDATE run_facts SET value = 'many' WHERE key = 'planned_rows'",
            "`planned_rows` is `many`",
        ),
        // Planning again would clear the sent shards and send every row a second time.
        (
            "rows lost",
            "DELETE FROM run_facts WHERE key = 'planned_rows'",
            "no `planned_rows`, but shards of its plan were uploaded or sent",
        ),
    ] {
        let simulator = StandaloneSimulator::start(&[]);
        let workspace = review_workspace(12, 6, "");
        let run = || review_run_in_default_directory(&workspace, &simulator, &["--quiet"]);
        let killed = run()
            .env("DASHBATCH_TEST_KILL_AT", "during_poll")
            .status()
            .unwrap();
        assert_eq!(killed.signal(), Some(libc::SIGKILL), "{case}");
        // Run directories only: `runs/` also holds the job's lock file.
        let run_directories = || -> Vec<std::path::PathBuf> {
            std::fs::read_dir(workspace.path().join("runs"))
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .filter(|path| path.is_dir())
                .collect()
        };
        let runs = run_directories();
        assert_eq!(runs.len(), 1, "{case}");
        rusqlite::Connection::open(runs[0].join("ledger.sqlite"))
            .unwrap()
            .execute_batch(damage)
            .unwrap();
        let uploaded = uploads(&simulator);
        // The nightly job runs again: it finds its own run, and stops at the damage.
        let again = run().output().unwrap();
        let stderr = text(&again.stderr);
        assert_eq!(again.status.code(), Some(3), "{case}: {stderr}");
        assert_mentions(&stderr, &["ledger.sqlite", said]);
        assert_eq!(uploads(&simulator), uploaded, "{case}: rows sent again");
        assert_eq!(run_directories(), runs, "{case}: a second run was founded");
        // `status` shows a run whose plan lost its digest (it reads no plan), and names a
        // record it cannot read.
        let status = workspace
            .command(&["status", runs[0].to_str().unwrap()])
            .output()
            .unwrap();
        if case != "rows unreadable" {
            assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
        } else {
            assert_mentions(&text(&status.stderr), &["ledger.sqlite", said]);
        }
    }
}

/// Every way back into the run in `run_directory` (`run` finding it, `run --run-dir`,
/// `resume`, `status`) refuses it with `said`, sends nothing and founds no run beside it.
fn assert_every_command_refuses_the_damaged_run(
    workspace: &Workspace,
    simulator: &StandaloneSimulator,
    run_directory: &Path,
    case: &str,
    said: &str,
) {
    let uploaded = uploads(simulator);
    let run_directories = || -> Vec<std::path::PathBuf> {
        let mut found: Vec<_> = std::fs::read_dir(workspace.path().join("runs"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_dir())
            .collect();
        found.sort();
        found
    };
    let runs = run_directories();
    let directory = run_directory.to_str().unwrap();
    let attempts = [
        (
            "run",
            review_run_in_default_directory(workspace, simulator, &["--quiet"]),
        ),
        (
            "run --run-dir",
            review_run_in_default_directory(
                workspace,
                simulator,
                &["--quiet", "--run-dir", directory],
            ),
        ),
        ("resume", {
            let mut command = workspace.command(&["resume", directory, "--quiet"]);
            command.env("DASHSCOPE_API_KEY", SECRET_KEY);
            command
        }),
        ("status", workspace.command(&["status", directory])),
        ("cancel", {
            let mut command = workspace.command(&["cancel", directory]);
            command.env("DASHSCOPE_API_KEY", SECRET_KEY);
            command
        }),
    ];
    for (name, mut command) in attempts {
        let output = command.output().unwrap();
        let stderr = text(&output.stderr);
        // Exit 3, never 2: the run may have spent.
        assert_eq!(output.status.code(), Some(3), "{case}, {name}: {stderr}");
        let name = run_directory.file_name().unwrap().to_str().unwrap();
        assert_mentions(&stderr, &[name, said, "--run-dir NEW_DIRECTORY"]);
        assert!(
            !stderr.contains("older dashbatch"),
            "{case}, {name}: {stderr}"
        );
        assert_eq!(
            uploads(simulator),
            uploaded,
            "{case}, {name}: rows sent again"
        );
        assert_eq!(
            run_directories(),
            runs,
            "{case}, {name}: a second run was founded"
        );
    }
}

#[test]
fn a_run_whose_ledger_was_lost_emptied_or_unfounded_is_refused_by_every_command_not_sent_again() {
    /// What is done to the run directory.
    type Damage = fn(&Path);
    // (case, damage, what the refusal says)
    let damages: [(&str, Damage, &str); 4] = [
        (
            "founding lost",
            |run| {
                rusqlite::Connection::open(run.join("ledger.sqlite"))
                    .unwrap()
                    .execute_batch("DELETE FROM run_facts WHERE key = 'job_sha256'")
                    .unwrap();
            },
            "has no founding record (`job_sha256`), but the run left a plan",
        ),
        (
            "ledger deleted",
            |run| remove_ledger_files(run),
            "it has no `ledger.sqlite`, but holds 1 shard file",
        ),
        (
            "ledger emptied",
            |run| {
                remove_ledger_files(run);
                std::fs::write(run.join("ledger.sqlite"), b"").unwrap();
            },
            "`ledger.sqlite` cannot be read",
        ),
        (
            "ledger overwritten",
            |run| {
                remove_ledger_files(run);
                std::fs::write(run.join("ledger.sqlite"), "not a ledger\n".repeat(512)).unwrap();
            },
            "`ledger.sqlite` cannot be",
        ),
    ];
    for (case, damage, said) in damages {
        let simulator = StandaloneSimulator::start(&[]);
        let workspace = review_workspace(12, 12, "");
        kill_review_run_at(&workspace, &simulator, "during_poll", &["--quiet"]);
        let run = workspace.single_run_directory();
        damage(&run);
        assert_every_command_refuses_the_damaged_run(&workspace, &simulator, &run, case, said);
    }
}

/// Runs the review job in the default run directory (with `extra_arguments`) to its end, every
/// row answered.
fn finish_review_run(
    workspace: &Workspace,
    simulator: &StandaloneSimulator,
    extra_arguments: &[&str],
) {
    let finished = review_run_in_default_directory(workspace, simulator, extra_arguments)
        .output()
        .unwrap();
    assert_eq!(
        finished.status.code(),
        Some(0),
        "{}",
        text(&finished.stderr)
    );
}

/// A simulator and a workspace of 12 reviews in shards of 6, whose run in the default run
/// directory (with `extra_arguments`) killed itself at the crash point `point`.
fn review_run_killed_at(point: &str, extra_arguments: &[&str]) -> (StandaloneSimulator, Workspace) {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = review_workspace(12, 6, "");
    kill_review_run_at(&workspace, &simulator, point, extra_arguments);
    (simulator, workspace)
}

/// Runs the review job in the default run directory (with `extra_arguments`) until it kills
/// itself at the crash point `point`.
fn kill_review_run_at(
    workspace: &Workspace,
    simulator: &StandaloneSimulator,
    point: &str,
    extra_arguments: &[&str],
) {
    let killed = review_run_in_default_directory(workspace, simulator, extra_arguments)
        .env("DASHBATCH_TEST_KILL_AT", point)
        .status()
        .unwrap();
    assert_eq!(killed.signal(), Some(libc::SIGKILL), "{point}");
}

/// The files of a run's ledger: the ledger and the journal files SQLite keeps beside it.
const LEDGER_FILE_SUFFIXES: [&str; 3] = ["", "-wal", "-shm"];

/// Removes a run's ledger with its journal files.
fn remove_ledger_files(run: &Path) {
    for suffix in LEDGER_FILE_SUFFIXES {
        let _ = std::fs::remove_file(run.join(format!("ledger.sqlite{suffix}")));
    }
}

/// A run's ledger files as they are now (what a backup copies), by suffix.
fn copy_of_ledger(run: &Path) -> Vec<(&'static str, Vec<u8>)> {
    LEDGER_FILE_SUFFIXES
        .into_iter()
        .filter_map(|suffix| {
            std::fs::read(run.join(format!("ledger.sqlite{suffix}")))
                .ok()
                .map(|bytes| (suffix, bytes))
        })
        .collect()
}

/// Puts `copy` in place of a run's ledger files.
fn put_ledger_copy(run: &Path, copy: &[(&str, Vec<u8>)]) {
    remove_ledger_files(run);
    for (suffix, bytes) in copy {
        std::fs::write(run.join(format!("ledger.sqlite{suffix}")), bytes).unwrap();
    }
}

#[test]
fn a_finished_run_whose_ledger_was_lost_keeps_its_paid_results_and_output() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = review_workspace(12, 6, "");
    finish_review_run(&workspace, &simulator, &["--quiet"]);
    let run = workspace.single_run_directory();
    // Each file with a hash of its bytes; the lock file (rewritten by each holder) and the
    // ledger (removed) aside.
    let files_of = |directory: &Path| -> Vec<(std::path::PathBuf, u64)> {
        use std::hash::{Hash, Hasher};
        let mut files: Vec<_> = std::fs::read_dir(directory)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| {
                let name = path.file_name().unwrap().to_string_lossy();
                path.is_file() && !name.starts_with("ledger.sqlite") && name != "dashbatch.lock"
            })
            .map(|path| {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                std::fs::read(&path).unwrap().hash(&mut hasher);
                (path, hasher.finish())
            })
            .collect();
        files.sort();
        files
    };
    let results = files_of(&run.join("results"));
    assert!(!results.is_empty());
    let kept_files = || [files_of(&run), files_of(workspace.path())].concat();
    let before = kept_files();
    assert!(
        before.iter().any(|(path, _)| path.ends_with("out.parquet")),
        "{before:?}"
    );
    remove_ledger_files(&run);
    assert_every_command_refuses_the_damaged_run(
        &workspace,
        &simulator,
        &run,
        "finished",
        "downloaded result files in `results/`",
    );
    assert_eq!(
        files_of(&run.join("results")),
        results,
        "paid results overwritten"
    );
    assert_eq!(kept_files(), before, "the run's output or report changed");
}

#[test]
fn an_older_copy_of_the_ledger_put_back_after_the_run_went_on_is_refused_not_sent_again() {
    let (simulator, workspace) = review_run_killed_at("after_upload_before_record", &["--quiet"]);
    let run = workspace.single_run_directory();
    // The copy a backup took then, with the ledger's write-ahead log.
    let copy = copy_of_ledger(&run);
    finish_review_run(&workspace, &simulator, &["--quiet"]);
    put_ledger_copy(&run, &copy);
    let batches = || simulator_batches(&simulator);
    let made = batches();
    assert_every_command_refuses_the_damaged_run(
        &workspace,
        &simulator,
        &run,
        "older copy",
        "was downloaded from a batch that its `ledger.sqlite` does not record",
    );
    assert_eq!(batches(), made, "batches created a second time");
}

#[test]
fn an_older_copy_of_the_ledger_that_lacks_the_batches_adopts_them_from_the_provider_not_pays_twice()
{
    let (simulator, workspace) = review_run_killed_at("after_upload_before_record", &["--quiet"]);
    let run = workspace.single_run_directory();
    // The copy a backup took before any batch was created.
    let copy = copy_of_ledger(&run);
    // The run goes on, creates both batches and is stopped while they run.
    kill_review_run_at(&workspace, &simulator, "during_poll", &["--quiet"]);
    let batches = || simulator_batches(&simulator);
    let (made, uploaded) = (batches(), uploads(&simulator));
    assert_eq!(made, 2);
    put_ledger_copy(&run, &copy);
    let events = run_again_with_json_events(&workspace, &simulator);
    // Before, each shard's batch was created again and its rows billed twice.
    assert_eq!(batches(), made, "batches created a second time");
    assert_eq!(uploads(&simulator), uploaded, "shards uploaded again");
    assert_eq!(events.matches("\"batch_adopted\"").count(), 2, "{events}");
    let output = read_parquet(&workspace.path().join("out.parquet"));
    let statuses = string_column(&output, "status");
    assert_eq!(statuses.len(), 12);
    assert!(
        statuses
            .iter()
            .all(|status| status.as_deref() == Some("ok"))
    );
}

#[test]
fn cancel_stops_the_batches_of_the_run_that_an_older_copy_of_its_ledger_does_not_record() {
    let simulator = StandaloneSimulator::start(&[]);
    freeze_clock(&simulator);
    let workspace = review_workspace(12, 6, "");
    kill_review_run_at(
        &workspace,
        &simulator,
        "after_upload_before_record",
        &["--quiet"],
    );
    let run = workspace.single_run_directory();
    let copy = copy_of_ledger(&run);
    kill_review_run_at(&workspace, &simulator, "during_poll", &["--quiet"]);
    put_ledger_copy(&run, &copy);
    let mut command = workspace.command(&["cancel", run.to_str().unwrap()]);
    command.env("DASHSCOPE_API_KEY", SECRET_KEY);
    let cancelled = command.output().unwrap();
    let stderr = text(&cancelled.stderr);
    assert_eq!(cancelled.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr.matches("not in the run's ledger").count(),
        2,
        "{stderr}"
    );
    assert_eq!(simulator.calls()["cancel_batch"], 2);
    let statuses: Vec<String> = simulator.ledger()["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|batch| batch["status"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        statuses
            .iter()
            .all(|status| status == "cancelling" || status == "cancelled"),
        "{statuses:?}"
    );
}

/// Found by a hostile pass: a copy of a run directory resumed while the original's process
/// still submitted created 11 of 20 shards a second time (the copy's lock file is another file).
#[test]
fn a_copy_of_a_live_run_directory_waits_for_the_original_process_and_pays_nothing_twice() {
    let simulator = StandaloneSimulator::start(&[]);
    freeze_clock(&simulator);
    let workspace = review_workspace(12, 6, "");
    let run_directory = workspace.path().join("run");
    let original = spawn_piped(review_run_command(&workspace, &simulator, &run_directory));
    wait_for_simulator_batches(&simulator, 2);
    let copy = workspace.path().join("copy");
    copy_tree(&run_directory, &copy);
    let refused = wait_with_limit(
        spawn_piped(resume_command(&workspace, &copy)),
        Duration::from_secs(30),
    );
    assert_busy(&refused, "copy");
    // A snapshot put back in the original's place while it runs is refused the same way.
    let snapshot = workspace.path().join("snapshot");
    copy_tree(&run_directory, &snapshot);
    std::fs::remove_dir_all(&run_directory).unwrap();
    std::fs::rename(&snapshot, &run_directory).unwrap();
    let refused = wait_with_limit(
        spawn_piped(resume_command(&workspace, &run_directory)),
        Duration::from_secs(30),
    );
    assert_busy(&refused, "run");
    let batches = || simulator_batches(&simulator);
    assert_eq!(batches(), 2);
    // Once the original process is gone, the copy goes on with the original's batches.
    let mut original = original;
    original.kill().unwrap();
    let _ = original.wait();
    release_clock(&simulator);
    let finished = resume_command(&workspace, &copy).output().unwrap();
    assert_eq!(
        finished.status.code(),
        Some(0),
        "{}",
        text(&finished.stderr)
    );
    assert_eq!(batches(), 2, "batches created a second time");
}

#[test]
fn a_shard_the_provider_holds_twice_is_warned_of_not_created_again_nor_refused() {
    let (simulator, workspace) = review_run_killed_at("during_poll", &["--quiet"]);
    // A second batch of shard 0, as a create whose answer was lost leaves when the provider's
    // list does not show it in time: same input file and metadata.
    let listed = http_json("GET", &format!("{}/batches", simulator.base_url), None);
    let first = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|batch| batch["metadata"]["dashbatch_shard"] == "0")
        .unwrap()
        .clone();
    let second = http_json(
        "POST",
        &format!("{}/batches", simulator.base_url),
        Some(&json!({
            "input_file_id": first["input_file_id"],
            "endpoint": first["endpoint"],
            "completion_window": first["completion_window"],
            "metadata": first["metadata"],
        })),
    );
    let made = simulator_batches(&simulator);
    let events = run_again_with_json_events(&workspace, &simulator);
    let warning = events
        .lines()
        .find(|line| line.contains("\"provider_warning\""))
        .unwrap_or_else(|| panic!("no provider_warning: {events}"));
    assert_mentions(
        warning,
        &[
            &format!("second batch `{}`", second["id"].as_str().unwrap()),
            "for shard 0 of this run",
        ],
    );
    assert_eq!(simulator_batches(&simulator), made, "batches created again");
}

#[test]
fn a_provider_without_a_batch_list_still_resumes_with_a_warning() {
    let (simulator, workspace) = review_run_killed_at("during_poll", &["--quiet"]);
    let batches = || simulator_batches(&simulator);
    let made = batches();
    // The first list call answers as a server without the route does.
    simulator.put_json(
        "/_sim/faults",
        &json!({"routes": {"list_batches": [{"nth": 1, "kind": "status_404"}]}}),
    );
    let events = run_again_with_json_events(&workspace, &simulator);
    assert!(
        events.contains("\"provider_warning\"") && events.contains("has no batch list"),
        "{events}"
    );
    assert_eq!(batches(), made);
}

#[test]
fn a_run_directory_put_back_from_a_snapshot_after_its_batches_ended_is_refused_not_sent_again() {
    // A snapshot of the whole run directory, before any batch was created.
    let (simulator, workspace, run, snapshot) =
        killed_run_copied_to("after_upload_before_record", "snapshot");
    // The run finishes and deletes its files at the provider; then the snapshot is put back.
    finish_review_run(&workspace, &simulator, &["--quiet"]);
    std::fs::remove_dir_all(&run).unwrap();
    copy_tree(&snapshot, &run);
    std::fs::remove_dir_all(&snapshot).unwrap();
    let batches = || simulator_batches(&simulator);
    let (made, uploaded) = (batches(), uploads(&simulator));
    for arguments in [
        vec!["--quiet"],
        vec!["--quiet", "--run-dir", run.to_str().unwrap()],
    ] {
        let again = review_run_in_default_directory(&workspace, &simulator, &arguments)
            .output()
            .unwrap();
        let stderr = text(&again.stderr);
        // Exit 3, never 2: the run spent.
        assert_eq!(again.status.code(), Some(3), "{arguments:?}: {stderr}");
        assert_mentions(
            &stderr,
            &[
                "does not record 2 batch(es) the provider holds for this run",
                "is gone",
                "nothing was uploaded or created",
                "--run-dir NEW_DIRECTORY",
            ],
        );
        assert_eq!(
            batches(),
            made,
            "{arguments:?}: batches created a second time"
        );
        assert_eq!(
            uploads(&simulator),
            uploaded,
            "{arguments:?}: shards uploaded again"
        );
    }
}

#[test]
fn a_run_directory_put_back_from_a_snapshot_after_the_run_finished_takes_its_answers_from_the_store()
 {
    // A snapshot taken while the batches ran: the ledger records them, not their results.
    let (simulator, workspace, run, snapshot) = killed_run_copied_to("during_poll", "snapshot");
    // The run finishes, writes its output and deletes its files at the provider; then the
    // snapshot is put back and the job run again.
    finish_review_run(&workspace, &simulator, &["--quiet"]);
    let answered = read_parquet(&workspace.path().join("out.parquet"));
    let first_answers = string_column(&answered, "content");
    std::fs::remove_dir_all(&run).unwrap();
    copy_tree(&snapshot, &run);
    let (made, uploaded) = (simulator_batches(&simulator), uploads(&simulator));
    let events = run_again_with_json_events(&workspace, &simulator);
    // The answers the provider no longer serves come back from the answer store: the output
    // is as good as the one the finished run wrote, and nothing was paid for again.
    assert_eq!(events_of_type(&events, "results_recovered"), 2, "{events}");
    assert_eq!(
        events_of_type(&events, "results_unavailable"),
        2,
        "{events}"
    );
    assert_output_answers(&workspace, &first_answers);
    assert_eq!(simulator_batches(&simulator), made);
    assert_eq!(uploads(&simulator), uploaded);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["lost_results"], serde_json::json!([]), "{report}");

    // Without the store the rows say their results are lost, and the run still pays nothing.
    std::fs::remove_dir_all(&run).unwrap();
    copy_tree(&snapshot, &run);
    let again = review_run_in_default_directory(&workspace, &simulator, &["--quiet", "--no-store"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1), "{}", text(&again.stderr));
    let output = read_parquet(&workspace.path().join("out.parquet"));
    assert_eq!(
        string_column(&output, "error_code"),
        vec![Some("results_unavailable".to_owned()); 12]
    );
    assert_eq!(simulator_batches(&simulator), made);
    assert_eq!(uploads(&simulator), uploaded);
}

#[test]
fn a_retry_shards_answers_lost_with_the_snapshot_come_back_from_the_store_before_its_rows_are_settled()
 {
    // Half the first batch's lines fail for a passing reason: they go to a retry shard.
    let simulator = StandaloneSimulator::start(&[]);
    simulator.put_json(
        "/_sim/faults",
        &json!({"routes": {}, "batches": [{"batches": {"nth_batch": 1},
            "behaviour": {"transient_line_errors": {"fraction": 0.5}}}]}),
    );
    freeze_clock(&simulator);
    let workspace = review_workspace(12, 6, "");
    let mut child = review_run_in_default_directory(&workspace, &simulator, &["--quiet"])
        .spawn()
        .unwrap();
    wait_for_simulator_batches(&simulator, 2);
    http_json(
        "POST",
        &format!("{}/_sim/clock/advance", simulator.root_url),
        Some(&json!({"seconds": 100_000.0})),
    );
    // A snapshot once the retry shard's batch is recorded, while it still runs.
    let run = workspace.single_run_directory();
    let waiting_since = std::time::Instant::now();
    loop {
        let status = workspace.run(&["status", run.to_str().unwrap(), "--json"]);
        let status: Value = serde_json::from_slice(&status.stdout).unwrap_or(Value::Null);
        let recorded = status["shards"].as_array().map_or(0, |shards| {
            shards
                .iter()
                .filter(|shard| shard["batch_id"].is_string())
                .count()
        });
        if recorded == 3 {
            break;
        }
        assert!(
            waiting_since.elapsed() < Duration::from_secs(60),
            "the retry shard's batch was never recorded: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let snapshot = workspace.path().join("snapshot");
    copy_tree(&run, &snapshot);
    release_clock(&simulator);
    finish_review_run(&workspace, &simulator, &["--quiet"]);
    let first_answers = string_column(
        &read_parquet(&workspace.path().join("out.parquet")),
        "content",
    );
    std::fs::remove_dir_all(&run).unwrap();
    copy_tree(&snapshot, &run);
    let made = simulator_batches(&simulator);
    let events = run_again_with_json_events(&workspace, &simulator);
    assert!(events.contains(r#""type":"results_recovered""#), "{events}");
    assert_output_answers(&workspace, &first_answers);
    assert_eq!(simulator_batches(&simulator), made);
}

/// Runs the review job in `copy` (with `flag`) after making the simulator answer its first list
/// call 404, as a look at the batch list made before the other process's creates would have
/// found nothing.
fn resume_copy_whose_first_look_missed(
    workspace: &Workspace,
    simulator: &StandaloneSimulator,
    copy: &Path,
    flag: &str,
) -> Output {
    simulator.put_json(
        "/_sim/faults",
        &json!({"routes": {"list_batches": [{"nth": 1, "kind": "status_404"}]}}),
    );
    workspace
        .run_against(simulator, "dashscope", "reviews.toml", copy, &[flag])
        .env("DASHSCOPE_API_KEY", SECRET_KEY)
        .output()
        .unwrap()
}

#[test]
fn a_copy_of_a_live_run_directory_resumed_elsewhere_adopts_the_batches_the_original_made_after_it_looked()
 {
    // Shard 0 is uploaded; then the run directory is copied (to another machine, say, where
    // the original's lock cannot be seen).
    let (simulator, workspace, _run, copy) =
        killed_run_copied_to("after_upload_before_record", "copy-elsewhere");
    // The original goes on: it uploads shard 1 and creates both batches.
    kill_review_run_at(&workspace, &simulator, "during_poll", &["--quiet"]);
    let made = simulator_batches(&simulator);
    assert_eq!(made, 2);
    // The copy's one look at the batch list came before those creates.
    let resumed = resume_copy_whose_first_look_missed(&workspace, &simulator, &copy, "--json");
    let events = text(&resumed.stdout);
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "{}\n{events}",
        text(&resumed.stderr)
    );
    // Right before each create the copy looked again, found the original's batch and used it.
    assert_eq!(simulator_batches(&simulator), made, "{events}");
    assert_eq!(events_of_type(&events, "batch_adopted"), 2, "{events}");
    assert_eq!(events_of_type(&events, "batch_created"), 0, "{events}");
    let statuses = string_column(
        &read_parquet(&workspace.path().join("out.parquet")),
        "status",
    );
    assert_eq!(statuses, vec![Some("ok".to_owned()); 12]);
    // The copy's own upload of shard 1, which no batch uses, is not left at the provider.
    let files = http_json("GET", &format!("{}/files", simulator.base_url), None);
    let left = files["data"].as_array().map_or(0, Vec::len);
    assert_eq!(left, 0, "{files}");
}

#[test]
fn a_copy_resumed_elsewhere_at_the_same_moment_as_the_original_keeps_one_batch_a_shard() {
    let (simulator, workspace, run, copy) =
        killed_run_of_reviews_copied_to(60, 4, "after_upload_before_record", "copy-elsewhere");
    // The copy's lock names a process on another machine: this host cannot tell it is alive.
    let lock = copy.join("dashbatch.lock");
    let holder = std::fs::read_to_string(&lock).unwrap();
    let host = holder.split('`').nth(1).unwrap().to_owned();
    std::fs::write(&lock, holder.replace(&format!("`{host}`"), "`elsewhere`")).unwrap();
    // Both resume at once, with the clock stopped so no batch runs a request before the
    // processes have settled which batch of a shard is kept.
    freeze_clock(&simulator);
    let resume = |directory: &Path, output: &str| {
        spawn_piped({
            let mut command = resume_command(&workspace, directory);
            command.args(["--output", output]);
            command
        })
    };
    let original = resume(&run, "out.parquet");
    let other = resume(&copy, "copy.parquet");
    wait_for_simulator_batches(&simulator, 15);
    let mut last = (0, std::time::Instant::now());
    let waiting_since = std::time::Instant::now();
    while last.1.elapsed() < Duration::from_secs(2) {
        assert!(
            waiting_since.elapsed() < Duration::from_secs(60),
            "the batches never stopped coming"
        );
        let made = simulator_batches(&simulator);
        if made != last.0 {
            last = (made, std::time::Instant::now());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    release_clock(&simulator);
    for (process, output) in [(original, "out.parquet"), (other, "copy.parquet")] {
        let finished = wait_with_limit(process, Duration::from_secs(120));
        assert_eq!(
            finished.status.code(),
            Some(0),
            "{}\n{}",
            text(&finished.stderr),
            text(&finished.stdout)
        );
        let statuses = string_column(&read_parquet(&workspace.path().join(output)), "status");
        assert_eq!(statuses, vec![Some("ok".to_owned()); 60], "{output}");
    }
    let ledger = simulator.ledger();
    let twice: Vec<(&String, &Value)> = ledger["bill_count_per_custom_id"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, count)| count.as_u64() != Some(1))
        .collect();
    assert!(twice.is_empty(), "rows billed twice: {twice:?}");
    assert_eq!(ledger["billed_requests"].as_array().unwrap().len(), 60);
}

#[test]
fn a_copy_resumed_elsewhere_after_the_original_finished_creates_nothing_and_leaves_no_upload() {
    let (simulator, workspace, _run, copy) =
        killed_run_copied_to("after_upload_before_record", "copy-elsewhere");
    // The original finishes and deletes its files at the provider.
    finish_review_run(&workspace, &simulator, &["--quiet"]);
    let made = simulator_batches(&simulator);
    // The copy's look when it resumed missed the original's batches.
    let resumed = resume_copy_whose_first_look_missed(&workspace, &simulator, &copy, "--quiet");
    let stderr = text(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(3), "{stderr}");
    assert_mentions(
        &stderr,
        &[
            "for shard 0 of this run",
            "another process made",
            "Nothing was created for this shard here",
            "upload of it was deleted",
        ],
    );
    assert!(!stderr.contains("continue it with"), "{stderr}");
    assert_eq!(simulator_batches(&simulator), made);
    let files = http_json("GET", &format!("{}/files", simulator.base_url), None);
    let left = files["data"].as_array().map_or(0, Vec::len);
    assert_eq!(left, 0, "{files}");
}

#[test]
fn a_run_whose_job_file_was_moved_says_how_to_go_on_and_going_on_pays_nothing_twice() {
    let (simulator, workspace) = review_run_killed_at("during_poll", &["--quiet"]);
    let run = workspace.single_run_directory();
    // The project's job and input move to another folder; the run directory stays.
    let moved = workspace.path().join("moved");
    std::fs::create_dir(&moved).unwrap();
    for name in ["reviews.toml", "reviews.csv"] {
        std::fs::rename(workspace.path().join(name), moved.join(name)).unwrap();
    }
    let (made, uploaded) = (
        simulator.ledger()["batches"].as_array().unwrap().len(),
        uploads(&simulator),
    );
    let resumed = resume_command(&workspace, &run).output().unwrap();
    let stderr = text(&resumed.stderr);
    // Exit 3, never 2: the run spent.
    assert_eq!(resumed.status.code(), Some(3), "{stderr}");
    let advice = format!(
        "dashbatch run NEW_PATH_OF_THE_JOB_FILE --run-dir {} --provider dashscope --base-url {}",
        run.display(),
        simulator.base_url
    );
    assert_mentions(&stderr, &["is not there any more", &advice]);
    assert_eq!(stderr.matches("No such file").count(), 0, "{stderr}");
    let went_on = workspace
        .command(&[
            "run",
            "moved/reviews.toml",
            "--run-dir",
            run.to_str().unwrap(),
            "--provider",
            "dashscope",
            "--base-url",
            &simulator.base_url,
            "--quiet",
        ])
        .env("DASHSCOPE_API_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert_eq!(went_on.status.code(), Some(0), "{}", text(&went_on.stderr));
    assert_eq!(
        simulator.ledger()["batches"].as_array().unwrap().len(),
        made
    );
    assert_eq!(uploads(&simulator), uploaded);
    let statuses = string_column(&read_parquet(&moved.join("out.parquet")), "status");
    assert_eq!(statuses.len(), 12);
}

#[test]
fn an_unfinished_run_given_its_own_name_under_runs_is_continued_not_sent_again() {
    let (simulator, workspace) = review_run_killed_at(
        "during_poll",
        &["--quiet", "--run-dir", "runs/reviews-nightly"],
    );
    let uploaded = uploads(&simulator);
    let again = review_run_in_default_directory(&workspace, &simulator, &[])
        .output()
        .unwrap();
    let stderr = text(&again.stderr);
    assert_eq!(again.status.code(), Some(0), "{stderr}");
    assert_mentions(
        &stderr,
        &["continuing the unfinished run `runs/reviews-nightly`"],
    );
    assert_eq!(uploads(&simulator), uploaded, "rows sent again");
    assert_eq!(
        workspace.single_run_directory(),
        workspace.path().join("runs/reviews-nightly")
    );
}

#[test]
fn results_downloaded_before_the_ledger_recorded_them_are_kept_not_fetched_again() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = review_workspace(12, 6, "");
    let run =
        || review_run_in_default_directory(&workspace, &simulator, &["--quiet", "--no-store"]);
    kill_review_run_at(
        &workspace,
        &simulator,
        "during_poll",
        &["--quiet", "--no-store"],
    );
    let directory = workspace.single_run_directory();
    // The ledger as it was before the results were downloaded, with its write-ahead log.
    let copy = copy_of_ledger(&directory);
    // The run finishes, and deletes its remote files: the provider serves them no more.
    finish_review_run(&workspace, &simulator, &["--quiet", "--no-store"]);
    put_ledger_copy(&directory, &copy);
    let again = run().output().unwrap();
    let stderr = text(&again.stderr);
    // Before, the failed download removed the paid results and marked every row failed.
    assert_eq!(again.status.code(), Some(0), "{stderr}");
    assert!(
        std::fs::read_dir(directory.join("results"))
            .unwrap()
            .count()
            >= 2,
        "the downloaded results were removed"
    );
}

#[test]
fn two_runs_of_a_job_in_the_same_second_get_two_run_directories() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = review_workspace(4, 4, "");
    finish_review_run(&workspace, &simulator, &["--quiet"]);
    let finished = workspace.single_run_directory();
    // The finished run under the names of this second and the next few, so that the next run
    // starts in a second whose name is taken, as a quick job run twice does.
    let now = chrono::Utc::now();
    for seconds in 0..4 {
        let stamp = (now + chrono::Duration::seconds(seconds)).format("%Y%m%dT%H%M%SZ");
        let name = workspace
            .path()
            .join("runs")
            .join(format!("reviews-{stamp}"));
        if name != finished {
            let copied = std::process::Command::new("cp")
                .arg("-r")
                .arg(&finished)
                .arg(&name)
                .status()
                .unwrap();
            assert!(copied.success());
        }
    }
    // The next night's input differs: a new run, not the finished one of the same name.
    let input = workspace.path().join("reviews.csv");
    let changed = std::fs::read_to_string(&input)
        .unwrap()
        .replacen("好", "好吗", 1);
    std::fs::write(&input, changed).unwrap();
    let second = review_run_in_default_directory(&workspace, &simulator, &["--quiet"])
        .output()
        .unwrap();
    let stderr = text(&second.stderr);
    assert_eq!(second.status.code(), Some(0), "{stderr}");
    let numbered = std::fs::read_dir(workspace.path().join("runs"))
        .unwrap()
        .filter(|entry| {
            let name = entry.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with("Z-2")
        })
        .count();
    assert_eq!(numbered, 1, "the second run's directory is numbered");
}

#[test]
fn a_run_of_its_own_name_that_lost_its_ledger_or_holds_another_runs_is_refused() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = review_workspace(12, 6, "");
    let kill_in = |directory: &str| {
        kill_review_run_at(
            &workspace,
            &simulator,
            "during_poll",
            &["--quiet", "--run-dir", directory],
        );
        workspace.path().join(directory)
    };
    // Another run's ledger copied over this one's: the directory's identity tells.
    let nightly = kill_in("runs/reviews-nightly");
    let other = kill_in("runs/reviews-other");
    put_ledger_copy(&nightly, &copy_of_ledger(&other));
    std::fs::remove_dir_all(&other).unwrap();
    assert_every_command_refuses_the_damaged_run(
        &workspace,
        &simulator,
        &nightly,
        "another run's ledger",
        "is the ledger of run `reviews-other-",
    );
    // Lost: a run not named as `dashbatch run` names runs is still this job's by its identity.
    remove_ledger_files(&nightly);
    assert_every_command_refuses_the_damaged_run(
        &workspace,
        &simulator,
        &nightly,
        "lost, own name",
        "it has no `ledger.sqlite`",
    );
}

#[test]
fn a_finished_fact_dashbatch_never_writes_is_told_not_taken_as_finished() {
    let (simulator, workspace) = review_run_killed_at("during_poll", &["--quiet"]);
    let run = workspace.single_run_directory();
    rusqlite::Connection::open(run.join("ledger.sqlite"))
        .unwrap()
        .execute_batch("INSERT OR REPLACE INTO run_facts (key, value) VALUES ('finished', '0')")
        .unwrap();
    let uploaded = uploads(&simulator);
    // Taken as finished, the nightly `run` would found a new run and send every row again.
    let again = review_run_in_default_directory(&workspace, &simulator, &["--quiet"])
        .output()
        .unwrap();
    let stderr = text(&again.stderr);
    assert_eq!(again.status.code(), Some(3), "{stderr}");
    assert_mentions(&stderr, &["ledger.sqlite", "`finished` is `0`"]);
    assert_eq!(uploads(&simulator), uploaded, "rows sent again");
    assert_eq!(
        workspace.single_run_directory(),
        run,
        "a second run was founded"
    );
}

#[test]
fn a_runs_path_that_is_a_file_is_named_with_a_way_forward() {
    let workspace = review_workspace(2, 2, "");
    workspace.write("runs", "not a directory");
    let output = workspace.run(&["run", "reviews.toml", "--provider", "sim"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`runs` is a file") && stderr.contains("--run-dir"),
        "{stderr}"
    );
}

/// `validate` says which settings a run would use and where each comes from: the environment's
/// prices file, the job's output and cap, the default tokenizer.
#[test]
fn validate_names_each_setting_and_where_it_comes_from() {
    let workspace = Workspace::new();
    workspace.write("rows.csv", "id,text\n1,hello\n");
    workspace.write(
        "prices.toml",
        "[models.qwen-flash]\ncurrency = \"CNY\"\nbatch_discount_percent = 50\n[[models.qwen-flash.tiers]]\ninput = 0.15\noutput = 1.5\n",
    );
    workspace.write(
        "job.toml",
        "[input]\npath = \"rows.csv\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{{ text }}\"\nmax_tokens = 10\n[output]\npath = \"answers.csv\"\n[batch]\nmax_cost = \"0.5\"\n",
    );
    let output = workspace
        .command(&["validate", "job.toml", "--provider", "sim"])
        .env("DASHBATCH_PRICES", "prices.toml")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for piece in [
        "answers.csv` (from `[output] path` in the job file)",
        "prices file: `prices.toml` (from DASHBATCH_PRICES)",
        "tokenizer vocabulary: none named: the model's own vocabulary when installed or built in, else the heuristic (the default)",
        "max_cost: 0.5 (from `[batch] max_cost` in the job file)",
    ] {
        assert!(stdout.contains(piece), "expected `{piece}` in:\n{stdout}");
    }
}

/// A row whose template compares two 30 MB texts a hundred thousand times: each loop turn is
/// one cheap instruction, so fuel does not stop it for minutes.
const SLOW_TEMPLATE_JOB: &str = "[input]\npath = \"rows.csv\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{% set s = text * 30000000 %}{% set t = text * 30000000 %}{% for i in range(100000) %}{% if s == t %}{% endif %}{% endfor %}{{ text }}\"\n";

/// Found by a hostile pass: SIGTERM while one slow row was rendering was ignored for minutes.
/// Every loop turn now checks for a signal: exit 143 at once, with the final event.
#[test]
fn sigterm_while_a_slow_row_renders_exits_143_at_once() {
    let workspace = Workspace::new();
    workspace.write("rows.csv", "id,text\n1,x\n");
    workspace.write("job.toml", SLOW_TEMPLATE_JOB);
    let mut command = workspace.command(&["run", "job.toml", "--provider", "sim", "--json"]);
    command.env("DASHBATCH_SIM_TIME_SCALE", "100000");
    let mut child = spawn_piped(command);
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert!(line.contains("run_started"), "{line}");
    std::thread::sleep(Duration::from_millis(1500));
    let signalled = Instant::now();
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let output = wait_with_limit(child, Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(143), "{}", text(&output.stderr));
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "took {:?} to stop",
        signalled.elapsed()
    );
    assert!(
        rest.trim_end().ends_with('}') && rest.contains("run_interrupted"),
        "{rest}"
    );
}

/// The same row left alone stops at the ten-second render limit with an error naming the row,
/// before anything is uploaded.
#[test]
fn a_row_that_renders_for_longer_than_the_time_limit_is_refused_at_its_row() {
    let workspace = Workspace::new();
    workspace.write("rows.csv", "id,text\n1,x\n");
    workspace.write("job.toml", SLOW_TEMPLATE_JOB);
    let output = workspace.run(&["validate", "job.toml"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("row 1") && stderr.contains("longer than 10 s"),
        "{stderr}"
    );
}

/// minijinja's own functions (`range`, `namespace`, `dict`) are not mistaken for missing
/// columns.
#[test]
fn templates_may_use_range_namespace_and_dict() {
    let workspace = Workspace::new();
    workspace.write("rows.csv", "id,text\n1,hello\n");
    workspace.write(
        "job.toml",
        "[input]\npath = \"rows.csv\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}{{ dict(a=text).a }} {{ ns.n }}\"\n",
    );
    let output = workspace.run(&["validate", "job.toml"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(stdout.contains("hello 3"), "{stdout}");
}

/// `validate` refuses a tokenizer vocabulary that `run` would refuse.
#[test]
fn validate_refuses_a_tokenizer_vocabulary_run_would_refuse() {
    let workspace = Workspace::new();
    workspace.write("rows.csv", "id,text\n1,hello\n");
    workspace.write(
        "job.toml",
        "[input]\npath = \"rows.csv\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"{{ text }}\"\n[estimate]\ntokenizer = \"missing.tiktoken\"\n",
    );
    let output = workspace.run(&["validate", "job.toml"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`[estimate] tokenizer` in the job file")
            && stderr.contains("missing.tiktoken"),
        "{stderr}"
    );
}

/// A `resume` started while another process is founding the run (its lock is held, its ledger
/// not yet written) is told the run is busy, not that the directory is no run: it changes
/// nothing and exits 2, whatever the founder goes on to spend.
#[test]
fn resuming_a_run_being_founded_by_another_process_says_it_is_busy() {
    let workspace = Workspace::new();
    let run_directory = workspace.path().join("run");
    std::fs::create_dir_all(&run_directory).unwrap();
    let lock = std::fs::File::create(run_directory.join("dashbatch.lock")).unwrap();
    lock.try_lock().unwrap();
    let output = workspace.run(&["resume", run_directory.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let message = text(&output.stderr);
    assert!(
        message.contains("in use by another dashbatch process"),
        "{message}"
    );
    assert!(!message.contains("not a run directory"), "{message}");
    drop(lock);
    let output = workspace.run(&["resume", run_directory.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("not a run directory"));
}

/// Starts `validate` of `workspace`'s big job with `scratch` as its TMPDIR, sends `signal` once
/// planning has started (its scratch directory holds the scratch ledger, made right before the
/// input is read; `validate` writes no shard file), and waits for it.
fn validate_stopped_while_planning(workspace: &Workspace, scratch: &Path, signal: i32) -> Output {
    let mut command = workspace.command(&["validate", "big.toml", "--show", "0"]);
    command.env("TMPDIR", scratch);
    let child = spawn_piped(command);
    let started = Instant::now();
    while !std::fs::read_dir(scratch)
        .unwrap()
        .flatten()
        .any(|entry| entry.path().join("validate.sqlite").exists())
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "planning never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
    wait_with_limit(child, Duration::from_secs(60))
}

#[test]
fn ctrl_c_while_validating_exits_130_and_leaves_no_scratch_files() {
    let workspace = large_workspace(300_000);
    let scratch = workspace.path().join("tmp");
    std::fs::create_dir_all(&scratch).unwrap();
    let output = validate_stopped_while_planning(&workspace, &scratch, libc::SIGINT);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("stopped by Ctrl-C (SIGINT)"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "scratch files left behind"
    );
}

#[test]
fn scratch_files_of_a_validate_killed_outright_are_removed_by_the_next_one() {
    let workspace = large_workspace(300_000);
    let scratch = workspace.path().join("tmp");
    std::fs::create_dir_all(&scratch).unwrap();
    let killed = validate_stopped_while_planning(&workspace, &scratch, libc::SIGKILL);
    assert_eq!(killed.status.code(), None, "killed by the signal");
    let left: Vec<_> = std::fs::read_dir(&scratch).unwrap().flatten().collect();
    assert_eq!(left.len(), 1, "a process killed outright cannot clean up");
    assert!(
        left[0]
            .file_name()
            .to_string_lossy()
            .starts_with("dashbatch-scratch-"),
        "{:?}",
        left[0].file_name()
    );
    // Something else in the temporary directory is not touched.
    std::fs::create_dir(scratch.join("someone-elses")).unwrap();

    let mut command = workspace.command(&["validate", "big.toml", "--show", "0"]);
    command.env("TMPDIR", &scratch);
    let output = command.output().unwrap();
    assert_success(&output);
    let names: Vec<String> = std::fs::read_dir(&scratch)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["someone-elses"],
        "the killed process's scratch is gone"
    );
}

#[test]
fn a_shard_file_changed_after_planning_is_not_uploaded_and_the_planned_one_finishes_the_run() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = review_workspace(6, 3, "");
    let run_directory = workspace.path().join("run");
    // A first process uploads shard 0, creates its batch and dies before recording it.
    let killed = review_run_command(&workspace, &simulator, &run_directory)
        .env("DASHBATCH_TEST_KILL_AT", "after_create_before_record")
        .output()
        .unwrap();
    assert_eq!(killed.status.code(), None, "killed by its own SIGKILL");
    assert_eq!(uploads(&simulator), 1);
    // Shard 1, planned but not uploaded, is edited by hand.
    let shard = run_directory.join("shards/shard-00001.jsonl");
    let planned = std::fs::read(&shard).unwrap();
    std::fs::write(
        &shard,
        String::from_utf8(planned.clone())
            .unwrap()
            .replace("Topic", "Tpoic"),
    )
    .unwrap();
    let refused = resume_command(&workspace, &run_directory).output().unwrap();
    let stderr = text(&refused.stderr);
    assert_eq!(
        refused.status.code(),
        Some(3),
        "money was spent on shard 0: {stderr}"
    );
    assert!(
        stderr.contains("shard-00001.jsonl")
            && stderr.contains("is not the one planned")
            && stderr.contains("nothing of it was uploaded"),
        "{stderr}"
    );
    assert_eq!(uploads(&simulator), 1, "the changed file was not uploaded");
    // With the planned bytes back, the run finishes: every row once, nothing paid twice.
    std::fs::write(&shard, planned).unwrap();
    let finished = resume_command(&workspace, &run_directory).output().unwrap();
    assert_eq!(
        finished.status.code(),
        Some(0),
        "{}",
        text(&finished.stderr)
    );
    assert_finished_cleanly(&simulator, &workspace, &run_directory, 6);
}

#[test]
fn validate_and_estimate_with_no_writable_temporary_directory_say_where_and_what_to_do() {
    let workspace = review_workspace(6, 3, "");
    for command in ["validate", "estimate"] {
        let output = workspace
            .command(&[command, "reviews.toml"])
            .env("TMPDIR", "/nonexistent/scratch")
            .output()
            .unwrap();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("`/nonexistent/scratch`") && stderr.contains("set TMPDIR"),
            "{command}: {stderr}"
        );
    }
}

/// `dashbatch resume RUN --output OUTPUT --quiet` on a finished run: its results joined again.
fn join_finished_run_again(workspace: &Workspace, run_directory: &Path, output: &str) -> Output {
    workspace.run(&[
        "resume",
        run_directory.to_str().unwrap(),
        "--output",
        output,
        "--quiet",
    ])
}

/// `joined` refused the finished run's input as changed since planning, and wrote no `output`.
fn refused_as_changed(workspace: &Workspace, joined: &Output, output: &str) {
    let stderr = text(&joined.stderr);
    assert_ne!(joined.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("changed since run"), "{stderr}");
    assert!(!workspace.path().join(output).exists());
}

/// The text of the `output` that `joined` wrote, once it passed.
fn joined_text(workspace: &Workspace, joined: &Output, output: &str) -> String {
    assert_eq!(joined.status.code(), Some(0), "{}", text(&joined.stderr));
    std::fs::read_to_string(workspace.path().join(output)).unwrap()
}

/// The lines of a CSV output that `joined` wrote (a header and a line a row), once it passed.
fn joined_lines(workspace: &Workspace, joined: &Output, output: &str) -> usize {
    joined_text(workspace, joined, output).lines().count()
}

#[test]
fn a_gzipped_input_hashed_while_its_rows_are_read_joins_again_as_planned_and_not_once_edited() {
    use std::io::Write;
    let gzipped = |text: &str| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(text.as_bytes()).unwrap();
        encoder.finish().unwrap()
    };
    let workspace = review_workspace(7, 3, "");
    let planned = std::fs::read_to_string(workspace.path().join("reviews.csv")).unwrap();
    workspace.write("reviews.csv.gz", gzipped(&planned));
    let job = std::fs::read_to_string(workspace.path().join("reviews.toml"))
        .unwrap()
        .replace("path = \"reviews.csv\"", "path = \"reviews.csv.gz\"");
    workspace.write("packed.toml", job);
    let run_directory = finished_run_on_the_embedded_simulator(&workspace, "packed.toml");
    let join_again = |output: &str| join_finished_run_again(&workspace, &run_directory, output);
    assert_eq!(
        joined_lines(&workspace, &join_again("again.csv"), "again.csv"),
        8
    );
    // One row's text edited, as many rows: the digest of the bytes read is not the planned one.
    let last = planned.lines().last().unwrap();
    let edited = planned.replacen(last, &last.replacen(',', ",x", 1), 1);
    workspace.write("reviews.csv.gz", gzipped(&edited));
    refused_as_changed(&workspace, &join_again("edited.csv"), "edited.csv");
}

#[test]
fn result_lines_that_change_shape_from_line_to_line_join_as_the_lines_as_written() {
    let workspace = review_workspace(30, 12, "");
    let run_directory = finished_run_on_the_embedded_simulator(&workspace, "reviews.toml");
    let join_again = |output: &str| {
        let joined = join_finished_run_again(&workspace, &run_directory, output);
        joined_text(&workspace, &joined, output)
    };
    let as_written = join_again("as-written.csv");
    // Each line of each result file rewritten in one of several shapes that mean the same: keys
    // in another order, spaces, an escaped custom_id, a field more, spaces after it.
    let mut rewritten = 0;
    for entry in std::fs::read_dir(run_directory.join("results")).unwrap() {
        let path = entry.unwrap().path();
        let lines: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .enumerate()
            .map(|(index, line)| {
                let value: Value = serde_json::from_str(line).unwrap();
                let shaped = match index % 6 {
                    // serde_json's maps keep their keys sorted: another order.
                    1 => value.to_string(),
                    2 => serde_json::to_string_pretty(&value)
                        .unwrap()
                        .replace('\n', " "),
                    3 => line.replacen("\"custom_id\":\"zh-", "\"custom_id\":\"zh\\u002d", 1),
                    4 => line.replacen("{\"id\":", "{\"system_fingerprint\":null,\"id\":", 1),
                    5 => format!("{line}  "),
                    _ => return line.to_owned(),
                };
                assert_ne!(shaped, line, "line {index} of {}", path.display());
                rewritten += 1;
                shaped
            })
            .collect();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    }
    assert_eq!(rewritten, 25, "five lines in six rewritten");
    assert_eq!(join_again("rewritten.csv"), as_written);
}

#[test]
fn a_run_planned_by_an_earlier_version_is_checked_by_the_sha256_it_recorded() {
    use sha2::{Digest, Sha256};
    let workspace = review_workspace(6, 3, "");
    let run_directory = finished_run_on_the_embedded_simulator(&workspace, "reviews.toml");
    let ledger = rusqlite::Connection::open(run_directory.join("ledger.sqlite")).unwrap();
    let digest: String = ledger
        .query_row(
            "SELECT value FROM run_facts WHERE key = 'input_digest'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(digest.starts_with("xxh3-128:"), "{digest}");
    // As a ledger of a version before 2026-12 holds it: the input's SHA-256 and no digest.
    let planned = std::fs::read(workspace.path().join("reviews.csv")).unwrap();
    ledger
        .execute_batch(&format!(
            "DELETE FROM run_facts WHERE key = 'input_digest';
             INSERT INTO run_facts (key, value) VALUES ('input_sha256', '{}');",
            hex::encode(Sha256::digest(&planned))
        ))
        .unwrap();
    drop(ledger);
    let join_again = |output: &str| join_finished_run_again(&workspace, &run_directory, output);
    assert_eq!(
        joined_lines(&workspace, &join_again("again.csv"), "again.csv"),
        7
    );
    let planned = String::from_utf8(planned).unwrap();
    let last = planned.lines().last().unwrap();
    let edited = planned.replacen(last, &last.replacen(',', ",x", 1), 1);
    workspace.write("reviews.csv", edited);
    refused_as_changed(&workspace, &join_again("edited.csv"), "edited.csv");
}

#[test]
fn a_run_record_whose_input_digest_was_lost_or_damaged_is_refused_not_joined_unchecked() {
    let workspace = review_workspace(6, 3, "");
    let run_directory = finished_run_on_the_embedded_simulator(&workspace, "reviews.toml");
    let ledger_path = run_directory.join("ledger.sqlite");
    let planned_digest: String = rusqlite::Connection::open(&ledger_path)
        .unwrap()
        .query_row(
            "SELECT value FROM run_facts WHERE key = 'input_digest'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let damages = [
        (
            "lost",
            "DELETE FROM run_facts WHERE key = 'input_digest'",
            "no digest of the input",
        ),
        (
            "cut",
            "UPDATE run_facts SET value = substr(value, 1, 20) WHERE key = 'input_digest'",
            "input_digest",
        ),
        (
            "garbage",
            "UPDATE run_facts SET value = 'cd' WHERE key = 'input_digest'",
            "`cd`",
        ),
    ];
    for (case, damage, named) in damages {
        rusqlite::Connection::open(&ledger_path)
            .unwrap()
            .execute_batch(damage)
            .unwrap();
        let output = format!("again-{case}.csv");
        let again = join_finished_run_again(&workspace, &run_directory, &output);
        let stderr = text(&again.stderr);
        assert_ne!(again.status.code(), Some(0), "{case}: {stderr}");
        assert_ne!(
            again.status.code(),
            Some(2),
            "{case}: the run was paid for: {stderr}"
        );
        assert!(
            stderr.contains("ledger.sqlite") && stderr.contains(named),
            "{case}: {stderr}"
        );
        assert!(!stderr.contains("changed since run"), "{case}: {stderr}");
        assert!(!workspace.path().join(&output).exists(), "{case}");
        // Put back as planned, the run is joined again.
        let connection = rusqlite::Connection::open(&ledger_path).unwrap();
        connection
            .execute(
                "INSERT OR REPLACE INTO run_facts (key, value) VALUES ('input_digest', ?1)",
                [&planned_digest],
            )
            .unwrap();
        drop(connection);
        let restored = join_finished_run_again(&workspace, &run_directory, &output);
        assert_eq!(joined_lines(&workspace, &restored, &output), 7, "{case}");
    }
}

#[test]
fn a_finished_run_joined_again_after_its_input_changed_is_refused_and_writes_no_output() {
    let workspace = review_workspace(9, 4, "");
    let run_directory = finished_run_on_the_embedded_simulator(&workspace, "reviews.toml");
    let planned = std::fs::read_to_string(workspace.path().join("reviews.csv")).unwrap();
    let mut lines: Vec<&str> = planned.lines().collect();
    let last = lines.pop().unwrap().to_owned();
    // The input is hashed while the rows are joined again: whichever the join meets first (a
    // row past the last shard, a row short, or nothing at all), the input's change is the error.
    let edited = planned.replacen(&last, &last.replacen(',', ",x", 1), 1);
    let grown = format!("{planned}{}\n", last.replacen("zh-", "zh-9", 1));
    let shrunk = format!("{}\n", lines.join("\n"));
    for (case, input) in [("edited", edited), ("grown", grown), ("shrunk", shrunk)] {
        workspace.write("reviews.csv", &input);
        let output_name = format!("again-{case}.csv");
        let again = join_finished_run_again(&workspace, &run_directory, &output_name);
        let stderr = text(&again.stderr);
        assert_ne!(again.status.code(), Some(0), "{case}: {stderr}");
        assert!(stderr.contains("changed since run"), "{case}: {stderr}");
        let left: Vec<String> = std::fs::read_dir(workspace.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains("again"))
            .collect();
        assert!(left.is_empty(), "{case}: {left:?}");
    }
    // Restored, the run is joined again as planned.
    workspace.write("reviews.csv", &planned);
    let restored = join_finished_run_again(&workspace, &run_directory, "again.csv");
    assert_eq!(
        restored.status.code(),
        Some(0),
        "{}",
        text(&restored.stderr)
    );
    let rows = csv::Reader::from_path(workspace.path().join("again.csv"))
        .unwrap()
        .records()
        .count();
    assert_eq!(rows, 9);
}

#[test]
fn ctrl_c_while_a_finished_run_is_joined_again_says_nothing_runs_and_leaves_no_output() {
    // 30,000 rows: the join takes about half a second in a debug build, time for the signal.
    let workspace = large_workspace(30_000);
    let run_directory = finished_run_on_the_embedded_simulator(&workspace, "big.toml");
    let again_files = || -> Vec<String> {
        std::fs::read_dir(workspace.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains("again"))
            .collect()
    };
    // The signal goes as soon as the run has started; should the join win the race on a slow
    // machine, it is tried again.
    for _attempt in 0..5 {
        let command = workspace.command(&[
            "resume",
            run_directory.to_str().unwrap(),
            "--output",
            "again.parquet",
            "--json",
        ]);
        let (output, rest) = signalled_once_started(command, libc::SIGINT);
        let stderr = text(&output.stderr);
        if output.status.code() == Some(0) {
            std::fs::remove_file(workspace.path().join("again.parquet")).unwrap();
            continue;
        }
        assert_eq!(output.status.code(), Some(130), "{stderr}");
        assert!(
            stderr.contains("none of its batches is running")
                && stderr.contains("Continue with `dashbatch resume"),
            "a finished run has nothing running at the provider:\n{stderr}"
        );
        assert!(!stderr.contains("keep running"), "{stderr}");
        assert!(rest.contains("run_interrupted"), "{rest}");
        assert!(
            again_files().is_empty(),
            "no output or temporary file is left: {:?}",
            again_files()
        );
        return;
    }
    panic!("the join ended before the signal five times");
}
