//! System faults, through the real binary against the standalone simulator: the disk fills up
//! while the run plans, downloads results and writes the output table (a file-size limit,
//! `RLIMIT_FSIZE`, with `SIGXFSZ` ignored so that a write past it fails with `EFBIG`, "File too
//! large", as on a full disk, instead of killing the process); the run directory is deleted under
//! a live run; the provider's clock jumps past the completion window while batches run.
//!
//! Each must end with an exit code that tells the truth (never 0 after a failure, never 2 once a
//! batch exists), a message naming the problem, nothing billed twice, and a later `resume` (or
//! `run`) that finishes with every invariant held.
//!
//! Not here: a read-only output location. It cannot be simulated with permissions because the
//! tests run as root, who may write anywhere.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::json;

use super::harness::*;
use super::invariants::*;

/// Makes every file the child writes stop at `bytes`: a write past it fails with `EFBIG` instead
/// of killing the process with `SIGXFSZ`. The simulator, a separate process, is not limited.
fn limit_file_size(command: &mut Command, bytes: u64) -> &mut Command {
    // SAFETY: `setrlimit` and `signal` are async-signal-safe and the closure allocates nothing,
    // as code between fork and exec must.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes as libc::rlim_t,
                rlim_max: bytes as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // An ignored signal stays ignored across exec.
            if libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Deterministic hexadecimal text that Parquet's snappy cannot shrink much (no extra dependency).
fn hex_text(seed: u64, length: usize) -> String {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..length)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b"0123456789abcdef"[(state >> 60) as usize])
        })
        .collect()
}

/// The review job of `review_workspace`, `rows` rows in one shard, with its `[request]` replaced.
fn job_with_request(rows: usize, request: &str) -> String {
    format!(
        "name = \"reviews\"\n[input]\npath = \"reviews.csv\"\nid_column = \"review_id\"\n[request]\n{request}\n[output]\npath = \"out.parquet\"\n[batch]\nmax_requests_per_file = {rows}\n"
    )
}

fn batch_count(simulator: &StandaloneSimulator) -> usize {
    simulator.ledger()["batches"].as_array().unwrap().len()
}

fn upload_count(simulator: &StandaloneSimulator) -> u64 {
    simulator.ledger()["uploads"].as_u64().unwrap()
}

/// How many times the simulator billed each custom_id (over every batch it holds).
fn bills_per_custom_id(simulator: &StandaloneSimulator) -> BTreeMap<String, u64> {
    let mut bills = BTreeMap::new();
    for bill in simulator.ledger()["billed_requests"].as_array().unwrap() {
        *bills
            .entry(bill["custom_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    bills
}

fn assert_nothing_billed_twice(simulator: &StandaloneSimulator) {
    let twice: Vec<_> = bills_per_custom_id(simulator)
        .into_iter()
        .filter(|(_, count)| *count > 1)
        .collect();
    assert!(twice.is_empty(), "billed more than once: {twice:?}");
}

/// Exit 3: the run failed after a batch existed (money may be spent), with the state to resume.
fn assert_failed_after_spending(output: &Output, says: &[&str]) {
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(3),
        "a failure once batches exist is exit 3 (never 0, and never 2, which promises nothing was spent):\n{stderr}"
    );
    for phrase in says {
        assert!(stderr.contains(phrase), "missing `{phrase}` in:\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// Disk full

/// 12 prompts of 40,000 characters in one shard: its file takes 480 KB.
fn workspace_of_one_480_kb_shard() -> Workspace {
    let workspace = Workspace::new();
    let mut csv = String::from("review_id,text\n");
    for (index, id) in review_ids(12).iter().enumerate() {
        csv.push_str(&format!("{id},{}\n", hex_text(index as u64, 40_000)));
    }
    workspace.write("reviews.csv", csv);
    workspace.write(
        "reviews.toml",
        job_with_request(
            12,
            "model = \"qwen-flash\"\ntemplate = \"Topic of: {{ text }}\"\nmax_tokens = 30",
        ),
    );
    workspace
}

#[test]
fn disk_full_while_planning_exits_2_uploads_nothing_and_the_run_finishes_later() {
    let simulator = StandaloneSimulator::start(&[]);
    // One 480 KB shard file against a 256 KiB limit. The ledger (under 100 KB while planning)
    // still fits.
    let workspace = workspace_of_one_480_kb_shard();
    let run_directory = workspace.path().join("run");
    let mut command = review_run_command(&workspace, &simulator, &run_directory);
    let output = limit_file_size(&mut command, 256 * 1024).output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "nothing was spent: {stderr}");
    assert!(stderr.contains("File too large"), "{stderr}");
    assert!(
        stderr.contains("shard-00000.jsonl"),
        "the message names the file that could not be written:\n{stderr}"
    );
    assert_eq!(upload_count(&simulator), 0, "nothing may be uploaded");
    assert_eq!(batch_count(&simulator), 0);

    // With room again, the same run directory plans afresh and finishes.
    let output = review_run_command(&workspace, &simulator, &run_directory)
        .output()
        .unwrap();
    assert_success(&output);
    assert_eq!(batch_count(&simulator), 1);
    assert_finished_cleanly(&simulator, &workspace, &run_directory, 12);
}

#[test]
fn validate_counts_the_shards_a_run_writes_when_lines_and_bytes_both_bound_them() {
    // Prompts of 1,000 to 30,000 characters: some shards close on their byte limit, others on
    // their line limit. `validate` writes none, yet must find the boundaries a run does.
    let workspace = Workspace::new();
    let mut csv = String::from("review_id,text\n");
    for (index, id) in review_ids(40).iter().enumerate() {
        let length = 1_000 + (index * 7_919) % 29_000;
        csv.push_str(&format!("{id},{}\n", hex_text(index as u64, length)));
    }
    workspace.write("reviews.csv", csv);
    workspace.write(
        "reviews.toml",
        format!(
            "{}max_bytes_per_file = 60000\n",
            job_with_request(
                6,
                "model = \"qwen-flash\"\ntemplate = \"Topic of: {{ text }}\"\nmax_tokens = 30",
            )
        ),
    );
    let validated = workspace.run(&[
        "validate",
        "reviews.toml",
        "--provider",
        "sim",
        "--show",
        "0",
    ]);
    assert_success(&validated);
    let said = text(&validated.stdout);
    let run_directory = finished_run_on_the_embedded_simulator(&workspace, "reviews.toml");
    let connection = rusqlite::Connection::open(run_directory.join("ledger.sqlite")).unwrap();
    let (shards, largest): (i64, i64) = connection
        .query_row("SELECT COUNT(*), MAX(byte_size) FROM shards", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap();
    assert!(
        shards > 40 / 6 + 1,
        "some shards closed on their byte limit: {shards}"
    );
    assert!(largest <= 60_000, "{largest}");
    assert!(
        said.contains(&format!("40 rows from `reviews.csv` → {shards} shard(s)")),
        "validate and the run disagree ({shards} shards):\n{said}"
    );
}

#[test]
fn validate_needs_no_room_for_the_request_lines_and_estimate_names_the_scratch_shard_it_cannot_write()
 {
    // The 480 KB shard of `workspace_of_one_480_kb_shard`, against the disk-full test's 256 KiB
    // limit: `validate` counts the lines without writing them, so it passes and says how many
    // shards a run would make.
    let workspace = workspace_of_one_480_kb_shard();
    let scratch = workspace.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let mut validate = workspace.command(&["validate", "reviews.toml", "--show", "0"]);
    validate.env("TMPDIR", &scratch);
    let output = limit_file_size(&mut validate, 256 * 1024).output().unwrap();
    assert_success(&output);
    assert!(
        text(&output.stdout).contains("12 rows from `reviews.csv` → 1 shard(s)"),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "the scratch directory is removed"
    );

    // `estimate` reads its shards back to count their tokens, so it writes them; a scratch
    // directory without room is said before anything else happens (exit 2).
    let mut estimate = workspace.command(&["estimate", "reviews.toml"]);
    estimate.env("TMPDIR", &scratch);
    let output = limit_file_size(&mut estimate, 256 * 1024).output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("File too large") && stderr.contains("shard-00000.jsonl"),
        "{stderr}"
    );
}

#[test]
fn disk_full_on_a_later_shard_while_earlier_ones_are_still_syncing_exits_2_naming_it() {
    let simulator = StandaloneSimulator::start(&[]);
    // Shards of 3 rows: the first three hold short prompts and are written (and synced, by
    // their own threads, while planning goes on); the fourth holds 60,000-character prompts and
    // passes a 150 KiB file-size limit (which the ledger, under 100 KB, keeps within).
    let workspace = Workspace::new();
    let mut csv = String::from("review_id,text\n");
    for (index, id) in review_ids(15).iter().enumerate() {
        let length = if index < 9 { 40 } else { 60_000 };
        csv.push_str(&format!("{id},{}\n", hex_text(index as u64, length)));
    }
    workspace.write("reviews.csv", csv);
    workspace.write(
        "reviews.toml",
        job_with_request(
            3,
            "model = \"qwen-flash\"\ntemplate = \"Topic of: {{ text }}\"\nmax_tokens = 30",
        ),
    );
    let run_directory = workspace.path().join("run");
    let mut command = review_run_command(&workspace, &simulator, &run_directory);
    let output = limit_file_size(&mut command, 150 * 1024).output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "nothing was spent: {stderr}");
    assert!(
        stderr.contains("File too large") && stderr.contains("shard-00003.jsonl"),
        "the message names the shard that could not be written:\n{stderr}"
    );
    assert_eq!(upload_count(&simulator), 0, "nothing may be uploaded");

    let output = review_run_command(&workspace, &simulator, &run_directory)
        .output()
        .unwrap();
    assert_success(&output);
    assert_eq!(batch_count(&simulator), 5);
    assert_finished_cleanly(&simulator, &workspace, &run_directory, 15);
}

#[test]
fn disk_full_while_downloading_results_exits_3_and_resume_finishes_without_paying_twice() {
    let rows = 60;
    let simulator = StandaloneSimulator::start(&[]);
    // 60 embeddings of 2,048 dimensions in one shard: a result file of about 1.5 MB against a
    // 512 KiB limit; the shard file (30 KB) and the ledger (under 250 KB with its WAL) fit.
    let workspace = review_workspace(rows, rows, "");
    workspace.write(
        "reviews.toml",
        job_with_request(
            rows,
            "endpoint = \"/v1/embeddings\"\nmodel = \"text-embedding-v4\"\ntemplate = \"{{ text }}\"\ndimensions = 2048",
        ),
    );
    let run_directory = workspace.path().join("run");
    let mut command = review_run_command(&workspace, &simulator, &run_directory);
    let output = limit_file_size(&mut command, 512 * 1024).output().unwrap();
    assert_failed_after_spending(&output, &["File too large", "results", "dashbatch resume"]);
    assert_eq!(batch_count(&simulator), 1, "the batch was created");
    assert!(!workspace.path().join("out.parquet").exists());

    let output = resume_command(&workspace, &run_directory).output().unwrap();
    assert_success(&output);
    assert_eq!(batch_count(&simulator), 1, "resume created no batch");
    assert_eq!(upload_count(&simulator), 1, "resume uploaded nothing");
    assert_finished_cleanly(&simulator, &workspace, &run_directory, rows);
    assert_nothing_billed_twice(&simulator);
    let bills: u64 = bills_per_custom_id(&simulator).values().sum();
    assert_eq!(bills, rows as u64, "every row billed exactly once");
}

#[test]
fn disk_full_while_writing_the_output_exits_3_and_resume_writes_it() {
    let rows = 12;
    let simulator = StandaloneSimulator::start(&[]);
    // A kept input column of 100,000 characters a row that no prompt uses: the output table
    // (about 1.2 MB) passes a 512 KiB limit, the shard and result files (a few KB) do not.
    let workspace = review_workspace(rows, rows, "");
    let source = std::fs::read_to_string(workspace.path().join("reviews.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(source.as_bytes());
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    header.push("padding".to_owned());
    writer.write_record(&header).unwrap();
    for (index, record) in reader.records().enumerate() {
        let mut fields: Vec<String> = record.unwrap().iter().map(str::to_owned).collect();
        fields.push(hex_text(index as u64, 100_000));
        writer.write_record(&fields).unwrap();
    }
    workspace.write("reviews.csv", writer.into_inner().unwrap());
    let run_directory = workspace.path().join("run");
    let mut command = review_run_command(&workspace, &simulator, &run_directory);
    let output = limit_file_size(&mut command, 512 * 1024).output().unwrap();
    assert_failed_after_spending(
        &output,
        &[
            "File too large",
            "out.parquet",
            "already created",
            "dashbatch resume",
        ],
    );
    assert_eq!(batch_count(&simulator), 1);
    assert!(
        !workspace.path().join("out.parquet").exists(),
        "no half-written table in place"
    );

    let output = resume_command(&workspace, &run_directory).output().unwrap();
    assert_success(&output);
    assert_eq!(batch_count(&simulator), 1, "resume created no batch");
    assert_finished_cleanly(&simulator, &workspace, &run_directory, rows);
    assert_nothing_billed_twice(&simulator);
}

// ---------------------------------------------------------------------------------------------
// The run directory deleted under a live run

/// Starts a 12-row run in two shards against a frozen clock, deletes its run directory once
/// both batches exist, then lets the batches finish. Returns the process's output.
fn run_whose_directory_is_deleted(simulator: &StandaloneSimulator) -> (Workspace, Output) {
    freeze_clock(simulator);
    let workspace = review_workspace(12, 6, "");
    let run_directory = workspace.path().join("run");
    let child = spawn_piped(review_run_command(&workspace, simulator, &run_directory));
    wait_for_simulator_batches(simulator, 2);
    std::fs::remove_dir_all(&run_directory).unwrap();
    release_clock(simulator);
    let output = wait_with_limit(child, Duration::from_secs(60));
    (workspace, output)
}

#[test]
fn deleting_the_run_directory_under_a_live_run_never_ends_in_success_or_double_billing() {
    let simulator = StandaloneSimulator::start(&[]);
    let (workspace, output) = run_whose_directory_is_deleted(&simulator);
    let run_directory = workspace.path().join("run");
    assert_failed_after_spending(&output, &[run_directory.to_str().unwrap()]);
    assert!(
        !workspace.path().join("out.parquet").exists(),
        "no output is claimed"
    );
    // The two batches ran to the end at the provider; nothing was created or billed again.
    let calls = simulator.calls();
    assert_eq!(calls["upload"], 2, "{calls}");
    assert_eq!(calls["create_batch"], 2, "{calls}");
    assert_eq!(batch_count(&simulator), 2);
    assert_nothing_billed_twice(&simulator);
    let bills: u64 = bills_per_custom_id(&simulator).values().sum();
    assert!(bills <= 12, "{bills} bills for 12 rows");
}

#[test]
fn deleting_the_run_directory_under_a_live_run_does_not_claim_the_state_is_saved() {
    let simulator = StandaloneSimulator::start(&[]);
    let (_workspace, output) = run_whose_directory_is_deleted(&simulator);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        !stderr.contains("state is saved"),
        "the run directory and its ledger are gone, nothing is saved:\n{stderr}"
    );
    assert!(stderr.contains("cannot be resumed"), "{stderr}");
    // The batches that keep running (and billing) are named, so the user can collect them.
    for batch in simulator.ledger()["batches"].as_array().unwrap() {
        let id = batch["id"].as_str().unwrap();
        assert!(stderr.contains(id), "batch {id} is not named:\n{stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// The provider's clock jumps past the completion window
//
// The simulator replays a batch's life at the times each step was due, so a jump alone does not
// expire a batch that could finish within its window (it completes, back-dated); only a batch
// whose lines cannot all run within the window expires naturally, which takes millions of lines.
// Here the first batch is scripted to expire half done (`expire_with_partial`) and the clock
// then jumps two days, past the 24 h window, while both batches are live.

/// Runs 12 rows in two shards; once both batches exist the clock jumps two days. Returns the
/// finished run's output, workspace and run directory.
fn run_across_a_clock_jump(
    simulator: &StandaloneSimulator,
    extra_batch: &str,
) -> (Workspace, std::path::PathBuf, Output) {
    simulator.put_json(
        "/_sim/faults",
        &json!({"routes": {}, "batches": [
            {"batches": {"nth_batch": 1}, "behaviour": {"expire_with_partial": {"done_fraction": 0.5}}}
        ]}),
    );
    freeze_clock(simulator);
    let workspace = review_workspace(12, 6, extra_batch);
    let run_directory = workspace.path().join("run");
    let child = spawn_piped(review_run_command(&workspace, simulator, &run_directory));
    wait_for_simulator_batches(simulator, 2);
    let before = simulator.get_json("/_sim/clock")["now"].as_f64().unwrap();
    http_json(
        "POST",
        &format!("{}/_sim/clock/advance", simulator.root_url),
        Some(&json!({"seconds": 2.0 * 86_400.0})),
    );
    let after = simulator.get_json("/_sim/clock")["now"].as_f64().unwrap();
    assert!(after - before >= 2.0 * 86_400.0, "{before} → {after}");
    release_clock(simulator);
    let output = wait_with_limit(child, Duration::from_secs(60));
    (workspace, run_directory, output)
}

fn statuses(workspace: &Workspace) -> (Vec<Option<String>>, Vec<Option<String>>) {
    let batches = read_parquet(&workspace.path().join("out.parquet"));
    (
        string_column(&batches, "status"),
        string_column(&batches, "error_code"),
    )
}

#[test]
fn a_clock_jump_past_the_completion_window_resends_the_expired_rows_once() {
    let simulator = StandaloneSimulator::start(&[]);
    let (workspace, run_directory, output) = run_across_a_clock_jump(&simulator, "");
    assert_success(&output);
    let (statuses, _) = statuses(&workspace);
    assert_eq!(statuses.len(), 12);
    assert!(
        statuses
            .iter()
            .all(|status| status.as_deref() == Some("ok")),
        "{statuses:?}"
    );
    let ledger = simulator.ledger();
    let batch_statuses: Vec<&str> = ledger["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|batch| batch["status"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        batch_statuses,
        ["expired", "completed", "completed"],
        "two shards and one retry of the expired half: {ledger:#}"
    );
    assert_finished_cleanly(&simulator, &workspace, &run_directory, 12);
    assert_nothing_billed_twice(&simulator);
}

#[test]
fn a_clock_jump_past_the_completion_window_with_no_retries_left_marks_rows_expired() {
    let simulator = StandaloneSimulator::start(&[]);
    let (workspace, run_directory, output) =
        run_across_a_clock_jump(&simulator, "max_attempts = 1\n");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let (statuses, codes) = statuses(&workspace);
    let expired: Vec<usize> = statuses
        .iter()
        .enumerate()
        .filter(|(_, status)| status.as_deref() == Some("expired"))
        .map(|(index, _)| index)
        .collect();
    assert_eq!(expired.len(), 3, "half of the first shard: {statuses:?}");
    assert_eq!(
        statuses
            .iter()
            .filter(|status| status.as_deref() == Some("ok"))
            .count(),
        9,
        "{statuses:?}"
    );
    for index in expired {
        assert!(codes[index].is_some(), "an expired row says why: {codes:?}");
    }
    assert_eq!(batch_count(&simulator), 2, "nothing resent");
    assert_finished_cleanly(&simulator, &workspace, &run_directory, 12);
}
