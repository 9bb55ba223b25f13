//! `.xlsx` output through rust_xlsxwriter in constant-memory mode (rows stream to a temporary file beside the output): one sheet, a bold frozen header row, and each column written as its type, as far as Excel can hold it.
//!
//! Numbers are numbers, booleans are TRUE/FALSE, dates and timestamps are Excel dates shown as
//! `yyyy-mm-dd` (`hh:mm:ss`); integers beyond 2^53, which Excel would round, dates before
//! 1900-03-01, non-finite floats, zoned timestamps and nested values are written as text. A text
//! longer than a cell holds (32,767 characters) is cut there with a note, and counted.
//! Limits: <https://support.microsoft.com/en-us/office/excel-specifications-and-limits-1672b34d-7043-467e-8e27-269d656771c3>.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Schema, TimeUnit};
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

/// Rows a sheet holds under its header row (1,048,576 rows in all).
pub const EXCEL_DATA_ROWS: u64 = 1_048_575;
/// Characters a cell holds.
const CELL_CHARACTERS: usize = 32_767;
/// Columns a sheet holds.
const SHEET_COLUMNS: usize = 16_384;
/// The largest integer a float (Excel's only number) holds exactly.
const LARGEST_EXACT_INTEGER: i128 = 1 << 53;
/// Days from Excel's day 0 (1899-12-30 in its 1900 date system, past its 1900 leap-year bug)
/// to 1970-01-01.
const EXCEL_DAYS_TO_UNIX_EPOCH: f64 = 25_569.0;
/// 1900-03-01 as days since 1970-01-01: the first date Excel's serial numbers count correctly.
const FIRST_EXACT_EXCEL_DAY: i64 = -25_508;
const TRUNCATION_NOTE: &str = " …[cut: longer than an Excel cell holds]";

/// Whether a table of `rows` rows (under the header) and `columns` columns fits one sheet.
///
/// # Errors
/// What does not fit, and what to write instead.
pub fn check_fits_a_sheet(rows: u64, columns: usize) -> Result<(), String> {
    if rows > EXCEL_DATA_ROWS {
        return Err(format!(
            "the input has {rows} rows but an Excel sheet holds {EXCEL_DATA_ROWS} under its header; write Parquet or CSV instead (`--output results.parquet`)"
        ));
    }
    if columns > SHEET_COLUMNS {
        return Err(format!(
            "the output has {columns} columns but an Excel sheet holds {SHEET_COLUMNS}; keep fewer input columns (`[output] keep_columns`) or write Parquet or CSV instead"
        ));
    }
    Ok(())
}

pub struct ExcelSheetWriter {
    workbook: Workbook,
    next_row: u32,
    date_format: Format,
    date_time_format: Format,
    truncated_cells: u64,
}

fn excel_error(error: XlsxError) -> String {
    error.to_string()
}

impl ExcelSheetWriter {
    /// Starts a workbook whose rows spill into temporary files in `directory` (the output's, so
    /// that a large table does not fill a small `/tmp`), with the header row written.
    ///
    /// # Errors
    /// When the schema has more columns than a sheet, or the temporary file cannot be made.
    pub fn create(directory: &Path, schema: &Schema) -> Result<ExcelSheetWriter, String> {
        if schema.fields().len() > SHEET_COLUMNS {
            return Err(format!(
                "the table has {} columns and an Excel sheet holds {SHEET_COLUMNS}; write Parquet or CSV instead",
                schema.fields().len()
            ));
        }
        let mut workbook = Workbook::new();
        workbook.set_tempdir(directory).map_err(excel_error)?;
        let header_format = Format::new().set_bold();
        let worksheet = workbook
            .add_worksheet_with_constant_memory()
            .map_err(excel_error)?;
        worksheet.set_name("results").map_err(excel_error)?;
        worksheet.set_freeze_panes(1, 0).map_err(excel_error)?;
        for (column, field) in schema.fields().iter().enumerate() {
            worksheet
                .write_string_with_format(0, column as u16, field.name(), &header_format)
                .map_err(excel_error)?;
        }
        Ok(ExcelSheetWriter {
            workbook,
            next_row: 1,
            date_format: Format::new().set_num_format("yyyy-mm-dd"),
            date_time_format: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
            truncated_cells: 0,
        })
    }

    /// Appends the rows of `batch`.
    ///
    /// # Errors
    /// When the sheet would hold more rows than Excel allows, or a cell cannot be written.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), String> {
        let rows_after = u64::from(self.next_row) - 1 + batch.num_rows() as u64;
        if rows_after > EXCEL_DATA_ROWS {
            return Err(format!(
                "the table has more than {EXCEL_DATA_ROWS} rows, more than an Excel sheet holds; write Parquet or CSV instead"
            ));
        }
        let worksheet = self.workbook.worksheet_from_index(0).map_err(excel_error)?;
        let mut cells = SheetCells {
            worksheet,
            date_format: &self.date_format,
            date_time_format: &self.date_time_format,
            truncated_cells: &mut self.truncated_cells,
        };
        // Constant-memory mode takes rows in order: every cell of a row before the next row.
        for index in 0..batch.num_rows() {
            let row = self.next_row + index as u32;
            for (column_index, column) in batch.columns().iter().enumerate() {
                cells.write(row, column_index as u16, column.as_ref(), index)?;
            }
        }
        self.next_row += batch.num_rows() as u32;
        Ok(())
    }

    /// Writes the workbook to `path`; returns how many texts were cut to fit a cell.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(mut self, path: &Path) -> Result<u64, String> {
        self.workbook.save(path).map_err(excel_error)?;
        Ok(self.truncated_cells)
    }
}

/// The sheet's cells being written, with the formats dates need.
struct SheetCells<'a> {
    worksheet: &'a mut Worksheet,
    date_format: &'a Format,
    date_time_format: &'a Format,
    truncated_cells: &'a mut u64,
}

impl SheetCells<'_> {
    fn text(&mut self, row: u32, column: u16, text: &str) -> Result<(), String> {
        // Excel counts a cell's characters in UTF-16 units (an emoji is two).
        let cut;
        let text =
            if text.len() <= CELL_CHARACTERS || text.encode_utf16().count() <= CELL_CHARACTERS {
                text
            } else {
                let keep = CELL_CHARACTERS - TRUNCATION_NOTE.encode_utf16().count();
                let mut units = 0;
                let mut end = 0;
                for (at, character) in text.char_indices() {
                    units += character.len_utf16();
                    if units > keep {
                        break;
                    }
                    end = at + character.len_utf8();
                }
                *self.truncated_cells += 1;
                cut = format!("{}{TRUNCATION_NOTE}", &text[..end]);
                &cut
            };
        self.worksheet
            .write_string(row, column, text)
            .map_err(excel_error)?;
        Ok(())
    }

    fn number(&mut self, row: u32, column: u16, number: f64) -> Result<(), String> {
        if !number.is_finite() {
            return self.text(row, column, &number.to_string());
        }
        self.worksheet
            .write_number(row, column, number)
            .map_err(excel_error)?;
        Ok(())
    }

    fn integer(&mut self, row: u32, column: u16, integer: i128) -> Result<(), String> {
        if integer.abs() > LARGEST_EXACT_INTEGER {
            return self.text(row, column, &integer.to_string());
        }
        self.number(row, column, integer as f64)
    }

    /// A moment as days since 1970-01-01 (with the time of day as a fraction).
    fn date(&mut self, row: u32, column: u16, days: f64, with_time: bool) -> Result<(), String> {
        if days < FIRST_EXACT_EXCEL_DAY as f64 {
            let seconds = (days * 86_400.0).round() as i64;
            let moment = chrono::DateTime::from_timestamp(seconds, 0).unwrap_or_default();
            let text = if with_time {
                moment.format("%Y-%m-%d %H:%M:%S").to_string()
            } else {
                moment.format("%Y-%m-%d").to_string()
            };
            return self.text(row, column, &text);
        }
        let format = if with_time {
            self.date_time_format
        } else {
            self.date_format
        };
        self.worksheet
            .write_number_with_format(row, column, days + EXCEL_DAYS_TO_UNIX_EPOCH, format)
            .map_err(excel_error)?;
        Ok(())
    }

    /// Writes cell `index` of `values` at (`row`, `column`); a null leaves the cell empty.
    fn write(
        &mut self,
        row: u32,
        column: u16,
        values: &dyn Array,
        index: usize,
    ) -> Result<(), String> {
        if values.is_null(index) {
            return Ok(());
        }
        match values.data_type() {
            DataType::Utf8 => self.text(row, column, values.as_string::<i32>().value(index))?,
            DataType::LargeUtf8 => {
                self.text(row, column, values.as_string::<i64>().value(index))?
            }
            DataType::Utf8View => self.text(row, column, values.as_string_view().value(index))?,
            DataType::Boolean => {
                let value = values.as_boolean().value(index);
                self.worksheet
                    .write_boolean(row, column, value)
                    .map_err(excel_error)?;
            }
            DataType::Int8 => self.integer(
                row,
                column,
                values.as_primitive::<Int8Type>().value(index).into(),
            )?,
            DataType::Int16 => self.integer(
                row,
                column,
                values.as_primitive::<Int16Type>().value(index).into(),
            )?,
            DataType::Int32 => self.integer(
                row,
                column,
                values.as_primitive::<Int32Type>().value(index).into(),
            )?,
            DataType::Int64 => self.integer(
                row,
                column,
                values.as_primitive::<Int64Type>().value(index).into(),
            )?,
            DataType::UInt8 => self.integer(
                row,
                column,
                values.as_primitive::<UInt8Type>().value(index).into(),
            )?,
            DataType::UInt16 => self.integer(
                row,
                column,
                values.as_primitive::<UInt16Type>().value(index).into(),
            )?,
            DataType::UInt32 => self.integer(
                row,
                column,
                values.as_primitive::<UInt32Type>().value(index).into(),
            )?,
            DataType::UInt64 => self.integer(
                row,
                column,
                values.as_primitive::<UInt64Type>().value(index).into(),
            )?,
            DataType::Float16 => self.number(
                row,
                column,
                values.as_primitive::<Float16Type>().value(index).to_f64(),
            )?,
            DataType::Float32 => self.number(
                row,
                column,
                values.as_primitive::<Float32Type>().value(index).into(),
            )?,
            DataType::Float64 => self.number(
                row,
                column,
                values.as_primitive::<Float64Type>().value(index),
            )?,
            DataType::Date32 => {
                let days = values.as_primitive::<Date32Type>().value(index);
                self.date(row, column, f64::from(days), false)?;
            }
            DataType::Date64 => {
                let milliseconds = values.as_primitive::<Date64Type>().value(index);
                self.date(row, column, milliseconds as f64 / 86_400_000.0, false)?;
            }
            DataType::Timestamp(unit, None) => {
                let (value, per_day) = match unit {
                    TimeUnit::Second => (
                        values.as_primitive::<TimestampSecondType>().value(index),
                        86_400.0,
                    ),
                    TimeUnit::Millisecond => (
                        values
                            .as_primitive::<TimestampMillisecondType>()
                            .value(index),
                        86_400_000.0,
                    ),
                    TimeUnit::Microsecond => (
                        values
                            .as_primitive::<TimestampMicrosecondType>()
                            .value(index),
                        86_400_000_000.0,
                    ),
                    TimeUnit::Nanosecond => (
                        values
                            .as_primitive::<TimestampNanosecondType>()
                            .value(index),
                        86_400_000_000_000.0,
                    ),
                };
                self.date(row, column, value as f64 / per_day, true)?;
            }
            DataType::Decimal32(_, _)
            | DataType::Decimal64(_, _)
            | DataType::Decimal128(_, _)
            | DataType::Decimal256(_, _) => {
                // Excel keeps 15 significant digits: a decimal with more is written as text.
                let text = super::row_value::cell_text(values, index)?;
                let digits = text
                    .trim_start_matches(['-', '0', '.'])
                    .chars()
                    .filter(char::is_ascii_digit)
                    .count();
                match text.parse::<f64>() {
                    Ok(number) if digits <= 15 => self.number(row, column, number)?,
                    _ => self.text(row, column, &text)?,
                }
            }
            _ => {
                let text = super::row_value::cell_text(values, index)?;
                self.text(row, column, &text)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::Field;
    use std::sync::Arc;

    #[test]
    fn a_sheet_refuses_rows_past_its_last_and_cuts_long_texts() {
        let directory = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("text", DataType::Utf8, true),
        ]));
        let mut writer = ExcelSheetWriter::create(directory.path(), &schema).unwrap();
        // 2 UTF-16 units per emoji: 16,384 emoji are 32,768 units, one more than a cell holds.
        let long = "😀".repeat(CELL_CHARACTERS / 2 + 1);
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), Some(i64::MAX), None])),
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some(long.as_str()),
                    None,
                ])),
            ],
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.next_row = EXCEL_DATA_ROWS as u32;
        let error = writer.write(&batch).unwrap_err();
        assert!(error.contains("1048575 rows"), "{error}");
        let path = directory.path().join("out.xlsx");
        assert_eq!(writer.save(&path).unwrap(), 1);
        assert!(std::fs::metadata(&path).unwrap().len() > 0);
    }
}
