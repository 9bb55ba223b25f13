//! `Usage`: the token counts of one request (or of many, summed) that a cost is computed from.

use serde::{Deserialize, Serialize};

/// Token counts as reported in a response's `usage` object.
///
/// `completion_tokens` is the **full billed output count**: on DashScope (and OpenAI) the thinking
/// (reasoning) tokens are already included in `completion_tokens`, and thinking tokens are billed at
/// the output price (reference §7.1). `reasoning_tokens` is kept for information only and is never
/// added to the bill; it should be at most `completion_tokens`. If a provider ever reported reasoning
/// tokens separately, the caller must add them into `completion_tokens` before pricing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    /// Input (prompt) tokens; also what selects the price tier of tiered models.
    pub prompt_tokens: u64,
    /// Output tokens, including any reasoning tokens; all of them are billed as output.
    pub completion_tokens: u64,
    /// The part of `completion_tokens` spent on thinking; informational, not billed separately.
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Field-by-field sum, or `None` if a count overflows `u64`.
    #[must_use]
    pub fn checked_add(&self, other: &Usage) -> Option<Usage> {
        Some(Usage {
            prompt_tokens: self.prompt_tokens.checked_add(other.prompt_tokens)?,
            completion_tokens: self
                .completion_tokens
                .checked_add(other.completion_tokens)?,
            reasoning_tokens: self.reasoning_tokens.checked_add(other.reasoning_tokens)?,
        })
    }

    /// `prompt_tokens + completion_tokens` (reasoning tokens are inside `completion_tokens`),
    /// saturating at `u64::MAX`.
    #[must_use]
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_field_by_field_and_detects_overflow() {
        let first = Usage {
            prompt_tokens: 1,
            completion_tokens: 2,
            reasoning_tokens: 1,
        };
        let second = Usage {
            prompt_tokens: 10,
            completion_tokens: 20,
            reasoning_tokens: 5,
        };
        assert_eq!(
            first.checked_add(&second),
            Some(Usage {
                prompt_tokens: 11,
                completion_tokens: 22,
                reasoning_tokens: 6
            })
        );
        assert_eq!(first.total_tokens(), 3);
        let huge = Usage {
            prompt_tokens: u64::MAX,
            ..Usage::default()
        };
        assert_eq!(huge.checked_add(&first), None);
    }
}
