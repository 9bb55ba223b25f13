//! `TokenCounter`: counts the prompt tokens of a request with the model's own tokenizer (Qwen from an installed vocabulary, OpenAI's built in) when it has one, else with the calibrated heuristic, and says which it used.

use super::heuristic::HeuristicTokenCounter;
use super::openai_tokenizer::{
    OPENAI_TOKENS_PER_MESSAGE, OPENAI_TOKENS_PER_REQUEST, OpenaiTokenizer,
};
use super::qwen_tokenizer::{IM_END, IM_START, QwenTokenizer};
use super::vocabulary::Vocabulary;

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

/// Why tokens are estimated rather than counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeuristicReason {
    /// The model's Qwen vocabulary is not installed.
    VocabularyNotInstalled(Vocabulary),
    /// dashbatch knows no tokenizer for the model.
    UnknownModel(String),
}

/// How tokens are counted.
#[derive(Debug)]
pub enum TokenCounter {
    /// Exact: a Qwen tokenizer from its vocabulary file (boxed: it is large, and loaded once),
    /// and where that file came from, in words.
    Qwen {
        tokenizer: Box<QwenTokenizer>,
        chosen_by: String,
    },
    /// Exact: one of OpenAI's tokenizers, built in.
    Openai(OpenaiTokenizer),
    /// Estimated, and why.
    Heuristic(HeuristicTokenCounter, HeuristicReason),
}

impl TokenCounter {
    /// Whether counts are exact (the model's own tokenizer) rather than estimated.
    #[must_use]
    pub fn is_exact(&self) -> bool {
        !matches!(self, TokenCounter::Heuristic(..))
    }

    /// One line saying how tokens are counted, for estimate screens and reports.
    #[must_use]
    pub fn description(&self) -> String {
        match self {
            TokenCounter::Qwen {
                tokenizer,
                chosen_by,
            } => format!(
                "the {} tokenizer (`{}`, {chosen_by})",
                match tokenizer.vocabulary() {
                    Vocabulary::Qwen35 => "Qwen3.5+",
                    _ => "Qwen",
                },
                tokenizer.vocabulary_path().display()
            ),
            TokenCounter::Openai(tokenizer) => {
                format!("OpenAI's {} tokenizer (built in)", tokenizer.vocabulary())
            }
            TokenCounter::Heuristic(_, HeuristicReason::VocabularyNotInstalled(vocabulary)) => {
                format!(
                    "a heuristic calibrated against the Qwen tokenizer, because the model's vocabulary `{vocabulary}` is not \
                 installed; for exact counts run `dashbatch tokenizer install` once"
                )
            }
            TokenCounter::Heuristic(_, HeuristicReason::UnknownModel(model)) => format!(
                "a heuristic calibrated against the Qwen tokenizer, because dashbatch knows no tokenizer for `{model}`; \
                 for a Qwen-family model give its vocabulary with `--tokenizer FILE`"
            ),
        }
    }

    /// Tokens of a plain text (an embeddings input, a JSON schema).
    #[must_use]
    pub fn count_text(&self, text: &str) -> PromptTokenCount {
        match self {
            TokenCounter::Qwen { tokenizer, .. } => {
                let count = tokenizer.count(text);
                PromptTokenCount {
                    expected: count,
                    upper_bound: count,
                }
            }
            TokenCounter::Openai(tokenizer) => {
                let count = tokenizer.count(text);
                PromptTokenCount {
                    expected: count,
                    upper_bound: count,
                }
            }
            TokenCounter::Heuristic(heuristic, _) => {
                let (expected, upper_bound) = heuristic.count_with_upper_bound(text);
                PromptTokenCount {
                    expected,
                    upper_bound,
                }
            }
        }
    }

    /// Tokens of a chat prompt in the model's chat format. Qwen's (ChatML):
    /// `<|im_start|>{role}\n{content}<|im_end|>\n` for each message, then `<|im_start|>assistant\n`;
    /// with the Qwen tokenizer the whole formatted prompt is counted, so tokens that merge across a
    /// boundary are counted as the model sees them. OpenAI's: each message's role and content
    /// plus [`OPENAI_TOKENS_PER_MESSAGE`], then [`OPENAI_TOKENS_PER_REQUEST`].
    ///
    /// Whatever the provider adds on its side (a default system message, a schema) is not known
    /// here; estimates add an allowance for it.
    #[must_use]
    pub fn count_chat_prompt(&self, messages: &[ChatMessageText<'_>]) -> PromptTokenCount {
        match self {
            TokenCounter::Openai(tokenizer) => {
                let count = OPENAI_TOKENS_PER_REQUEST
                    + messages
                        .iter()
                        .map(|message| {
                            OPENAI_TOKENS_PER_MESSAGE
                                + tokenizer.count(message.role)
                                + tokenizer.count(message.content)
                        })
                        .sum::<u64>();
                PromptTokenCount {
                    expected: count,
                    upper_bound: count,
                }
            }
            TokenCounter::Qwen { tokenizer, .. } => {
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
            TokenCounter::Heuristic(heuristic, _) => {
                let mut expected = CHAT_FORMAT_TOKENS_PER_REQUEST;
                let mut upper_bound = CHAT_FORMAT_TOKENS_PER_REQUEST;
                for message in messages {
                    let (content, content_upper_bound) =
                        heuristic.count_with_upper_bound(message.content);
                    expected += CHAT_FORMAT_TOKENS_PER_MESSAGE + content;
                    upper_bound += CHAT_FORMAT_TOKENS_PER_MESSAGE + content_upper_bound;
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
        let counter = TokenCounter::Heuristic(
            HeuristicTokenCounter,
            HeuristicReason::UnknownModel("sim-model".to_owned()),
        );
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

    #[test]
    fn openai_chat_prompts_count_three_tokens_per_message_and_three_per_request() {
        let counter = TokenCounter::Openai(OpenaiTokenizer::new(Vocabulary::O200kBase).unwrap());
        let count = counter.count_chat_prompt(&[ChatMessageText {
            role: "user",
            content: "hello world",
        }]);
        // "user" is one token, "hello world" two.
        assert_eq!(count.expected, 3 + 3 + 1 + 2);
        assert_eq!(count.upper_bound, count.expected);
        assert!(counter.is_exact());
        assert_eq!(
            counter.description(),
            "OpenAI's o200k_base tokenizer (built in)"
        );
    }
}
