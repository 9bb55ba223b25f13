//! `dashbatch estimate`: expected and upper-bound costs for every job in jobs/, at batch and
//! realtime price, with the assumptions; clear errors for an unpriced model; no bound without
//! `max_tokens`.

use super::harness::*;

fn jobs() -> Vec<String> {
    let mut jobs: Vec<String> = std::fs::read_dir(repository_root().join("jobs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".toml"))
        .collect();
    jobs.sort();
    assert!(jobs.len() >= 3, "{jobs:?}");
    jobs
}

fn exact(text: &serde_json::Value) -> i128 {
    parse_exact_amount(text.as_str().unwrap_or_else(|| panic!("an amount: {text}")))
}

/// Parses decimal text exactly into femto-units (1e-15), independently of dashbatch's own code.
pub fn parse_exact_amount(text: &str) -> i128 {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    assert!(fraction.len() <= 15, "{text}");
    let padded = format!("{fraction:0<15}");
    whole.parse::<i128>().unwrap() * 1_000_000_000_000_000 + padded.parse::<i128>().unwrap()
}

#[test]
fn estimate_prints_expected_and_upper_bound_costs_for_every_job_in_jobs() {
    let vocabulary = super::tokens::qwen_vocabulary();
    sample_images();
    let workspace = Workspace::new();
    for job in jobs() {
        let job_path = repository_root().join("jobs").join(&job);
        let table = workspace.run(&["estimate", job_path.to_str().unwrap()]);
        assert_success(&table);
        let table_text = text(&table.stdout);
        for words in [
            "expected (batch)",
            "upper bound (batch)",
            "upper bound (realtime)",
            "total",
            "Assumptions:",
            if job.contains("embeddings") {
                "Embeddings have no output tokens"
            } else {
                "Upper-bound output: every answer is as long as it may be: `max_tokens`"
            },
            "No network calls were made",
        ] {
            assert!(
                table_text.contains(words),
                "{job}: no `{words}` in\n{table_text}"
            );
        }
        assert!(table_text.contains("heuristic"), "{table_text}");

        for arguments in [
            vec!["estimate", job_path.to_str().unwrap(), "--json"],
            vec![
                "estimate",
                job_path.to_str().unwrap(),
                "--json",
                "--tokenizer",
                vocabulary.to_str().unwrap(),
            ],
        ] {
            let output = workspace.run(&arguments);
            assert_success(&output);
            let estimate: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            let rows = if job == "image-labels.toml" { 26 } else { 300 };
            assert_eq!(estimate["rows"], rows, "{job}");
            assert_eq!(estimate["currency"], "CNY");
            assert_eq!(estimate["exact_token_counts"], arguments.len() == 5);
            let total = &estimate["total"];
            let expected_batch = exact(&total["expected_cost"]["batch"]);
            let upper_batch = exact(&total["upper_bound_cost"]["batch"]);
            assert!(
                expected_batch > 0 && upper_batch > expected_batch,
                "{estimate:#}"
            );
            assert_eq!(
                exact(&total["expected_cost"]["realtime"]),
                2 * expected_batch
            );
            assert_eq!(
                exact(&total["upper_bound_cost"]["realtime"]),
                2 * upper_batch
            );
            let shards = estimate["shards"].as_array().unwrap();
            let shard_sum: i128 = shards
                .iter()
                .map(|shard| exact(&shard["upper_bound_cost"]["batch"]))
                .sum();
            assert_eq!(shard_sum, upper_batch, "the total is the sum of the shards");
            assert!(!estimate["assumptions"].as_array().unwrap().is_empty());
            if job == "review-topics-parquet.toml" {
                assert_eq!(shards.len(), 3);
            }
        }
    }
}

#[test]
fn an_unpriced_model_is_an_error_unless_a_price_file_gives_it() {
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/edge/cjk_emoji.csv");
    workspace.write(
        "job.toml",
        "[input]\npath = \"cjk_emoji.csv\"\n[request]\nmodel = \"sim-unpriced\"\ntemplate = \"{{ text }}\"\nmax_tokens = 20\n",
    );
    let output = workspace.run(&["estimate", "job.toml"]);
    assert_eq!(output.status.code(), Some(2));
    let message = text(&output.stderr);
    for words in [
        "job.toml",
        "request.model",
        "no price for model `sim-unpriced`",
        "--prices FILE",
    ] {
        assert!(message.contains(words), "no `{words}` in {message}");
    }
    workspace.write(
        "prices.toml",
        "[models.sim-unpriced]\ncurrency = \"USD\"\ninput = 0.3\noutput = 1.2\n",
    );
    let capped = workspace.run(&["run", "job.toml", "--provider", "sim", "--max-cost", "1"]);
    assert_eq!(capped.status.code(), Some(2));
    assert!(
        text(&capped.stderr).contains("a budget cap needs the model's price"),
        "{}",
        text(&capped.stderr)
    );
    // A USD price is for a provider that bills in USD.
    let wrong_currency = workspace.run(&["estimate", "job.toml", "--prices", "prices.toml"]);
    assert_eq!(wrong_currency.status.code(), Some(2));
    assert!(
        text(&wrong_currency.stderr).contains("is in USD, but this provider bills in CNY"),
        "{}",
        text(&wrong_currency.stderr)
    );
    let priced = workspace.run(&[
        "estimate",
        "job.toml",
        "--prices",
        "prices.toml",
        "--provider",
        "openai",
        "--json",
    ]);
    assert_success(&priced);
    let estimate: serde_json::Value = serde_json::from_slice(&priced.stdout).unwrap();
    assert_eq!(estimate["currency"], "USD");
    assert_eq!(estimate["rows"], 8);
}

#[test]
fn a_vocabulary_that_is_not_qwen_tiktoken_is_refused_never_ignored() {
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/edge/cjk_emoji.csv");
    workspace.write(
        "job.toml",
        "[input]\npath = \"cjk_emoji.csv\"\n[request]\nmodel = \"qwen-plus\"\ntemplate = \"{{ text }}\"\nmax_tokens = 20\n\n[estimate]\ntokenizer = \"missing/qwen.tiktoken\"\n",
    );
    workspace.write("not-a-vocabulary.txt", "hello world\n");
    for (arguments, words) in [
        (
            vec!["estimate", "job.toml"],
            vec![
                "`[estimate] tokenizer` in the job file",
                "missing/qwen.tiktoken",
                "dashbatch tokenizer install",
            ],
        ),
        (
            vec![
                "estimate",
                "job.toml",
                "--tokenizer",
                "not-a-vocabulary.txt",
            ],
            vec![
                "`--tokenizer`",
                "not-a-vocabulary.txt",
                "line 1",
                "not a Qwen tokenizer vocabulary",
            ],
        ),
    ] {
        let output = workspace.run(&arguments);
        assert_eq!(output.status.code(), Some(2), "{arguments:?}");
        let message = text(&output.stderr);
        for word in words {
            assert!(message.contains(word), "no `{word}` in {message}");
        }
    }
    let from_environment = workspace
        .command(&["estimate", "job.toml"])
        .env("DASHBATCH_TOKENIZER", "not-a-vocabulary.txt")
        .output()
        .unwrap();
    assert_eq!(from_environment.status.code(), Some(2));
    assert!(text(&from_environment.stderr).contains("DASHBATCH_TOKENIZER"));
}

#[test]
fn without_max_tokens_there_is_no_upper_bound_and_a_cap_cannot_be_kept() {
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/edge/cjk_emoji.csv");
    workspace.write(
        "job.toml",
        "[input]\npath = \"cjk_emoji.csv\"\n[request]\nmodel = \"qwen-plus\"\ntemplate = \"{{ text }}\"\n",
    );
    let output = workspace.run(&["estimate", "job.toml"]);
    assert_success(&output);
    let table_text = text(&output.stdout);
    assert!(table_text.contains("No upper bound"), "{table_text}");
    assert!(table_text.contains("unbounded"), "{table_text}");
    let refused = workspace.run(&["run", "job.toml", "--provider", "sim", "--max-cost", "1"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    let message = text(&refused.stderr);
    assert!(
        message.contains("cannot be enforced") && message.contains("request.max_tokens"),
        "{message}"
    );

    workspace.write(
        "prices.toml",
        "[models.qwen-plus]\ncurrency = \"CNY\"\ninput = 0.8\noutput = 2\nmax_output_tokens = 1000\n",
    );
    let capped = workspace.run(&["estimate", "job.toml", "--prices", "prices.toml", "--json"]);
    assert_success(&capped);
    let estimate: serde_json::Value = serde_json::from_slice(&capped.stdout).unwrap();
    assert_eq!(estimate["total"]["max_output_tokens"], 8 * 1000);
}
