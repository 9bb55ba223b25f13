//! The table formats dashbatch reads and writes, and how they are told apart.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::compression::Compression;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableFormat {
    Csv,
    Parquet,
    Jsonl,
    /// A spreadsheet workbook: `.xlsx`, `.xlsm`, `.xlsb`, `.xls` or `.ods` in, `.xlsx` out.
    Excel,
}

impl TableFormat {
    /// `.csv`/`.tsv`, `.parquet`/`.pq`, `.jsonl`/`.ndjson` (case-insensitive), each also with
    /// `.gz`, `.zst`, `.bz2` or `.xz` after it for the text formats (`reviews.csv.gz`).
    pub fn from_path(path: &Path) -> Option<TableFormat> {
        match extension_under_compression(path)?.as_str() {
            "csv" | "tsv" => Some(TableFormat::Csv),
            "parquet" | "pq" => Some(TableFormat::Parquet),
            "jsonl" | "ndjson" => Some(TableFormat::Jsonl),
            "xlsx" | "xlsm" | "xlsb" | "xls" | "ods" => Some(TableFormat::Excel),
            _ => None,
        }
    }

    /// Whether the format is text that may be compressed around (`.csv.gz`); Parquet and
    /// workbooks compress inside themselves.
    pub fn is_text(self) -> bool {
        matches!(self, TableFormat::Csv | TableFormat::Jsonl)
    }

    /// The format's name in messages.
    pub fn display_name(self) -> &'static str {
        match self {
            TableFormat::Csv => "CSV",
            TableFormat::Parquet => "Parquet",
            TableFormat::Jsonl => "JSON Lines",
            TableFormat::Excel => "workbook",
        }
    }

    /// The format an output at `path` is written in: `.csv`, `.parquet`/`.pq`, `.jsonl`/`.ndjson`,
    /// `.xlsx` only (dashbatch writes neither TSV, nor compressed tables, nor older workbooks).
    pub fn output_from_path(path: &Path) -> Option<TableFormat> {
        let extension = path.extension()?.to_string_lossy().to_ascii_lowercase();
        if matches!(extension.as_str(), "tsv" | "xlsm" | "xlsb" | "xls" | "ods")
            || Compression::of_path(path) != Compression::None
        {
            return None;
        }
        TableFormat::from_path(path)
    }

    /// Whether `path` names a tab-separated table (`.tsv`, or `.tsv.gz` and the like).
    pub fn is_tsv(path: &Path) -> bool {
        extension_under_compression(path).is_some_and(|extension| extension == "tsv")
    }

    pub fn extension(self) -> &'static str {
        match self {
            TableFormat::Csv => "csv",
            TableFormat::Parquet => "parquet",
            TableFormat::Jsonl => "jsonl",
            TableFormat::Excel => "xlsx",
        }
    }
}

/// The lower-case extension of `path`, or of its name without `.gz` (`.zst`, ...) when it is
/// compressed.
fn extension_under_compression(path: &Path) -> Option<String> {
    let path = if Compression::of_path(path) != Compression::None {
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
