//! Token usage of an answer and thinking: what a line bills, whether a request thinks and how
//! many reasoning tokens it spends, and how `max_tokens` cuts an answer.
//!
//! Thinking (`enable_thinking`, on by default for Qwen 3.5 and later, always on for
//! `deepseek-r1`) adds `usage.completion_tokens_details.reasoning_tokens`, counted in
//! `completion_tokens` because DashScope bills thinking as output; the reasoning text itself is
//! not returned.

use serde_json::Value;

use super::config::TEST_MODEL;
use super::ids::DeterministicRandom;
use super::token_estimate::estimate_text_tokens;
use crate::model_facts::{always_thinks, thinks_by_default};

/// Token usage of one answered line, as the ledger bills it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TokenUsage {
    pub(crate) prompt_tokens: u64,
    /// Includes `reasoning_tokens`.
    pub(crate) completion_tokens: u64,
    pub(crate) reasoning_tokens: u64,
}

/// Whether a chat request thinks: always for a model that always thinks, else as its
/// `enable_thinking` says, else as the model does by default.
pub(crate) fn thinks(model: &str, object: &serde_json::Map<String, Value>) -> bool {
    always_thinks(model)
        || match object.get("enable_thinking") {
            Some(Value::Bool(enabled)) => *enabled,
            _ => thinks_by_default(model),
        }
}

/// The reasoning tokens of an answer: none without thinking (or for the test model), else 120 to
/// 900 drawn from `random`, at most `thinking_budget`.
pub(crate) fn reasoning_tokens(
    thinking: bool,
    model: &str,
    thinking_budget: Option<u64>,
    random: &mut DeterministicRandom,
) -> u64 {
    if thinking && model != TEST_MODEL {
        let wanted = random.between(120, 900) as u64;
        thinking_budget.map_or(wanted, |budget| wanted.min(budget))
    } else {
        0
    }
}

/// The content an answer keeps, its tokens and its finish reason: past `max_tokens` the longest
/// prefix within them and `length`, else the whole content (at least one token) and `stop`.
pub(crate) fn within_max_tokens(
    full_content: String,
    max_tokens: Option<u64>,
) -> (String, u64, &'static str) {
    match max_tokens {
        Some(limit) if estimate_text_tokens(&full_content) > limit => {
            (prefix_within_tokens(&full_content, limit), limit, "length")
        }
        _ => {
            let tokens = estimate_text_tokens(&full_content).max(1);
            (full_content, tokens, "stop")
        }
    }
}

/// The longest prefix of `text` whose estimated tokens stay within `limit`.
fn prefix_within_tokens(text: &str, limit: u64) -> String {
    let characters: Vec<char> = text.chars().collect();
    let (mut low, mut high) = (0usize, characters.len());
    while low < high {
        let middle = (low + high).div_ceil(2);
        let prefix: String = characters[..middle].iter().collect();
        if estimate_text_tokens(&prefix) <= limit {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    characters[..low].iter().collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sim::test_support::{answer_value, content_of};

    #[test]
    fn max_tokens_caps_the_answer_and_reports_length() {
        let (body, usage) = answer_value(
            "/v1/chat/completions",
            json!({"model": "qwen-plus", "max_tokens": 5, "messages": [{"role": "user", "content": "Tell me a long story about the sea and its many moods"}]}),
        );
        assert_eq!(body["choices"][0]["finish_reason"], "length");
        assert_eq!(usage.completion_tokens, 5);
        assert!(estimate_text_tokens(content_of(&body)) <= 5);
    }

    #[test]
    fn thinking_adds_reasoning_tokens_within_the_budget() {
        let (body, usage) = answer_value(
            "/v1/chat/completions",
            json!({"model": "qwen3.5-plus", "enable_thinking": true, "thinking_budget": 50, "messages": [{"role": "user", "content": "请分析以下问题"}]}),
        );
        assert_eq!(usage.reasoning_tokens, 50);
        assert_eq!(
            body["usage"]["completion_tokens_details"]["reasoning_tokens"],
            50
        );
        assert!(usage.completion_tokens > 50);
        assert!(
            body["choices"][0]["message"]
                .get("reasoning_content")
                .is_none()
        );
        let (_, default_on) = answer_value(
            "/v1/chat/completions",
            json!({"model": "qwen3.7-max", "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert!(default_on.reasoning_tokens >= 120);
        let (_, switched_off) = answer_value(
            "/v1/chat/completions",
            json!({"model": "qwen3.7-max", "enable_thinking": false, "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(switched_off.reasoning_tokens, 0);
    }
}
