//! Token counting for cost estimates: the Qwen tokenizer (exact, from the `qwen.tiktoken` vocabulary of DashScope's Python SDK) when its vocabulary is available, else a heuristic calibrated against it.
//!
//! Nothing here downloads anything: the vocabulary is a file the user points at (`--tokenizer`,
//! `DASHBATCH_TOKENIZER`, or `[estimate] tokenizer` in the job file). Apart from reading that file,
//! this module does no I/O.

mod heuristic;
mod qwen_tokenizer;
mod token_counter;
mod tokenizer_choice;

pub use heuristic::{
    FEATURE_COUNT, Feature, HEURISTIC_UPPER_BOUND_EXTRA_TOKENS,
    HEURISTIC_UPPER_BOUND_FACTOR_PERCENT, HeuristicTokenCounter, TextFeatures,
    estimate_from_features, text_features,
};
pub use qwen_tokenizer::{
    QWEN_PRE_TOKENIZER_PATTERN, QWEN_VOCABULARY_SIZE, QwenTokenizer, VocabularyError,
};
pub use token_counter::{
    CHAT_FORMAT_TOKENS_PER_MESSAGE, CHAT_FORMAT_TOKENS_PER_REQUEST, ChatMessageText,
    PromptTokenCount, TokenCounter,
};
pub use tokenizer_choice::{TokenizerChoiceError, choose_vocabulary, load_token_counter};
