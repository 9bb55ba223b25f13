//! `dashbatch store stats | prune | export`: what the answer store holds, removing old answers,
//! and writing a job's answers out. The store is `--store FILE`, else `DASHBATCH_STORE`, else the
//! user's store in the dashbatch cache directory.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::terminal::{print_error, print_text};
use crate::answer_store::AnswerStore;
use crate::exit;
use crate::store_location::{JobStoreSetting, choose_store};

/// The store the command works on, and whether one is chosen at all.
fn chosen_store_path(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = flag {
        return Ok(path);
    }
    choose_store(false, None, &JobStoreSetting::UserStore)
        .path
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no answer store: `DASHBATCH_STORE` is off, or there is no cache directory (neither XDG_CACHE_HOME nor HOME is set); name one with `--store FILE`"
            )
        })
}

fn open_existing(path: &Path) -> anyhow::Result<Option<AnswerStore>> {
    Ok(AnswerStore::open_to_read(path)?)
}

pub fn stats_command(store: Option<PathBuf>, json: bool) -> u8 {
    let outcome = (|| -> anyhow::Result<String> {
        let path = chosen_store_path(store)?;
        let Some(store) = open_existing(&path)? else {
            return Ok(if json {
                serde_json::to_string_pretty(&crate::answer_store::StoreStats {
                    path: path.display().to_string(),
                    answers: 0,
                    file_bytes: 0,
                    oldest_answer: None,
                    newest_answer: None,
                    jobs: Vec::new(),
                })?
            } else {
                format!("answer store `{}`: empty (no file yet)", path.display())
            });
        };
        let stats = store.stats()?;
        if json {
            return Ok(serde_json::to_string_pretty(&stats)?);
        }
        let mut text = format!(
            "answer store `{}`: {} answer(s), {} bytes",
            stats.path,
            crate::readable_number::with_thousands(stats.answers),
            crate::readable_number::with_thousands(stats.file_bytes)
        );
        if let (Some(oldest), Some(newest)) = (&stats.oldest_answer, &stats.newest_answer) {
            write!(text, ", answered from {oldest} to {newest}")?;
        }
        for job in &stats.jobs {
            write!(
                text,
                "\n  job `{}`: {} answer(s) from {}{}",
                job.job,
                crate::readable_number::with_thousands(job.answers),
                job.models.join(", "),
                job.last_used_at
                    .as_ref()
                    .map(|used| format!(", last used {used}"))
                    .unwrap_or_default()
            )?;
        }
        Ok(text)
    })();
    said(outcome.map(Some))
}

/// `30d`, `12h`, `45m`, or a number of days.
fn parse_age(text: &str) -> anyhow::Result<chrono::Duration> {
    let trimmed = text.trim();
    let (number, unit) = match trimmed.char_indices().last() {
        Some((index, unit)) if unit.is_ascii_alphabetic() => (&trimmed[..index], unit),
        _ => (trimmed, 'd'),
    };
    let amount: i64 = number
        .parse()
        .ok()
        .filter(|amount| *amount >= 0)
        .ok_or_else(|| anyhow::anyhow!("`{text}` is not an age; write it as 30d, 12h or 45m"))?;
    let age = match unit {
        'd' => chrono::Duration::try_days(amount),
        'h' => chrono::Duration::try_hours(amount),
        'm' => chrono::Duration::try_minutes(amount),
        _ => anyhow::bail!("`{text}` is not an age; write it as 30d, 12h or 45m"),
    };
    age.ok_or_else(|| {
        anyhow::anyhow!("`{text}` is too long an age; write at most some thousands of days")
    })
}

/// The moment `age` ago, as the store writes times; the start of time for an age past it.
fn moment_ago(age: chrono::Duration) -> String {
    chrono::Utc::now()
        .checked_sub_signed(age)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn prune_command(
    store: Option<PathBuf>,
    older_than: Option<String>,
    unused_for: Option<String>,
    job: Option<String>,
) -> u8 {
    let outcome = (|| -> anyhow::Result<String> {
        if older_than.is_none() && unused_for.is_none() {
            anyhow::bail!(
                "say which answers to remove: `--older-than AGE` (answered before) or `--unused-for AGE` (not reused since), e.g. `--unused-for 90d`"
            );
        }
        let answered_before = older_than
            .as_deref()
            .map(parse_age)
            .transpose()?
            .map(moment_ago);
        let unused_since = unused_for
            .as_deref()
            .map(parse_age)
            .transpose()?
            .map(moment_ago);
        let path = chosen_store_path(store)?;
        if !path.exists() {
            return Ok(format!(
                "answer store `{}`: empty (no file yet); nothing removed",
                path.display()
            ));
        }
        let mut store = AnswerStore::open(&path)?;
        // Announcements of runs that are gone or finished are no use to anyone.
        crate::engine::withdraw_stale_announcements(&mut store, None)?;
        let removed = store.prune(
            answered_before.as_deref(),
            unused_since.as_deref(),
            job.as_deref(),
        )?;
        Ok(format!(
            "answer store `{}`: removed {} answer(s); they will be paid for again if asked again",
            path.display(),
            crate::readable_number::with_thousands(removed)
        ))
    })();
    said(outcome.map(Some))
}

pub fn export_command(store: Option<PathBuf>, job: Option<String>, output: Option<PathBuf>) -> u8 {
    let outcome = (|| -> anyhow::Result<Option<String>> {
        let path = chosen_store_path(store)?;
        let Some(store) = open_existing(&path)? else {
            anyhow::bail!(
                "answer store `{}` does not exist yet: nothing to export",
                path.display()
            );
        };
        match output {
            Some(output) => {
                if output.exists()
                    && std::fs::canonicalize(&output)? == std::fs::canonicalize(&path)?
                {
                    anyhow::bail!(
                        "`--output {}` is the answer store itself; writing it would destroy the store. Name another file",
                        output.display()
                    );
                }
                if output.is_dir() {
                    anyhow::bail!(
                        "`--output {}` is a directory; name a file inside it, for example `{}`",
                        output.display(),
                        output.join("answers.jsonl").display()
                    );
                }
                let mut partial_name = output.file_name().unwrap_or_default().to_owned();
                partial_name.push(".partial");
                let partial = output.with_file_name(partial_name);
                let file = std::fs::File::create(&partial).map_err(|error| {
                    anyhow::anyhow!("cannot write `{}`: {error}", partial.display())
                })?;
                crate::ledger::restrict_permissions(&partial);
                let mut writer = std::io::BufWriter::new(file);
                let written = store.export(job.as_deref(), &mut writer)?;
                let file = writer.into_inner().map_err(|error| error.into_error())?;
                file.sync_all()?;
                std::fs::rename(&partial, &output)?;
                Ok(Some(format!(
                    "wrote {} answer(s) to `{}`",
                    crate::readable_number::with_thousands(written),
                    output.display()
                )))
            }
            None => {
                let stdout = std::io::stdout();
                let mut lock = stdout.lock();
                match store.export(job.as_deref(), &mut lock) {
                    // A reader that stopped early (`| head`) wanted no more.
                    Err(error) if is_broken_pipe(&error) => Ok(None),
                    Err(error) => Err(error),
                    Ok(_) => Ok(None),
                }
            }
        }
    })();
    said(outcome)
}

/// Prints a command's text (if any) and gives its exit code, or prints its error.
fn said(outcome: anyhow::Result<Option<String>>) -> u8 {
    match outcome {
        Ok(text) => {
            if let Some(text) = text {
                print_text(&format!("{text}\n"));
            }
            exit::SUCCESS
        }
        Err(error) => {
            print_error(&error);
            exit::INPUT_ERROR
        }
    }
}

/// Whether writing failed because the reader of stdout went away.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            .or_else(|| {
                cause
                    .downcast_ref::<serde_json::Error>()
                    .and_then(serde_json::Error::io_error_kind)
            })
            == Some(std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_days_hours_or_minutes() {
        assert_eq!(parse_age("30d").unwrap(), chrono::Duration::days(30));
        assert_eq!(parse_age("7").unwrap(), chrono::Duration::days(7));
        assert_eq!(parse_age("12h").unwrap(), chrono::Duration::hours(12));
        assert_eq!(parse_age("45m").unwrap(), chrono::Duration::minutes(45));
        for bad in [
            "",
            "d",
            "-3d",
            "3w",
            "x",
            "9999999999999999d",
            "100000000000000h",
        ] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }
}
