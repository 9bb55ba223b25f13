//! `OpenaiTokenizer`: OpenAI's `o200k_base` and `cl100k_base` tokenizers, whose vocabularies ship inside the `tiktoken-rs` crate, so OpenAI models always count exactly.

use tiktoken_rs::CoreBPE;

use super::vocabulary::Vocabulary;

/// Tokens OpenAI adds around each chat message (`<|start|>{role}<|message|>...<|end|>`), and
/// once per request to open the answer, as OpenAI's cookbook "How to count tokens with tiktoken"
/// counts them for current chat models (also `tiktoken_rs::num_tokens_from_messages`).
pub const OPENAI_TOKENS_PER_MESSAGE: u64 = 3;
/// See [`OPENAI_TOKENS_PER_MESSAGE`]: `<|start|>assistant<|message|>`.
pub const OPENAI_TOKENS_PER_REQUEST: u64 = 3;

/// One of OpenAI's tokenizers; the vocabulary is parsed once per process and shared.
pub struct OpenaiTokenizer {
    bpe: &'static CoreBPE,
    vocabulary: Vocabulary,
}

impl std::fmt::Debug for OpenaiTokenizer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("OpenaiTokenizer")
            .field("vocabulary", &self.vocabulary)
            .finish_non_exhaustive()
    }
}

impl OpenaiTokenizer {
    /// The tokenizer of `vocabulary`; `None` for a vocabulary that is not OpenAI's.
    #[must_use]
    pub fn new(vocabulary: Vocabulary) -> Option<OpenaiTokenizer> {
        let bpe = match vocabulary {
            Vocabulary::O200kBase => tiktoken_rs::o200k_base_singleton(),
            Vocabulary::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
            Vocabulary::Qwen | Vocabulary::Qwen35 => return None,
        };
        Some(OpenaiTokenizer { bpe, vocabulary })
    }

    #[must_use]
    pub fn vocabulary(&self) -> Vocabulary {
        self.vocabulary
    }

    /// Tokens of `text`, special-token text counted as ordinary text (`encode_ordinary`), as
    /// OpenAI counts a message's content.
    #[must_use]
    pub fn count(&self, text: &str) -> u64 {
        self.bpe.encode_ordinary(text).len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_with_the_built_in_vocabularies() {
        let o200k = OpenaiTokenizer::new(Vocabulary::O200kBase).unwrap();
        let cl100k = OpenaiTokenizer::new(Vocabulary::Cl100kBase).unwrap();
        assert_eq!(o200k.count(""), 0);
        assert_eq!(o200k.count("hello world"), 2);
        assert_eq!(cl100k.count("hello world"), 2);
        // Special-token text is ordinary text in a message.
        assert!(o200k.count("<|endoftext|>") > 1);
        assert!(OpenaiTokenizer::new(Vocabulary::Qwen).is_none());
    }
}
