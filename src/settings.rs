//! One resolver for every option that can be given in more than one place, which says where the
//! value in force came from.
//!
//! Precedence is the same for every option: a command-line flag, then what the run recorded in
//! its ledger when it started (so a resumed run keeps what it was started with), then an
//! environment variable, then the job file, then dashbatch's default. Options use the places
//! they have: `--max-cost` has no environment variable, the prices file no job key.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingSource {
    /// A flag on this command line, e.g. `--output`.
    Flag(&'static str),
    /// Recorded in the run's ledger when the run started.
    RunLedger,
    /// An environment variable, e.g. `DASHBATCH_PRICES`.
    Environment(&'static str),
    /// A key of the job file, e.g. `[output] path`.
    JobFile(&'static str),
    /// dashbatch's own default.
    Default,
}

impl fmt::Display for SettingSource {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingSource::Flag(flag) => write!(formatter, "`{flag}`"),
            SettingSource::RunLedger => {
                formatter.write_str("the run's ledger (what the run was started with)")
            }
            SettingSource::Environment(variable) => write!(formatter, "{variable}"),
            SettingSource::JobFile(key) => write!(formatter, "`{key}` in the job file"),
            SettingSource::Default => formatter.write_str("the default"),
        }
    }
}

impl serde::Serialize for SettingSource {
    /// As a machine reads it: `flag`, `run_ledger`, `environment`, `job_file` or `default`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(match self {
            SettingSource::Flag(_) => "flag",
            SettingSource::RunLedger => "run_ledger",
            SettingSource::Environment(_) => "environment",
            SettingSource::JobFile(_) => "job_file",
            SettingSource::Default => "default",
        })
    }
}

/// A value in force and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: T,
    pub source: SettingSource,
}

/// The places one option can be given; [`SettingPlaces::resolve`] picks by precedence.
#[derive(Debug)]
pub struct SettingPlaces<T> {
    /// The value of the flag, and the flag's name.
    pub flag: Option<(T, &'static str)>,
    pub run_ledger: Option<T>,
    /// The value of the environment variable, and the variable's name.
    pub environment: Option<(T, &'static str)>,
    /// The value of the job key, and the key's name.
    pub job_file: Option<(T, &'static str)>,
    pub default: Option<T>,
}

impl<T> Default for SettingPlaces<T> {
    fn default() -> Self {
        SettingPlaces {
            flag: None,
            run_ledger: None,
            environment: None,
            job_file: None,
            default: None,
        }
    }
}

impl<T> SettingPlaces<T> {
    /// The value in force: flag, then run ledger, then environment, then job file, then default.
    pub fn resolve(self) -> Option<Setting<T>> {
        if let Some((value, flag)) = self.flag {
            return Some(Setting {
                value,
                source: SettingSource::Flag(flag),
            });
        }
        if let Some(value) = self.run_ledger {
            return Some(Setting {
                value,
                source: SettingSource::RunLedger,
            });
        }
        if let Some((value, variable)) = self.environment {
            return Some(Setting {
                value,
                source: SettingSource::Environment(variable),
            });
        }
        if let Some((value, key)) = self.job_file {
            return Some(Setting {
                value,
                source: SettingSource::JobFile(key),
            });
        }
        self.default.map(|value| Setting {
            value,
            source: SettingSource::Default,
        })
    }
}

/// The path in environment variable `variable`, with its name; an unset or empty variable names
/// none.
pub fn environment_path(variable: &'static str) -> Option<(PathBuf, &'static str)> {
    std::env::var_os(variable)
        .filter(|value| !value.is_empty())
        .map(|value| (PathBuf::from(value), variable))
}

/// A flag's path with the flag's name.
pub fn flag_path(path: Option<&Path>, flag: &'static str) -> Option<(PathBuf, &'static str)> {
    path.map(|path| (path.to_owned(), flag))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each combination of places given: the first by precedence wins and is named.
    #[test]
    fn the_first_place_by_precedence_wins_and_is_named() {
        let places =
            |flag: bool, ledger: bool, environment: bool, job: bool, default: bool| SettingPlaces {
                flag: flag.then_some(("flag", "--x")),
                run_ledger: ledger.then_some("ledger"),
                environment: environment.then_some(("environment", "X")),
                job_file: job.then_some(("job", "[a] x")),
                default: default.then_some("default"),
            };
        let cases = [
            ((true, true, true, true, true), Some(("flag", "`--x`"))),
            (
                (false, true, true, true, true),
                Some(("ledger", "the run's ledger (what the run was started with)")),
            ),
            ((false, false, true, true, true), Some(("environment", "X"))),
            (
                (false, false, false, true, true),
                Some(("job", "`[a] x` in the job file")),
            ),
            (
                (false, false, false, false, true),
                Some(("default", "the default")),
            ),
            ((false, false, false, false, false), None),
            ((true, false, false, false, false), Some(("flag", "`--x`"))),
            (
                (false, false, true, false, false),
                Some(("environment", "X")),
            ),
        ];
        for ((flag, ledger, environment, job, default), expected) in cases {
            let resolved = places(flag, ledger, environment, job, default).resolve();
            let got = resolved
                .as_ref()
                .map(|setting| (setting.value, setting.source.to_string()));
            assert_eq!(
                got,
                expected.map(|(value, source)| (value, source.to_owned())),
                "flag {flag}, ledger {ledger}, environment {environment}, job {job}, default {default}"
            );
        }
    }

    #[test]
    fn sources_serialise_as_plain_words() {
        let words: Vec<String> = [
            SettingSource::Flag("--max-cost"),
            SettingSource::RunLedger,
            SettingSource::Environment("X"),
            SettingSource::JobFile("[batch] max_cost"),
            SettingSource::Default,
        ]
        .iter()
        .map(|source| serde_json::to_string(source).unwrap())
        .collect();
        assert_eq!(
            words,
            [
                "\"flag\"",
                "\"run_ledger\"",
                "\"environment\"",
                "\"job_file\"",
                "\"default\""
            ]
        );
    }
}
