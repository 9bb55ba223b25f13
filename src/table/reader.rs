//! Opening an input table as a stream of Arrow record batches of bounded size.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::TableFormat;
use super::csv_reader::CsvBatchReader;
use super::jsonl_reader::JsonlBatchReader;

/// Rows per record batch: small enough to keep memory flat, large enough to be fast.
pub const ROWS_PER_BATCH: usize = 4096;

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

/// Turns one read into an iterator item; an error ends the stream (`finished` is set).
pub(super) fn stop_after_error(
    finished: &mut bool,
    read: Result<Option<RecordBatch>, TableError>,
) -> Option<Result<RecordBatch, TableError>> {
    match read {
        Ok(Some(batch)) => Some(Ok(batch)),
        Ok(None) => None,
        Err(error) => {
            *finished = true;
            Some(Err(error))
        }
    }
}

/// A stream of record batches with a fixed schema. Rows are numbered from 1 in input order.
pub struct TableReader {
    schema: SchemaRef,
    batches: Box<dyn Iterator<Item = Result<RecordBatch, TableError>> + Send>,
}

impl TableReader {
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl Iterator for TableReader {
    type Item = Result<RecordBatch, TableError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.batches.next()
    }
}

/// Opens `path` in `format`. Nothing but the schema (and, for JSON Lines, the first lines used
/// to infer it) is read until the batches are pulled.
pub fn open_table(path: &Path, format: TableFormat) -> Result<TableReader, TableError> {
    match format {
        TableFormat::Csv => {
            let reader = CsvBatchReader::open(path, ROWS_PER_BATCH)?;
            Ok(TableReader {
                schema: reader.schema(),
                batches: Box::new(reader),
            })
        }
        TableFormat::Jsonl => {
            let reader = JsonlBatchReader::open(path, ROWS_PER_BATCH)?;
            Ok(TableReader {
                schema: reader.schema(),
                batches: Box::new(reader),
            })
        }
        TableFormat::Parquet => {
            let file = File::open(path).map_err(|error| {
                TableError::new(path, None, format!("cannot open the file: {error}"))
            })?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|error| {
                TableError::new(path, None, format!("not a readable Parquet file: {error}"))
            })?;
            let schema = builder.schema().clone();
            let reader = builder
                .with_batch_size(ROWS_PER_BATCH)
                .build()
                .map_err(|error| {
                    TableError::new(path, None, format!("not a readable Parquet file: {error}"))
                })?;
            let owned_path = path.to_owned();
            Ok(TableReader {
                schema,
                batches: Box::new(reader.map(move |batch| {
                    batch.map_err(|error| {
                        TableError::new(&owned_path, None, format!("cannot read rows: {error}"))
                    })
                })),
            })
        }
    }
}
