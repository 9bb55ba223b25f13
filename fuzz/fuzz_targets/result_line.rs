//! The result-line decoder (src/row_result.rs): arbitrary bytes as one line of a Batch API
//! output or error file, taken the way the engine takes it: decoded as a `wire::ResultLine`
//! (download verification and the join), classified by `classify_result_line` for every batch
//! state, stored as a retry override (`RowResult` to JSON and back, src/engine/retry.rs and
//! join_pass.rs), its answer parsed into declared fields, its usage priced. Must never panic,
//! and what the engine writes must read back.
#![no_main]

use std::sync::OnceLock;

use dashbatch::cost::RunPricer;
use dashbatch::job::{OutputFieldSpec, OutputFieldType};
use dashbatch::output_fields::parse_answer;
use dashbatch::pricing::PriceTable;
use dashbatch::row_result::{RowResult, classify_result_line, is_transient_failure};
use dashbatch::wire::{BatchStatus, ResultLine};
use libfuzzer_sys::fuzz_target;

const STATUSES: [BatchStatus; 9] = [
    BatchStatus::Validating,
    BatchStatus::InProgress,
    BatchStatus::Finalizing,
    BatchStatus::Completed,
    BatchStatus::Failed,
    BatchStatus::Expired,
    BatchStatus::Cancelling,
    BatchStatus::Cancelled,
    BatchStatus::Unknown,
];

struct Fixed {
    pricers: Vec<RunPricer>,
    fields: Vec<OutputFieldSpec>,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let field = |name: &str, field_type, labels: Option<&[&str]>, required| OutputFieldSpec {
            name: name.to_owned(),
            field_type,
            labels: labels.map(|labels| labels.iter().map(|l| (*l).to_owned()).collect()),
            description: None,
            required,
        };
        Fixed {
            pricers: vec![
                // Tiered by prompt length, and thinking-priced output.
                RunPricer::new(PriceTable::for_provider(dashbatch::provider::ProviderKind::Dashscope), "qwen-flash", false),
                RunPricer::new(PriceTable::for_provider(dashbatch::provider::ProviderKind::Dashscope), "qwen3-max", true),
                RunPricer::new(PriceTable::for_provider(dashbatch::provider::ProviderKind::Dashscope), "unknown-model", false),
            ],
            fields: vec![
                field(
                    "sentiment",
                    OutputFieldType::Label,
                    Some(&["positive", "negative"]),
                    true,
                ),
                field("confidence", OutputFieldType::Float, None, false),
                field("count", OutputFieldType::Integer, None, false),
                field("ok", OutputFieldType::Boolean, None, false),
                field("topic", OutputFieldType::String, None, false),
            ],
        }
    })
}

fuzz_target!(|data: &[u8]| {
    // Result files are read with `BufRead::lines`, so a line is UTF-8 (or the file is refused).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(line) = serde_json::from_str::<ResultLine>(text) else {
        return;
    };
    let fixed = fixed();
    for status in STATUSES {
        let result = classify_result_line(&line, status);
        let _ = is_transient_failure(&result);
        let _ = result.status().as_str();
        // A retried row's result is stored as JSON in the ledger and read back by the join.
        let stored = serde_json::to_string(&result).expect("a RowResult serialises");
        let restored: RowResult = serde_json::from_str(&stored).unwrap_or_else(|error| {
            panic!("the stored result does not read back ({error}): {stored}")
        });
        assert_eq!(restored.status, result.status);
        assert_eq!(restored.content, result.content);
        assert_eq!(restored.prompt_tokens, result.prompt_tokens);
        assert_eq!(restored.completion_tokens, result.completion_tokens);
        assert_eq!(restored.error_code, result.error_code);
        if let Some(content) = &result.content {
            let _ = parse_answer(&fixed.fields, content);
        }
        let _ = RunPricer::billed_usage(&result);
        for pricer in &fixed.pricers {
            if let Some(cost) = pricer.row_cost(&result) {
                let _ = cost.batch.to_decimal_string();
                let _ = cost.batch.to_f64();
            }
        }
    }
});
