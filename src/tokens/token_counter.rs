//! `TokenCounter`: counts the prompt tokens of a request with the Qwen tokenizer when its vocabulary is available, else with the calibrated heuristic, and says which it used.

use super::heuristic::HeuristicTokenCounter;
use super::qwen_tokenizer::{IM_END, IM_START, QwenTokenizer};

/// Tokens of Qwen's chat format (ChatML) around each message, besides its content:
/// `<|im_start|>`, the role, `\n`, then after the content `<|im_end|>` and `\n`.
pub const CHAT_FORMAT_TOKENS_PER_MESSAGE: u64 = 5;
/// Tokens of `<|im_start|>assistant\n`, which opens the answer once per request.
pub const CHAT_FORMAT_TOKENS_PER_REQUEST: u64 = 3;

/// A prompt's token count: the best estimate, and a count the real one does not exceed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PromptTokenCount {
    /// The count itself: exact with the Qwen tokenizer, an estimate with the heuristic.
    pub expected: u64,
    /// Equal to `expected` with the Qwen tokenizer; the heuristic's margin added otherwise.
    pub upper_bound: u64,
}

/// One chat message as sent: its role and its text.
#[derive(Debug, Clone, Copy)]
pub struct ChatMessageText<'a> {
    pub role: &'a str,
    pub content: &'a str,
}

/// How tokens are counted.
#[derive(Debug)]
pub enum TokenCounter {
    /// Exact: the Qwen tokenizer from its vocabulary file (boxed: it is large, and loaded once).
    Qwen(Box<QwenTokenizer>),
    /// Estimated: no vocabulary was given.
    Heuristic(HeuristicTokenCounter),
}

impl TokenCounter {
    /// Whether counts are exact (the Qwen tokenizer) rather than estimated.
    #[must_use]
    pub fn is_exact(&self) -> bool {
        matches!(self, TokenCounter::Qwen(_))
    }

    /// One line saying how tokens are counted, for estimate screens and reports.
    #[must_use]
    pub fn description(&self) -> String {
        match self {
            TokenCounter::Qwen(tokenizer) => format!(
                "the Qwen tokenizer (vocabulary `{}`)",
                tokenizer.vocabulary_path().display()
            ),
            TokenCounter::Heuristic(_) => {
                "a heuristic calibrated against the Qwen tokenizer (no vocabulary given; for exact counts pass \
                 `--tokenizer PATH/qwen.tiktoken`, set DASHBATCH_TOKENIZER or `[estimate] tokenizer`: the file \
                 ships in the `dashscope` Python package)"
                    .to_owned()
            }
        }
    }

    /// Tokens of a plain text (an embeddings input, a JSON schema).
    #[must_use]
    pub fn count_text(&self, text: &str) -> PromptTokenCount {
        match self {
            TokenCounter::Qwen(tokenizer) => {
                let count = tokenizer.count(text);
                PromptTokenCount {
                    expected: count,
                    upper_bound: count,
                }
            }
            TokenCounter::Heuristic(heuristic) => {
                let count = heuristic.count(text);
                PromptTokenCount {
                    expected: count,
                    upper_bound: if text.is_empty() {
                        0
                    } else {
                        heuristic.upper_bound(count)
                    },
                }
            }
        }
    }

    /// Tokens of a chat prompt in Qwen's chat format (ChatML):
    /// `<|im_start|>{role}\n{content}<|im_end|>\n` for each message, then `<|im_start|>assistant\n`.
    ///
    /// With the tokenizer the whole formatted prompt is counted, so tokens that merge across a
    /// boundary are counted as the model sees them. Whatever the provider adds on its side (a
    /// default system message, a schema) is not known here; estimates add an allowance for it.
    #[must_use]
    pub fn count_chat_prompt(&self, messages: &[ChatMessageText<'_>]) -> PromptTokenCount {
        match self {
            TokenCounter::Qwen(tokenizer) => {
                let mut formatted = String::new();
                for message in messages {
                    formatted.push_str(IM_START);
                    formatted.push_str(message.role);
                    formatted.push('\n');
                    formatted.push_str(message.content);
                    formatted.push_str(IM_END);
                    formatted.push('\n');
                }
                formatted.push_str(IM_START);
                formatted.push_str("assistant\n");
                let count = tokenizer.count(&formatted);
                PromptTokenCount {
                    expected: count,
                    upper_bound: count,
                }
            }
            TokenCounter::Heuristic(heuristic) => {
                let mut expected = CHAT_FORMAT_TOKENS_PER_REQUEST;
                let mut upper_bound = CHAT_FORMAT_TOKENS_PER_REQUEST;
                for message in messages {
                    let content = heuristic.count(message.content);
                    expected += CHAT_FORMAT_TOKENS_PER_MESSAGE + content;
                    upper_bound += CHAT_FORMAT_TOKENS_PER_MESSAGE
                        + if message.content.is_empty() {
                            0
                        } else {
                            heuristic.upper_bound(content)
                        };
                }
                PromptTokenCount {
                    expected,
                    upper_bound,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heuristic_counts_the_chat_format_around_each_message() {
        let counter = TokenCounter::Heuristic(HeuristicTokenCounter);
        let empty = counter.count_chat_prompt(&[]);
        assert_eq!(empty.expected, CHAT_FORMAT_TOKENS_PER_REQUEST);
        let two = counter.count_chat_prompt(&[
            ChatMessageText {
                role: "system",
                content: "",
            },
            ChatMessageText {
                role: "user",
                content: "hello world",
            },
        ]);
        let hello = counter.count_text("hello world");
        assert_eq!(
            two.expected,
            CHAT_FORMAT_TOKENS_PER_REQUEST + 2 * CHAT_FORMAT_TOKENS_PER_MESSAGE + hello.expected
        );
        assert_eq!(
            two.upper_bound,
            CHAT_FORMAT_TOKENS_PER_REQUEST + 2 * CHAT_FORMAT_TOKENS_PER_MESSAGE + hello.upper_bound
        );
        assert!(hello.upper_bound > hello.expected);
        assert!(!counter.is_exact());
        assert!(counter.description().contains("heuristic"));
    }
}
