//! pandas, polars and DuckDB read dashbatch's Parquet, CSV and JSON Lines outputs as they are.
//! The Python environment is created by `scripts/python-env.sh` (from PyPI) on first use.

use std::process::Command;

use super::harness::*;

fn python() -> String {
    let output = Command::new("bash")
        .arg(repository_root().join("scripts/python-env.sh"))
        .output()
        .expect("run scripts/python-env.sh");
    assert!(
        output.status.success(),
        "python environment: {}",
        text(&output.stderr)
    );
    text(&output.stdout).trim().to_owned()
}

#[test]
fn pandas_polars_and_duckdb_read_every_output_format() {
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/edge/cjk_emoji.csv");
    let mut arguments = vec![
        repository_root()
            .join("tests/it/read_outputs.py")
            .display()
            .to_string(),
    ];
    for extension in ["parquet", "csv", "jsonl"] {
        workspace.write(
            &format!("job-{extension}.toml"),
            format!(
                "[input]\npath = \"cjk_emoji.csv\"\n[request]\nmodel = \"qwen-plus\"\ntemplate = \"{{{{ text }}}}\"\n[[output.fields]]\nname = \"mood\"\ntype = \"label\"\nlabels = [\"happy\", \"sad\"]\n[[output.fields]]\nname = \"stars\"\ntype = \"integer\"\n[output]\npath = \"out.{extension}\"\n"
            ),
        );
        assert_success(&workspace.run(&[
            "run",
            &format!("job-{extension}.toml"),
            "--provider",
            "sim",
            "--quiet",
        ]));
        arguments.push(
            workspace
                .path()
                .join(format!("out.{extension}"))
                .display()
                .to_string(),
        );
        arguments.push("8".to_owned());
    }
    let sentiment = Workspace::new();
    let job = repository_root().join("jobs/review-sentiment.toml");
    assert_success(&sentiment.run(&["run", job.to_str().unwrap(), "--provider", "sim", "--quiet"]));
    arguments.push(
        sentiment
            .single_run_directory()
            .join("output.parquet")
            .display()
            .to_string(),
    );
    arguments.push("300".to_owned());

    let output = Command::new(python())
        .args(&arguments)
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "readers failed:\n{}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let parquet = &report[arguments[1].as_str()];
    assert_eq!(parquet["pandas_dtypes"]["stars"], "int64", "{parquet:#}");
    assert_eq!(
        parquet["pandas_dtypes"]["reasoning_tokens"], "int64",
        "{parquet:#}"
    );
    assert_eq!(parquet["polars_dtypes"]["cost"], "Float64", "{parquet:#}");
    assert_eq!(parquet["polars_dtypes"]["mood"], "String", "{parquet:#}");
    // The request ids (random text) are stored as they are, which every reader above read
    // next to Snappy columns.
    assert_eq!(
        parquet["parquet_codecs"]["request_id"], "UNCOMPRESSED",
        "{parquet:#}"
    );
    assert_eq!(
        parquet["parquet_codecs"]["custom_id"], "SNAPPY",
        "{parquet:#}"
    );
    assert_eq!(parquet["parquet_codecs"]["mood"], "SNAPPY", "{parquet:#}");
}
