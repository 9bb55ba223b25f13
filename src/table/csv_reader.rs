//! CSV (and TSV) input: a header row (or columns named `column_1`, ...), RFC 4180 quoting
//! (embedded delimiters, quotes and newlines), every column read as text, the delimiter sniffed
//! or named, the text decoded from its encoding (`text_source`). Invalid text, ragged rows, a
//! quote left open at the end of the file and text after a closing quote are reported with
//! their row, line and column.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::TableError;
use super::batch_stream::BatchWithLines;
use super::csv_records::{CsvReadError, CsvRecord, CsvRecordReader, QuoteProblem};
use super::input_options::InputOptions;
use super::reader::BATCH_TEXT_BYTES;
use super::text_source::{OpenedText, TextEncoding, open_text_digesting, sniff_delimiter};

pub struct CsvBatchReader {
    path: PathBuf,
    reader: CsvRecordReader<Box<dyn Read + Send>>,
    schema: SchemaRef,
    rows_per_batch: usize,
    rows_read: u64,
    finished: bool,
    /// Without a header row, the first record is data, read while naming the columns.
    first_record: Option<CsvRecord>,
    /// The record being read (kept, so its room is reused).
    record: CsvRecord,
    encoding: TextEncoding,
    shape: CsvShape,
    /// Bytes of each column in the last batch: the next batch's builders start with that much
    /// room (and a little more), so they are seldom grown and copied while filling.
    column_bytes_last_batch: Vec<usize>,
}

impl CsvBatchReader {
    pub fn open(
        path: &Path,
        rows_per_batch: usize,
        options: &InputOptions,
    ) -> Result<CsvBatchReader, TableError> {
        CsvBatchReader::open_digesting(path, rows_per_batch, options, None)
    }

    /// [`Self::open`], the file hashed into `digest` (when given) as it is read.
    pub fn open_digesting(
        path: &Path,
        rows_per_batch: usize,
        options: &InputOptions,
        digest: Option<super::ReadDigest>,
    ) -> Result<CsvBatchReader, TableError> {
        let OpenedText {
            stream: text,
            encoding,
            sample,
        } = open_text_digesting(path, options.encoding, digest)?;
        let delimiter = options.delimiter.unwrap_or_else(|| {
            if super::TableFormat::is_tsv(path) {
                b'\t'
            } else {
                sniff_delimiter(&sample, options.quote)
            }
        });
        if Some(delimiter) == options.quote {
            return Err(TableError::new(
                path,
                None,
                format!(
                    "the quote `{}` is also the field delimiter; name another quote with `[input] quote`, or the delimiter with `[input] delimiter`",
                    delimiter as char
                ),
            ));
        }
        let shape = CsvShape {
            has_header: options.header,
            delimiter,
            quote: options.quote,
            compression: super::compression::Compression::of_path(path),
        };
        let mut reader = CsvRecordReader::new(text, delimiter, options.quote);
        let mut first_record = None;
        let mut headers = CsvRecord::default();
        let has_record = reader
            .read_record(&mut headers)
            .map_err(|error| csv_error(path, error, None, shape))?;
        super::reader::refuse_too_many_columns(
            path,
            headers.len(),
            Some(if options.header { "header" } else { "row 1" }.to_owned()),
            &format!(
                "if the file was split at the wrong character, name its delimiter with `[input] delimiter`; otherwise {}",
                super::reader::KEEP_FEWER_COLUMNS
            ),
        )?;
        if !options.header {
            if !has_record {
                return Err(TableError::new(
                    path,
                    None,
                    "the file is empty; there is no row to send",
                ));
            }
            let names: Vec<String> = (1..=headers.len())
                .map(|number| format!("column_{number}"))
                .collect();
            first_record = Some(std::mem::replace(
                &mut headers,
                CsvRecord::of_fields(names.iter().map(String::as_bytes)),
            ));
        }
        if headers.is_empty() {
            return Err(TableError::new(
                path,
                None,
                "the file is empty; a CSV input needs a header row naming its columns",
            ));
        }
        let mut fields = Vec::with_capacity(headers.len());
        let mut seen = HashSet::new();
        for (index, raw_name) in headers.fields().enumerate() {
            let name = std::str::from_utf8(raw_name).map_err(|_| {
                TableError::new(
                    path,
                    Some(format!("header, column {}", index + 1)),
                    "the column name is not valid UTF-8; save the file as UTF-8, or name its encoding with `[input] encoding` (for example \"gb18030\")",
                )
            })?;
            let name = name.trim_start_matches('\u{feff}').trim().to_owned();
            if name.is_empty() {
                return Err(TableError::new(
                    path,
                    Some(format!("header, column {}", index + 1)),
                    "the column has no name; give every column a name in the header row",
                ));
            }
            if !seen.insert(name.clone()) {
                return Err(TableError::new(
                    path,
                    Some("header".to_owned()),
                    format!("column `{name}` appears twice; column names must be unique"),
                ));
            }
            fields.push(Field::new(name, DataType::Utf8, false));
        }
        Ok(CsvBatchReader {
            path: path.to_owned(),
            reader,
            rows_per_batch: super::reader::rows_per_batch_of(fields.len(), rows_per_batch),
            schema: Arc::new(Schema::new(fields)),
            rows_read: 0,
            finished: false,
            first_record,
            record: CsvRecord::default(),
            encoding,
            shape,
            column_bytes_last_batch: Vec::new(),
        })
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// How the file is read, in words: its encoding, delimiter and header.
    pub fn description(&self) -> String {
        format!(
            "encoding {}, fields separated by {}{}, {}",
            self.encoding,
            self.shape.delimiter_words(),
            match self.shape.quote {
                Some(b'"') => String::new(),
                Some(quote) => format!(" and quoted by `{}`", quote as char),
                None => " and never quoted".to_owned(),
            },
            if self.shape.has_header {
                "the first row names the columns"
            } else {
                "no header row (columns `column_1`, `column_2`, ...)"
            }
        )
    }

    fn read_batch(&mut self) -> Result<Option<BatchWithLines>, TableError> {
        let column_count = self.schema.fields().len();
        let rows_expected = self.rows_per_batch.min(1 << 16);
        let mut builders: Vec<StringBuilder> = (0..column_count)
            .map(|column_index| {
                let bytes_expected = self
                    .column_bytes_last_batch
                    .get(column_index)
                    .map_or(1024, |bytes| bytes + bytes / 8);
                StringBuilder::with_capacity(rows_expected, bytes_expected)
            })
            .collect();
        let mut rows_in_batch = 0;
        let mut bytes_in_batch = 0;
        let mut lines = Vec::with_capacity(self.rows_per_batch.min(4096));
        while rows_in_batch < self.rows_per_batch && bytes_in_batch < BATCH_TEXT_BYTES {
            if let Some(first) = self.first_record.take() {
                self.record = first;
            } else {
                let has_record = self.reader.read_record(&mut self.record).map_err(|error| {
                    csv_error(&self.path, error, Some(&self.schema), self.shape)
                })?;
                if !has_record {
                    self.finished = true;
                    break;
                }
            }
            let line = self.record.line();
            if self.record.len() != column_count {
                return Err(unequal_lengths_error(
                    &self.path,
                    &self.record,
                    column_count,
                    self.shape,
                ));
            }
            self.rows_read += 1;
            lines.push(line);
            let values = self.record.text_fields().map_err(|(column_index, error)| {
                TableError::new(
                    &self.path,
                    Some(format!(
                        "row {} (line {line}), column `{}`",
                        self.rows_read,
                        self.schema.field(column_index).name()
                    )),
                    format!(
                        "invalid UTF-8 at byte {} of the value; save the file as UTF-8, fix that cell, or name the file's encoding with `[input] encoding`",
                        error.valid_up_to()
                    ),
                )
            })?;
            for (builder, value) in builders.iter_mut().zip(values) {
                builder.append_value(value);
            }
            rows_in_batch += 1;
            bytes_in_batch += self.record.byte_len();
        }
        if rows_in_batch == 0 {
            return Ok(None);
        }
        self.column_bytes_last_batch = builders
            .iter()
            .map(|builder| builder.values_slice().len())
            .collect();
        let columns: Vec<ArrayRef> = builders
            .into_iter()
            .map(|mut builder| Arc::new(builder.finish()) as ArrayRef)
            .collect();
        RecordBatch::try_new(self.schema.clone(), columns)
            .map(|batch| Some((batch, Some(lines))))
            .map_err(|error| TableError::new(&self.path, None, error.to_string()))
    }
}

impl Iterator for CsvBatchReader {
    type Item = Result<BatchWithLines, TableError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let batch = self.read_batch();
        super::batch_stream::stop_after_error(&mut self.finished, batch)
    }
}

/// What errors need to know of how the file is read: whether record 0 is a header, the
/// delimiter, and how the file is compressed.
#[derive(Clone, Copy)]
struct CsvShape {
    has_header: bool,
    delimiter: u8,
    quote: Option<u8>,
    compression: super::compression::Compression,
}

impl CsvShape {
    /// The row number of record `record` (0 is the header when there is one).
    fn row_of_record(self, record: u64) -> u64 {
        if self.has_header { record } else { record + 1 }
    }

    fn delimiter_words(self) -> String {
        match self.delimiter {
            b'\t' => "tab".to_owned(),
            other => format!("`{}`", other as char),
        }
    }
}

/// Where a quoting problem is, in the words of the other errors: the header, or a row and line,
/// and the column (named once the header is known).
fn quote_problem_error(
    path: &Path,
    problem: &QuoteProblem,
    schema: Option<&Schema>,
    shape: CsvShape,
) -> TableError {
    let column = match schema.and_then(|schema| schema.fields().get(problem.field)) {
        Some(field) => format!("column `{}`", field.name()),
        None => format!("column {}", problem.field + 1),
    };
    let location = if problem.record == 0 && shape.has_header {
        format!("header (line {}), {column}", problem.line)
    } else {
        format!(
            "row {} (line {}), {column}",
            shape.row_of_record(problem.record),
            problem.line
        )
    };
    TableError::new(path, Some(location), problem.advice())
}

fn csv_error(
    path: &Path,
    error: CsvReadError,
    schema: Option<&Schema>,
    shape: CsvShape,
) -> TableError {
    match error {
        CsvReadError::Quote(problem) => quote_problem_error(path, &problem, schema, shape),
        CsvReadError::Io(io_error) => TableError::new(
            path,
            None,
            format!(
                "cannot read the file: {io_error}{}",
                match shape.compression.name() {
                    Some(name) =>
                        format!("; the {name} file may be damaged or cut short (copy it again)"),
                    None => String::new(),
                }
            ),
        ),
    }
}

/// A record whose field count is not the header's (or, without one, the first row's).
fn unequal_lengths_error(
    path: &Path,
    record: &CsvRecord,
    expected: usize,
    shape: CsvShape,
) -> TableError {
    TableError::new(
        path,
        Some(format!(
            "row {} (line {})",
            shape.row_of_record(record.index()),
            record.line()
        )),
        format!(
            "the row has {} fields but the {} has {expected}; quote values that contain the delimiter ({}), or name the delimiter with `[input] delimiter` if it is not that one",
            record.len(),
            if shape.has_header {
                "header"
            } else {
                "first row"
            },
            shape.delimiter_words()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;

    fn read_all(bytes: &[u8]) -> Result<Vec<RecordBatch>, TableError> {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("input.csv");
        std::fs::write(&path, bytes).unwrap();
        let reader = CsvBatchReader::open(&path, 2, &InputOptions::default())?;
        reader
            .map(|batch| batch.map(|(batch, _lines)| batch))
            .collect()
    }

    #[test]
    fn quoted_fields_with_newlines_and_quotes_survive() {
        let batches =
            read_all(b"id,text\n1,\"line one\nline two\"\n2,\"say \"\"hi\"\", ok\"\n3,\n").unwrap();
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 3);
        let text = batches[0].column(1).as_string::<i32>();
        assert_eq!(text.value(0), "line one\nline two");
        assert_eq!(text.value(1), "say \"hi\", ok");
        assert_eq!(batches[1].column(1).as_string::<i32>().value(0), "");
        assert_eq!(batches[1].column(1).null_count(), 0);
    }

    #[test]
    fn byte_order_mark_is_not_part_of_the_first_column_name() {
        let batches = read_all("\u{feff}id,text\n1,a\n".as_bytes()).unwrap();
        assert_eq!(batches[0].schema().field(0).name(), "id");
    }

    #[test]
    fn invalid_utf8_names_row_line_and_column() {
        let error = read_all(b"id,text\n1,ok\n2,\"multi\nline\"\n3,bad \xff here\n").unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("row 3 (line 5), column `text`"),
            "{message}"
        );
    }

    #[test]
    fn ragged_row_is_reported_with_its_row() {
        let error = read_all(b"id,text\n1,a\n2,b,c\n").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("row 2"), "{message}");
        assert!(message.contains("3 fields"), "{message}");
    }

    #[test]
    fn a_quote_left_open_names_the_row_line_and_column_where_it_opened() {
        let error = read_all(b"id,text\n1,a\n2,\"b\nc\"\n3,\"open\n4,d\n5,e\n").unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("row 3 (line 5), column `text`"),
            "{message}"
        );
        assert!(message.contains("never closed"), "{message}");
        let error = read_all(b"id,\"text\n1,a\n").unwrap_err();
        assert!(
            error.to_string().contains("header (line 1), column 2"),
            "{error}"
        );
    }

    #[test]
    fn text_after_a_closing_quote_is_an_error() {
        let error = read_all(b"id,text\n1,\"He said \"hi\" here\"\n").unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("row 1 (line 2), column `text`"),
            "{message}"
        );
    }

    #[test]
    fn rows_carry_the_line_they_start_on() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("input.csv");
        std::fs::write(&path, b"id,text\n1,\"a\nb\"\n\n2,c\n").unwrap();
        let lines: Vec<Vec<u64>> = CsvBatchReader::open(&path, 10, &InputOptions::default())
            .unwrap()
            .map(|batch| batch.unwrap().1.unwrap())
            .collect();
        assert_eq!(lines, [vec![2, 5]]);
    }

    #[test]
    fn a_batch_ends_at_its_byte_bound_and_a_wide_table_reads_fewer_rows_a_batch() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("input.csv");
        // Ten rows of 1 MiB: two a batch, not all ten.
        let mut text = String::from("id,text\n");
        for row in 0..10 {
            text.push_str(&format!("{row},{}\n", "好".repeat((1 << 20) / 3)));
        }
        std::fs::write(&path, &text).unwrap();
        let reader = CsvBatchReader::open(&path, 4096, &InputOptions::default()).unwrap();
        let sizes: Vec<usize> = reader.map(|batch| batch.unwrap().0.num_rows()).collect();
        assert_eq!(sizes, [2, 2, 2, 2, 2]);
        // 4,096 columns: 256 rows a batch.
        let header: Vec<String> = (0..4096).map(|column| format!("c{column}")).collect();
        let row = vec!["x"; 4096].join(",");
        let text = format!("{}\n{}", header.join(","), format!("{row}\n").repeat(300));
        std::fs::write(&path, text).unwrap();
        let reader = CsvBatchReader::open(&path, 4096, &InputOptions::default()).unwrap();
        let sizes: Vec<usize> = reader.map(|batch| batch.unwrap().0.num_rows()).collect();
        assert_eq!(sizes, [256, 44]);
    }

    #[test]
    fn duplicate_column_names_are_rejected() {
        let error = read_all(b"id,id\n1,2\n").unwrap_err();
        assert!(error.to_string().contains("appears twice"));
    }
}
