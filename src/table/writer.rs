//! Output tables written atomically: rows go to a temporary file beside the target, which is
//! synced and renamed over the target only when complete, so a reader never sees half a table.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::excel_writer::ExcelSheetWriter;
use super::row_value::cell_text;
use super::{TableError, TableFormat};

const ROWS_PER_ROW_GROUP: usize = 65_536;
const BYTES_PER_ROW_GROUP: usize = 64 * 1024 * 1024;
/// A column's dictionary grows to at most this size in a row group, then its values are written
/// plainly: a column of few values (a status, a label) keeps its dictionary, and one of ids or
/// free text stops paying to intern every value after a few thousand rows (the parquet crate's
/// default is 1 MiB).
const DICTIONARY_PAGE_BYTES: usize = 64 * 1024;

/// What the writer of an output is told about some of its columns, so that a Parquet file skips
/// work that would not pay.
#[derive(Debug, Default, Clone)]
pub struct ColumnHints {
    /// Columns whose values never repeat (ids): no dictionary, which for such values only
    /// costs time (4% of a join's instructions for two id columns).
    pub all_different: Vec<String>,
    /// Columns of random text that never repeats (a provider's request ids, UUIDs): no
    /// dictionary and no compression either. Snappy takes about a tenth off such text (the 16
    /// letters of hexadecimal make many short matches and no long one), and compressing it cost
    /// 6% of a 1M-row join's instructions (BENCHMARKS.md, twelfth round).
    pub random: Vec<String>,
}

/// How a Parquet output is written: `hints` say which columns get no dictionary or no
/// compression. Text columns get no min/max statistics: working them out
/// costs a comparison of every value (7% of a 1M-row join's CPU), and the minimum and maximum of
/// free text (answers, reviews, ids) prune next to nothing when the file is read. Numbers,
/// booleans and dates keep theirs.
fn parquet_properties(schema: &Schema, hints: &ColumnHints) -> WriterProperties {
    let mut properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROWS_PER_ROW_GROUP))
        .set_max_row_group_bytes(Some(BYTES_PER_ROW_GROUP))
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES);
    for field in schema.fields() {
        if matches!(
            field.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            properties = properties.set_column_statistics_enabled(
                ColumnPath::new(vec![field.name().clone()]),
                EnabledStatistics::None,
            );
        }
    }
    for name in hints.all_different.iter().chain(&hints.random) {
        properties =
            properties.set_column_dictionary_enabled(ColumnPath::new(vec![name.clone()]), false);
    }
    for name in &hints.random {
        properties = properties.set_column_compression(
            ColumnPath::new(vec![name.clone()]),
            Compression::UNCOMPRESSED,
        );
    }
    properties.build()
}

enum FormatWriter {
    Parquet(Box<ArrowWriter<File>>),
    Csv(Box<arrow_csv::Writer<BufWriter<File>>>),
    Jsonl(arrow_json::LineDelimitedWriter<BufWriter<File>>),
    Excel(Box<ExcelSheetWriter>),
}

pub struct AtomicTableWriter {
    final_path: PathBuf,
    temporary_path: PathBuf,
    writer: Option<FormatWriter>,
    format: TableFormat,
    /// The schema as written by the CSV and JSON Lines writers (some columns as text).
    text_schema: SchemaRef,
}

pub fn write_error(path: &Path, error: impl std::fmt::Display) -> TableError {
    TableError::new(path, None, format!("cannot write the output: {error}"))
}

impl AtomicTableWriter {
    pub fn create(
        path: &Path,
        format: TableFormat,
        schema: SchemaRef,
    ) -> Result<AtomicTableWriter, TableError> {
        AtomicTableWriter::create_for_output(path, format, schema, false, &ColumnHints::default())
    }

    /// As [`AtomicTableWriter::create`]; a CSV starts with a UTF-8 byte-order mark when
    /// `byte_order_mark` (what Excel needs to read UTF-8), and Parquet follows `hints`.
    pub fn create_for_output(
        path: &Path,
        format: TableFormat,
        schema: SchemaRef,
        byte_order_mark: bool,
        hints: &ColumnHints,
    ) -> Result<AtomicTableWriter, TableError> {
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&directory).map_err(|error| write_error(path, error))?;
        let file_name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output".to_owned());
        let temporary_path = directory.join(format!(".{file_name}.partial-{}", std::process::id()));
        let file = File::create(&temporary_path).map_err(|error| write_error(path, error))?;
        let text_schema = text_compatible_schema(format, &schema);
        let writer = match format {
            TableFormat::Parquet => {
                // Row groups are buffered in memory until full: keep them small enough that memory
                // stays flat however long the table is.
                let properties = parquet_properties(&schema, hints);
                FormatWriter::Parquet(Box::new(
                    ArrowWriter::try_new(file, schema, Some(properties))
                        .map_err(|error| write_error(path, error))?,
                ))
            }
            TableFormat::Csv => {
                let mut buffered = BufWriter::with_capacity(1 << 16, file);
                if byte_order_mark {
                    std::io::Write::write_all(&mut buffered, "\u{feff}".as_bytes())
                        .map_err(|error| write_error(path, error))?;
                }
                FormatWriter::Csv(Box::new(
                    arrow_csv::WriterBuilder::new()
                        .with_header(true)
                        .build(buffered),
                ))
            }
            TableFormat::Jsonl => FormatWriter::Jsonl(arrow_json::LineDelimitedWriter::new(
                BufWriter::with_capacity(1 << 16, file),
            )),
            TableFormat::Excel => FormatWriter::Excel(Box::new(
                ExcelSheetWriter::create(&directory, &schema)
                    .map_err(|error| write_error(path, error))?,
            )),
        };
        Ok(AtomicTableWriter {
            final_path: path.to_owned(),
            temporary_path,
            writer: Some(writer),
            format,
            text_schema,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), TableError> {
        let path = self.final_path.clone();
        let format = self.format;
        let text_schema = self.text_schema.clone();
        let text_batch = || {
            to_text_compatible(format, batch, text_schema.clone())
                .map_err(|error| write_error(&path, error))
        };
        match self.writer.as_mut().expect("writer used after finish") {
            FormatWriter::Parquet(writer) => writer
                .write(batch)
                .map_err(|error| write_error(&path, error)),
            FormatWriter::Csv(writer) => writer
                .write(&text_batch()?)
                .map_err(|error| write_error(&path, error)),
            FormatWriter::Jsonl(writer) => writer
                .write(&text_batch()?)
                .map_err(|error| write_error(&path, error)),
            FormatWriter::Excel(writer) => writer
                .write(batch)
                .map_err(|error| write_error(&path, error)),
        }
    }

    /// Flushes, syncs and renames the temporary file over the target. Returns how many texts
    /// were cut to fit a cell (an Excel output's; 0 for the other formats).
    pub fn finish(mut self) -> Result<u64, TableError> {
        let path = self.final_path.clone();
        let mut cut_texts = 0;
        let file = match self.writer.take().expect("writer finished twice") {
            FormatWriter::Parquet(writer) => writer
                .into_inner()
                .map_err(|error| write_error(&path, error))?,
            FormatWriter::Csv(writer) => writer
                .into_inner()
                .into_inner()
                .map_err(|error| write_error(&path, error.error().to_string()))?,
            FormatWriter::Jsonl(mut writer) => {
                writer.finish().map_err(|error| write_error(&path, error))?;
                let mut buffered = writer.into_inner();
                buffered
                    .flush()
                    .map_err(|error| write_error(&path, error))?;
                buffered
                    .into_inner()
                    .map_err(|error| write_error(&path, error.error().to_string()))?
            }
            FormatWriter::Excel(writer) => {
                cut_texts = writer
                    .save(&self.temporary_path)
                    .map_err(|error| write_error(&path, error))?;
                File::open(&self.temporary_path).map_err(|error| write_error(&path, error))?
            }
        };
        file.sync_all().map_err(|error| write_error(&path, error))?;
        drop(file);
        std::fs::rename(&self.temporary_path, &self.final_path)
            .map_err(|error| write_error(&path, error))?;
        Ok(cut_texts)
    }
}

impl Drop for AtomicTableWriter {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = std::fs::remove_file(&self.temporary_path);
        }
    }
}

/// Whether a column of `data_type` is written as text in `format`: CSV has no nested or binary
/// types, and timestamps with a time zone are written by dashbatch itself as RFC 3339 with their
/// offset (Arrow's writers fail on named zones such as `UTC` without a zone database).
fn written_as_text(format: TableFormat, data_type: &DataType) -> bool {
    let zoned_timestamp = matches!(data_type, DataType::Timestamp(_, Some(_)));
    match format {
        TableFormat::Parquet | TableFormat::Excel => false,
        TableFormat::Jsonl => zoned_timestamp,
        TableFormat::Csv => {
            zoned_timestamp
                || matches!(
                    data_type,
                    DataType::List(_)
                        | DataType::LargeList(_)
                        | DataType::FixedSizeList(_, _)
                        | DataType::Struct(_)
                        | DataType::Map(_, _)
                        | DataType::Binary
                        | DataType::LargeBinary
                        | DataType::FixedSizeBinary(_)
                )
        }
    }
}

fn text_compatible_schema(format: TableFormat, schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| {
            if written_as_text(format, field.data_type()) {
                Field::new(field.name(), DataType::Utf8, true)
            } else {
                field.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn to_text_compatible(
    format: TableFormat,
    batch: &RecordBatch,
    schema: SchemaRef,
) -> Result<RecordBatch, String> {
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|field| written_as_text(format, field.data_type()))
    {
        return Ok(batch.clone());
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (column, field) in batch.columns().iter().zip(batch.schema().fields()) {
        if !written_as_text(format, column.data_type()) {
            columns.push(column.clone());
            continue;
        }
        let mut values: Vec<Option<String>> = Vec::with_capacity(column.len());
        for row in 0..column.len() {
            if column.is_null(row) {
                values.push(None);
            } else {
                let text = cell_text(column.as_ref(), row)
                    .map_err(|error| format!("column `{}`: {error}", field.name()))?;
                values.push(Some(text));
            }
        }
        columns.push(Arc::new(StringArray::from(values)) as ArrayRef);
    }
    RecordBatch::try_new(schema, columns).map_err(|error| error.to_string())
}

use arrow_array::Array;

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int64Array;

    #[test]
    fn nothing_appears_at_the_target_until_finish() {
        let directory = tempfile::tempdir().unwrap();
        let target = directory.path().join("out.csv");
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let mut writer =
            AtomicTableWriter::create(&target, TableFormat::Csv, schema.clone()).unwrap();
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
        writer.write(&batch).unwrap();
        assert!(!target.exists());
        writer.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "n\n1\n2\n");
        assert_eq!(std::fs::read_dir(directory.path()).unwrap().count(), 1);
    }

    #[test]
    fn zoned_timestamps_are_written_as_rfc3339_text_in_csv_and_json_lines() {
        use arrow_array::TimestampMicrosecondArray;
        let directory = tempfile::tempdir().unwrap();
        let data_type =
            DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into()));
        let schema = Arc::new(Schema::new(vec![Field::new("at", data_type, true)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(
                TimestampMicrosecondArray::from(vec![Some(1_714_557_600_000_000), None])
                    .with_timezone("UTC"),
            )],
        )
        .unwrap();
        for (name, format, expected) in [
            // A one-column CSV quotes an empty (null) cell so the line is not blank.
            (
                "out.csv",
                TableFormat::Csv,
                "at\n2024-05-01T10:00:00+00:00\n\"\"\n",
            ),
            (
                "out.jsonl",
                TableFormat::Jsonl,
                "{\"at\":\"2024-05-01T10:00:00+00:00\"}\n{}\n",
            ),
        ] {
            let target = directory.path().join(name);
            let mut writer = AtomicTableWriter::create(&target, format, schema.clone()).unwrap();
            writer.write(&batch).unwrap();
            writer.finish().unwrap();
            assert_eq!(
                std::fs::read_to_string(&target).unwrap(),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn parquet_text_columns_have_no_statistics_and_columns_hinted_no_dictionary_or_compression() {
        use arrow_array::StringArray;
        let directory = tempfile::tempdir().unwrap();
        let target = directory.path().join("out.parquet");
        let schema = Arc::new(Schema::new(vec![
            Field::new("answer.text", DataType::Utf8, true),
            Field::new("tokens", DataType::Int64, true),
            Field::new("request id", DataType::Utf8, true),
        ]));
        let hints = ColumnHints {
            all_different: vec!["answer.text".to_owned()],
            random: vec!["request id".to_owned()],
        };
        let mut writer = AtomicTableWriter::create_for_output(
            &target,
            TableFormat::Parquet,
            schema.clone(),
            false,
            &hints,
        )
        .unwrap();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("b"), None, Some("a")])),
                Arc::new(Int64Array::from(vec![Some(3), Some(1), None])),
                Arc::new(StringArray::from(vec![Some("x"), Some("x"), Some("y")])),
            ],
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
        let file = File::open(&target).unwrap();
        let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
        let metadata = parquet::file::reader::FileReader::metadata(&reader);
        let columns = metadata.row_group(0).columns();
        assert!(columns[0].statistics().is_none());
        assert!(
            columns[0].dictionary_page_offset().is_none(),
            "no dictionary"
        );
        assert!(
            columns[1].dictionary_page_offset().is_some(),
            "a dictionary"
        );
        assert_eq!(columns[0].compression(), Compression::SNAPPY);
        assert!(columns[2].dictionary_page_offset().is_none());
        assert_eq!(columns[2].compression(), Compression::UNCOMPRESSED);
        let tokens = columns[1].statistics().expect("number statistics");
        assert_eq!(tokens.min_bytes_opt(), Some(&1i64.to_le_bytes()[..]));
        assert_eq!(tokens.max_bytes_opt(), Some(&3i64.to_le_bytes()[..]));
    }

    #[test]
    fn an_abandoned_writer_leaves_no_partial_file() {
        let directory = tempfile::tempdir().unwrap();
        let target = directory.path().join("out.parquet");
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let writer = AtomicTableWriter::create(&target, TableFormat::Parquet, schema).unwrap();
        drop(writer);
        assert_eq!(std::fs::read_dir(directory.path()).unwrap().count(), 0);
    }
}
