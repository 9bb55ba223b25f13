//! JSON Lines input: one object per line. A first pass over the whole file settles each key's
//! column type (so a key that first appears late is not lost); a second pass builds the batches.
//! Nested values (objects, arrays) become columns of JSON text.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde_json::{Map, Value};

use super::TableError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnKind {
    /// Only nulls seen so far.
    Unknown,
    Boolean,
    Integer,
    Float,
    Text,
}

impl ColumnKind {
    fn of(value: &Value) -> ColumnKind {
        match value {
            Value::Null => ColumnKind::Unknown,
            Value::Bool(_) => ColumnKind::Boolean,
            Value::Number(number) if number.is_i64() => ColumnKind::Integer,
            Value::Number(_) => ColumnKind::Float,
            _ => ColumnKind::Text,
        }
    }

    fn widen(self, other: ColumnKind) -> ColumnKind {
        use ColumnKind::*;
        match (self, other) {
            (Unknown, kind) | (kind, Unknown) => kind,
            (a, b) if a == b => a,
            (Integer, Float) | (Float, Integer) => Float,
            _ => Text,
        }
    }

    fn data_type(self) -> DataType {
        match self {
            ColumnKind::Boolean => DataType::Boolean,
            ColumnKind::Integer => DataType::Int64,
            ColumnKind::Float => DataType::Float64,
            ColumnKind::Unknown | ColumnKind::Text => DataType::Utf8,
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
    fn new(data_type: &DataType) -> ColumnBuilder {
        match data_type {
            DataType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::new()),
            DataType::Int64 => ColumnBuilder::Integer(Int64Builder::new()),
            DataType::Float64 => ColumnBuilder::Float(Float64Builder::new()),
            _ => ColumnBuilder::Text(StringBuilder::new()),
        }
    }

    fn append(&mut self, value: Option<&Value>) {
        let value = value.filter(|value| !value.is_null());
        match (self, value) {
            (ColumnBuilder::Boolean(builder), value) => {
                builder.append_option(value.and_then(Value::as_bool))
            }
            (ColumnBuilder::Integer(builder), value) => {
                builder.append_option(value.and_then(Value::as_i64))
            }
            (ColumnBuilder::Float(builder), value) => {
                builder.append_option(value.and_then(Value::as_f64))
            }
            (ColumnBuilder::Text(builder), None) => builder.append_null(),
            (ColumnBuilder::Text(builder), Some(Value::String(text))) => builder.append_value(text),
            (ColumnBuilder::Text(builder), Some(other)) => builder.append_value(other.to_string()),
        }
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
    lines: std::io::Lines<BufReader<File>>,
    schema: SchemaRef,
    rows_per_batch: usize,
    line_number: u64,
    finished: bool,
}

fn parse_object(
    path: &Path,
    line_number: u64,
    line: &str,
) -> Result<Map<String, Value>, TableError> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(TableError::new(
            path,
            Some(format!("line {line_number}")),
            "each line must be a JSON object like {\"text\": \"...\"}",
        )),
        Err(error) => Err(TableError::new(
            path,
            Some(format!("line {line_number}")),
            format!("invalid JSON: {error}"),
        )),
    }
}

fn open_lines(path: &Path) -> Result<std::io::Lines<BufReader<File>>, TableError> {
    let file = File::open(path)
        .map_err(|error| TableError::new(path, None, format!("cannot open the file: {error}")))?;
    Ok(BufReader::with_capacity(1 << 16, file).lines())
}

fn read_line(
    path: &Path,
    line_number: u64,
    line: std::io::Result<String>,
) -> Result<String, TableError> {
    line.map_err(|error| {
        let message = if error.kind() == std::io::ErrorKind::InvalidData {
            "the line is not valid UTF-8; save the file as UTF-8".to_owned()
        } else {
            format!("cannot read the file: {error}")
        };
        TableError::new(path, Some(format!("line {line_number}")), message)
    })
}

impl JsonlBatchReader {
    pub fn open(path: &Path, rows_per_batch: usize) -> Result<JsonlBatchReader, TableError> {
        let mut column_order: Vec<String> = Vec::new();
        let mut kinds: HashMap<String, ColumnKind> = HashMap::new();
        for (index, line) in open_lines(path)?.enumerate() {
            let line_number = index as u64 + 1;
            let line = read_line(path, line_number, line)?;
            if line.trim().is_empty() {
                continue;
            }
            let object = parse_object(path, line_number, &line)?;
            for (key, value) in &object {
                let kind = ColumnKind::of(value);
                match kinds.get_mut(key) {
                    Some(existing) => *existing = existing.widen(kind),
                    None => {
                        column_order.push(key.clone());
                        kinds.insert(key.clone(), kind);
                    }
                }
            }
        }
        if column_order.is_empty() {
            return Err(TableError::new(
                path,
                None,
                "the file has no JSON objects; a JSON Lines input needs one object per line",
            ));
        }
        let fields: Vec<Field> = column_order
            .iter()
            .map(|name| Field::new(name, kinds[name].data_type(), true))
            .collect();
        Ok(JsonlBatchReader {
            path: path.to_owned(),
            lines: open_lines(path)?,
            schema: Arc::new(Schema::new(fields)),
            rows_per_batch,
            line_number: 0,
            finished: false,
        })
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn read_batch(&mut self) -> Result<Option<RecordBatch>, TableError> {
        let mut builders: Vec<ColumnBuilder> = self
            .schema
            .fields()
            .iter()
            .map(|field| ColumnBuilder::new(field.data_type()))
            .collect();
        let mut rows = 0;
        while rows < self.rows_per_batch {
            let Some(line) = self.lines.next() else {
                self.finished = true;
                break;
            };
            self.line_number += 1;
            let line = read_line(&self.path, self.line_number, line)?;
            if line.trim().is_empty() {
                continue;
            }
            let object = parse_object(&self.path, self.line_number, &line)?;
            for (field, builder) in self.schema.fields().iter().zip(builders.iter_mut()) {
                builder.append(object.get(field.name()));
            }
            rows += 1;
        }
        if rows == 0 {
            return Ok(None);
        }
        let columns: Vec<ArrayRef> = builders.into_iter().map(ColumnBuilder::finish).collect();
        RecordBatch::try_new(self.schema.clone(), columns)
            .map(Some)
            .map_err(|error| TableError::new(&self.path, None, error.to_string()))
    }
}

impl Iterator for JsonlBatchReader {
    type Item = Result<RecordBatch, TableError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let batch = self.read_batch();
        super::reader::stop_after_error(&mut self.finished, batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;

    fn read_all(text: &str) -> Result<Vec<RecordBatch>, TableError> {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("input.jsonl");
        std::fs::write(&path, text).unwrap();
        JsonlBatchReader::open(&path, 100)?.collect()
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
    fn a_bad_line_is_named() {
        let error = read_all("{\"id\": 1}\n{\"id\": \n").unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
        let error = read_all("{\"id\": 1}\n[1, 2]\n").unwrap_err();
        assert!(error.to_string().contains("JSON object"), "{error}");
    }
}
