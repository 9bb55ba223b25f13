//! Where the joined table goes and in which format, decided and checked before anything is
//! uploaded: the format named by the path's extension must be one dashbatch writes and agree with
//! the job's `[output] format`; the path must not be the input, a directory or a run file; and
//! its directory must take a new file, so a run never pays for batches whose table it cannot write.

use std::path::{Path, PathBuf};

use super::RunDirectory;
use super::run_failure::RunFailure;
use crate::job::Job;
use crate::table::TableFormat;

/// The output table's path (absolute) and format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputTarget {
    pub path: PathBuf,
    pub format: TableFormat,
}

/// The output path the user chose, and where: `--output` (`flag`), else the job's `[output] path`;
/// `None` means the run directory's default.
pub fn output_path_setting(
    flag: Option<&Path>,
    job: &Job,
) -> Option<crate::settings::Setting<PathBuf>> {
    crate::settings::SettingPlaces {
        flag: crate::settings::flag_path(flag, "--output"),
        job_file: job.output_path.clone().map(|path| (path, "[output] path")),
        ..crate::settings::SettingPlaces::default()
    }
    .resolve()
}

/// The output path and format of a run: `--output` (`flag`) over the job's `[output] path`, over
/// `RUN_DIR/output.<format>`; the format from the job's `[output] format`, else the path's
/// extension, else Parquet. An extension that names another format, or none dashbatch writes,
/// is an error rather than a table in the wrong format under a misleading name.
pub fn choose_output_target(
    flag: Option<&Path>,
    job: &Job,
    run_directory: &RunDirectory,
) -> Result<OutputTarget, RunFailure> {
    let chosen = output_path_setting(flag, job);
    let declared = job.spec.output.format;
    let Some(crate::settings::Setting {
        value: path,
        source,
    }) = chosen
    else {
        let format = declared.unwrap_or(TableFormat::Parquet);
        return Ok(OutputTarget {
            path: absolute(&run_directory.default_output_path(format.extension())),
            format,
        });
    };
    // Messages name the flag or key as the user wrote it.
    let where_from = match source {
        crate::settings::SettingSource::Flag(name)
        | crate::settings::SettingSource::JobFile(name) => name,
        _ => "the output path",
    };
    let named = match path.extension() {
        None => None,
        Some(extension) => Some(TableFormat::output_from_path(&path).ok_or_else(|| {
            RunFailure::local(anyhow::anyhow!(
                "{where_from} `{}`: dashbatch cannot write `.{}` files; it writes .parquet, .csv, .jsonl or .xlsx (compressed tables, .xls and .ods are not written). Choose one of those extensions",
                path.display(),
                extension.to_string_lossy()
            ))
        })?),
    };
    let format = match (declared, named) {
        (Some(declared), Some(named)) if declared != named => {
            return Err(RunFailure::local(anyhow::anyhow!(
                "{where_from} `{}` names a {} file, but the job's `[output] format` is `{}`; a {} table under that name would not open. Make the extension and `[output] format` agree",
                path.display(),
                named.display_name(),
                declared.extension(),
                declared.display_name()
            )));
        }
        (Some(declared), _) => declared,
        (None, Some(named)) => named,
        (None, None) => {
            return Err(RunFailure::local(anyhow::anyhow!(
                "{where_from} `{}` has no extension, so its format is unknown; add .parquet, .csv or .jsonl, or set `[output] format`",
                path.display()
            )));
        }
    };
    Ok(OutputTarget {
        path: absolute(&path),
        format,
    })
}

/// Checks, before anything is uploaded, that the output can be written where it is going and
/// that writing it destroys nothing of the user's: not the input, not a directory, not the
/// run's own files.
pub fn check_output_target(
    target: &OutputTarget,
    job: &Job,
    run_directory: &RunDirectory,
) -> Result<(), RunFailure> {
    let path = &target.path;
    if job.spec.output.bom && target.format != TableFormat::Csv {
        return Err(RunFailure::local(anyhow::anyhow!(
            "the job asks for a byte-order mark (`[output] bom`), which is for a CSV output, but the output `{}` is {}; write to a .csv file, or remove `bom`",
            path.display(),
            target.format.extension()
        )));
    }
    if same_file(path, &job.input_path) {
        return Err(RunFailure::local(anyhow::anyhow!(
            "the output `{}` is the job's input; writing the results there would destroy the input. Choose another `--output` or `[output] path`",
            path.display()
        )));
    }
    if crate::table::is_within_input(path, &job.input_path) {
        return Err(RunFailure::local(anyhow::anyhow!(
            "the output `{}` is inside the job's partitioned input `{}`; the next run would read it as one more part. Write it elsewhere with `--output` or `[output] path`",
            path.display(),
            job.input_path.display()
        )));
    }
    if path.is_dir() {
        return Err(RunFailure::local(anyhow::anyhow!(
            "the output `{}` is a directory; name a file inside it, for example `{}`",
            path.display(),
            path.join(format!("output.{}", target.format.extension()))
                .display()
        )));
    }
    let run_root = absolute(&run_directory.root);
    if let Some(parent) = path.parent()
        && same_file(parent, &run_root)
    {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let reserved = name == crate::ledger::LEDGER_FILE_NAME
            || name.starts_with(crate::ledger::LEDGER_FILE_NAME)
            || name == "report.json"
            || name == super::run_lock::RUN_LOCK_FILE_NAME
            || name == "shards"
            || name == "results"
            || name == "simulator";
        if reserved {
            return Err(RunFailure::local(anyhow::anyhow!(
                "the output `{}` would overwrite the run's own `{name}`; choose another name",
                path.display()
            )));
        }
    }
    // Below the run directory's top lie the files the run keeps (shards, downloaded results,
    // the simulator's state): an output there could replace answers already paid for.
    if let Some(kept) = run_directory_part_holding(path, &run_root) {
        return Err(RunFailure::local(anyhow::anyhow!(
            "the output `{}` is inside the run directory's `{kept}`, where the run keeps its own files; write it at the run directory's top or elsewhere",
            path.display()
        )));
    }
    probe_writable(path)
}

/// The subdirectory of the run directory `run_root` (`results`, `shards`, ...) that `path`'s
/// directory lies in, as written or once links are followed (its nearest existing directory),
/// when it lies in one.
fn run_directory_part_holding(path: &Path, run_root: &Path) -> Option<String> {
    let first_part_below = |directory: &Path, root: &Path| {
        directory
            .strip_prefix(root)
            .ok()?
            .components()
            .next()
            .map(|part| part.as_os_str().to_string_lossy().into_owned())
    };
    let directory = absolute(path).parent()?.to_owned();
    first_part_below(&directory, &absolute(run_root)).or_else(|| {
        let root = std::fs::canonicalize(run_root).ok()?;
        let existing = directory
            .ancestors()
            .find_map(|directory| std::fs::canonicalize(directory).ok())?;
        first_part_below(&existing, &root)
    })
}

/// Creates the output's directory and a probe file beside the output, then removes the probe.
fn probe_writable(path: &Path) -> Result<(), RunFailure> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let cannot = |error: std::io::Error| {
        RunFailure::local(anyhow::anyhow!(
            "the output `{}` cannot be written ({error}). Choose a writable place with `--output`",
            path.display()
        ))
    };
    std::fs::create_dir_all(&directory).map_err(cannot)?;
    let probe = directory.join(format!(".dashbatch-probe-{}", std::process::id()));
    std::fs::File::create(&probe).map_err(cannot)?;
    let _ = std::fs::remove_file(&probe);
    if path.exists() {
        // An existing output is replaced by rename at the end; it must not be read-only to us
        // in a way rename would not notice, which is the directory's permission checked above.
        let metadata = std::fs::metadata(path).map_err(cannot)?;
        if !metadata.is_file() {
            return Err(RunFailure::local(anyhow::anyhow!(
                "the output `{}` exists and is not a regular file; choose another `--output`",
                path.display()
            )));
        }
    }
    Ok(())
}

/// True when both paths name the same existing file or directory (links and `..` resolved), or
/// the same path when neither exists yet.
pub(super) fn same_file(first: &Path, second: &Path) -> bool {
    match (std::fs::canonicalize(first), std::fs::canonicalize(second)) {
        (Ok(first), Ok(second)) => first == second,
        _ => absolute(first) == absolute(second),
    }
}

/// `path` made absolute against the current directory, so a resume from elsewhere finds it.
pub fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map(|directory| directory.join(path))
            .unwrap_or_else(|_| path.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job_with(output: &str) -> (tempfile::TempDir, Job) {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join("in.csv"), "id,text\n1,a\n").unwrap();
        let job_file = directory.path().join("job.toml");
        std::fs::write(
            &job_file,
            format!(
                "[input]\npath = \"in.csv\"\nid_column = \"id\"\n[request]\nmodel = \"qwen-plus\"\ntemplate = \"{{{{ text }}}}\"\n{output}"
            ),
        )
        .unwrap();
        let job = crate::job::load_job(&job_file).unwrap();
        (directory, job)
    }

    #[test]
    fn the_extension_and_the_declared_format_must_agree() {
        let (directory, job) = job_with("[output]\nformat = \"csv\"\n");
        let run = RunDirectory::new(directory.path().join("run"));
        let error = choose_output_target(Some(Path::new("x.parquet")), &job, &run)
            .unwrap_err()
            .to_string();
        assert!(error.contains("names a Parquet file"), "{error}");
        assert!(error.contains("`csv`"), "{error}");
        let target = choose_output_target(Some(Path::new("x.csv")), &job, &run).unwrap();
        assert_eq!(target.format, TableFormat::Csv);
    }

    #[test]
    fn unknown_and_compressed_extensions_are_refused() {
        let (directory, job) = job_with("");
        let run = RunDirectory::new(directory.path().join("run"));
        for name in ["x.xls", "x.ods", "x.csv.gz", "x.csv.zst"] {
            let error = choose_output_target(Some(Path::new(name)), &job, &run)
                .unwrap_err()
                .to_string();
            assert!(error.contains("cannot write"), "{name}: {error}");
        }
        let target = choose_output_target(None, &job, &run).unwrap();
        assert_eq!(target.format, TableFormat::Parquet);
        assert!(target.path.ends_with("run/output.parquet"));
    }

    #[test]
    fn the_input_itself_is_never_an_output() {
        let (directory, job) = job_with("");
        let run = RunDirectory::new(directory.path().join("run"));
        let target = choose_output_target(Some(&job.input_path.clone()), &job, &run).unwrap();
        let error = check_output_target(&target, &job, &run)
            .unwrap_err()
            .to_string();
        assert!(error.contains("is the job's input"), "{error}");
    }
}
