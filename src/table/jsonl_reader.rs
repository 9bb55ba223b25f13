//! JSON Lines input: one object per line. A first pass over the whole file settles each key's
//! column type (so a key that first appears late is not lost); a second pass builds the batches.
//!
//! Values are taken from the line's own text, never re-printed through a float: columns keep the
//! order of the file, nested values (objects, arrays) become columns of their JSON text exactly as
//! written, and numbers a 64-bit integer or float cannot hold exactly (`12345678901234567890123`,
//! `3.14159265358979323846`) make their column text with the digits as written. A key given twice
//! in one object, or an empty key, is an error naming the line.

use std::collections::{HashMap, HashSet};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::TableError;
use super::batch_stream::BatchWithLines;
use super::bounded_lines::{BoundedLines, LINE_PAST_LIMIT};
use super::csv_records::MAX_RECORD_BYTES;
use super::input_options::InputOptions;
use super::reader::{BATCH_TEXT_BYTES, MAX_INPUT_COLUMNS, refuse_too_many_columns};

/// One top-level value of a line, as written.
#[derive(Debug, Clone, PartialEq)]
enum RawCell<'line> {
    Null,
    Boolean(bool),
    /// The number's text, e.g. `-1.5e3`.
    Number(&'line str),
    Text(String),
    /// An object or array, as written.
    Nested(&'line str),
}

/// What a number's text can be held as without changing its digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumberFit {
    /// An integer within i64 that a float64 also holds exactly (|n| ≤ 2^53).
    SmallInteger,
    /// An integer within i64 that a float64 would round.
    Integer,
    /// A float64 prints back the same decimal value.
    Float,
    /// Only text keeps it: an integer beyond i64, or more digits than a float64 keeps.
    TextOnly,
}

fn number_fit(text: &str) -> NumberFit {
    let is_integer_literal = !text.contains(['.', 'e', 'E']);
    if is_integer_literal {
        return match text.parse::<i64>() {
            Ok(value) if value.unsigned_abs() <= 1 << 53 => NumberFit::SmallInteger,
            Ok(_) => NumberFit::Integer,
            Err(_) => NumberFit::TextOnly,
        };
    }
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && float_keeps_digits(text, value) => NumberFit::Float,
        _ => NumberFit::TextOnly,
    }
}

/// Whether the shortest text that reads back as `value` is the same decimal number as `text`.
fn float_keeps_digits(text: &str, value: f64) -> bool {
    let shortest = format!("{value:e}");
    match (canonical_decimal(text), canonical_decimal(&shortest)) {
        (Some(written), Some(kept)) => written == kept,
        _ => false,
    }
}

/// A decimal number as (negative, significant digits, exponent) with the value
/// `0.DIGITS × 10^exponent`; zero is `(false, "", 0)` whatever its sign.
fn canonical_decimal(text: &str) -> Option<(bool, String, i64)> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(index) => (
            &unsigned[..index],
            unsigned[index + 1..].parse::<i64>().ok()?,
        ),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if !whole
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0');
    let leading_zeros = (digits.len() - significant.len()) as i64;
    let significant = significant.trim_end_matches('0');
    if significant.is_empty() {
        return Some((false, String::new(), 0));
    }
    let point = (whole.len() as i64).checked_add(exponent)? - leading_zeros;
    Some((negative, significant.to_owned(), point))
}

/// The end (exclusive) of the JSON string starting with the quote at `start`.
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut index = start + 1;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' => index += 2,
            b'"' => return index + 1,
            _ => index += 1,
        }
    }
    bytes.len()
}

/// The end (exclusive) of the JSON value starting at `start` (the line is valid JSON).
fn value_end(bytes: &[u8], start: usize) -> usize {
    match bytes[start] {
        b'"' => string_end(bytes, start),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut index = start;
            while index < bytes.len() {
                match bytes[index] {
                    b'"' => {
                        index = string_end(bytes, index);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return index + 1;
                        }
                    }
                    _ => {}
                }
                index += 1;
            }
            bytes.len()
        }
        _ => {
            let mut index = start;
            while index < bytes.len()
                && !matches!(bytes[index], b',' | b'}' | b']')
                && !bytes[index].is_ascii_whitespace()
            {
                index += 1;
            }
            index
        }
    }
}

fn skip_whitespace(bytes: &[u8], mut index: usize) -> usize {
    while index < bytes.len() && bytes[index].is_ascii_whitespace() {
        index += 1;
    }
    index
}

/// The keys and raw values of a line holding one JSON object, in the order written.
fn parse_line<'line>(
    path: &Path,
    line_number: u64,
    line: &'line str,
) -> Result<Vec<(String, RawCell<'line>)>, TableError> {
    let located =
        |message: String| TableError::new(path, Some(format!("line {line_number}")), message);
    serde_json::from_str::<serde::de::IgnoredAny>(line).map_err(|error| {
        let hint = if ["NaN", "Infinity"].iter().any(|word| line.contains(word)) {
            " (NaN and Infinity are not JSON: write null, or a number; Python writes them unless told `allow_nan=False`)"
        } else {
            ""
        };
        located(format!("invalid JSON: {error}{hint}"))
    })?;
    let bytes = line.as_bytes();
    let mut index = skip_whitespace(bytes, 0);
    if bytes.get(index) != Some(&b'{') {
        return Err(located(
            "each line must be a JSON object like {\"text\": \"...\"}".to_owned(),
        ));
    }
    index = skip_whitespace(bytes, index + 1);
    let mut entries = Vec::new();
    let mut keys_seen: HashSet<String> = HashSet::new();
    while bytes.get(index) == Some(&b'"') {
        let key_end = string_end(bytes, index);
        let key: String = serde_json::from_str(&line[index..key_end])
            .map_err(|error| located(format!("invalid JSON key: {error}")))?;
        if key.trim().is_empty() {
            return Err(located(format!(
                "key {} has no name; every key names a column, so give it one",
                &line[index..key_end]
            )));
        }
        if !keys_seen.insert(key.clone()) {
            return Err(located(format!(
                "key `{key}` appears twice in this object; a JSON reader keeps only one of the two values, so remove or rename one"
            )));
        }
        index = skip_whitespace(bytes, key_end);
        // The colon.
        index = skip_whitespace(bytes, index + 1);
        let end = value_end(bytes, index);
        let raw = &line[index..end];
        let cell = match bytes[index] {
            b'"' => RawCell::Text(
                serde_json::from_str(raw)
                    .map_err(|error| located(format!("invalid JSON string: {error}")))?,
            ),
            b'{' | b'[' => RawCell::Nested(raw),
            b't' => RawCell::Boolean(true),
            b'f' => RawCell::Boolean(false),
            b'n' => RawCell::Null,
            _ => RawCell::Number(raw),
        };
        entries.push((key, cell));
        index = skip_whitespace(bytes, end);
        if bytes.get(index) == Some(&b',') {
            index = skip_whitespace(bytes, index + 1);
        }
    }
    Ok(entries)
}

/// What the values of one column were, over the whole file.
#[derive(Debug, Clone, Copy, Default)]
struct ColumnEvidence {
    boolean: bool,
    text: bool,
    small_integer: bool,
    integer: bool,
    float: bool,
    text_only_number: bool,
}

/// How a column is built, once the whole file has been seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnKind {
    Boolean,
    Integer,
    Float,
    /// Strings, nested JSON, and numbers or booleans as written.
    Text,
}

impl ColumnEvidence {
    fn add(&mut self, cell: &RawCell<'_>) {
        match cell {
            RawCell::Null => {}
            RawCell::Boolean(_) => self.boolean = true,
            RawCell::Text(_) | RawCell::Nested(_) => self.text = true,
            RawCell::Number(text) => match number_fit(text) {
                NumberFit::SmallInteger => self.small_integer = true,
                NumberFit::Integer => self.integer = true,
                NumberFit::Float => self.float = true,
                NumberFit::TextOnly => self.text_only_number = true,
            },
        }
    }

    /// No value in the whole file was anything but null.
    fn only_nulls(self) -> bool {
        !(self.boolean
            || self.text
            || self.small_integer
            || self.integer
            || self.float
            || self.text_only_number)
    }

    fn kind(self) -> ColumnKind {
        let any_number = self.small_integer || self.integer || self.float || self.text_only_number;
        if self.text || (self.boolean && any_number) {
            ColumnKind::Text
        } else if self.boolean {
            ColumnKind::Boolean
        } else if self.text_only_number || (self.float && self.integer) {
            // A float64 column would round these integers or digits.
            ColumnKind::Text
        } else if self.float {
            ColumnKind::Float
        } else if self.small_integer || self.integer {
            ColumnKind::Integer
        } else {
            // Only nulls.
            ColumnKind::Text
        }
    }
}

impl ColumnKind {
    fn data_type(self) -> DataType {
        match self {
            ColumnKind::Boolean => DataType::Boolean,
            ColumnKind::Integer => DataType::Int64,
            ColumnKind::Float => DataType::Float64,
            ColumnKind::Text => DataType::Utf8,
        }
    }
}

enum ColumnBuilder {
    Boolean(BooleanBuilder),
    Integer(Int64Builder),
    Float(Float64Builder),
    Text(StringBuilder),
}

impl ColumnBuilder {
    fn new(kind: ColumnKind) -> ColumnBuilder {
        match kind {
            ColumnKind::Boolean => ColumnBuilder::Boolean(BooleanBuilder::new()),
            ColumnKind::Integer => ColumnBuilder::Integer(Int64Builder::new()),
            ColumnKind::Float => ColumnBuilder::Float(Float64Builder::new()),
            ColumnKind::Text => ColumnBuilder::Text(StringBuilder::new()),
        }
    }

    /// Appends one cell; `Err` names what no longer fits the type settled by the first pass
    /// (the file changed between the two passes).
    fn append(&mut self, cell: Option<&RawCell<'_>>) -> Result<(), String> {
        let cell = cell.filter(|cell| **cell != RawCell::Null);
        match (self, cell) {
            (ColumnBuilder::Boolean(builder), None) => builder.append_null(),
            (ColumnBuilder::Integer(builder), None) => builder.append_null(),
            (ColumnBuilder::Float(builder), None) => builder.append_null(),
            (ColumnBuilder::Text(builder), None) => builder.append_null(),
            (ColumnBuilder::Boolean(builder), Some(RawCell::Boolean(value))) => {
                builder.append_value(*value)
            }
            (ColumnBuilder::Integer(builder), Some(RawCell::Number(text))) => {
                builder.append_value(text.parse().map_err(|_| text.to_string())?)
            }
            (ColumnBuilder::Float(builder), Some(RawCell::Number(text))) => {
                builder.append_value(text.parse().map_err(|_| text.to_string())?)
            }
            (ColumnBuilder::Text(builder), Some(cell)) => match cell {
                RawCell::Text(text) => builder.append_value(text),
                RawCell::Number(text) | RawCell::Nested(text) => builder.append_value(text),
                RawCell::Boolean(value) => builder.append_value(value.to_string()),
                RawCell::Null => builder.append_null(),
            },
            (_, Some(other)) => return Err(format!("{other:?}")),
        }
        Ok(())
    }

    fn finish(self) -> ArrayRef {
        match self {
            ColumnBuilder::Boolean(mut builder) => Arc::new(builder.finish()),
            ColumnBuilder::Integer(mut builder) => Arc::new(builder.finish()),
            ColumnBuilder::Float(mut builder) => Arc::new(builder.finish()),
            ColumnBuilder::Text(mut builder) => Arc::new(builder.finish()),
        }
    }
}

pub struct JsonlBatchReader {
    path: PathBuf,
    lines: TextLines,
    encoding: super::text_source::TextEncoding,
    schema: SchemaRef,
    kinds: Vec<ColumnKind>,
    column_index: HashMap<String, usize>,
    rows_per_batch: usize,
    line_number: u64,
    finished: bool,
}

/// The lines of a JSON Lines input, decoded to UTF-8, each no longer than a CSV record may be
/// ([`MAX_RECORD_BYTES`]).
type TextLines = BoundedLines<BufReader<Box<dyn std::io::Read + Send>>>;

fn open_lines(
    path: &Path,
    options: &InputOptions,
) -> Result<(TextLines, super::text_source::TextEncoding), TableError> {
    let opened = super::text_source::open_text(path, options.encoding)?;
    Ok((
        BoundedLines::new(
            BufReader::with_capacity(1 << 16, opened.stream),
            MAX_RECORD_BYTES,
        ),
        opened.encoding,
    ))
}

fn read_line(
    path: &Path,
    line_number: u64,
    line: std::io::Result<String>,
) -> Result<String, TableError> {
    let line = line.map_err(|error| {
        if error.kind() == std::io::ErrorKind::InvalidData
            && error.get_ref().is_some_and(|inner| inner.to_string() == LINE_PAST_LIMIT)
        {
            return TableError::new(
                path,
                Some(format!("line {line_number}")),
                format!(
                    "the line runs on past {} without a line end; a JSON Lines file holds one JSON object a line (a JSON array of objects saved as one line is not one): write one object a line, or save the table as CSV or Parquet",
                    crate::readable_number::readable_bytes(MAX_RECORD_BYTES as u64)
                ),
            );
        }
        // The decoder of a non-UTF-8 input says where itself; std's UTF-8 check does not.
        if let Some(decoding) = error.get_ref().filter(|_| error.kind() == std::io::ErrorKind::InvalidData)
            && !decoding.to_string().contains("did not contain valid UTF-8")
        {
            return TableError::new(path, None, decoding.to_string());
        }
        let message = if error.kind() == std::io::ErrorKind::InvalidData {
            "the line is not valid UTF-8; save the file as UTF-8, or name its encoding with `[input] encoding`".to_owned()
        } else {
            format!("cannot read the file: {error}")
        };
        TableError::new(path, Some(format!("line {line_number}")), message)
    })?;
    // A UTF-8 byte-order mark before the first line is not part of the JSON.
    Ok(match (line_number, line.strip_prefix('\u{feff}')) {
        (1, Some(rest)) => rest.to_owned(),
        _ => line,
    })
}

impl JsonlBatchReader {
    pub fn open(
        path: &Path,
        rows_per_batch: usize,
        options: &InputOptions,
    ) -> Result<JsonlBatchReader, TableError> {
        let mut column_index: HashMap<String, usize> = HashMap::new();
        let mut columns: Vec<(String, ColumnEvidence)> = Vec::new();
        for (index, line) in open_lines(path, options)?.0.enumerate() {
            let line_number = index as u64 + 1;
            // This pass reads the whole file before a row is planned: a signal stops it too
            // (the caller tells the signal, not this error).
            if line_number.is_multiple_of(1024) && crate::interrupt::received().is_some() {
                return Err(TableError::new(
                    path,
                    Some(format!("line {line_number}")),
                    "stopped by a signal while the file's column types were read",
                ));
            }
            let line = read_line(path, line_number, line)?;
            if line.trim().is_empty() {
                continue;
            }
            for (key, cell) in parse_line(path, line_number, &line)? {
                let position = match column_index.get(&key) {
                    Some(position) => *position,
                    None => {
                        if columns.len() == MAX_INPUT_COLUMNS {
                            refuse_too_many_columns(
                                path,
                                columns.len() + 1,
                                Some(format!("line {line_number}, key `{key}`")),
                                "each new key of a JSON Lines file is a column, so put values used as keys (ids, dates) under one key, and keep only the keys the prompt and the output need",
                            )?;
                        }
                        column_index.insert(key.clone(), columns.len());
                        columns.push((key, ColumnEvidence::default()));
                        columns.len() - 1
                    }
                };
                columns[position].1.add(&cell);
            }
        }
        if columns.is_empty() {
            return Err(TableError::new(
                path,
                None,
                "the file has no JSON objects with keys; a JSON Lines input needs one object per line",
            ));
        }
        let kinds: Vec<ColumnKind> = columns
            .iter()
            .map(|(_, evidence)| evidence.kind())
            .collect();
        let fields: Vec<Field> = columns
            .iter()
            .zip(&kinds)
            .map(|((name, evidence), kind)| {
                super::batch_stream::column_field(name, kind.data_type(), evidence.only_nulls())
            })
            .collect();
        let (lines, encoding) = open_lines(path, options)?;
        let rows_per_batch = super::reader::rows_per_batch_of(kinds.len(), rows_per_batch);
        Ok(JsonlBatchReader {
            path: path.to_owned(),
            lines,
            encoding,
            schema: Arc::new(Schema::new(fields)),
            kinds,
            column_index,
            rows_per_batch,
            line_number: 0,
            finished: false,
        })
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// How the file is read, in words: its encoding.
    pub fn description(&self) -> String {
        format!("encoding {}", self.encoding)
    }

    fn read_batch(&mut self) -> Result<Option<BatchWithLines>, TableError> {
        let mut builders: Vec<ColumnBuilder> = self
            .kinds
            .iter()
            .map(|kind| ColumnBuilder::new(*kind))
            .collect();
        let mut lines = Vec::new();
        let mut bytes_in_batch = 0;
        while lines.len() < self.rows_per_batch && bytes_in_batch < BATCH_TEXT_BYTES {
            let Some(line) = self.lines.next() else {
                self.finished = true;
                break;
            };
            self.line_number += 1;
            let line = read_line(&self.path, self.line_number, line)?;
            if line.trim().is_empty() {
                continue;
            }
            let changed = |what: &str| {
                TableError::new(
                    &self.path,
                    Some(format!("line {}", self.line_number)),
                    format!("{what}: the file changed while it was being read; run again"),
                )
            };
            let mut cells: Vec<Option<RawCell<'_>>> = vec![None; builders.len()];
            for (key, cell) in parse_line(&self.path, self.line_number, &line)? {
                let index = *self
                    .column_index
                    .get(&key)
                    .ok_or_else(|| changed(&format!("key `{key}` is new")))?;
                cells[index] = Some(cell);
            }
            for (index, builder) in builders.iter_mut().enumerate() {
                builder.append(cells[index].as_ref()).map_err(|value| {
                    changed(&format!(
                        "`{}` no longer fits its column ({value})",
                        self.schema.field(index).name()
                    ))
                })?;
            }
            lines.push(self.line_number);
            bytes_in_batch += line.len();
        }
        if lines.is_empty() {
            return Ok(None);
        }
        let columns: Vec<ArrayRef> = builders.into_iter().map(ColumnBuilder::finish).collect();
        RecordBatch::try_new(self.schema.clone(), columns)
            .map(|batch| Some((batch, Some(lines))))
            .map_err(|error| TableError::new(&self.path, None, error.to_string()))
    }
}

impl Iterator for JsonlBatchReader {
    type Item = Result<BatchWithLines, TableError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let batch = self.read_batch();
        super::batch_stream::stop_after_error(&mut self.finished, batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};

    fn read_all(text: &str) -> Result<Vec<RecordBatch>, TableError> {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("input.jsonl");
        std::fs::write(&path, text).unwrap();
        JsonlBatchReader::open(&path, 100, &InputOptions::default())?
            .map(|batch| batch.map(|(batch, _lines)| batch))
            .collect()
    }

    #[test]
    fn types_are_inferred_over_the_whole_file() {
        let batches = read_all(
            "{\"id\": 1, \"text\": \"a\", \"score\": 1}\n\n{\"id\": 2, \"text\": null, \"score\": 2.5, \"late\": true, \"tags\": [1,2]}\n",
        )
        .unwrap();
        let schema = batches[0].schema();
        assert_eq!(
            schema.field_with_name("id").unwrap().data_type(),
            &DataType::Int64
        );
        assert_eq!(
            schema.field_with_name("score").unwrap().data_type(),
            &DataType::Float64
        );
        assert_eq!(
            schema.field_with_name("late").unwrap().data_type(),
            &DataType::Boolean
        );
        let tags = batches[0]
            .column_by_name("tags")
            .unwrap()
            .as_string::<i32>();
        assert!(tags.is_null(0));
        assert_eq!(tags.value(1), "[1,2]");
        assert!(batches[0].column_by_name("text").unwrap().is_null(1));
    }

    #[test]
    fn a_new_key_past_the_column_limit_is_named_and_large_lines_make_small_batches() {
        let mut text = String::new();
        for line in 0..MAX_INPUT_COLUMNS + 5 {
            text.push_str(&format!("{{\"id\": {line}, \"k{line}\": 1}}\n"));
        }
        let refused = read_all(&text).unwrap_err().to_string();
        // `id` and 16,383 keys are columns when line 16,384 brings one more.
        assert!(
            refused.contains("line 16384, key `k16383`") && refused.contains("16,385 columns"),
            "{refused}"
        );
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("input.jsonl");
        let line = format!("{{\"text\": \"{}\"}}\n", "好".repeat((1 << 20) / 3));
        std::fs::write(&path, line.repeat(5)).unwrap();
        let sizes: Vec<usize> = JsonlBatchReader::open(&path, 4096, &InputOptions::default())
            .unwrap()
            .map(|batch| batch.unwrap().0.num_rows())
            .collect();
        assert_eq!(sizes, [2, 2, 1]);
    }

    #[test]
    fn a_bad_line_is_named() {
        let error = read_all("{\"id\": 1}\n{\"id\": \n").unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
        let error = read_all("{\"id\": 1}\n[1, 2]\n").unwrap_err();
        assert!(error.to_string().contains("JSON object"), "{error}");
        let error = read_all("{\"id\": 1}\n\"text\"\n").unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
        let error = read_all("{\"score\": NaN}\n").unwrap_err();
        assert!(error.to_string().contains("NaN and Infinity"), "{error}");
    }

    #[test]
    fn columns_keep_the_order_of_the_file_and_nested_values_their_text() {
        let batches = read_all(
            "{\"zeta\": 1, \"alpha\": {\"b\": 1, \"a\": [1.50, \"x,}\\\"]\"]}}\n{\"mid\": null, \"zeta\": 2}\n",
        )
        .unwrap();
        let schema = batches[0].schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["zeta", "alpha", "mid"]);
        let alpha = batches[0].column(1).as_string::<i32>();
        assert_eq!(alpha.value(0), "{\"b\": 1, \"a\": [1.50, \"x,}\\\"]\"]}");
    }

    #[test]
    fn numbers_keep_their_digits_or_their_column_becomes_text() {
        let batches = read_all(concat!(
            "{\"big\": 12345678901234567890123, \"wide\": 9007199254740993, \"pi\": 3.14159265358979323846, \"plain\": 0.1, \"mix\": 1}\n",
            "{\"big\": -5, \"wide\": 1.5, \"pi\": 2, \"plain\": 1e300, \"mix\": 2.25}\n",
        ))
        .unwrap();
        let batch = &batches[0];
        let text = |name: &str| {
            let column = batch.column_by_name(name).unwrap().as_string::<i32>();
            (column.value(0).to_owned(), column.value(1).to_owned())
        };
        assert_eq!(
            text("big"),
            ("12345678901234567890123".to_owned(), "-5".to_owned())
        );
        // 9007199254740993 is an i64 a float64 would round, next to a float.
        assert_eq!(
            text("wide"),
            ("9007199254740993".to_owned(), "1.5".to_owned())
        );
        assert_eq!(
            text("pi"),
            ("3.14159265358979323846".to_owned(), "2".to_owned())
        );
        let plain = batch
            .column_by_name("plain")
            .unwrap()
            .as_primitive::<Float64Type>();
        assert_eq!((plain.value(0), plain.value(1)), (0.1, 1e300));
        let mix = batch
            .column_by_name("mix")
            .unwrap()
            .as_primitive::<Float64Type>();
        assert_eq!((mix.value(0), mix.value(1)), (1.0, 2.25));
        let batches = read_all("{\"n\": 9223372036854775807}\n{\"n\": -1}\n").unwrap();
        let n = batches[0].column(0).as_primitive::<Int64Type>();
        assert_eq!(n.value(0), i64::MAX);
    }

    #[test]
    fn a_key_twice_or_without_a_name_is_an_error_naming_the_line() {
        let error = read_all("{\"id\": 1}\n\n{\"id\": 2, \"id\": 3}\n").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("line 3"), "{message}");
        assert!(message.contains("`id` appears twice"), "{message}");
        let error = read_all("{\"\": 1}\n").unwrap_err();
        assert!(error.to_string().contains("no name"), "{error}");
    }

    #[test]
    fn decimals_compare_by_value_not_by_spelling() {
        for (a, b) in [
            ("1e300", "1e+300"),
            ("0.10", "1e-1"),
            ("-0.0015", "-1.5e-3"),
            ("100", "1e2"),
            ("0", "-0.0"),
        ] {
            assert_eq!(canonical_decimal(a), canonical_decimal(b), "{a} {b}");
        }
        assert_ne!(canonical_decimal("0.1"), canonical_decimal("0.01"));
        assert_eq!(number_fit("3.14159265358979323846"), NumberFit::TextOnly);
        assert_eq!(number_fit("0.1"), NumberFit::Float);
        assert_eq!(number_fit("18446744073709551615"), NumberFit::TextOnly);
    }
}
