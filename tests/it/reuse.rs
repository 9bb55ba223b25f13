//! Answers paid for once are not paid for again: the answer store across runs (a nightly job
//! whose table is mostly yesterday's), deduplication inside a run, `--refresh`, `--no-store`,
//! and what `estimate` and `validate` count. Every check is through the real binary against one
//! standalone simulator, whose billing ledger says what was really paid.

use std::collections::BTreeMap;
use std::path::Path;

use super::harness::*;
use super::invariants::*;

/// A job over `rows.csv` (columns `id`, `text`) whose answers go to `answer_store`.
fn nightly_workspace(answer_store: &str) -> Workspace {
    let workspace = Workspace::new();
    workspace.write(
        "nightly.toml",
        format!(
            "name = \"nightly\"\n[input]\npath = \"rows.csv\"\nid_column = \"id\"\n[request]\nmodel = \"qwen-flash\"\ntemplate = \"Label this: {{{{ text }}}}\"\nmax_tokens = 20\n[reuse]\nstore = \"{answer_store}\"\n"
        ),
    );
    workspace
}

fn write_rows(workspace: &Workspace, rows: &[(String, String)]) {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(["id", "text"]).unwrap();
    for (id, text) in rows {
        writer.write_record([id, text]).unwrap();
    }
    workspace.write("rows.csv", writer.into_inner().unwrap());
}

struct Night {
    report: serde_json::Value,
    /// By custom_id: (status, answer_source, content, cost).
    rows: BTreeMap<String, (String, Option<String>, Option<String>, f64)>,
    /// custom_ids in output order.
    order: Vec<String>,
    /// custom_id → times the simulator billed it for this run.
    billed: BTreeMap<String, u64>,
    stderr: String,
}

fn run_night(
    workspace: &Workspace,
    simulator: &StandaloneSimulator,
    name: &str,
    extra: &[&str],
) -> Night {
    let run_directory = workspace.path().join(name);
    let output_path = workspace.path().join(format!("{name}.parquet"));
    let mut arguments = vec!["--output", output_path.to_str().unwrap(), "--quiet"];
    arguments.extend_from_slice(extra);
    let output = workspace
        .run_against(
            simulator,
            "dashscope",
            "nightly.toml",
            &run_directory,
            &arguments,
        )
        .env("DASHSCOPE_API_KEY", SECRET_KEY)
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "night {name}: {stderr}");
    night_of(workspace, simulator, &run_directory, &output_path, stderr)
}

fn night_of(
    _workspace: &Workspace,
    simulator: &StandaloneSimulator,
    run_directory: &Path,
    output_path: &Path,
    stderr: String,
) -> Night {
    let report = read_report(run_directory);
    let batches = read_parquet(output_path);
    let ids = string_column(&batches, "custom_id");
    let statuses = string_column(&batches, "status");
    let sources = string_column(&batches, "answer_source");
    let contents = string_column(&batches, "content");
    let mut costs = Vec::new();
    for batch in &batches {
        use arrow_array::cast::AsArray;
        let column = batch
            .column_by_name("cost")
            .unwrap()
            .as_primitive::<arrow_array::types::Float64Type>();
        costs.extend(column.iter().map(|cost| cost.unwrap_or(f64::NAN)));
    }
    let mut rows = BTreeMap::new();
    let mut order = Vec::new();
    for index in 0..ids.len() {
        let id = ids[index].clone().unwrap();
        order.push(id.clone());
        rows.insert(
            id,
            (
                statuses[index].clone().unwrap(),
                sources[index].clone(),
                contents[index].clone(),
                costs[index],
            ),
        );
    }
    let billed = billed_custom_ids(simulator, report["run_id"].as_str().unwrap());
    Night {
        report,
        rows,
        order,
        billed,
        stderr,
    }
}

/// `dashbatch store stats --json` of the store at `store` (relative to the workspace).
fn store_stats(workspace: &Workspace, store: &str) -> serde_json::Value {
    let stats = workspace.run(&["store", "stats", "--store", store, "--json"]);
    assert_success(&stats);
    serde_json::from_slice(&stats.stdout).unwrap()
}

fn texts(prefix: &str, count: usize) -> Vec<(String, String)> {
    (1..=count)
        .map(|n| {
            (
                format!("{prefix}{n:02}"),
                format!("评论 {prefix} 第{n}条：物流很快，包装完好"),
            )
        })
        .collect()
}

#[test]
fn a_nightly_rerun_pays_once_for_each_new_or_edited_request_and_reuses_the_rest() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = nightly_workspace("store/answers.sqlite");

    // Day 1: forty rows, all different.
    let day_one_rows = texts("r", 40);
    write_rows(&workspace, &day_one_rows);
    let day_one = run_night(&workspace, &simulator, "day1", &[]);
    assert_eq!(day_one.billed.len(), 40, "{}", day_one.stderr);
    assert!(day_one.billed.values().all(|count| *count == 1));
    assert!(
        day_one
            .rows
            .values()
            .all(|(status, source, _, _)| status == "ok" && source.as_deref() == Some("batch"))
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(workspace.path().join("store/answers.sqlite"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the store holds answers: owner only");
    }

    // Day 2: rows 1-30 unchanged, 31-35 edited, 36-40 gone; five new rows; n06 and n07 repeat
    // n01, n08 repeats yesterday's r03, n09 repeats today's edited r31.
    let mut day_two_rows: Vec<(String, String)> = day_one_rows[..30].to_vec();
    for (id, text) in &day_one_rows[30..35] {
        day_two_rows.push((id.clone(), format!("{text}（已修改）")));
    }
    let new_rows = texts("n", 5);
    day_two_rows.extend(new_rows.iter().cloned());
    day_two_rows.push(("n06".into(), new_rows[0].1.clone()));
    day_two_rows.push(("n07".into(), new_rows[0].1.clone()));
    day_two_rows.push(("n08".into(), day_one_rows[2].1.clone()));
    day_two_rows.push(("n09".into(), day_two_rows[30].1.clone()));
    write_rows(&workspace, &day_two_rows);

    // Before spending, estimate and validate count only what would be sent.
    let estimate = workspace.run(&[
        "estimate",
        "nightly.toml",
        "--provider",
        "dashscope",
        "--base-url",
        &simulator.base_url,
        "--json",
    ]);
    assert_success(&estimate);
    let estimate: serde_json::Value = serde_json::from_slice(&estimate.stdout).unwrap();
    assert_eq!(
        (
            &estimate["rows"],
            &estimate["rows_from_store"],
            &estimate["rows_deduplicated"]
        ),
        (&10.into(), &31.into(), &3.into()),
        "{estimate}"
    );
    let validate = workspace.run(&[
        "validate",
        "nightly.toml",
        "--provider",
        "dashscope",
        "--base-url",
        &simulator.base_url,
    ]);
    assert_success(&validate);
    assert!(
        text(&validate.stdout).contains("31 more row(s) would be answered from the answer store and 3 more repeat another row's request"),
        "{}",
        text(&validate.stdout)
    );

    let day_two = run_night(&workspace, &simulator, "day2", &[]);
    // Exactly one billed request per distinct new or edited request.
    let expected_billed: Vec<String> = [
        "r31", "r32", "r33", "r34", "r35", "n01", "n02", "n03", "n04", "n05",
    ]
    .iter()
    .map(|id| id.to_string())
    .collect();
    assert_eq!(
        day_two.billed.keys().cloned().collect::<Vec<_>>(),
        {
            let mut sorted = expected_billed.clone();
            sorted.sort();
            sorted
        },
        "{}",
        day_two.stderr
    );
    assert!(day_two.billed.values().all(|count| *count == 1));
    // Every day-2 row, in input order, ok.
    assert_eq!(
        day_two.order,
        day_two_rows
            .iter()
            .map(|(id, _)| id.clone())
            .collect::<Vec<_>>()
    );
    let source = |id: &str| day_two.rows[id].1.clone().unwrap();
    for (id, (status, _, _, _)) in &day_two.rows {
        assert_eq!(status, "ok", "row {id}");
    }
    for (id, _) in &day_one_rows[..30] {
        assert_eq!(source(id), "store", "row {id}");
        // Unchanged rows carry day 1's answers, at no cost today.
        assert_eq!(day_two.rows[id].2, day_one.rows[id].2, "row {id}");
        assert_eq!(day_two.rows[id].3, 0.0, "row {id}");
    }
    for id in &expected_billed {
        assert_eq!(source(id), "batch", "row {id}");
    }
    assert_eq!(source("n06"), "dedup");
    assert_eq!(source("n07"), "dedup");
    assert_eq!(day_two.rows["n06"].2, day_two.rows["n01"].2);
    assert_eq!(source("n08"), "store");
    assert_eq!(day_two.rows["n08"].2, day_one.rows["r03"].2);
    assert_eq!(source("n09"), "dedup");
    assert_eq!(day_two.rows["n09"].2, day_two.rows["r31"].2);
    let reuse = &day_two.report["reuse"];
    assert_eq!(reuse["requests_sent"], 10, "{reuse}");
    assert_eq!(reuse["rows_from_store"], 31, "{reuse}");
    assert_eq!(reuse["rows_deduplicated"], 3, "{reuse}");
    assert!(reuse["saved"].as_str().unwrap().parse::<f64>().unwrap() > 0.0);
    let (violations, notes) = check_finished_run(
        &simulator,
        &workspace.path().join("day2"),
        &workspace.path().join("day2.parquet"),
        &day_two.order,
    );
    assert!(violations.is_clean(), "{violations:?}: {notes}");

    // `--refresh` sends every distinct request again (repeats still once) and keeps the store.
    let refreshed = run_night(&workspace, &simulator, "day2-refresh", &["--refresh"]);
    assert_eq!(refreshed.billed.len(), 40, "{}", refreshed.stderr);
    assert!(
        refreshed
            .rows
            .values()
            .all(|(status, source, _, _)| status == "ok"
                && matches!(source.as_deref(), Some("batch" | "dedup")))
    );
    // `--no-store` reads nothing from it either.
    let unstored = run_night(&workspace, &simulator, "day2-no-store", &["--no-store"]);
    assert_eq!(unstored.billed.len(), 40);
    assert_eq!(
        unstored.report["reuse"]["answer_store"],
        serde_json::Value::Null
    );

    // A changed template is another request: nothing is reused.
    let job = std::fs::read_to_string(workspace.path().join("nightly.toml")).unwrap();
    workspace.write(
        "nightly.toml",
        job.replace("Label this:", "Label this row:"),
    );
    let changed = run_night(&workspace, &simulator, "day2-new-template", &[]);
    assert_eq!(changed.billed.len(), 40);
    assert_eq!(changed.report["reuse"]["rows_from_store"], 0);

    // The store answers `stats` and `export`, and holds only `ok` answers.
    let stats = store_stats(&workspace, "store/answers.sqlite");
    // Day 1's 40, day 2's 10 new, and the new template's 40 (`--refresh` replaced, not added).
    assert_eq!(stats["answers"], 90, "{stats}");
    let exported = workspace.run(&[
        "store",
        "export",
        "--store",
        "store/answers.sqlite",
        "--job",
        "nightly",
    ]);
    assert_success(&exported);
    let lines: Vec<serde_json::Value> = text(&exported.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 90);
    assert!(
        lines
            .iter()
            .all(|line| line["result"]["response"]["status_code"] == 200)
    );
}

#[test]
fn with_deduplicate_off_every_row_is_sent_and_a_store_that_is_not_one_is_refused_before_upload() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = nightly_workspace("answers.sqlite");
    let job = std::fs::read_to_string(workspace.path().join("nightly.toml")).unwrap();
    workspace.write("nightly.toml", format!("{job}deduplicate = false\n"));
    let rows = vec![
        ("a".to_owned(), "同一句话".to_owned()),
        ("b".to_owned(), "同一句话".to_owned()),
        ("c".to_owned(), "同一句话".to_owned()),
    ];
    write_rows(&workspace, &rows);
    // Every row is its own sample, tonight and tomorrow: the store is not used at all.
    for name in ["samples", "samples-again"] {
        let night = run_night(&workspace, &simulator, name, &[]);
        assert_eq!(night.billed.len(), 3, "{name}");
        assert!(
            night
                .rows
                .values()
                .all(|row| row.1.as_deref() == Some("batch"))
        );
        assert_eq!(
            night.report["reuse"]["answer_store"],
            serde_json::Value::Null
        );
    }
    assert!(!workspace.path().join("answers.sqlite").exists());
    workspace.write("nightly.toml", job.clone());

    // A store file that is not a store: exit 2, nothing uploaded, says what to do.
    workspace.write(
        "answers.sqlite",
        "not a database at all, just text that is long enough",
    );
    let before = simulator.ledger()["batches"].as_array().unwrap().len();
    let output = workspace
        .run_against(
            &simulator,
            "dashscope",
            "nightly.toml",
            &workspace.path().join("refused"),
            &["--quiet"],
        )
        .env("DASHSCOPE_API_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("not an answer store"), "{stderr}");
    assert!(stderr.contains("[reuse] store"), "{stderr}");
    assert_eq!(
        simulator.ledger()["batches"].as_array().unwrap().len(),
        before
    );
}

/// Runs `run` with `DASHBATCH_STORE` set to `store` and expects exit 2 with `words`, nothing
/// uploaded and no run directory left behind.
fn refused_with_store(
    workspace: &Workspace,
    simulator: &StandaloneSimulator,
    store: &str,
    extra: &[&str],
    words: &str,
) {
    let before = simulator.ledger()["batches"].as_array().unwrap().len();
    let run_directory = workspace.path().join("refused-run");
    let mut arguments = vec!["--quiet"];
    arguments.extend_from_slice(extra);
    let output = workspace
        .run_against(
            simulator,
            "dashscope",
            "nightly.toml",
            &run_directory,
            &arguments,
        )
        .env("DASHSCOPE_API_KEY", SECRET_KEY)
        .env("DASHBATCH_STORE", store)
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "store `{store}`: {stderr}");
    assert!(stderr.contains(words), "store `{store}`: {stderr}");
    assert_eq!(
        simulator.ledger()["batches"].as_array().unwrap().len(),
        before,
        "store `{store}`"
    );
    assert!(
        !run_directory.exists(),
        "store `{store}` left a run directory"
    );
}

#[test]
fn a_store_that_is_the_output_the_input_or_another_database_is_refused_before_upload() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = nightly_workspace("answers.sqlite");
    write_rows(&workspace, &texts("h", 4));
    let first = run_night(&workspace, &simulator, "first", &[]);
    assert_eq!(first.billed.len(), 4);
    // A damaged stored answer is no answer: that one row is sent again, the others reused.
    rusqlite::Connection::open(workspace.path().join("answers.sqlite"))
        .unwrap()
        .execute(
            "UPDATE answers SET result_line = '{\"not\": \"a result line\"}' WHERE rowid = (SELECT MIN(rowid) FROM answers)",
            [],
        )
        .unwrap();
    let second = run_night(&workspace, &simulator, "second", &[]);
    assert_eq!(second.billed.len(), 1, "{}", second.stderr);
    assert_eq!(second.report["reuse"]["rows_from_store"], 3);
    let output = workspace.path().join("same.parquet");
    let output = output.to_str().unwrap();
    refused_with_store(
        &workspace,
        &simulator,
        output,
        &["--output", output],
        "is the run's output",
    );
    refused_with_store(
        &workspace,
        &simulator,
        "rows.csv",
        &[],
        "is the job's input",
    );
    // A run's ledger is an SQLite database of something else: never written into.
    let ledger = workspace.path().join("first/ledger.sqlite");
    refused_with_store(
        &workspace,
        &simulator,
        ledger.to_str().unwrap(),
        &[],
        "not an answer store",
    );
    refused_with_store(
        &workspace,
        &simulator,
        workspace.path().to_str().unwrap(),
        &[],
        "not a regular file",
    );

    // `[reuse] store = "off"` is a word, not a file name.
    let job = std::fs::read_to_string(workspace.path().join("nightly.toml")).unwrap();
    workspace.write("nightly.toml", job.replace("\"answers.sqlite\"", "\"off\""));
    let output = workspace.run(&["validate", "nightly.toml", "--provider", "sim"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("store = false"),
        "{}",
        text(&output.stderr)
    );
    workspace.write("nightly.toml", &job);

    // `store export` never writes over the store; ages too long are refused, not a crash.
    let export = workspace.run(&[
        "store",
        "export",
        "--store",
        "answers.sqlite",
        "--output",
        "answers.sqlite",
    ]);
    assert_eq!(export.status.code(), Some(2), "{}", text(&export.stderr));
    let stats = store_stats(&workspace, "answers.sqlite");
    assert_eq!(stats["answers"], 4);
    let prune = workspace.run(&[
        "store",
        "prune",
        "--store",
        "answers.sqlite",
        "--older-than",
        "9999999999999999d",
    ]);
    assert_eq!(prune.status.code(), Some(2), "{}", text(&prune.stderr));
    let prune = workspace.run(&[
        "store",
        "prune",
        "--store",
        "answers.sqlite",
        "--older-than",
        "100000000d",
    ]);
    assert_success(&prune);
    assert!(
        text(&prune.stdout).contains("removed 0 answer(s)"),
        "{}",
        text(&prune.stdout)
    );
    let missing = workspace.run(&["store", "stats", "--store", "nowhere.sqlite", "--json"]);
    assert_success(&missing);
    let missing: serde_json::Value = serde_json::from_slice(&missing.stdout).unwrap();
    assert_eq!(
        (&missing["answers"], &missing["jobs"]),
        (&0.into(), &serde_json::json!([]))
    );

    // The user's default store unreadable: `estimate` goes on without it and says so.
    let cache = workspace.path().join(".cache/dashbatch");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(
        cache.join("answers.sqlite"),
        "text, not a database, long enough to be read as one",
    )
    .unwrap();
    workspace.write(
        "nightly.toml",
        job.replace("store = \"answers.sqlite\"", "store = true"),
    );
    let estimate = workspace.run(&["estimate", "nightly.toml", "--provider", "sim"]);
    assert_success(&estimate);
    assert!(
        text(&estimate.stdout).contains("warning:"),
        "{}",
        text(&estimate.stdout)
    );
}

#[test]
fn the_summary_says_what_was_reused_and_prune_by_last_use_makes_the_next_run_pay_again() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = nightly_workspace("answers.sqlite");
    write_rows(&workspace, &texts("p", 3));
    assert_eq!(
        run_night(&workspace, &simulator, "first", &[]).billed.len(),
        3
    );
    // Without `--quiet`, the printed summary says what reuse did.
    let output = workspace
        .run_against(
            &simulator,
            "dashscope",
            "nightly.toml",
            &workspace.path().join("second"),
            &[],
        )
        .env("DASHSCOPE_API_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert_success(&output);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("reused: 3 row(s) from the answer store, 0 row(s) repeating another row's request; 0 request(s) sent; reuse saved"),
        "{stderr}"
    );
    // Used within the hour: kept; not used for 0 minutes: every answer goes.
    let keep = workspace.run(&[
        "store",
        "prune",
        "--store",
        "answers.sqlite",
        "--unused-for",
        "1h",
    ]);
    assert_success(&keep);
    assert!(
        text(&keep.stdout).contains("removed 0 answer(s)"),
        "{}",
        text(&keep.stdout)
    );
    let drop = workspace.run(&[
        "store",
        "prune",
        "--store",
        "answers.sqlite",
        "--unused-for",
        "0m",
    ]);
    assert_success(&drop);
    assert!(
        text(&drop.stdout).contains("removed 3 answer(s)"),
        "{}",
        text(&drop.stdout)
    );
    assert_eq!(
        run_night(&workspace, &simulator, "third", &[]).billed.len(),
        3
    );
}

#[test]
fn repeats_thousands_of_rows_apart_are_sent_once_and_copied_and_every_sent_request_is_stored() {
    // The debug binary keeps 2,048 keys in memory before spilling them to disk in sorted runs,
    // merged sixteen at a time on a thread of their own: 34,000 distinct requests make sixteen
    // runs, merged into one, and the repeats at the end find their first rows in the merged
    // run or its runs (rows 1 to 32,768), in the run after it, or in memory.
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = nightly_workspace("store/answers.sqlite");
    let mut rows = texts("r", 34_000);
    let repeated = [1_usize, 100, 4_000, 16_500, 32_768, 33_999, 34_000];
    for (index, first) in repeated.iter().enumerate() {
        rows.push((format!("again{index}"), rows[first - 1].1.clone()));
    }
    write_rows(&workspace, &rows);
    let night = run_night(&workspace, &simulator, "big", &[]);
    assert_eq!(night.billed.len(), 34_000, "{}", night.stderr);
    assert!(night.billed.values().all(|times| *times == 1));
    assert_eq!(night.report["reuse"]["rows_deduplicated"], 7);
    for (index, first) in repeated.iter().enumerate() {
        let again = format!("again{index}");
        let first_id = &rows[first - 1].0;
        assert_eq!(night.rows[&again].0, "ok");
        assert_eq!(night.rows[&again].1.as_deref(), Some("dedup"), "{again}");
        assert_eq!(night.rows[&again].2, night.rows[first_id].2, "{again}");
        assert!(night.billed.contains_key(first_id), "{first_id}");
        assert!(!night.billed.contains_key(&again), "{again}");
    }
    let stats = store_stats(&workspace, "store/answers.sqlite");
    assert_eq!(stats["answers"], 34_000, "{stats}");
}
