//! Opening an input table as a stream of Arrow record batches of bounded size.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::TableFormat;
use super::batch_stream::{BatchWithLines, TableError};
use super::csv_reader::CsvBatchReader;
use super::jsonl_reader::JsonlBatchReader;
use super::text_options::TextOptions;

/// Rows per record batch: small enough to keep memory flat, large enough to be fast.
pub const ROWS_PER_BATCH: usize = 4096;

/// A stream of record batches with a fixed schema. Rows are numbered from 1 in input order.
pub struct TableReader {
    schema: SchemaRef,
    batches: Box<dyn Iterator<Item = Result<BatchWithLines, TableError>> + Send>,
    /// The line each row of the batch last returned starts on (CSV and JSON Lines).
    last_batch_lines: Option<Vec<u64>>,
    /// How a text input is read (encoding, delimiter), in words, for `validate`.
    text_description: Option<String>,
}

impl TableReader {
    fn new(
        schema: SchemaRef,
        batches: Box<dyn Iterator<Item = Result<BatchWithLines, TableError>> + Send>,
    ) -> TableReader {
        TableReader {
            schema,
            batches,
            last_batch_lines: None,
            text_description: None,
        }
    }

    /// How a text input is read (its encoding, and a CSV's delimiter and header), in words;
    /// `None` for Parquet.
    pub fn text_description(&self) -> Option<&str> {
        self.text_description.as_deref()
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The line of the file that row `row_in_batch` of the batch last returned starts on, for
    /// formats that have lines.
    pub fn line_of_row(&self, row_in_batch: usize) -> Option<u64> {
        self.last_batch_lines
            .as_ref()
            .and_then(|lines| lines.get(row_in_batch).copied())
            .filter(|line| *line > 0)
    }
}

impl Iterator for TableReader {
    type Item = Result<RecordBatch, TableError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (batch, lines) = match self.batches.next()? {
            Ok(batch_with_lines) => batch_with_lines,
            Err(error) => return Some(Err(error)),
        };
        self.last_batch_lines = lines;
        Some(Ok(batch))
    }
}

/// Column names must be unique and not empty: the output repeats them, and pandas cannot read a
/// table with two columns of one name. (CSV and JSON Lines check this while reading.)
fn check_column_names(path: &Path, schema: &Schema) -> Result<(), TableError> {
    let mut first_index: HashMap<&str, usize> = HashMap::new();
    for (index, field) in schema.fields().iter().enumerate() {
        let name = field.name().as_str();
        if name.trim().is_empty() {
            return Err(TableError::new(
                path,
                Some(format!("column {}", index + 1)),
                "the column has no name; give every column a name (e.g. rename it in pandas and write the file again)",
            ));
        }
        if let Some(first) = first_index.insert(name, index) {
            return Err(TableError::new(
                path,
                Some(format!("column `{name}`")),
                format!(
                    "the table has two columns named `{name}` (columns {} and {}); column names must be unique, so rename one and write the file again",
                    first + 1,
                    index + 1
                ),
            ));
        }
    }
    Ok(())
}

/// Opens `path` in `format`, finding a text input's encoding and delimiter from the file.
///
/// # Errors
/// As [`open_table_with`].
pub fn open_table(path: &Path, format: TableFormat) -> Result<TableReader, TableError> {
    open_table_with(path, format, &TextOptions::default())
}

/// Opens `path` in `format`, a text input read as `options` say. Nothing but the schema (and,
/// for JSON Lines, the first lines used to infer it) is read until the batches are pulled.
///
/// # Errors
/// When the file cannot be opened, or its start (header, schema) cannot be read.
pub fn open_table_with(
    path: &Path,
    format: TableFormat,
    options: &TextOptions,
) -> Result<TableReader, TableError> {
    match format {
        TableFormat::Csv => {
            let reader = CsvBatchReader::open(path, ROWS_PER_BATCH, options)?;
            let description = reader.description();
            let mut table = TableReader::new(reader.schema(), Box::new(reader));
            table.text_description = Some(description);
            Ok(table)
        }
        TableFormat::Jsonl => {
            let reader = JsonlBatchReader::open(path, ROWS_PER_BATCH, options)?;
            let description = reader.description();
            let mut table = TableReader::new(reader.schema(), Box::new(reader));
            table.text_description = Some(description);
            Ok(table)
        }
        TableFormat::Parquet => {
            let file = File::open(path).map_err(|error| {
                TableError::new(path, None, format!("cannot open the file: {error}"))
            })?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|error| {
                TableError::new(path, None, format!("not a readable Parquet file: {error}"))
            })?;
            let schema = builder.schema().clone();
            check_column_names(path, &schema)?;
            let reader = builder
                .with_batch_size(ROWS_PER_BATCH)
                .build()
                .map_err(|error| {
                    TableError::new(path, None, format!("not a readable Parquet file: {error}"))
                })?;
            let owned_path = path.to_owned();
            Ok(TableReader::new(
                schema,
                Box::new(reader.map(move |batch| {
                    batch.map(|batch| (batch, None)).map_err(|error| {
                        TableError::new(&owned_path, None, format!("cannot read rows: {error}"))
                    })
                })),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{DataType, Field};

    fn schema(names: &[&str]) -> Schema {
        Schema::new(
            names
                .iter()
                .map(|name| Field::new(*name, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn column_names_must_be_unique_and_named() {
        let path = Path::new("input.parquet");
        assert!(check_column_names(path, &schema(&["id", "text"])).is_ok());
        let message = check_column_names(path, &schema(&["id", "text", "text"]))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("input.parquet, column `text`"),
            "{message}"
        );
        assert!(message.contains("columns 2 and 3"), "{message}");
        let message = check_column_names(path, &schema(&["id", " "]))
            .unwrap_err()
            .to_string();
        assert!(message.contains("column 2"), "{message}");
        assert!(message.contains("no name"), "{message}");
    }
}
