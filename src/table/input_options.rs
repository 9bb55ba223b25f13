//! How an input is read, as the job file's `[input]` says: a text input's encoding, a CSV's delimiter, quote and header row, a workbook's sheet; what it does not say is found from the file.

use encoding_rs::Encoding;
use serde::{Deserialize, Serialize};

/// The job's choices for reading an input; `Default` finds everything from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputOptions {
    /// `[input] encoding`; found from the file when `None`.
    pub encoding: Option<&'static Encoding>,
    /// `[input] delimiter` (CSV only); `.tsv` means tab; sniffed from the first lines otherwise.
    pub delimiter: Option<u8>,
    /// `[input] quote` (CSV only): the character that quotes a field (`"` by default), or `None`
    /// when fields are never quoted (`quote = ""`: quotes are then text like any other).
    pub quote: Option<u8>,
    /// `[input] header` (CSV and workbooks): false names the columns `column_1`, `column_2`, ...
    pub header: bool,
    /// `[input] sheet` (workbooks only); the first visible sheet when `None`.
    pub sheet: Option<SheetChoice>,
}

impl Default for InputOptions {
    fn default() -> Self {
        InputOptions {
            encoding: None,
            delimiter: None,
            quote: Some(b'"'),
            header: true,
            sheet: None,
        }
    }
}

/// A workbook's sheet, by its name or its position (from 1, as the tabs are seen).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SheetChoice {
    Number(i64),
    Name(String),
}

impl std::fmt::Display for SheetChoice {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SheetChoice::Number(number) => write!(formatter, "sheet {number}"),
            SheetChoice::Name(name) => write!(formatter, "sheet `{name}`"),
        }
    }
}
