//! What every table reader yields: record batches with the line each row starts on, and errors
//! that name the file and the row.

use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;

/// A problem with an input or output table, always naming the file and, when known, the row.
#[derive(Debug, thiserror::Error)]
#[error("{path}{location}: {message}", path = path.display(), location = location.as_deref().map(|l| format!(", {l}")).unwrap_or_default())]
pub struct TableError {
    pub path: PathBuf,
    /// e.g. `row 3 (line 4), column `text``.
    pub location: Option<String>,
    pub message: String,
}

impl TableError {
    pub fn new(path: &Path, location: Option<String>, message: impl Into<String>) -> TableError {
        TableError {
            path: path.to_owned(),
            location,
            message: message.into(),
        }
    }
}

/// Field metadata a reader puts on a column that held no value at all (typed text for want of
/// any evidence): a partitioned input then takes the column's type from the other parts.
pub(super) const ONLY_NULLS: &str = "dashbatch:only_nulls";

/// A column of `name` and `data_type`, marked [`ONLY_NULLS`] when `only_nulls`.
pub(super) fn column_field(
    name: &str,
    data_type: arrow_schema::DataType,
    only_nulls: bool,
) -> arrow_schema::Field {
    let field = arrow_schema::Field::new(name, data_type, true);
    if only_nulls {
        field.with_metadata(std::collections::HashMap::from([(
            ONLY_NULLS.to_owned(),
            "true".to_owned(),
        )]))
    } else {
        field
    }
}

/// A record batch and, for formats with lines (CSV, JSON Lines), the line each of its rows
/// starts on.
pub(super) type BatchWithLines = (RecordBatch, Option<Vec<u64>>);

/// Turns one read into an iterator item; an error ends the stream (`finished` is set).
pub(super) fn stop_after_error(
    finished: &mut bool,
    read: Result<Option<BatchWithLines>, TableError>,
) -> Option<Result<BatchWithLines, TableError>> {
    match read {
        Ok(Some(batch)) => Some(Ok(batch)),
        Ok(None) => None,
        Err(error) => {
            *finished = true;
            Some(Err(error))
        }
    }
}
