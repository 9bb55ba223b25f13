//! Cost truth through the real binary: every job in `jobs/` is estimated and run against the
//! simulator as each provider (DashScope Beijing in CNY, Singapore in USD, OpenAI in USD), and the
//! report's total is recomputed here, independently of dashbatch's price tables, from the figures
//! of `shared/reference/prices-and-vision.md` and the simulator's own billing record. Also
//! `dashbatch prices`, and a price in the wrong currency refused before anything is spent.

use serde_json::Value;

use super::harness::*;
use super::invariants::SECRET_KEY;

/// Realtime prices per 1M tokens from the reference, in units of 1/10,000 of the currency:
/// (provider, model, input, output). Every job's prompts are far inside the first tier.
const REFERENCE_FIRST_TIER_PRICES: &[(&str, &str, u128, u128)] = &[
    // §1a Beijing, CNY
    ("dashscope", "qwen-flash", 1_500, 15_000),
    ("dashscope", "qwen-plus", 8_000, 20_000),
    ("dashscope", "qwen-turbo", 3_000, 6_000),
    ("dashscope", "text-embedding-v4", 5_000, 0),
    ("dashscope", "qwen3-vl-flash", 1_500, 15_000),
    // §1b Singapore, USD
    ("dashscope-intl", "qwen-flash", 500, 4_000),
    ("dashscope-intl", "qwen-plus", 4_000, 12_000),
    ("dashscope-intl", "qwen-turbo", 500, 2_000),
    ("dashscope-intl", "text-embedding-v4", 700, 0),
    ("dashscope-intl", "qwen3-vl-flash", 500, 4_000),
    // §2 OpenAI, USD
    ("openai", "gpt-4.1-mini", 4_000, 16_000),
    ("openai", "text-embedding-3-small", 200, 0),
];

/// The job file as run for `provider`: inputs found from anywhere, and for OpenAI an OpenAI
/// model (and the only window OpenAI accepts).
fn job_for_provider(workspace: &Workspace, job: &str, provider: &str) -> std::path::PathBuf {
    let fixtures = repository_root().join("fixtures");
    let mut text = std::fs::read_to_string(repository_root().join("jobs").join(job))
        .unwrap()
        .replace("\"../fixtures/", &format!("\"{}/", fixtures.display()));
    if provider == "openai" {
        for (qwen, openai) in [
            ("\"qwen-flash\"", "\"gpt-4.1-mini\""),
            ("\"qwen-plus\"", "\"gpt-4.1-mini\""),
            ("\"qwen-turbo\"", "\"gpt-4.1-mini\""),
            ("\"text-embedding-v4\"", "\"text-embedding-3-small\""),
            ("\"qwen3-vl-flash\"", "\"gpt-4.1-mini\""),
        ] {
            text = text.replace(&format!("model = {qwen}"), &format!("model = {openai}"));
        }
        text = text
            .replace("enable_thinking = false\n", "")
            .replace("completion_window = \"48h\"", "completion_window = \"24h\"");
    }
    workspace.write(&format!("{provider}-{job}"), text)
}

/// What the simulator billed for the run, priced from the reference figures at batch price
/// (half), in units of 1e-10 of the currency, which holds every such cost exactly.
fn reference_cost(simulator: &StandaloneSimulator, provider: &str, run_id: &str) -> (u128, u64) {
    let ledger = simulator.ledger();
    let run_batches = super::invariants::batch_ids_of_run(&ledger, run_id);
    let mut total = 0u128;
    let mut requests = 0u64;
    for bill in ledger["billed_requests"].as_array().unwrap() {
        if !run_batches.iter().any(|id| bill["batch_id"] == id.as_str()) {
            continue;
        }
        let model = bill["model"].as_str().unwrap();
        let &(_, _, input, output) = REFERENCE_FIRST_TIER_PRICES
            .iter()
            .find(|(for_provider, priced, ..)| *for_provider == provider && *priced == model)
            .unwrap_or_else(|| panic!("no reference price for {model} with {provider}"));
        let prompt = u128::from(bill["prompt_tokens"].as_u64().unwrap());
        let completion = u128::from(bill["completion_tokens"].as_u64().unwrap());
        assert!(prompt < 32_768, "the first tier holds every prompt");
        // tokens × (price per 1M in 1e-4) = cost in 1e-10; batch is half: ×5 then ÷10 keeps it whole.
        let realtime_1e10 = prompt * input + completion * output;
        assert_eq!(realtime_1e10 % 2, 0, "half of it stays whole in 1e-10");
        total += realtime_1e10 / 2;
        requests += 1;
    }
    (total, requests)
}

/// A decimal amount as a whole number of 1e-10 units (it must have no finer digits).
fn in_ten_billionths(decimal: &str) -> u128 {
    let (whole, fraction) = decimal.split_once('.').unwrap_or((decimal, ""));
    assert!(fraction.len() <= 10 || fraction[10..].chars().all(|digit| digit == '0'));
    let fraction: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(10)
        .collect();
    whole.parse::<u128>().unwrap() * 10_000_000_000 + fraction.parse::<u128>().unwrap()
}

fn run_as(provider: &str, job: &str) -> (Value, Value, u128, u64) {
    let flavour = if provider == "openai" {
        "openai"
    } else {
        "dashscope"
    };
    let simulator = StandaloneSimulator::start(&["--flavour", flavour]);
    let workspace = Workspace::new();
    let job_file = job_for_provider(&workspace, job, provider);
    let key_variable = if provider == "openai" {
        "OPENAI_API_KEY"
    } else {
        "DASHSCOPE_API_KEY"
    };
    let estimated = workspace.run(&[
        "estimate",
        job_file.to_str().unwrap(),
        "--provider",
        provider,
        "--json",
    ]);
    assert_success(&estimated);
    let estimate: Value = serde_json::from_slice(&estimated.stdout).unwrap();
    let run_directory = workspace.path().join("run");
    let output = workspace
        .run_against(
            &simulator,
            provider,
            job_file.to_str().unwrap(),
            &run_directory,
            &["--quiet"],
        )
        .env(key_variable, SECRET_KEY)
        .output()
        .unwrap();
    assert_success(&output);
    let report = read_report(&run_directory);
    let (reference, requests) =
        reference_cost(&simulator, provider, report["run_id"].as_str().unwrap());
    (estimate, report, reference, requests)
}

#[test]
fn every_job_is_estimated_and_billed_in_each_provider_s_currency_at_the_reference_prices() {
    let mut jobs: Vec<String> = std::fs::read_dir(repository_root().join("jobs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".toml"))
        .collect();
    jobs.sort();
    assert!(jobs.len() >= 4);
    sample_images();
    for (provider, currency, table) in [
        ("dashscope", "CNY", "DashScope Beijing (CNY)"),
        ("dashscope-intl", "USD", "DashScope Singapore (USD)"),
        ("openai", "USD", "OpenAI (USD)"),
    ] {
        for job in &jobs {
            let (estimate, report, reference, requests) = run_as(provider, job);
            let context = format!("{job} with {provider}");
            assert_eq!(estimate["currency"], currency, "{context}");
            assert_eq!(report["currency"], currency, "{context}");
            assert_eq!(report["price"]["table"], table, "{context}");
            assert!(report["price"]["source"].as_str().is_some(), "{context}");
            assert!(report["price"]["as_of"].as_str().is_some(), "{context}");
            assert!(requests > 0, "{context}");
            assert_eq!(
                in_ten_billionths(report["cost"].as_str().unwrap()),
                reference,
                "{context}: the report's total against the reference figures"
            );
            let priced_requests: u64 = report["shards"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|shard| {
                    shard["billed_requests_by_price_tier"]
                        .as_object()
                        .unwrap()
                        .values()
                        .map(|count| count.as_u64().unwrap())
                        .collect::<Vec<_>>()
                })
                .sum();
            assert_eq!(
                priced_requests, requests,
                "{context}: every billed request names its tier"
            );
        }
    }
}

#[test]
fn prices_shows_each_provider_s_table_and_one_model_in_full() {
    let workspace = Workspace::new();
    let beijing = workspace.run(&["prices"]);
    assert_success(&beijing);
    let listing = text(&beijing.stdout);
    assert!(
        listing.starts_with("DashScope Beijing (CNY) prices"),
        "{listing}"
    );
    assert!(listing.contains("qwen3.6-plus"), "{listing}");

    let plus = workspace.run(&["prices", "qwen-plus"]);
    assert_success(&plus);
    let plus_text = text(&plus.stdout);
    for words in [
        "DashScope Beijing (CNY)",
        "evidence: DOC",
        "0–131,072",
        "8.00",
        "source: P1",
    ] {
        assert!(plus_text.contains(words), "no `{words}` in {plus_text}");
    }

    let singapore = workspace.run(&[
        "prices",
        "--provider",
        "dashscope-intl",
        "qwen-plus",
        "--json",
    ]);
    assert_success(&singapore);
    let json: Value = serde_json::from_slice(&singapore.stdout).unwrap();
    assert_eq!(json["currency"], "USD");
    assert_eq!(json["tiers"][0]["batch"]["input"], "0.20");
    assert_eq!(json["evidence"], "INF");

    let elsewhere = workspace.run(&["prices", "gpt-4o"]);
    assert_eq!(elsewhere.status.code(), Some(2));
    assert!(
        text(&elsewhere.stderr).contains("priced in the built-in OpenAI (USD) table"),
        "{}",
        text(&elsewhere.stderr)
    );
}

#[test]
fn a_price_file_in_the_wrong_currency_is_refused_before_anything_is_spent() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/edge/cjk_emoji.csv");
    workspace.write(
        "job.toml",
        "[input]\npath = \"cjk_emoji.csv\"\n[request]\nmodel = \"qwen-plus\"\ntemplate = \"{{ text }}\"\nmax_tokens = 20\n",
    );
    // Beijing prices (CNY) given for a Singapore run (USD).
    workspace.write(
        "prices.toml",
        "[models.qwen-plus]\ncurrency = \"CNY\"\ninput = 0.8\noutput = 2\n",
    );
    let run_directory = workspace.path().join("run");
    let output = workspace
        .run_against(
            &simulator,
            "dashscope-intl",
            "job.toml",
            &run_directory,
            &["--prices", "prices.toml"],
        )
        .env("DASHSCOPE_API_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let message = text(&output.stderr);
    for words in [
        "`prices.toml`",
        "is in CNY",
        "bills in USD",
        "DashScope Singapore",
    ] {
        assert!(message.contains(words), "no `{words}` in {message}");
    }
    assert_eq!(simulator.ledger()["batches"].as_array().unwrap().len(), 0);
    let listing = workspace.run(&[
        "prices",
        "--provider",
        "dashscope-intl",
        "--prices",
        "prices.toml",
        "qwen-plus",
    ]);
    assert_eq!(listing.status.code(), Some(2));
}

/// What the simulator billed for the run in `run_directory`, at a flat `per_million` realtime
/// price for input and output alike, at batch price, as decimal text.
fn billed_at_flat_price(
    simulator: &StandaloneSimulator,
    run_directory: &std::path::Path,
    per_million: u128,
) -> u128 {
    let run_id = read_report(run_directory)["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ledger = simulator.ledger();
    let run_batches = super::invariants::batch_ids_of_run(&ledger, &run_id);
    let tokens: u128 = ledger["billed_requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|bill| run_batches.iter().any(|id| bill["batch_id"] == id.as_str()))
        .map(|bill| {
            u128::from(bill["prompt_tokens"].as_u64().unwrap())
                + u128::from(bill["completion_tokens"].as_u64().unwrap())
        })
        .sum();
    // tokens × price / 1M / 2, in 1e-10 units: tokens × price × 10,000 / 2.
    tokens * per_million * 10_000 / 2
}

#[test]
fn a_run_keeps_the_prices_it_started_with_until_given_others() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = super::invariants::review_workspace(12, 6, "");
    workspace.write(
        "prices.toml",
        "[models.qwen-flash]\ncurrency = \"CNY\"\ninput = 1\noutput = 1\n",
    );
    let run_directory = workspace.path().join("run");
    let killed = super::invariants::review_run_command(&workspace, &simulator, &run_directory)
        .args(["--prices", "prices.toml"])
        .env("DASHBATCH_TEST_KILL_AT", "during_poll")
        .status()
        .unwrap();
    assert!(!killed.success());
    // The file is edited while the run is out: the run still pays what it started with.
    workspace.write(
        "prices.toml",
        "[models.qwen-flash]\ncurrency = \"CNY\"\ninput = 100\noutput = 100\n",
    );
    let resumed = super::invariants::resume_command(&workspace, &run_directory)
        .output()
        .unwrap();
    assert_success(&resumed);
    let cost = |directory: &std::path::Path| {
        in_ten_billionths(read_report(directory)["cost"].as_str().unwrap())
    };
    assert_eq!(
        cost(&run_directory),
        billed_at_flat_price(&simulator, &run_directory, 1)
    );
    // Given again on the command line, the new prices apply, and stay the run's prices.
    let repriced = super::invariants::review_run_command(&workspace, &simulator, &run_directory)
        .args(["--prices", "prices.toml"])
        .output()
        .unwrap();
    assert_success(&repriced);
    assert_eq!(
        cost(&run_directory),
        billed_at_flat_price(&simulator, &run_directory, 100)
    );
    std::fs::remove_file(workspace.path().join("prices.toml")).unwrap();
    let without_file = super::invariants::resume_command(&workspace, &run_directory)
        .output()
        .unwrap();
    assert_success(&without_file);
    assert_eq!(
        cost(&run_directory),
        billed_at_flat_price(&simulator, &run_directory, 100)
    );
    let status = workspace.run(&["status", run_directory.to_str().unwrap(), "--json"]);
    assert_success(&status);
}

#[test]
fn a_resumed_run_whose_tokenizer_file_is_gone_still_finishes() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = super::invariants::review_workspace(12, 6, "");
    std::fs::copy(
        super::tokens::qwen_vocabulary(),
        workspace.path().join("copied.tiktoken"),
    )
    .unwrap();
    let run_directory = workspace.path().join("run");
    let killed = super::invariants::review_run_command(&workspace, &simulator, &run_directory)
        .args(["--tokenizer", "copied.tiktoken"])
        .env("DASHBATCH_TEST_KILL_AT", "during_poll")
        .status()
        .unwrap();
    assert!(!killed.success());
    std::fs::remove_file(workspace.path().join("copied.tiktoken")).unwrap();
    let resumed = super::invariants::resume_command(&workspace, &run_directory)
        .output()
        .unwrap();
    assert_success(&resumed);
    assert!(
        text(&resumed.stderr).contains("cannot be read any more"),
        "{}",
        text(&resumed.stderr)
    );
    super::invariants::assert_finished_cleanly(&simulator, &workspace, &run_directory, 12);
}

#[test]
fn a_budget_cap_may_name_its_currency_and_a_wrong_one_is_refused() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = super::invariants::review_workspace(6, 6, "max_cost = \"1 CNY\"\n");
    let run_directory = workspace.path().join("run");
    let refused = workspace
        .run_against(
            &simulator,
            "dashscope-intl",
            "reviews.toml",
            &run_directory,
            &[],
        )
        .env("DASHSCOPE_API_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let message = text(&refused.stderr);
    assert!(
        message.contains("in CNY, but this provider bills `qwen-flash` in USD"),
        "{message}"
    );
    assert_eq!(simulator.ledger()["batches"].as_array().unwrap().len(), 0);
    let in_dollars = workspace
        .run_against(
            &simulator,
            "dashscope-intl",
            "reviews.toml",
            &run_directory,
            &["--max-cost", "1 USD", "--quiet"],
        )
        .env("DASHSCOPE_API_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert_success(&in_dollars);
    // A cap that is no amount is said to be one, even on a run that has spent (whose exit code is
    // never 2, since money was spent in that run directory).
    let not_an_amount = workspace
        .run_against(
            &simulator,
            "dashscope-intl",
            "reviews.toml",
            &run_directory,
            &["--max-cost", "abc"],
        )
        .env("DASHSCOPE_API_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert!(!not_an_amount.status.success());
    assert!(
        text(&not_an_amount.stderr).contains("`--max-cost`: `abc` is not an amount of money"),
        "{}",
        text(&not_an_amount.stderr)
    );
    let euros = workspace.run(&["estimate", "reviews.toml"]);
    assert_success(&euros);
    workspace.write(
        "euro.toml",
        std::fs::read_to_string(workspace.path().join("reviews.toml"))
            .unwrap()
            .replace("1 CNY", "1 EUR"),
    );
    let unknown_currency = workspace.run(&["validate", "euro.toml"]);
    assert_eq!(unknown_currency.status.code(), Some(2));
    assert!(text(&unknown_currency.stderr).contains("\"12.50 USD\""));
}

#[test]
fn a_key_with_a_line_break_is_refused_before_anything_starts_and_never_shown() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = super::invariants::review_workspace(6, 6, "");
    let run_directory = workspace.path().join("run");
    let output = workspace
        .run_against(&simulator, "dashscope", "reviews.toml", &run_directory, &[])
        .env("DASHSCOPE_API_KEY", "sk-secret-part\nsecond-line")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let message = text(&output.stderr);
    assert!(
        message.contains("line break, control or non-ASCII character"),
        "{message}"
    );
    assert!(!message.contains("sk-secret-part") && !message.contains("second-line"));
    assert_eq!(
        simulator.ledger()["files"].as_array().map_or(0, Vec::len),
        0
    );
    assert!(!run_directory.exists());
}

#[test]
fn a_qwen_vocabulary_is_never_taken_for_another_family_s() {
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/edge/cjk_emoji.csv");
    workspace.write(
        "job.toml",
        "[input]\npath = \"cjk_emoji.csv\"\n[request]\nmodel = \"deepseek-v3.2\"\ntemplate = \"{{ text }}\"\nmax_tokens = 20\n",
    );
    workspace.write(
        "prices.toml",
        "[models.\"deepseek-v3.2\"]\ncurrency = \"CNY\"\ninput = 2\noutput = 3\n",
    );
    let vocabulary = super::tokens::qwen_vocabulary();
    let named = workspace.run(&[
        "estimate",
        "job.toml",
        "--prices",
        "prices.toml",
        "--tokenizer",
        vocabulary.to_str().unwrap(),
    ]);
    assert_eq!(named.status.code(), Some(2));
    assert!(
        text(&named.stderr).contains("is not a Qwen model"),
        "{}",
        text(&named.stderr)
    );
    // Set once for every job in the environment, it is simply not for this one.
    let from_environment = workspace
        .command(&["estimate", "job.toml", "--prices", "prices.toml", "--json"])
        .env("DASHBATCH_TOKENIZER", &vocabulary)
        .output()
        .unwrap();
    assert_success(&from_environment);
    let estimate: Value = serde_json::from_slice(&from_environment.stdout).unwrap();
    assert_eq!(estimate["exact_token_counts"], false);
}

#[test]
fn a_price_file_that_never_ends_is_refused_unread() {
    let workspace = Workspace::new();
    let started = std::time::Instant::now();
    let output = workspace.run(&["prices", "--prices", "/dev/zero"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("not a regular file"),
        "{}",
        text(&output.stderr)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn a_model_that_always_thinks_is_billed_at_the_thinking_price_it_was_estimated_at() {
    let simulator = StandaloneSimulator::start(&[]);
    let workspace = super::invariants::review_workspace(6, 6, "");
    super::invariants::set_review_model(&workspace, "deepseek-r1");
    workspace.write(
        "prices.toml",
        "[models.deepseek-r1]\ncurrency = \"CNY\"\ninput = 1\noutput = 1\nthinking_output = 100\n",
    );
    let run_directory = workspace.path().join("run");
    let output = super::invariants::review_run_command(&workspace, &simulator, &run_directory)
        .args(["--prices", "prices.toml"])
        .output()
        .unwrap();
    assert_success(&output);
    let ledger = simulator.ledger();
    let (prompt, completion) = ledger["billed_requests"].as_array().unwrap().iter().fold(
        (0u128, 0u128),
        |(prompt, completion), bill| {
            (
                prompt + u128::from(bill["prompt_tokens"].as_u64().unwrap()),
                completion + u128::from(bill["completion_tokens"].as_u64().unwrap()),
            )
        },
    );
    assert!(completion > 0);
    // Input at 1, all output (reasoning included) at the thinking price 100, then half.
    let expected = (prompt + completion * 100) * 10_000 / 2;
    assert_eq!(
        in_ten_billionths(read_report(&run_directory)["cost"].as_str().unwrap()),
        expected
    );
}

#[test]
fn settings_a_resume_cannot_use_never_bind_it() {
    let simulator = StandaloneSimulator::start(&["--flavour", "openai"]);
    let workspace = super::invariants::review_workspace(12, 6, "");
    let vocabulary = super::tokens::qwen_vocabulary();
    std::fs::copy(&vocabulary, workspace.path().join("named.tiktoken")).unwrap();
    // An OpenAI job whose shell exports a Qwen vocabulary for other jobs.
    super::invariants::set_review_model(&workspace, "gpt-4.1-mini");
    let run_directory = workspace.path().join("run");
    let killed = workspace
        .run_against(
            &simulator,
            "openai",
            "reviews.toml",
            &run_directory,
            &["--quiet"],
        )
        .env("OPENAI_API_KEY", SECRET_KEY)
        .env("DASHBATCH_TOKENIZER", &vocabulary)
        .env("DASHBATCH_TEST_KILL_AT", "during_poll")
        .status()
        .unwrap();
    assert!(!killed.success());
    // A cap in the wrong currency is refused, and not kept for the resume.
    let refused = workspace
        .run_against(
            &simulator,
            "openai",
            "reviews.toml",
            &run_directory,
            &["--quiet", "--max-cost", "5 CNY"],
        )
        .env("OPENAI_API_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("in CNY"),
        "{}",
        text(&refused.stderr)
    );
    let resumed = workspace
        .command(&["resume", run_directory.to_str().unwrap(), "--quiet"])
        .env("OPENAI_API_KEY", SECRET_KEY)
        .env("DASHBATCH_TOKENIZER", &vocabulary)
        .output()
        .unwrap();
    assert_success(&resumed);

    // A job file's vocabulary deleted while its run is out: the resume counts without it.
    let simulator = StandaloneSimulator::start(&[]);
    let workspace =
        super::invariants::review_workspace(12, 6, "[estimate]\ntokenizer = \"named.tiktoken\"\n");
    std::fs::copy(&vocabulary, workspace.path().join("named.tiktoken")).unwrap();
    let run_directory = workspace.path().join("run");
    let killed = super::invariants::review_run_command(&workspace, &simulator, &run_directory)
        .env("DASHBATCH_TEST_KILL_AT", "during_poll")
        .status()
        .unwrap();
    assert!(!killed.success());
    std::fs::remove_file(workspace.path().join("named.tiktoken")).unwrap();
    let resumed = super::invariants::resume_command(&workspace, &run_directory)
        .output()
        .unwrap();
    assert_success(&resumed);
    assert!(text(&resumed.stderr).contains("cannot be read any more"));
}
