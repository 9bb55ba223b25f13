//! Choosing a model's token counter: a Qwen vocabulary file the user named (the `--tokenizer` flag, then the run's record, then `DASHBATCH_TOKENIZER`, then the job file's `[estimate] tokenizer`), else the model's own tokenizer (OpenAI's built in, Qwen's when `dashbatch tokenizer install` put it in the cache directory), else the heuristic.

use std::path::{Path, PathBuf};

use crate::settings::{Setting, SettingPlaces, SettingSource, environment_path, flag_path};

use super::heuristic::HeuristicTokenCounter;
use super::installed_vocabulary::{InstalledVocabulary, find_installed};
use super::openai_tokenizer::OpenaiTokenizer;
use super::qwen_tokenizer::{QwenTokenizer, VocabularyError};
use super::token_counter::{HeuristicReason, TokenCounter};
use super::vocabulary::Vocabulary;

/// The vocabulary path the user named, if any, by the settings precedence: `flag`, then the path
/// the run recorded when it started (`run_ledger`), then the environment variable, then
/// `job_file_path` (already resolved against the job file's directory).
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

/// Loads the token counter for `model`. A named file that cannot be used, or is the other Qwen
/// vocabulary than the model's, is an error, never a silent fall-back; so is an installed file
/// whose SHA-256 is wrong.
///
/// # Errors
/// See [`TokenizerChoiceError`].
pub fn load_token_counter(
    model: &str,
    chosen: Option<&Setting<PathBuf>>,
) -> Result<TokenCounter, TokenizerChoiceError> {
    let models_vocabulary = crate::model_facts::vocabulary_of(model);
    // A named Qwen file never counts a model that has another vocabulary: its counts would be
    // called exact while wrong, and the budget's margin would be gone. DASHBATCH_TOKENIZER, set
    // once for every job, is simply not for such a model; a flag or a job file naming it for one
    // is a mistake to point out.
    let foreign_model = models_vocabulary.is_some_and(Vocabulary::is_built_in)
        || (models_vocabulary.is_none()
            && crate::model_facts::counts_with_a_foreign_vocabulary(model));
    let chosen = chosen.filter(|setting| {
        !(foreign_model && matches!(setting.source, SettingSource::Environment(_)))
    });
    if let Some(setting) = chosen {
        if foreign_model {
            return Err(TokenizerChoiceError::NotAQwenModel {
                model: model.to_owned(),
                built_in: models_vocabulary,
                path: setting.value.clone(),
                source_of_path: setting.source,
            });
        }
        let tokenizer = QwenTokenizer::from_vocabulary_file(&setting.value).map_err(|error| {
            TokenizerChoiceError::Unusable {
                source_of_path: setting.source,
                error,
            }
        })?;
        if let Some(needed) = models_vocabulary
            && needed != tokenizer.vocabulary()
        {
            return Err(TokenizerChoiceError::WrongVocabulary {
                model: model.to_owned(),
                needed,
                found: tokenizer.vocabulary(),
                path: setting.value.clone(),
                source_of_path: setting.source,
            });
        }
        return Ok(TokenCounter::Qwen {
            tokenizer: Box::new(tokenizer),
            chosen_by: format!("given by {}", setting.source),
        });
    }
    let Some(vocabulary) = models_vocabulary else {
        return Ok(TokenCounter::Heuristic(
            HeuristicTokenCounter,
            HeuristicReason::UnknownModel(model.to_owned()),
        ));
    };
    if let Some(tokenizer) = OpenaiTokenizer::new(vocabulary) {
        return Ok(TokenCounter::Openai(tokenizer));
    }
    match find_installed(vocabulary) {
        InstalledVocabulary::Installed { path, bytes } => {
            let tokenizer =
                QwenTokenizer::from_vocabulary_bytes(&bytes, &path).map_err(|error| {
                    TokenizerChoiceError::Unusable {
                        source_of_path: SettingSource::Default,
                        error,
                    }
                })?;
            Ok(TokenCounter::Qwen {
                tokenizer: Box::new(tokenizer),
                chosen_by: "installed by `dashbatch tokenizer install`".to_owned(),
            })
        }
        InstalledVocabulary::Damaged { path, sha256 } => Err(TokenizerChoiceError::Damaged {
            vocabulary,
            path,
            sha256,
        }),
        InstalledVocabulary::Unreadable { path, problem } => {
            Err(TokenizerChoiceError::Unreadable {
                vocabulary,
                path,
                problem,
            })
        }
        InstalledVocabulary::Missing { .. }
        | InstalledVocabulary::NoCacheDirectory
        | InstalledVocabulary::BuiltIn => Ok(TokenCounter::Heuristic(
            HeuristicTokenCounter,
            HeuristicReason::VocabularyNotInstalled(vocabulary),
        )),
    }
}

/// A vocabulary that was asked for, or installed, but cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerChoiceError {
    #[error("the tokenizer vocabulary given by {source_of_path} cannot be used: {error}")]
    Unusable {
        source_of_path: SettingSource,
        // Not a `#[source]`: the message already says it, and a chain would say it again.
        error: VocabularyError,
    },
    #[error(
        "the tokenizer vocabulary given by {source_of_path} (`{}`) is `{found}`, but `{model}` counts with `{needed}` ({}); \
         give the `{needed}` file instead, or drop the setting: `dashbatch tokenizer install` installs both Qwen \
         vocabularies and each model then uses its own",
        path.display(),
        needed.used_by()
    )]
    WrongVocabulary {
        model: String,
        needed: Vocabulary,
        found: Vocabulary,
        path: PathBuf,
        source_of_path: SettingSource,
    },
    #[error(
        "the tokenizer vocabulary given by {source_of_path} (`{}`) is a Qwen vocabulary, but `{model}` {}; remove \
         that setting for this job",
        path.display(),
        match built_in {
            Some(vocabulary) => format!("counts with OpenAI's `{vocabulary}`, which is built in"),
            None => "is not a Qwen model, and dashbatch has no vocabulary for it (its estimates use the heuristic, \
                     with its wider upper bound)".to_owned(),
        }
    )]
    NotAQwenModel {
        model: String,
        built_in: Option<Vocabulary>,
        path: PathBuf,
        source_of_path: SettingSource,
    },
    #[error(
        "the installed tokenizer vocabulary `{}` is not the real `{vocabulary}` (its SHA-256 is {sha256}); run \
         `dashbatch tokenizer install` again to replace it",
        path.display()
    )]
    Damaged {
        vocabulary: Vocabulary,
        path: PathBuf,
        sha256: String,
    },
    #[error(
        "the installed tokenizer vocabulary `{}` cannot be read ({problem}); remove what is there and run \
         `dashbatch tokenizer install` again",
        path.display()
    )]
    Unreadable {
        vocabulary: Vocabulary,
        path: PathBuf,
        problem: String,
    },
}
