//! Finding the Qwen tokenizer vocabulary: the `--tokenizer` flag, then the `DASHBATCH_TOKENIZER` environment variable, then the job file's `[estimate] tokenizer`; without any, the heuristic counts.

use std::path::{Path, PathBuf};

use crate::settings::{Setting, SettingPlaces, SettingSource, environment_path, flag_path};

use super::heuristic::HeuristicTokenCounter;
use super::qwen_tokenizer::{QwenTokenizer, VocabularyError};
use super::token_counter::TokenCounter;

/// The vocabulary path to use, if any, by the settings precedence: `flag`, then the path the run
/// recorded when it started (`run_ledger`), then the environment variable, then `job_file_path`
/// (already resolved against the job file's directory).
#[must_use]
pub fn choose_vocabulary(
    flag: Option<&Path>,
    run_ledger: Option<PathBuf>,
    job_file_path: Option<&Path>,
) -> Option<Setting<PathBuf>> {
    SettingPlaces {
        flag: flag_path(flag, "--tokenizer"),
        run_ledger,
        environment: environment_path(crate::env::DASHBATCH_TOKENIZER),
        job_file: job_file_path.map(|path| (path.to_owned(), "[estimate] tokenizer")),
        default: None,
    }
    .resolve()
}

/// Loads the token counter: the Qwen tokenizer when a vocabulary was chosen (a chosen file that
/// cannot be used is an error, never a silent fall-back), the heuristic otherwise.
///
/// # Errors
/// When the chosen vocabulary file cannot be read or is not `qwen.tiktoken`; the message says
/// where the path came from.
pub fn load_token_counter(
    chosen: Option<&Setting<PathBuf>>,
) -> Result<TokenCounter, TokenizerChoiceError> {
    match chosen {
        None => Ok(TokenCounter::Heuristic(HeuristicTokenCounter)),
        Some(setting) => QwenTokenizer::from_vocabulary_file(&setting.value)
            .map(|tokenizer| TokenCounter::Qwen(Box::new(tokenizer)))
            .map_err(|error| TokenizerChoiceError {
                source_of_path: setting.source,
                error,
            }),
    }
}

/// A vocabulary file that was asked for but cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("the tokenizer vocabulary given by {source_of_path} cannot be used: {error}")]
pub struct TokenizerChoiceError {
    pub source_of_path: SettingSource,
    #[source]
    pub error: VocabularyError,
}
