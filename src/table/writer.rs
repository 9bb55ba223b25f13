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
use parquet::file::properties::WriterProperties;

use super::row_value::display_cell;
use super::{TableError, TableFormat};

const ROWS_PER_ROW_GROUP: usize = 65_536;
const BYTES_PER_ROW_GROUP: usize = 64 * 1024 * 1024;

enum FormatWriter {
    Parquet(Box<ArrowWriter<File>>),
    Csv(Box<arrow_csv::Writer<BufWriter<File>>>),
    Jsonl(arrow_json::LineDelimitedWriter<BufWriter<File>>),
}

pub struct AtomicTableWriter {
    final_path: PathBuf,
    temporary_path: PathBuf,
    writer: Option<FormatWriter>,
    csv_schema: Option<SchemaRef>,
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
        let mut csv_schema = None;
        let writer = match format {
            TableFormat::Parquet => {
                // Row groups are buffered in memory until full: keep them small enough that memory
                // stays flat however long the table is.
                let properties = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(ROWS_PER_ROW_GROUP))
                    .set_max_row_group_bytes(Some(BYTES_PER_ROW_GROUP))
                    .build();
                FormatWriter::Parquet(Box::new(
                    ArrowWriter::try_new(file, schema, Some(properties))
                        .map_err(|error| write_error(path, error))?,
                ))
            }
            TableFormat::Csv => {
                csv_schema = Some(csv_compatible_schema(&schema));
                FormatWriter::Csv(Box::new(
                    arrow_csv::WriterBuilder::new()
                        .with_header(true)
                        .build(BufWriter::with_capacity(1 << 16, file)),
                ))
            }
            TableFormat::Jsonl => FormatWriter::Jsonl(arrow_json::LineDelimitedWriter::new(
                BufWriter::with_capacity(1 << 16, file),
            )),
        };
        Ok(AtomicTableWriter {
            final_path: path.to_owned(),
            temporary_path,
            writer: Some(writer),
            csv_schema,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), TableError> {
        let path = self.final_path.clone();
        match self.writer.as_mut().expect("writer used after finish") {
            FormatWriter::Parquet(writer) => writer
                .write(batch)
                .map_err(|error| write_error(&path, error)),
            FormatWriter::Csv(writer) => {
                let schema = self.csv_schema.clone().expect("csv schema");
                let batch = to_csv_compatible(batch, schema);
                writer
                    .write(&batch)
                    .map_err(|error| write_error(&path, error))
            }
            FormatWriter::Jsonl(writer) => writer
                .write(batch)
                .map_err(|error| write_error(&path, error)),
        }
    }

    /// Flushes, syncs and renames the temporary file over the target.
    pub fn finish(mut self) -> Result<(), TableError> {
        let path = self.final_path.clone();
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
        };
        file.sync_all().map_err(|error| write_error(&path, error))?;
        drop(file);
        std::fs::rename(&self.temporary_path, &self.final_path)
            .map_err(|error| write_error(&path, error))?;
        Ok(())
    }
}

impl Drop for AtomicTableWriter {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = std::fs::remove_file(&self.temporary_path);
        }
    }
}

/// CSV has no nested types: lists and structs are written as their displayed text.
fn csv_is_native(data_type: &DataType) -> bool {
    !matches!(
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

fn csv_compatible_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| {
            if csv_is_native(field.data_type()) {
                field.as_ref().clone()
            } else {
                Field::new(field.name(), DataType::Utf8, true)
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn to_csv_compatible(batch: &RecordBatch, schema: SchemaRef) -> RecordBatch {
    if batch
        .schema()
        .fields()
        .iter()
        .all(|field| csv_is_native(field.data_type()))
    {
        return batch.clone();
    }
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|column| {
            if csv_is_native(column.data_type()) {
                column.clone()
            } else {
                let values: Vec<Option<String>> = (0..column.len())
                    .map(|row| (!column.is_null(row)).then(|| display_cell(column, row)))
                    .collect();
                Arc::new(StringArray::from(values)) as ArrayRef
            }
        })
        .collect();
    RecordBatch::try_new(schema, columns).expect("csv-compatible batch")
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
    fn an_abandoned_writer_leaves_no_partial_file() {
        let directory = tempfile::tempdir().unwrap();
        let target = directory.path().join("out.parquet");
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let writer = AtomicTableWriter::create(&target, TableFormat::Parquet, schema).unwrap();
        drop(writer);
        assert_eq!(std::fs::read_dir(directory.path()).unwrap().count(), 0);
    }
}
