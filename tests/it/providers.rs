//! The same job against a DashScope-shaped and an OpenAI-shaped simulator (`--provider openai`):
//! OpenAI has no `input_file_ids` filter, puts failed and expired lines in the error file, and
//! sends `model` and `usage` on the batch; the client must not care.

use serde_json::json;

use super::harness::*;
use super::invariants::*;

fn openai_run(plan: serde_json::Value) -> (Workspace, StandaloneSimulator, std::process::Output) {
    let simulator = StandaloneSimulator::start(&["--flavour", "openai"]);
    simulator.put_json("/_sim/faults", &plan);
    let workspace = review_workspace(18, 6, "");
    // An OpenAI-shaped API serves OpenAI's models, priced in USD by OpenAI's table.
    set_review_model(&workspace, "gpt-4.1-mini");
    let run_directory = workspace.path().join("run");
    let output = workspace
        .run_against(
            &simulator,
            "openai",
            "reviews.toml",
            &run_directory,
            &["--quiet"],
        )
        .env("OPENAI_API_KEY", SECRET_KEY)
        .output()
        .unwrap();
    (workspace, simulator, output)
}

#[test]
fn a_job_runs_against_an_openai_shaped_api() {
    let (workspace, simulator, output) = openai_run(json!({"routes": {}, "batches": []}));
    assert_success(&output);
    let (violations, notes) = check_finished_run(
        &simulator,
        &workspace.path().join("run"),
        &workspace.path().join("out.parquet"),
        &review_ids(18),
    );
    assert!(violations.is_clean(), "{notes}");
    assert!(simulator.base_url.ends_with("/v1") && !simulator.base_url.contains("compatible-mode"));
}

#[test]
fn a_lost_create_is_found_by_paging_without_the_dashscope_filter() {
    let (workspace, simulator, output) = openai_run(json!({
        "routes": { "create_batch": [{ "nth": 2, "kind": "drop_after_acting" }] },
        "batches": []
    }));
    assert_success(&output);
    assert_eq!(simulator.ledger()["batches"].as_array().unwrap().len(), 3);
    let (violations, notes) = check_finished_run(
        &simulator,
        &workspace.path().join("run"),
        &workspace.path().join("out.parquet"),
        &review_ids(18),
    );
    assert!(violations.is_clean(), "{notes}");
}

#[test]
fn expired_lines_in_the_openai_error_file_are_resent() {
    let (workspace, simulator, output) = openai_run(json!({
        "routes": {},
        "batches": [{ "batches": { "nth_batch": 1 }, "behaviour": { "expire_with_partial": { "done_fraction": 0.5 } } }]
    }));
    assert_success(&output);
    let (violations, notes) = check_finished_run(
        &simulator,
        &workspace.path().join("run"),
        &workspace.path().join("out.parquet"),
        &review_ids(18),
    );
    assert!(violations.is_clean(), "{notes}");
    assert_eq!(
        simulator.ledger()["batches"].as_array().unwrap().len(),
        4,
        "three shards and one retry"
    );
}

#[test]
fn openai_accepts_only_a_one_day_window() {
    let workspace = review_workspace(6, 6, "completion_window = \"48h\"\n");
    let output = workspace
        .command(&[
            "run",
            "reviews.toml",
            "--provider",
            "openai",
            "--base-url",
            "http://127.0.0.1:9/v1",
        ])
        .env("OPENAI_API_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("only `24h`"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_rehearsal_sends_every_row_to_the_free_test_model() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = review_workspace(150, 1000, "");
    let output =
        review_run_in_default_directory(&workspace, &simulator, &["--rehearse", "--quiet"])
            .output()
            .unwrap();
    assert_success(&output);
    let ledger = simulator.ledger();
    let batches = ledger["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 2, "150 rows in shards of at most 100 lines");
    let bills = ledger["billed_requests"].as_array().unwrap();
    assert_eq!(bills.len(), 150);
    assert!(
        bills
            .iter()
            .all(|bill| bill["free"] == true && bill["model"] == "batch-test-model")
    );
    let rows = read_parquet(&workspace.path().join("out.parquet"));
    let contents = string_column(&rows, "content");
    assert!(
        contents
            .iter()
            .all(|content| content.as_deref() == Some("This is a test result."))
    );
    let report = read_report(&workspace.single_run_directory());
    assert_eq!(report["cost"], "0.00", "{report:#}");
}

#[test]
fn openai_embeddings_without_dimensions_fill_the_model_s_own_vector_size() {
    let simulator = StandaloneSimulator::start(&["--flavour", "openai"]);
    let workspace = review_workspace(4, 4, "");
    workspace.write(
        "embed.toml",
        "name = \"embed\"\n[input]\npath = \"reviews.csv\"\nid_column = \"review_id\"\n[request]\nendpoint = \"/v1/embeddings\"\nmodel = \"text-embedding-3-small\"\ntemplate = \"{{ text }}\"\n[output]\npath = \"vectors.parquet\"\n",
    );
    let output = workspace
        .run_against(
            &simulator,
            "openai",
            "embed.toml",
            &workspace.path().join("run"),
            &["--quiet"],
        )
        .env("OPENAI_API_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert_success(&output);
    let batches = read_parquet(&workspace.path().join("vectors.parquet"));
    assert_eq!(
        string_column(&batches, "status"),
        vec![Some("ok".to_owned()); 4]
    );
    let field = batches[0]
        .schema()
        .field_with_name("embedding")
        .unwrap()
        .clone();
    assert_eq!(
        field.data_type(),
        &arrow_schema::DataType::FixedSizeList(
            std::sync::Arc::new(arrow_schema::Field::new(
                "item",
                arrow_schema::DataType::Float32,
                true
            )),
            1536
        ),
        "text-embedding-3-small returns 1536 values"
    );
}
