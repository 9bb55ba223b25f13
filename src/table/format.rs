//! The table formats dashbatch reads and writes, and how they are told apart.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableFormat {
    Csv,
    Parquet,
    Jsonl,
}

impl TableFormat {
    /// `.csv`/`.tsv`, `.parquet`/`.pq`, `.jsonl`/`.ndjson` (case-insensitive), each also with
    /// `.gz` after it for the text formats (`reviews.csv.gz`).
    pub fn from_path(path: &Path) -> Option<TableFormat> {
        match extension_under_gzip(path)?.as_str() {
            "csv" | "tsv" => Some(TableFormat::Csv),
            "parquet" | "pq" => Some(TableFormat::Parquet),
            "jsonl" | "ndjson" => Some(TableFormat::Jsonl),
            _ => None,
        }
    }

    /// The format an output at `path` is written in: `.csv`, `.parquet`/`.pq`, `.jsonl`/`.ndjson`
    /// only (dashbatch writes neither TSV nor compressed tables).
    pub fn output_from_path(path: &Path) -> Option<TableFormat> {
        let extension = path.extension()?.to_string_lossy().to_ascii_lowercase();
        if matches!(extension.as_str(), "gz" | "tsv") {
            return None;
        }
        TableFormat::from_path(path)
    }

    /// Whether `path` names a tab-separated table (`.tsv`, or `.tsv.gz`).
    pub fn is_tsv(path: &Path) -> bool {
        extension_under_gzip(path).is_some_and(|extension| extension == "tsv")
    }

    pub fn extension(self) -> &'static str {
        match self {
            TableFormat::Csv => "csv",
            TableFormat::Parquet => "parquet",
            TableFormat::Jsonl => "jsonl",
        }
    }
}

/// The lower-case extension of `path`, or of its name without `.gz` when it is gzip'd.
fn extension_under_gzip(path: &Path) -> Option<String> {
    let path = if super::text_source::is_gzip(path) {
        Path::new(path.file_stem()?)
    } else {
        path
    };
    Some(path.extension()?.to_string_lossy().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_extensions() {
        assert_eq!(
            TableFormat::from_path(Path::new("a/b.CSV")),
            Some(TableFormat::Csv)
        );
        assert_eq!(
            TableFormat::from_path(Path::new("x.parquet")),
            Some(TableFormat::Parquet)
        );
        assert_eq!(
            TableFormat::from_path(Path::new("x.ndjson")),
            Some(TableFormat::Jsonl)
        );
        assert_eq!(TableFormat::from_path(Path::new("x.txt")), None);
        assert_eq!(
            TableFormat::from_path(Path::new("d/x.tsv")),
            Some(TableFormat::Csv)
        );
        assert_eq!(
            TableFormat::from_path(Path::new("x.jsonl.GZ")),
            Some(TableFormat::Jsonl)
        );
        assert_eq!(
            TableFormat::from_path(Path::new("x.csv.gz")),
            Some(TableFormat::Csv)
        );
        assert_eq!(TableFormat::from_path(Path::new("x.gz")), None);
        assert!(TableFormat::is_tsv(Path::new("a/x.TSV.gz")));
        assert!(!TableFormat::is_tsv(Path::new("x.csv")));
    }
}
