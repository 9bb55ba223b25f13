//! Finding the Qwen tokenizer vocabulary: the `--tokenizer` flag, then the `DASHBATCH_TOKENIZER` environment variable, then the job file's `[estimate] tokenizer`; without any, the heuristic counts.

use std::fmt;
use std::path::{Path, PathBuf};

use super::heuristic::HeuristicTokenCounter;
use super::qwen_tokenizer::{QwenTokenizer, VocabularyError};
use super::token_counter::TokenCounter;

/// Where the vocabulary path came from, to say so in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VocabularySource {
    /// `--tokenizer PATH` on the command line.
    Flag,
    /// The `DASHBATCH_TOKENIZER` environment variable.
    Environment,
    /// `[estimate] tokenizer` in the job file.
    JobFile,
    /// Recorded in a run's ledger when the run started (so a resumed run counts the same way).
    RunLedger,
}

impl fmt::Display for VocabularySource {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            VocabularySource::Flag => "`--tokenizer`",
            VocabularySource::Environment => "DASHBATCH_TOKENIZER",
            VocabularySource::JobFile => "the job file's `[estimate] tokenizer`",
            VocabularySource::RunLedger => "the run's ledger (the tokenizer the run started with)",
        })
    }
}

/// The vocabulary path to use, if any, by precedence: `flag`, then the environment variable, then
/// `job_file_path` (already resolved against the job file's directory).
#[must_use]
pub fn choose_vocabulary(
    flag: Option<&Path>,
    job_file_path: Option<&Path>,
) -> Option<(PathBuf, VocabularySource)> {
    if let Some(path) = flag {
        return Some((path.to_owned(), VocabularySource::Flag));
    }
    if let Some(value) = std::env::var_os(crate::env::DASHBATCH_TOKENIZER)
        && !value.is_empty()
    {
        return Some((PathBuf::from(value), VocabularySource::Environment));
    }
    job_file_path.map(|path| (path.to_owned(), VocabularySource::JobFile))
}

/// Loads the token counter: the Qwen tokenizer when a vocabulary was chosen (a chosen file that
/// cannot be used is an error, never a silent fall-back), the heuristic otherwise.
///
/// # Errors
/// When the chosen vocabulary file cannot be read or is not `qwen.tiktoken`; the message says
/// where the path came from.
pub fn load_token_counter(
    chosen: Option<&(PathBuf, VocabularySource)>,
) -> Result<TokenCounter, TokenizerChoiceError> {
    match chosen {
        None => Ok(TokenCounter::Heuristic(HeuristicTokenCounter)),
        Some((path, source)) => QwenTokenizer::from_vocabulary_file(path)
            .map(|tokenizer| TokenCounter::Qwen(Box::new(tokenizer)))
            .map_err(|error| TokenizerChoiceError {
                source_of_path: *source,
                error,
            }),
    }
}

/// A vocabulary file that was asked for but cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("the tokenizer vocabulary given by {source_of_path} cannot be used: {error}")]
pub struct TokenizerChoiceError {
    pub source_of_path: VocabularySource,
    #[source]
    pub error: VocabularyError,
}
