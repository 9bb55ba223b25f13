//! dashbatch's Qwen tokenizer counts exactly what DashScope's own SDK counts, and `estimate`
//! counts chat prompts in Qwen's chat format. The vocabulary and the SDK come from PyPI through
//! `scripts/qwen-vocabulary.sh`: these tests install them when missing and never skip.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

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
    let mut child = Command::new(python())
        .arg(repository_root().join("tests/it/count_tokens.py"))
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

#[test]
fn qwen_tokenizer_counts_exactly_like_the_dashscope_sdk() {
    let vocabulary = qwen_vocabulary();
    let tokenizer = dashbatch::tokens::QwenTokenizer::from_vocabulary_file(&vocabulary)
        .expect("the SDK's vocabulary loads");
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
    let expected = sdk_counts(&texts);
    let mut differences = Vec::new();
    for (index, (text, sdk)) in texts.iter().zip(&expected).enumerate() {
        let ours = tokenizer.count(text);
        if ours != *sdk {
            differences.push(format!(
                "text {index} ({:?}…): dashbatch {ours}, SDK {sdk}",
                text.chars().take(30).collect::<String>()
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} texts counted differently:\n{}",
        differences.len(),
        texts.len(),
        differences.join("\n")
    );
    assert!(expected.iter().sum::<u64>() > 20_000);
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
