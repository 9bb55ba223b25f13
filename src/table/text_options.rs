//! How a text input (CSV, TSV, JSON Lines) is read: its encoding, its field delimiter and whether it has a header row, as the job file's `[input]` says; what it does not say is found from the file.

use encoding_rs::Encoding;

/// The job's choices for reading a text input; `Default` finds everything from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextOptions {
    /// `[input] encoding`; found from the file when `None`.
    pub encoding: Option<&'static Encoding>,
    /// `[input] delimiter` (CSV only); `.tsv` means tab; sniffed from the first lines otherwise.
    pub delimiter: Option<u8>,
    /// `[input] header` (CSV only): false names the columns `column_1`, `column_2`, ...
    pub header: bool,
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions {
            encoding: None,
            delimiter: None,
            header: true,
        }
    }
}
