//! Every job in `jobs/` runs end to end on the embedded simulator and gives one output row per
//! input row, in input order, with a cost report.

use std::path::Path;

use super::harness::*;

fn input_ids(csv_or_jsonl: &Path, id_column: &str) -> Vec<String> {
    let text = std::fs::read_to_string(csv_or_jsonl).unwrap();
    if csv_or_jsonl.extension().unwrap() == "jsonl" {
        return text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                value[id_column].as_str().unwrap().to_owned()
            })
            .collect();
    }
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let index = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == id_column)
        .unwrap();
    reader
        .records()
        .map(|record| record.unwrap()[index].to_owned())
        .collect()
}

fn run_job(job: &str) -> (Workspace, std::path::PathBuf, serde_json::Value) {
    let workspace = Workspace::new();
    let job_path = repository_root().join("jobs").join(job);
    let output = workspace.run(&["run", job_path.to_str().unwrap(), "--provider", "sim"]);
    assert_success(&output);
    let run_directory = workspace.single_run_directory();
    let report = read_report(&run_directory);
    (workspace, run_directory, report)
}

/// The output's `id_column` holds the input's ids (`input`, under the repository), in order;
/// returns them.
fn assert_rows_in_input_order(
    batches: &[arrow_array::RecordBatch],
    input: &str,
    id_column: &str,
) -> Vec<String> {
    let ids: Vec<String> = string_column(batches, id_column)
        .into_iter()
        .map(Option::unwrap)
        .collect();
    assert_eq!(ids, input_ids(&repository_root().join(input), id_column));
    ids
}

fn assert_report_is_complete(report: &serde_json::Value, rows: u64) {
    assert_eq!(report["rows"], rows);
    assert_eq!(report["rows_by_status"]["ok"], rows, "{report:#}");
    assert_eq!(report["currency"], "CNY");
    let cost: f64 = report["cost"].as_str().unwrap().parse().unwrap();
    let realtime: f64 = report["realtime_cost"].as_str().unwrap().parse().unwrap();
    assert!(cost > 0.0, "{report:#}");
    assert!(
        (realtime - 2.0 * cost).abs() < 1e-12,
        "batch is half of realtime: {report:#}"
    );
    assert!(report["tokens"]["prompt_tokens"].as_u64().unwrap() > rows);
}

#[test]
fn review_sentiment_job_writes_typed_labels_for_every_row() {
    let (_workspace, run_directory, report) = run_job("review-sentiment.toml");
    assert_report_is_complete(&report, 300);
    let batches = read_parquet(&run_directory.join("output.parquet"));
    let ids = assert_rows_in_input_order(&batches, "fixtures/reviews/zh_reviews.csv", "review_id");
    let custom_ids: Vec<String> = string_column(&batches, "custom_id")
        .into_iter()
        .map(Option::unwrap)
        .collect();
    assert_eq!(custom_ids, ids, "custom_id is the id column");
    for label in string_column(&batches, "sentiment") {
        assert!(
            matches!(label.as_deref(), Some("positive" | "negative" | "neutral")),
            "{label:?}"
        );
    }
    let schema = batches[0].schema();
    assert_eq!(
        schema.field_with_name("confidence").unwrap().data_type(),
        &arrow_schema::DataType::Float64
    );
    assert!(schema.field_with_name("source_label").is_ok());
    assert!(schema.field_with_name("text").is_ok());
    for status in string_column(&batches, "status") {
        assert_eq!(status.as_deref(), Some("ok"));
    }
}

#[test]
fn food_review_summary_job_writes_a_csv_with_every_row() {
    let (_workspace, run_directory, report) = run_job("food-review-summary.toml");
    assert_report_is_complete(&report, 300);
    let output = run_directory.join("output.csv");
    let mut reader = csv::Reader::from_path(&output).unwrap();
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "review_id");
    assert!(headers.iter().any(|h| h == "content"));
    assert!(headers.iter().any(|h| h == "cost"));
    let ids: Vec<String> = reader
        .records()
        .map(|record| record.unwrap()[0].to_owned())
        .collect();
    assert_eq!(
        ids,
        input_ids(
            &repository_root().join("fixtures/reviews/en_food_reviews.jsonl"),
            "review_id"
        )
    );
}

#[test]
fn image_labels_job_labels_every_sample_picture() {
    sample_images();
    let (_workspace, run_directory, report) = run_job("image-labels.toml");
    assert_report_is_complete(&report, 26);
    let batches = read_parquet(&run_directory.join("output.parquet"));
    assert_rows_in_input_order(&batches, "fixtures/images/sample-images.csv", "image_id");
    let labels = [
        "photograph",
        "microscopy",
        "astronomy",
        "texture",
        "graphic",
        "document",
        "test_pattern",
    ];
    for kind in string_column(&batches, "kind") {
        assert!(labels.contains(&kind.as_deref().unwrap()), "{kind:?}");
    }
    assert!(
        string_column(&batches, "caption")
            .iter()
            .all(|caption| caption.as_deref().is_some_and(|text| !text.is_empty()))
    );
}

#[test]
fn review_topics_parquet_job_spans_three_shards_in_input_order() {
    let (_workspace, run_directory, report) = run_job("review-topics-parquet.toml");
    assert_report_is_complete(&report, 300);
    assert_eq!(report["shards"].as_array().unwrap().len(), 3);
    let batches = read_parquet(&run_directory.join("output.parquet"));
    let custom_ids: Vec<String> = string_column(&batches, "custom_id")
        .into_iter()
        .map(Option::unwrap)
        .collect();
    let expected: Vec<String> = (1..=300).map(|n| n.to_string()).collect();
    assert_eq!(
        custom_ids, expected,
        "row numbers are the ids, in input order"
    );
    let batch_ids = string_column(&batches, "batch_id");
    assert_ne!(
        batch_ids[0], batch_ids[150],
        "different shards, different batches"
    );
}

#[test]
fn review_embeddings_job_writes_fixed_size_float32_vectors() {
    let (_workspace, run_directory, report) = run_job("review-embeddings.toml");
    assert_report_is_complete(&report, 300);
    assert_eq!(report["tokens"]["completion_tokens"], 0);
    let batches = read_parquet(&run_directory.join("output.parquet"));
    let field = batches[0]
        .schema()
        .field_with_name("embedding")
        .unwrap()
        .clone();
    match field.data_type() {
        arrow_schema::DataType::FixedSizeList(item, 256) => {
            assert_eq!(item.data_type(), &arrow_schema::DataType::Float32)
        }
        other => panic!("embedding column is {other:?}"),
    }
    let rows: usize = batches.iter().map(|batch| batch.num_rows()).sum();
    assert_eq!(rows, 300);
}

#[test]
fn every_job_in_the_jobs_directory_is_covered_here() {
    let mut jobs: Vec<String> = std::fs::read_dir(repository_root().join("jobs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".toml"))
        .collect();
    jobs.sort();
    let this_file = include_str!("jobs.rs");
    for job in jobs {
        assert!(
            this_file.contains(&format!("run_job(\"{job}\")")),
            "jobs/{job} has no test in tests/it/jobs.rs"
        );
    }
}
