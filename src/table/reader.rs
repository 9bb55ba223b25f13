//! Opening an input table (one file, or the parts of a partitioned one, read in turn) as a stream of Arrow record batches of bounded size.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_schema::{DataType, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::TableFormat;
use super::batch_stream::{BatchWithLines, TableError};
use super::csv_reader::CsvBatchReader;
use super::excel_reader::ExcelBatchReader;
use super::input_options::InputOptions;
use super::input_parts::find_input_files;
use super::jsonl_reader::JsonlBatchReader;
use super::read_digest::{DigestAlgorithm, ReadDigest};

/// Rows per record batch: small enough to keep memory flat, large enough to be fast.
pub const ROWS_PER_BATCH: usize = 4096;

/// A batch ends once its rows hold this many bytes of input text: rows of 60 KB documents come
/// about 35 to a batch, not 4096, and a batch holds one row near the record limit. (Rows of the
/// usual few hundred bytes fill 4096 rows first.)
pub const BATCH_TEXT_BYTES: usize = 2 << 20;

/// At most this many cells in one batch: each column's builder holds a place per row, so a
/// table of 16,384 columns is read 64 rows at a time.
const CELLS_PER_BATCH: usize = 1 << 20;

/// The most columns an input may have: as many as Excel shows, where our users open the
/// output (Excel specifications and limits: 16,384 columns a worksheet). Past it a table is
/// more likely a file read with the wrong delimiter, or JSON Lines with data for keys.
pub const MAX_INPUT_COLUMNS: usize = 16_384;

/// The rows of a batch of `columns` columns, at most `rows_per_batch`.
pub fn rows_per_batch_of(columns: usize, rows_per_batch: usize) -> usize {
    (CELLS_PER_BATCH / columns.max(1)).clamp(1, rows_per_batch.max(1))
}

/// What to do about too many columns, for a table whose format names its columns once.
pub const KEEP_FEWER_COLUMNS: &str =
    "keep only the columns the prompt and the output need, and run again";

/// Refuses an input of more than [`MAX_INPUT_COLUMNS`] columns, before its rows are read.
///
/// # Errors
/// When `columns` is past the limit; `location` says where it was met, `advice` what to do.
pub fn refuse_too_many_columns(
    path: &Path,
    columns: usize,
    location: Option<String>,
    advice: &str,
) -> Result<(), TableError> {
    if columns <= MAX_INPUT_COLUMNS {
        return Ok(());
    }
    Err(TableError::new(
        path,
        location,
        format!(
            "the input has {} columns, more than the {} dashbatch reads (as many as Excel shows, where the output is opened): {advice}",
            crate::readable_number::with_thousands(columns as u64),
            crate::readable_number::with_thousands(MAX_INPUT_COLUMNS as u64),
        ),
    ))
}

/// A stream of record batches with a fixed schema. Rows are numbered from 1 in input order.
pub struct TableReader {
    schema: SchemaRef,
    batches: Box<dyn Iterator<Item = Result<BatchWithLines, TableError>> + Send>,
    /// The line each row of the batch last returned starts on (CSV and JSON Lines).
    last_batch_lines: Option<Vec<u64>>,
    /// How a text input or workbook is read (encoding, delimiter, sheet), in words, for
    /// `validate`.
    text_description: Option<String>,
    /// For a partitioned input, where the reading is among its parts.
    parts: Option<PartsReading>,
}

/// A partitioned input's parts, read one after another.
struct PartsReading {
    /// The first part, which messages about the others name.
    first: PathBuf,
    /// The part now being read.
    current: PathBuf,
    /// The parts still to read, and how to read them.
    remaining: VecDeque<PathBuf>,
    format: TableFormat,
    options: InputOptions,
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
            parts: None,
        }
    }

    /// The part file the batch last returned comes from, for a partitioned input.
    pub fn current_part(&self) -> Option<&Path> {
        self.parts.as_ref().map(|parts| parts.current.as_path())
    }

    /// Moves on to the next part of a partitioned input; false when there is none.
    fn open_next_part(&mut self) -> Result<bool, TableError> {
        let Some(parts) = self.parts.as_mut() else {
            return Ok(false);
        };
        let Some(part) = parts.remaining.pop_front() else {
            return Ok(false);
        };
        let next = open_one_file(&part, parts.format, &parts.options)?;
        widened_schema(&parts.first, &self.schema, &part, &next.schema)?;
        self.batches = next.batches;
        parts.current = part;
        Ok(true)
    }

    /// After an error, no further part is read.
    fn stop_reading_parts(&mut self) {
        if let Some(parts) = self.parts.as_mut() {
            parts.remaining.clear();
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

    /// Where the rows of the batch last returned come from, kept while later batches are read.
    pub fn take_batch_place(&mut self) -> BatchPlace {
        BatchPlace {
            lines: self.last_batch_lines.take(),
            part: self.current_part().map(Path::to_path_buf),
        }
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

/// The lines a batch's rows start on (formats that have lines) and the part it was read from (a
/// partitioned input).
pub struct BatchPlace {
    lines: Option<Vec<u64>>,
    pub part: Option<std::path::PathBuf>,
}

impl BatchPlace {
    /// The line of the file that row `row_in_batch` starts on.
    pub fn line_of_row(&self, row_in_batch: usize) -> Option<u64> {
        self.lines
            .as_ref()
            .and_then(|lines| lines.get(row_in_batch).copied())
            .filter(|line| *line > 0)
    }
}

impl Iterator for TableReader {
    type Item = Result<RecordBatch, TableError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.batches.next() {
                Some(Ok((batch, lines))) => {
                    self.last_batch_lines = lines;
                    let Some(parts) = &self.parts else {
                        return Some(Ok(batch));
                    };
                    let part = parts.current.clone();
                    return Some(conform_batch(batch, &self.schema).map_err(|error| {
                        self.stop_reading_parts();
                        TableError::new(
                            &part,
                            None,
                            format!(
                                "cannot read the part's rows as the other parts' types: {error}"
                            ),
                        )
                    }));
                }
                Some(Err(error)) => {
                    self.stop_reading_parts();
                    return Some(Err(error));
                }
                None => match self.open_next_part() {
                    Ok(true) => {}
                    Ok(false) => return None,
                    Err(error) => {
                        self.stop_reading_parts();
                        return Some(Err(error));
                    }
                },
            }
        }
    }
}

/// The type two parts' columns are read as: the same type, or for numbers of different widths
/// or kinds the one that holds both (integers and floats: float64), or the other part's type when
/// one part's column holds nothing but nulls.
fn widened_type(first: &DataType, other: &DataType) -> Option<DataType> {
    if first == other {
        return Some(first.clone());
    }
    match (first, other) {
        (DataType::Null, other) => Some(other.clone()),
        (first, DataType::Null) => Some(first.clone()),
        (first, other) if first.is_integer() && other.is_integer() => {
            let unsigned = |data_type: &DataType| data_type.is_unsigned_integer();
            if unsigned(first) == unsigned(other) {
                Some(if unsigned(first) {
                    DataType::UInt64
                } else {
                    DataType::Int64
                })
            } else {
                Some(DataType::Int64)
            }
        }
        (first, other)
            if (first.is_integer() || first.is_floating())
                && (other.is_integer() || other.is_floating()) =>
        {
            Some(DataType::Float64)
        }
        _ => None,
    }
}

/// The schema that holds both `first` (the parts read so far, the first named `first_part`)
/// and `part`'s: the same columns in the same order, each of a type that holds both
/// ([`widened_type`]), all nullable.
fn widened_schema(
    first_part: &Path,
    first: &Schema,
    part: &Path,
    schema: &Schema,
) -> Result<Schema, TableError> {
    let describe = |schema: &Schema| {
        schema
            .fields()
            .iter()
            .map(|field| format!("{} ({})", field.name(), field.data_type()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if first.fields().len() != schema.fields().len() {
        return Err(TableError::new(
            part,
            None,
            format!(
                "the part has {} columns [{}] but `{}` has {} [{}]; every part of a partitioned input must have the same columns",
                schema.fields().len(),
                describe(schema),
                first_part.display(),
                first.fields().len(),
                describe(first)
            ),
        ));
    }
    let mut fields = Vec::with_capacity(first.fields().len());
    for (index, (expected, found)) in first.fields().iter().zip(schema.fields()).enumerate() {
        let only_nulls = |field: &arrow_schema::Field| {
            field
                .metadata()
                .contains_key(super::batch_stream::ONLY_NULLS)
        };
        // A column with no value in one part takes the other part's type.
        let data_type = (expected.name() == found.name())
            .then(|| match (only_nulls(expected), only_nulls(found)) {
                (true, false) => Some(found.data_type().clone()),
                (false, true) => Some(expected.data_type().clone()),
                _ => widened_type(expected.data_type(), found.data_type()),
            })
            .flatten()
            .ok_or_else(|| {
                TableError::new(
                    part,
                    Some(format!("column {}", index + 1)),
                    format!(
                        "the part's column is `{}` ({}) but `{}`'s is `{}` ({}); every part of a partitioned input must have the same columns in the same order, with types that agree",
                        found.name(),
                        found.data_type(),
                        first_part.display(),
                        expected.name(),
                        expected.data_type()
                    ),
                )
            })?;
        fields.push(super::batch_stream::column_field(
            expected.name(),
            data_type,
            only_nulls(expected) && only_nulls(found),
        ));
    }
    Ok(Schema::new(fields))
}

/// `batch` in the partitioned input's `schema`: its columns cast where the part's types differ.
/// A value the wider type cannot hold exactly (an unsigned integer past 2^63 as int64, an
/// integer past 2^53 as float64) is an error, never a null or a rounded number.
fn conform_batch(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, String> {
    if batch.schema() == *schema {
        return Ok(batch);
    }
    let strict = arrow_cast::CastOptions {
        safe: false,
        ..arrow_cast::CastOptions::default()
    };
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (column, field) in batch.columns().iter().zip(schema.fields()) {
        if column.data_type() == field.data_type() {
            columns.push(column.clone());
            continue;
        }
        let failed =
            |error: arrow_schema::ArrowError| format!("column `{}`: {error}", field.name());
        if column.data_type().is_integer() && field.data_type().is_floating() {
            let integers =
                arrow_cast::cast_with_options(column, &DataType::Int64, &strict).map_err(failed)?;
            let integers = integers.as_primitive::<arrow_array::types::Int64Type>();
            if let Some(value) = integers
                .iter()
                .flatten()
                .find(|value| value.unsigned_abs() > 1 << 53)
            {
                return Err(format!(
                    "column `{}`: {value} is an integer too large for the float64 the other parts' values need; make the column one type in every part",
                    field.name()
                ));
            }
        }
        columns.push(
            arrow_cast::cast_with_options(column, field.data_type(), &strict).map_err(failed)?,
        );
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|error| error.to_string())
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
    open_table_with(path, format, &InputOptions::default())
}

/// Opens `path` in `format`, read as `options` say: one file, or every part of a directory or
/// glob in turn (see `input_parts`). Nothing but the schema (and, for JSON Lines, the first lines
/// used to infer it; for a workbook, a first pass over the sheet) is read until the batches are
/// pulled; every part's schema is checked against the first's before any row is read.
///
/// # Errors
/// When a file cannot be opened, its start (header, schema) cannot be read, or parts differ.
pub fn open_table_with(
    path: &Path,
    format: TableFormat,
    options: &InputOptions,
) -> Result<TableReader, TableError> {
    let files = find_input_files(path).map_err(|message| TableError::new(path, None, message))?;
    if !files.partitioned {
        return open_one_file(path, format, options);
    }
    let mut parts: VecDeque<PathBuf> = files.parts.into();
    let first_part = parts.pop_front().unwrap_or_else(|| path.to_owned());
    let mut table = open_one_file(&first_part, format, options)?;
    let mut schema = table.schema.as_ref().clone();
    for part in &parts {
        let other = open_one_file(part, format, options)?;
        schema = widened_schema(&first_part, &schema, part, &other.schema)?;
    }
    table.schema = Arc::new(schema);
    table.text_description = Some(format!(
        "{} parts, the first `{}`{}",
        parts.len() + 1,
        first_part.display(),
        table
            .text_description
            .as_deref()
            .map(|how| format!(" read as: {how}"))
            .unwrap_or_default()
    ));
    table.parts = Some(PartsReading {
        current: first_part.clone(),
        first: first_part,
        remaining: parts,
        format,
        options: options.clone(),
    });
    Ok(table)
}

/// Whether [`open_table_digesting`] hashes `path` as it reads it: a CSV (or TSV) input of one
/// file, compressed or not. (Parquet and workbooks are read out of order, and a partitioned
/// input's identity is its parts' names and digests.)
pub fn digests_while_reading(path: &Path, format: TableFormat) -> bool {
    format == TableFormat::Csv && find_input_files(path).is_ok_and(|files| !files.partitioned)
}

/// [`open_table_with`], and when a digest is `wanted` of an input [`digests_while_reading`]
/// takes, where it lands once the batches have read the input to the end: the same digest as a
/// pass of its own gives, of the very bytes the rows came from.
///
/// # Errors
/// As [`open_table_with`].
pub fn open_table_digesting(
    path: &Path,
    format: TableFormat,
    options: &InputOptions,
    wanted: Option<DigestAlgorithm>,
) -> Result<(TableReader, Option<ReadDigest>), TableError> {
    let Some(algorithm) = wanted.filter(|_| digests_while_reading(path, format)) else {
        return Ok((open_table_with(path, format, options)?, None));
    };
    let digest = ReadDigest::new(algorithm);
    let reader =
        CsvBatchReader::open_digesting(path, ROWS_PER_BATCH, options, Some(digest.clone()))?;
    Ok((csv_table(path, reader), Some(digest)))
}

fn csv_table(path: &Path, reader: CsvBatchReader) -> TableReader {
    let description = compressed_words(path) + &reader.description();
    let mut table = TableReader::new(reader.schema(), Box::new(reader));
    table.text_description = Some(description);
    table
}

/// `zstd-compressed, ` for a compressed text input; nothing otherwise.
fn compressed_words(path: &Path) -> String {
    super::Compression::of_path(path)
        .name()
        .map(|name| format!("{name}-compressed, "))
        .unwrap_or_default()
}

fn open_one_file(
    path: &Path,
    format: TableFormat,
    options: &InputOptions,
) -> Result<TableReader, TableError> {
    match format {
        TableFormat::Excel => {
            let reader = ExcelBatchReader::open(path, ROWS_PER_BATCH, options)?;
            // A sheet holds at most 16,384 columns (XFD) in Excel, but a file written by
            // another program may name cells past it.
            refuse_too_many_columns(
                path,
                reader.schema().fields().len(),
                None,
                KEEP_FEWER_COLUMNS,
            )?;
            let description = reader.description();
            let mut table = TableReader::new(reader.schema(), Box::new(reader));
            table.text_description = Some(description);
            Ok(table)
        }
        TableFormat::Csv => {
            let reader = CsvBatchReader::open(path, ROWS_PER_BATCH, options)?;
            Ok(csv_table(path, reader))
        }
        TableFormat::Jsonl => {
            let reader = JsonlBatchReader::open(path, ROWS_PER_BATCH, options)?;
            let description = compressed_words(path) + &reader.description();
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
            refuse_too_many_columns(path, schema.fields().len(), None, KEEP_FEWER_COLUMNS)?;
            let batch_size = parquet_rows_per_batch(builder.metadata(), schema.fields().len());
            let reader = builder
                .with_batch_size(batch_size)
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

/// The rows of a Parquet file's batches: as many as hold about [`BATCH_TEXT_BYTES`] at the
/// file's average row size (its uncompressed bytes over its rows), within
/// [`rows_per_batch_of`] its columns.
fn parquet_rows_per_batch(
    metadata: &parquet::file::metadata::ParquetMetaData,
    columns: usize,
) -> usize {
    let rows = metadata.file_metadata().num_rows().max(1) as u64;
    let bytes: u64 = metadata
        .row_groups()
        .iter()
        .map(|group| group.total_byte_size().max(0) as u64)
        .sum();
    let average_row_bytes = (bytes / rows).max(1);
    let by_bytes = (BATCH_TEXT_BYTES as u64 / average_row_bytes).max(1) as usize;
    by_bytes.min(rows_per_batch_of(columns, ROWS_PER_BATCH))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{DataType, Field};

    #[test]
    fn a_batch_holds_fewer_rows_the_wider_its_table_and_never_none() {
        assert_eq!(rows_per_batch_of(3, ROWS_PER_BATCH), ROWS_PER_BATCH);
        assert_eq!(rows_per_batch_of(MAX_INPUT_COLUMNS, ROWS_PER_BATCH), 64);
        assert_eq!(rows_per_batch_of(10_000_000, ROWS_PER_BATCH), 1);
        assert_eq!(rows_per_batch_of(0, 2), 2);
        let path = Path::new("t.csv");
        assert!(refuse_too_many_columns(path, MAX_INPUT_COLUMNS, None, "").is_ok());
        let refused = refuse_too_many_columns(path, MAX_INPUT_COLUMNS + 1, None, "").unwrap_err();
        assert!(refused.to_string().contains("16,385 columns"), "{refused}");
    }

    #[test]
    fn a_csv_file_read_to_its_end_has_the_digest_of_a_pass_of_its_own() {
        use std::io::Write;
        let directory = tempfile::tempdir().unwrap();
        let text = "id,text\n1,好\n2,\"a, b\"\n".repeat(3000);
        let plain = directory.path().join("plain.csv");
        std::fs::write(&plain, &text).unwrap();
        let gzipped = directory.path().join("packed.csv.gz");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(text.as_bytes()).unwrap();
        std::fs::write(&gzipped, encoder.finish().unwrap()).unwrap();
        for (path, algorithm) in [
            (&plain, DigestAlgorithm::Sha256),
            (&gzipped, DigestAlgorithm::Sha256),
            (&plain, DigestAlgorithm::Xxh3_128),
            (&gzipped, DigestAlgorithm::Xxh3_128),
        ] {
            let (reader, digest) = open_table_digesting(
                path,
                TableFormat::Csv,
                &InputOptions::default(),
                Some(algorithm),
            )
            .unwrap();
            let digest = digest.expect("a CSV file is hashed while read");
            let mut batches = reader.batches;
            let first = batches.next().unwrap().unwrap();
            assert!(first.0.num_rows() > 0);
            assert_eq!(digest.of_whole_file(), None, "not before the end");
            assert!(batches.map(Result::unwrap).count() >= 1);
            let mut whole = algorithm.hasher();
            whole.update(&std::fs::read(path).unwrap());
            let whole = whole.written();
            assert_eq!(digest.of_whole_file(), Some(whole), "{}", path.display());
        }
        // Other formats and partitioned inputs are hashed apart.
        let directory_input = directory.path().join("parts");
        std::fs::create_dir(&directory_input).unwrap();
        std::fs::write(directory_input.join("a.csv"), "id,text\n1,a\n").unwrap();
        assert!(!digests_while_reading(&directory_input, TableFormat::Csv));
        assert!(!digests_while_reading(&plain, TableFormat::Jsonl));
        assert!(digests_while_reading(&plain, TableFormat::Csv));
    }

    fn schema(names: &[&str]) -> Schema {
        Schema::new(
            names
                .iter()
                .map(|name| Field::new(*name, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn parts_widen_numbers_and_refuse_other_differences() {
        use arrow_schema::Field;
        let part = |fields: Vec<Field>| Schema::new(fields);
        let first = part(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("score", DataType::Int64, false),
        ]);
        let other = part(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
        ]);
        let (a, b) = (Path::new("d/a.parquet"), Path::new("d/b.parquet"));
        let widened = widened_schema(a, &first, b, &other).unwrap();
        assert_eq!(widened.field(1).data_type(), &DataType::Float64);
        assert!(widened.field(0).is_nullable());
        let batch = RecordBatch::try_new(
            Arc::new(first.clone()),
            vec![
                Arc::new(arrow_array::StringArray::from(vec!["x"])),
                Arc::new(arrow_array::Int64Array::from(vec![3])),
            ],
        )
        .unwrap();
        let conformed = conform_batch(batch, &Arc::new(widened)).unwrap();
        assert_eq!(conformed.column(1).data_type(), &DataType::Float64);
        let renamed = part(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("rating", DataType::Int64, true),
        ]);
        let message = widened_schema(a, &first, b, &renamed)
            .unwrap_err()
            .to_string();
        assert!(message.contains("d/b.parquet, column 2"), "{message}");
        assert!(message.contains("`rating`"), "{message}");
        let texts = part(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("score", DataType::Utf8, true),
        ]);
        assert!(widened_schema(a, &first, b, &texts).is_err());
        // A part whose column held no value at all takes the other parts' type.
        let empty = part(vec![
            Field::new("id", DataType::Utf8, true),
            super::super::batch_stream::column_field("score", DataType::Utf8, true),
        ]);
        let widened = widened_schema(a, &empty, b, &other).unwrap();
        assert_eq!(widened.field(1).data_type(), &DataType::Float64);
        let widened = widened_schema(a, &first, b, &empty).unwrap();
        assert_eq!(widened.field(1).data_type(), &DataType::Int64);
        // Widening never blanks or rounds a value: it is an error instead.
        let wide = Arc::new(part(vec![Field::new("v", DataType::Int64, true)]));
        let unsigned = RecordBatch::try_new(
            Arc::new(part(vec![Field::new("v", DataType::UInt64, true)])),
            vec![Arc::new(arrow_array::UInt64Array::from(vec![
                (1u64 << 63) + 5,
            ]))],
        )
        .unwrap();
        assert!(conform_batch(unsigned, &wide).is_err());
        let float = Arc::new(part(vec![Field::new("v", DataType::Float64, true)]));
        let big = RecordBatch::try_new(
            Arc::new(part(vec![Field::new("v", DataType::Int64, true)])),
            vec![Arc::new(arrow_array::Int64Array::from(vec![
                (1i64 << 53) + 1,
            ]))],
        )
        .unwrap();
        let message = conform_batch(big, &float).unwrap_err();
        assert!(message.contains("9007199254740993"), "{message}");
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
