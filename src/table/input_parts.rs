//! What `[input] path` names: one file, or the parts of a partitioned table (a directory of part files as Spark, DuckDB or Hive write them, or a glob), found and ordered the same way every time.
//!
//! A directory's files are its parts, searched through its subdirectories (`year=2024/...`);
//! names starting with `_` or `.` are skipped (`_SUCCESS`, `_temporary/`, `.part-0.crc`). Parts
//! are ordered by path with runs of digits compared as numbers (`data_2` before `data_10`), so
//! rows keep one order: by part, then by row.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use super::TableFormat;

/// The files an input path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFiles {
    /// The files, in the order their rows are read.
    pub parts: Vec<PathBuf>,
    /// Whether the path named a directory or a glob rather than one file.
    pub partitioned: bool,
}

/// Whether `path` is a glob pattern rather than a file name (it has `*`, `?` or `[`).
#[must_use]
pub fn is_glob(path: &Path) -> bool {
    path.to_string_lossy()
        .chars()
        .any(|character| matches!(character, '*' | '?' | '['))
}

/// Whether a directory entry named `name` is not a part: bookkeeping (`_SUCCESS`, `.crc`), or a
/// picture kept beside the parts for an image job (`[request] images` names them by path).
fn is_hidden_part(name: &std::ffi::OsStr) -> bool {
    const PICTURE_EXTENSIONS: [&str; 10] = [
        "png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp", "heic", "heif",
    ];
    let name = name.to_string_lossy();
    let is_picture = name.rsplit_once('.').is_some_and(|(_, extension)| {
        PICTURE_EXTENSIONS
            .iter()
            .any(|picture| extension.eq_ignore_ascii_case(picture))
    });
    name.starts_with('_') || name.starts_with('.') || is_picture
}

/// Compares two paths with runs of ASCII digits taken as numbers.
fn natural_order(left: &Path, right: &Path) -> Ordering {
    let left = left.to_string_lossy();
    let right = right.to_string_lossy();
    let (mut left, mut right) = (left.as_bytes(), right.as_bytes());
    loop {
        match (left.first(), right.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(a), Some(b)) if a.is_ascii_digit() && b.is_ascii_digit() => {
                let digits = |bytes: &[u8]| bytes.iter().take_while(|b| b.is_ascii_digit()).count();
                let (left_digits, right_digits) = (digits(left), digits(right));
                let trim = |run: &[u8]| {
                    let zeros = run.iter().take_while(|b| **b == b'0').count();
                    run[zeros..].to_vec()
                };
                let (a_run, b_run) = (trim(&left[..left_digits]), trim(&right[..right_digits]));
                let order = a_run
                    .len()
                    .cmp(&b_run.len())
                    .then_with(|| a_run.cmp(&b_run))
                    .then_with(|| left_digits.cmp(&right_digits));
                if order != Ordering::Equal {
                    return order;
                }
                left = &left[left_digits..];
                right = &right[right_digits..];
            }
            (Some(a), Some(b)) => {
                if a != b {
                    return a.cmp(b);
                }
                left = &left[1..];
                right = &right[1..];
            }
        }
    }
}

/// Adds the parts under `directory` to `parts`; `visited` holds the directories already searched
/// (by their real path), so that a symbolic link back up the tree is not followed round.
fn collect_directory(
    directory: &Path,
    parts: &mut Vec<PathBuf>,
    visited: &mut std::collections::HashSet<PathBuf>,
) -> Result<(), String> {
    if let Ok(real) = directory.canonicalize()
        && !visited.insert(real)
    {
        return Ok(());
    }
    let entries = std::fs::read_dir(directory)
        .map_err(|error| format!("cannot list directory `{}`: {error}", directory.display()))?;
    for entry in entries {
        let entry = entry
            .map_err(|error| format!("cannot list directory `{}`: {error}", directory.display()))?;
        if is_hidden_part(&entry.file_name()) {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            collect_directory(&path, parts, visited)?;
        } else if !is_empty_file(&path) {
            parts.push(path);
        }
    }
    Ok(())
}

/// The files a pattern with `**` matches, found by walking from its fixed leading directories
/// (the glob crate's own walk follows a link back up the tree round and round): `*` stays
/// within one directory, `**` crosses any number.
fn collect_recursive_matches(
    pattern: &Path,
    parts: &mut Vec<PathBuf>,
    visited: &mut std::collections::HashSet<PathBuf>,
) -> Result<(), String> {
    let matcher = glob::Pattern::new(&pattern.to_string_lossy()).map_err(|error| {
        format!(
            "`{}` is not a usable glob pattern: {error}",
            pattern.display()
        )
    })?;
    let options = glob::MatchOptions {
        require_literal_separator: true,
        require_literal_leading_dot: true,
        ..glob::MatchOptions::new()
    };
    let base = glob_base(pattern);
    let walked_from_here = base.as_os_str().is_empty();
    let start = if walked_from_here {
        PathBuf::from(".")
    } else {
        base
    };
    if !start.is_dir() {
        return Ok(());
    }
    let mut files = Vec::new();
    collect_directory(&start, &mut files, visited)?;
    for file in files {
        let file = if walked_from_here {
            file.strip_prefix(".").map(Path::to_owned).unwrap_or(file)
        } else {
            file
        };
        if matcher.matches_path_with(&file, options) {
            parts.push(file);
        }
    }
    Ok(())
}

/// A part of 0 bytes holds no row (Spark writes one for an empty partition).
fn is_empty_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|metadata| metadata.len() == 0)
}

/// The leading directories of a glob pattern, before its first component with a wildcard
/// (`exports/2024` for `exports/2024/*/part-*.csv`): the parts' names are taken from there.
#[must_use]
pub fn glob_base(pattern: &Path) -> PathBuf {
    let mut base = PathBuf::new();
    for component in pattern.components() {
        if is_glob(Path::new(component.as_os_str())) {
            break;
        }
        base.push(component);
    }
    base
}

/// The files `path` names: itself when it is a file (or names nothing, so that opening it
/// reports the missing file), the parts of a directory, or the files a glob matches.
///
/// # Errors
/// When a directory cannot be listed, holds no part, or a glob is malformed or matches nothing.
pub fn find_input_files(path: &Path) -> Result<InputFiles, String> {
    let mut parts = Vec::new();
    let mut visited = std::collections::HashSet::new();
    if path.is_dir() {
        collect_directory(path, &mut parts, &mut visited)?;
        if parts.is_empty() {
            return Err(format!(
                "the input directory `{}` holds no part file (names starting with `_` or `.`, and empty files, are skipped)",
                path.display()
            ));
        }
    } else if !path.exists() && is_glob(path) {
        let pattern = path.to_string_lossy();
        let options = glob::MatchOptions {
            require_literal_leading_dot: true,
            ..glob::MatchOptions::new()
        };
        if pattern.contains("**") {
            collect_recursive_matches(path, &mut parts, &mut visited)?;
        } else {
            let matches = glob::glob_with(&pattern, options)
                .map_err(|error| format!("`{pattern}` is not a usable glob pattern: {error}"))?;
            for found in matches {
                let found = found.map_err(|error| {
                    format!("cannot read `{}`: {error}", error.path().display())
                })?;
                // Bookkeeping is skipped as in a directory (`_SUCCESS`, `.part-0.crc`).
                if found.file_name().is_some_and(is_hidden_part) {
                    continue;
                }
                // A directory the pattern matches (`hive/*` matching `year=2024/`) gives its parts.
                if found.is_dir() {
                    collect_directory(&found, &mut parts, &mut visited)?;
                } else if !is_empty_file(&found) {
                    parts.push(found);
                }
            }
        }
        if parts.is_empty() {
            return Err(format!(
                "the input pattern `{pattern}` matches no file with rows; check the path, or name the file or directory itself"
            ));
        }
    } else {
        return Ok(InputFiles {
            parts: vec![path.to_owned()],
            partitioned: false,
        });
    }
    parts.sort_by(|left, right| natural_order(left, right));
    // One file reached twice (through a symbolic link, or `**` and a linked directory) is one
    // part: its rows are sent once.
    let mut real_paths = std::collections::HashSet::new();
    parts.retain(|part| real_paths.insert(part.canonicalize().unwrap_or_else(|_| part.clone())));
    Ok(InputFiles {
        parts,
        partitioned: true,
    })
}

/// The one format of a partitioned input's parts, from their extensions.
///
/// # Errors
/// When a part's extension names no table format, or two parts differ in format.
pub fn format_of_parts(parts: &[PathBuf]) -> Result<TableFormat, String> {
    let mut found: Option<(TableFormat, &Path)> = None;
    for part in parts {
        let format = TableFormat::from_path(part).ok_or_else(|| {
            format!(
                "cannot tell the format of part `{}` from its extension; remove the file from the input directory, or set `input.format` to read every part as that format",
                part.display()
            )
        })?;
        match found {
            None => found = Some((format, part)),
            Some((first, first_part)) if first != format => {
                return Err(format!(
                    "the parts are not all one format: `{}` is {} but `{}` is {}; keep one format in the input",
                    first_part.display(),
                    first.display_name(),
                    part.display(),
                    format.display_name()
                ));
            }
            Some(_) => {}
        }
    }
    found
        .map(|(format, _)| format)
        .ok_or_else(|| "the input has no part".to_owned())
}

/// Whether `candidate` would be read as part of the input `input` names (it is the input file,
/// inside the input directory, or matched by the input glob).
#[must_use]
pub fn is_within_input(candidate: &Path, input: &Path) -> bool {
    if input.is_dir() {
        let (Ok(directory), Some(parent)) = (input.canonicalize(), candidate.parent()) else {
            return false;
        };
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        return parent
            .canonicalize()
            .is_ok_and(|parent| parent.starts_with(&directory));
    }
    if !input.exists() && is_glob(input) {
        let absolute = |path: &Path| match std::env::current_dir() {
            Ok(directory) if path.is_relative() => directory.join(path),
            _ => path.to_owned(),
        };
        if glob::Pattern::new(&absolute(input).to_string_lossy())
            .is_ok_and(|pattern| pattern.matches_path(&absolute(candidate)))
        {
            return true;
        }
        // Inside a directory the pattern matches (`data/p[12]` matching `data/p1/`); a `**`
        // pattern already matched every file below it.
        if input.to_string_lossy().contains("**") {
            return false;
        }
        let Some(parent) = candidate
            .parent()
            .map(absolute)
            .and_then(|parent| parent.canonicalize().ok())
        else {
            return false;
        };
        return glob::glob(&input.to_string_lossy()).is_ok_and(|matches| {
            matches.flatten().any(|found| {
                found.is_dir()
                    && found
                        .canonicalize()
                        .is_ok_and(|directory| parent.starts_with(directory))
            })
        });
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_ordered_with_numbers_as_numbers() {
        let mut paths: Vec<PathBuf> = [
            "d/data_10.parquet",
            "d/data_2.parquet",
            "d/data_1.parquet",
            "d/a/x.parquet",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        paths.sort_by(|a, b| natural_order(a, b));
        assert_eq!(
            paths,
            [
                "d/a/x.parquet",
                "d/data_1.parquet",
                "d/data_2.parquet",
                "d/data_10.parquet"
            ]
            .iter()
            .map(PathBuf::from)
            .collect::<Vec<_>>()
        );
        assert_eq!(
            natural_order(Path::new("part-00002"), Path::new("part-2")),
            Ordering::Greater
        );
    }

    #[test]
    fn a_directory_s_parts_skip_bookkeeping_files() {
        let directory = tempfile::tempdir().unwrap();
        let root = directory.path();
        std::fs::create_dir_all(root.join("year=2024")).unwrap();
        std::fs::create_dir_all(root.join("_temporary")).unwrap();
        for name in [
            "part-1.csv",
            "part-0.csv",
            "_SUCCESS",
            ".part-0.csv.crc",
            "year=2024/part-0.csv",
            "_temporary/part-9.csv",
        ] {
            std::fs::write(root.join(name), "id\n1\n").unwrap();
        }
        let found = find_input_files(root).unwrap();
        assert!(found.partitioned);
        assert_eq!(
            found.parts,
            vec![
                root.join("part-0.csv"),
                root.join("part-1.csv"),
                root.join("year=2024/part-0.csv")
            ]
        );
        assert_eq!(format_of_parts(&found.parts).unwrap(), TableFormat::Csv);
        let globbed = find_input_files(&root.join("part-*.csv")).unwrap();
        assert_eq!(
            globbed.parts,
            vec![root.join("part-0.csv"), root.join("part-1.csv")]
        );
        assert!(
            find_input_files(&root.join("nothing-*.csv"))
                .unwrap_err()
                .contains("matches no file")
        );
        assert!(is_within_input(&root.join("out.xlsx"), root));
        assert!(is_within_input(
            &root.join("part-7.csv"),
            &root.join("part-*.csv")
        ));
        assert!(!is_within_input(
            &root.join("out.csv"),
            &root.join("part-*.csv")
        ));
        std::fs::write(root.join("notes.txt"), "x").unwrap();
        let found = find_input_files(root).unwrap();
        assert!(
            format_of_parts(&found.parts)
                .unwrap_err()
                .contains("notes.txt")
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(
            find_input_files(empty.path())
                .unwrap_err()
                .contains("no part file")
        );
    }

    #[test]
    fn globs_take_the_parts_of_directories_they_match_and_links_are_not_followed_round() {
        let directory = tempfile::tempdir().unwrap();
        let root = directory.path();
        std::fs::create_dir_all(root.join("hive/year=2024")).unwrap();
        std::fs::create_dir_all(root.join("hive/year=2025")).unwrap();
        std::fs::write(root.join("hive/year=2024/part-0.csv"), "id\n1\n").unwrap();
        std::fs::write(root.join("hive/year=2025/part-0.csv"), "id\n2\n").unwrap();
        // Spark's file for an empty partition: no bytes, no rows, skipped.
        std::fs::write(root.join("hive/year=2025/part-1.csv"), "").unwrap();
        let found = find_input_files(&root.join("hive/*")).unwrap();
        assert_eq!(
            found.parts,
            vec![
                root.join("hive/year=2024/part-0.csv"),
                root.join("hive/year=2025/part-0.csv")
            ]
        );
        assert_eq!(
            glob_base(&root.join("hive/*/part-*.csv")),
            root.join("hive")
        );
        // A glob skips bookkeeping as a directory does.
        std::fs::write(root.join("hive/year=2024/.old.csv"), "id\n9\n").unwrap();
        std::fs::write(root.join("hive/year=2024/_tmp.csv"), "id\n9\n").unwrap();
        let found = find_input_files(&root.join("hive/year=2024/*.csv")).unwrap();
        assert_eq!(found.parts, vec![root.join("hive/year=2024/part-0.csv")]);
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(root.join("hive"), root.join("hive/year=2024/up")).unwrap();
            std::os::unix::fs::symlink(root.join("hive"), root.join("hive/year=2025/up")).unwrap();
            let found = find_input_files(&root.join("hive")).unwrap();
            assert_eq!(found.parts.len(), 2, "{:?}", found.parts);
            // `**` through the links reaches the same files again: each is one part.
            let found = find_input_files(&root.join("hive/**/*.csv")).unwrap();
            assert_eq!(found.parts.len(), 2, "{:?}", found.parts);
        }
    }
}
