//! Workbook input (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`) through calamine: one sheet, its first non-empty row naming the columns, each column typed from its cells.
//!
//! A column whose cells are all numbers is numbers (whole numbers: integers), all dates is
//! dates, all date-times is timestamps, all TRUE/FALSE is booleans; a column that mixes kinds is
//! text, each cell written as Excel shows it in General format as far as text can (`12`, `0.5`,
//! `TRUE`, `2024-05-01`). Empty and error cells (`#N/A`) are null; rows with no value at all
//! are skipped. Rows are numbered as data rows from 1 (the row under the header is row 1), and
//! their "line" is the sheet's own row number, as Excel shows it.
//!
//! The sheet is read twice: once to learn the header and the columns' types, then for the rows,
//! on a thread that hands record batches over a short channel. `.xlsx`, `.xlsm` and `.xlsb`
//! cells stream from the file (calamine keeps the workbook's shared strings in memory);
//! calamine reads an `.xls` or `.ods` sheet whole (such sheets hold at most 65,536 and
//! 1,048,576 rows).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema, SchemaRef, TimeUnit};
use calamine::{Data, DataRef, ExcelDateTime, Reader, Sheets};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use super::TableError;
use super::batch_stream::BatchWithLines;
use super::input_options::{InputOptions, SheetChoice};

/// One cell's value, as far as the columns' types need to know it.
#[derive(Debug, Clone, PartialEq)]
enum CellValue<'a> {
    /// Empty, or an error such as `#N/A` (null, as pandas reads it).
    Nothing,
    Boolean(bool),
    Integer(i64),
    Float(f64),
    Date(NaiveDate),
    DateTime(NaiveDateTime),
    Text(Cow<'a, str>),
}

/// Whole numbers below this magnitude (2^63) are integers. Excel keeps 15 significant digits
/// and a workbook stores numbers as floats, so an 18-digit id was rounded when it was saved as a
/// number (keep ids as text in a workbook); it is still read as an integer, like its column.
const LARGEST_WHOLE_NUMBER: f64 = 9_223_372_036_854_775_808.0;

impl CellValue<'_> {
    fn from_float(value: f64) -> CellValue<'static> {
        if value.fract() == 0.0 && value.abs() < LARGEST_WHOLE_NUMBER {
            CellValue::Integer(value as i64)
        } else {
            CellValue::Float(value)
        }
    }

    fn from_excel_date_time(value: &ExcelDateTime) -> CellValue<'static> {
        let (year, month, day, hour, minute, second, milli) = value.to_ymd_hms_milli();
        let time = NaiveTime::from_hms_milli_opt(
            u32::from(hour),
            u32::from(minute),
            u32::from(second),
            u32::from(milli),
        );
        if value.as_f64() < 1.0 && !value.is_duration() {
            // A time of day without a date: text, as Excel shows it.
            return CellValue::Text(Cow::Owned(format!("{hour}:{minute:02}:{second:02}")));
        }
        if value.is_duration() {
            let total_seconds = (value.as_f64() * 86_400.0).round() as i64;
            return CellValue::Text(Cow::Owned(format!(
                "{}:{:02}:{:02}",
                total_seconds / 3600,
                total_seconds / 60 % 60,
                total_seconds % 60
            )));
        }
        match (
            NaiveDate::from_ymd_opt(i32::from(year), u32::from(month), u32::from(day)),
            time,
        ) {
            (Some(date), Some(time)) if time == NaiveTime::MIN => CellValue::Date(date),
            (Some(date), Some(time)) => CellValue::DateTime(date.and_time(time)),
            // 1900-02-29, which Excel believes in: keep the serial number as text.
            _ => CellValue::Text(Cow::Owned(value.as_f64().to_string())),
        }
    }

    fn from_iso_text(text: &str) -> CellValue<'static> {
        if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return CellValue::Date(date);
        }
        match NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
            Ok(date_time) if date_time.time() == NaiveTime::MIN => {
                CellValue::Date(date_time.date())
            }
            Ok(date_time) => CellValue::DateTime(date_time),
            Err(_) => CellValue::Text(Cow::Owned(text.to_owned())),
        }
    }

    fn of_data_ref<'a>(data: &'a DataRef<'a>) -> CellValue<'a> {
        match data {
            DataRef::Empty | DataRef::Error(_) => CellValue::Nothing,
            DataRef::Int(value) => CellValue::Integer(*value),
            DataRef::Float(value) => CellValue::from_float(*value),
            DataRef::Bool(value) => CellValue::Boolean(*value),
            DataRef::String(text) => CellValue::Text(Cow::Borrowed(text)),
            DataRef::SharedString(text) => CellValue::Text(Cow::Borrowed(text)),
            DataRef::DateTime(value) => CellValue::from_excel_date_time(value),
            DataRef::DateTimeIso(text) => CellValue::from_iso_text(text),
            DataRef::DurationIso(text) => CellValue::from_iso_duration(text),
        }
    }

    /// An OpenDocument duration (`PT12H30M00S`) as Excel shows a time (`12:30:00`); anything
    /// else as it is written.
    fn from_iso_duration(text: &str) -> CellValue<'_> {
        let parsed = (|| {
            let rest = text.strip_prefix("PT")?;
            let (hours, rest) = rest.split_once('H')?;
            let (minutes, rest) = rest.split_once('M')?;
            let seconds: f64 = rest.strip_suffix('S')?.parse().ok()?;
            let total = hours.parse::<u64>().ok()? * 3600
                + minutes.parse::<u64>().ok()? * 60
                + seconds.round() as u64;
            Some(format!(
                "{}:{:02}:{:02}",
                total / 3600,
                total / 60 % 60,
                total % 60
            ))
        })();
        match parsed {
            Some(time) => CellValue::Text(Cow::Owned(time)),
            None => CellValue::Text(Cow::Borrowed(text)),
        }
    }

    fn of_data(data: &Data) -> CellValue<'_> {
        match data {
            Data::Empty | Data::Error(_) => CellValue::Nothing,
            Data::Int(value) => CellValue::Integer(*value),
            Data::Float(value) => CellValue::from_float(*value),
            Data::Bool(value) => CellValue::Boolean(*value),
            Data::String(text) => CellValue::Text(Cow::Borrowed(text)),
            Data::DateTime(value) => CellValue::from_excel_date_time(value),
            Data::DateTimeIso(text) => CellValue::from_iso_text(text),
            Data::DurationIso(text) => CellValue::from_iso_duration(text),
        }
    }

    fn is_nothing(&self) -> bool {
        match self {
            CellValue::Nothing => true,
            CellValue::Text(text) => text.is_empty(),
            _ => false,
        }
    }

    /// The cell as text, as Excel shows it in General format as far as text can.
    fn text(&self) -> Cow<'_, str> {
        match self {
            CellValue::Nothing => Cow::Borrowed(""),
            CellValue::Boolean(true) => Cow::Borrowed("TRUE"),
            CellValue::Boolean(false) => Cow::Borrowed("FALSE"),
            CellValue::Integer(value) => Cow::Owned(value.to_string()),
            CellValue::Float(value) => Cow::Owned(value.to_string()),
            CellValue::Date(date) => Cow::Owned(date.format("%Y-%m-%d").to_string()),
            CellValue::DateTime(date_time) => {
                Cow::Owned(if date_time.and_utc().timestamp_subsec_millis() == 0 {
                    date_time.format("%Y-%m-%d %H:%M:%S").to_string()
                } else {
                    date_time.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
                })
            }
            CellValue::Text(text) => Cow::Borrowed(text),
        }
    }

    fn into_owned(self) -> CellValue<'static> {
        match self {
            CellValue::Text(text) => CellValue::Text(Cow::Owned(text.into_owned())),
            CellValue::Nothing => CellValue::Nothing,
            CellValue::Boolean(value) => CellValue::Boolean(value),
            CellValue::Integer(value) => CellValue::Integer(value),
            CellValue::Float(value) => CellValue::Float(value),
            CellValue::Date(value) => CellValue::Date(value),
            CellValue::DateTime(value) => CellValue::DateTime(value),
        }
    }
}

/// What a column's cells are, learnt cell by cell; anything mixed is text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnKind {
    Nothing,
    Boolean,
    Integer,
    Float,
    Date,
    DateTime,
    Text,
}

impl ColumnKind {
    fn of(cell: &CellValue) -> ColumnKind {
        match cell {
            CellValue::Nothing => ColumnKind::Nothing,
            CellValue::Boolean(_) => ColumnKind::Boolean,
            CellValue::Integer(_) => ColumnKind::Integer,
            CellValue::Float(_) => ColumnKind::Float,
            CellValue::Date(_) => ColumnKind::Date,
            CellValue::DateTime(_) => ColumnKind::DateTime,
            CellValue::Text(text) if text.is_empty() => ColumnKind::Nothing,
            CellValue::Text(_) => ColumnKind::Text,
        }
    }

    fn merge(self, other: ColumnKind) -> ColumnKind {
        use ColumnKind::{Date, DateTime, Float, Integer, Nothing, Text};
        match (self, other) {
            (kind, Nothing) | (Nothing, kind) => kind,
            (same, other) if same == other => same,
            (Integer, Float) | (Float, Integer) => Float,
            (Date, DateTime) | (DateTime, Date) => DateTime,
            _ => Text,
        }
    }

    fn data_type(self) -> DataType {
        match self {
            ColumnKind::Boolean => DataType::Boolean,
            ColumnKind::Integer => DataType::Int64,
            ColumnKind::Float => DataType::Float64,
            ColumnKind::Date => DataType::Date32,
            ColumnKind::DateTime => DataType::Timestamp(TimeUnit::Millisecond, None),
            ColumnKind::Nothing | ColumnKind::Text => DataType::Utf8,
        }
    }
}

/// A column's letters as Excel labels it (`A`, `Z`, `AA`), from its index (from 0).
fn column_letters(index: u32) -> String {
    let mut letters = Vec::new();
    let mut number = index + 1;
    while number > 0 {
        let remainder = (number - 1) % 26;
        letters.push(b'A' + remainder as u8);
        number = (number - 1) / 26;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

fn workbook_error(path: &Path, sheet: Option<&str>, error: impl std::fmt::Display) -> TableError {
    TableError::new(
        path,
        sheet.map(|sheet| format!("sheet `{sheet}`")),
        format!("not a readable workbook: {error}"),
    )
}

fn open_workbook(path: &Path) -> Result<Sheets<BufReader<File>>, TableError> {
    // calamine picks the reader by the extension, which it compares case-sensitively.
    let extension = path
        .extension()
        .map(|extension| extension.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let file = File::open(path)
        .map_err(|error| TableError::new(path, None, format!("cannot open the file: {error}")))?;
    let reader = BufReader::new(file);
    let failed = |error: &dyn std::fmt::Display| {
        // Mislabelled (an .xlsx named .xls): read by its content when that tells.
        let reopened = File::open(path).map(BufReader::new).ok();
        match reopened.map(|reader| open_workbook_by_content(path, reader)) {
            Some(Ok(workbook)) => Ok(workbook),
            _ => Err(workbook_error(path, None, error)),
        }
    };
    match extension.as_str() {
        "xls" => calamine::open_workbook_from_rs(reader)
            .map(Sheets::Xls)
            .or_else(|error: calamine::XlsError| failed(&error)),
        "xlsb" => calamine::open_workbook_from_rs(reader)
            .map(Sheets::Xlsb)
            .or_else(|error: calamine::XlsbError| failed(&error)),
        "ods" => calamine::open_workbook_from_rs(reader)
            .map(Sheets::Ods)
            .or_else(|error: calamine::OdsError| failed(&error)),
        "xlsx" | "xlsm" => calamine::open_workbook_from_rs(reader)
            .map(Sheets::Xlsx)
            .or_else(|error: calamine::XlsxError| failed(&error)),
        // Named otherwise (`input.format = "excel"`): told by its first bytes.
        _ => open_workbook_by_content(path, reader),
    }
}

/// A workbook whose extension does not say its kind: an OLE file is `.xls`; a zip is tried as
/// `.xlsx`, `.ods`, then `.xlsb`.
fn open_workbook_by_content(
    path: &Path,
    mut reader: BufReader<File>,
) -> Result<Sheets<BufReader<File>>, TableError> {
    use std::io::{Read, Seek};
    let mut magic = [0u8; 4];
    let read = reader.read(&mut magic).unwrap_or(0);
    let rewound = |mut reader: BufReader<File>| {
        reader
            .rewind()
            .map(|()| reader)
            .map_err(|error| TableError::new(path, None, format!("cannot read the file: {error}")))
    };
    let reader = rewound(reader)?;
    if read == 4 && magic == [0xD0, 0xCF, 0x11, 0xE0] {
        return calamine::open_workbook_from_rs(reader)
            .map(Sheets::Xls)
            .map_err(|error: calamine::XlsError| workbook_error(path, None, error));
    }
    let not_a_workbook = || {
        TableError::new(
            path,
            None,
            "not a readable workbook: it is none of .xlsx, .xlsm, .xlsb, .xls or .ods",
        )
    };
    if !(read >= 2 && magic[..2] == *b"PK") {
        return Err(not_a_workbook());
    }
    if let Ok(workbook) = calamine::open_workbook_from_rs(reader) {
        return Ok(Sheets::Xlsx(workbook));
    }
    let reader = BufReader::new(File::open(path).map_err(|_| not_a_workbook())?);
    if let Ok(workbook) = calamine::open_workbook_from_rs(reader) {
        return Ok(Sheets::Ods(workbook));
    }
    let reader = BufReader::new(File::open(path).map_err(|_| not_a_workbook())?);
    calamine::open_workbook_from_rs(reader)
        .map(Sheets::Xlsb)
        .map_err(|_: calamine::XlsbError| not_a_workbook())
}

/// The sheet the job reads: the one it names (by name, or number from 1), else the first
/// visible one.
fn choose_sheet(
    workbook: &Sheets<BufReader<File>>,
    path: &Path,
    choice: Option<&SheetChoice>,
) -> Result<(String, usize), TableError> {
    let sheets = workbook.sheets_metadata();
    let names = || {
        sheets
            .iter()
            .map(|sheet| format!("`{}`", sheet.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let is_worksheet = |sheet: &&calamine::Sheet| sheet.typ == calamine::SheetType::WorkSheet;
    let index = match choice {
        // The first visible worksheet (not a chart sheet), else the first worksheet.
        None => sheets
            .iter()
            .position(|sheet| {
                is_worksheet(&sheet) && sheet.visible == calamine::SheetVisible::Visible
            })
            .or_else(|| sheets.iter().position(|sheet| is_worksheet(&sheet))),
        Some(SheetChoice::Name(name)) => sheets
            .iter()
            .position(|sheet| sheet.name == *name)
            .or_else(|| {
                sheets
                    .iter()
                    .position(|sheet| sheet.name.trim().eq_ignore_ascii_case(name.trim()))
            }),
        Some(SheetChoice::Number(number)) => usize::try_from(*number)
            .ok()
            .and_then(|number| number.checked_sub(1))
            .filter(|index| *index < sheets.len()),
    };
    match index {
        Some(index) => Ok((sheets[index].name.clone(), index)),
        None if sheets.is_empty() => Err(TableError::new(path, None, "the workbook has no sheet")),
        None => Err(TableError::new(
            path,
            None,
            format!(
                "the workbook has no {}; its sheets are {} ({} in all); set `[input] sheet` to one of their names or a number from 1 to {}",
                choice.map(ToString::to_string).unwrap_or_default(),
                names(),
                sheets.len(),
                sheets.len()
            ),
        )),
    }
}

/// Calls `visit(row, column, value)` for every cell of `sheet` in row order (positions from 0);
/// `visit` returns false to stop.
fn visit_cells(
    workbook: &mut Sheets<BufReader<File>>,
    path: &Path,
    sheet: &str,
    visit: &mut dyn FnMut(u32, u32, CellValue<'_>) -> bool,
) -> Result<(), TableError> {
    let failed = |error: &dyn std::fmt::Display| workbook_error(path, Some(sheet), error);
    match workbook {
        Sheets::Xlsx(workbook) => {
            let mut cells = workbook
                .worksheet_cells_reader(sheet)
                .map_err(|error| failed(&error))?;
            // Whether the workbook asks to be recalculated when opened, learnt at its first
            // formula: its saved formula values are then placeholders (xlsxwriter saves 0).
            let mut placeholders: Option<bool> = None;
            while let Some(cell) = cells
                .next_cell_with_formula_metadata()
                .map_err(|error| failed(&error))?
            {
                let (row, column) = cell.pos;
                // A workbook written by a program (openpyxl, xlsxwriter, a script) and never
                // opened in a spreadsheet holds formulas without their values: never send them
                // as empty, or as the placeholder its writer saved.
                let unknown_value = cell.formula.is_some()
                    && (cell.value == DataRef::Empty
                        || *placeholders.get_or_insert_with(|| recalculates_on_load(path)));
                if unknown_value {
                    return Err(TableError::new(
                        path,
                        Some(format!(
                            "sheet `{sheet}`, cell {}{}",
                            column_letters(column),
                            row + 1
                        )),
                        "the cell holds a formula whose value was never computed (the workbook was written by a program and not saved by a spreadsheet since); open it in Excel or LibreOffice and save it, or write the values instead of formulas",
                    ));
                }
                if !visit(row, column, CellValue::of_data_ref(&cell.value)) {
                    break;
                }
            }
        }
        Sheets::Xlsb(workbook) => {
            let mut cells = workbook
                .worksheet_cells_reader(sheet)
                .map_err(|error| failed(&error))?;
            while let Some(cell) = cells.next_cell().map_err(|error| failed(&error))? {
                let (row, column) = cell.get_position();
                if !visit(row, column, CellValue::of_data_ref(cell.get_value())) {
                    break;
                }
            }
        }
        Sheets::Xls(_) | Sheets::Ods(_) => {
            let range = workbook
                .worksheet_range(sheet)
                .map_err(|error| failed(&error))?;
            let (first_row, first_column) = range.start().unwrap_or((0, 0));
            for (row, column, data) in range.cells() {
                if !visit(
                    first_row + row as u32,
                    first_column + column as u32,
                    CellValue::of_data(data),
                ) {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Whether an `.xlsx` workbook asks to have its formulas recalculated when it is opened
/// (`fullCalcOnLoad` in `xl/workbook.xml`), as programs that cannot compute them do.
fn recalculates_on_load(path: &Path) -> bool {
    use std::io::Read;
    let Ok(file) = File::open(path) else {
        return false;
    };
    let Ok(mut archive) = zip::ZipArchive::new(BufReader::new(file)) else {
        return false;
    };
    let Ok(entry) = archive.by_name("xl/workbook.xml") else {
        return false;
    };
    let mut text = String::new();
    if entry.take(4 << 20).read_to_string(&mut text).is_err() {
        return false;
    }
    text.contains("fullCalcOnLoad=\"1\"") || text.contains("fullCalcOnLoad=\"true\"")
}

/// A column of the table: where it is in the sheet, its name and type.
#[derive(Debug, Clone)]
struct SheetColumn {
    sheet_column: u32,
    name: String,
    kind: ColumnKind,
}

/// What the first reading learns: the header row and the columns.
#[derive(Debug)]
struct SheetLayout {
    sheet: String,
    sheet_position: usize,
    sheet_count: usize,
    header_row: Option<u32>,
    columns: Vec<SheetColumn>,
}

fn survey_sheet(path: &Path, options: &InputOptions) -> Result<SheetLayout, TableError> {
    let mut workbook = open_workbook(path)?;
    let (sheet, sheet_position) = choose_sheet(&workbook, path, options.sheet.as_ref())?;
    let sheet_count = workbook.sheets_metadata().len();
    let mut header_row: Option<u32> = None;
    let mut names: BTreeMap<u32, String> = BTreeMap::new();
    // Per sheet column: its kind and the first row holding a value.
    let mut kinds: BTreeMap<u32, (ColumnKind, u32)> = BTreeMap::new();
    visit_cells(&mut workbook, path, &sheet, &mut |row, column, value| {
        if value.is_nothing() {
            return true;
        }
        if options.header && header_row.is_none_or(|header| header == row) {
            header_row = Some(row);
            names.insert(column, value.text().trim().to_owned());
            return true;
        }
        let kind = ColumnKind::of(&value);
        kinds
            .entry(column)
            .and_modify(|(known, _)| *known = known.merge(kind))
            .or_insert((kind, row));
        true
    })?;
    let located = |row: u32, column: u32| {
        Some(format!(
            "sheet `{sheet}`, cell {}{}",
            column_letters(column),
            row + 1
        ))
    };
    if options.header && header_row.is_none() {
        return Err(TableError::new(
            path,
            Some(format!("sheet `{sheet}`")),
            "the sheet is empty; a workbook input needs a header row naming its columns",
        ));
    }
    if !options.header && kinds.is_empty() {
        return Err(TableError::new(
            path,
            Some(format!("sheet `{sheet}`")),
            "the sheet is empty; there is no row to send",
        ));
    }
    let mut column_indexes: Vec<u32> = names.keys().chain(kinds.keys()).copied().collect();
    column_indexes.sort_unstable();
    column_indexes.dedup();
    let mut columns = Vec::with_capacity(column_indexes.len());
    let mut first_of_name: BTreeMap<String, u32> = BTreeMap::new();
    for sheet_column in column_indexes {
        let name = if options.header {
            match names.get(&sheet_column) {
                Some(name) if !name.is_empty() => name.clone(),
                _ => {
                    let first_row = kinds.get(&sheet_column).map_or(0, |(_, row)| *row);
                    return Err(TableError::new(
                        path,
                        located(first_row, sheet_column),
                        format!(
                            "column {} has values but no name in the header row (row {}); name it in that row, or delete its values",
                            column_letters(sheet_column),
                            header_row.unwrap_or(0) + 1
                        ),
                    ));
                }
            }
        } else {
            format!("column_{}", sheet_column + 1)
        };
        if let Some(first) = first_of_name.insert(name.clone(), sheet_column) {
            return Err(TableError::new(
                path,
                located(header_row.unwrap_or(0), sheet_column),
                format!(
                    "columns {} and {} are both named `{name}`; column names must be unique, so rename one",
                    column_letters(first),
                    column_letters(sheet_column)
                ),
            ));
        }
        let kind = kinds
            .get(&sheet_column)
            .map_or(ColumnKind::Nothing, |(kind, _)| *kind);
        columns.push(SheetColumn {
            sheet_column,
            name,
            kind,
        });
    }
    Ok(SheetLayout {
        sheet,
        sheet_position,
        sheet_count,
        header_row,
        columns,
    })
}

/// One column's values, built as its type.
enum ColumnBuilder {
    Boolean(BooleanBuilder),
    Integer(Int64Builder),
    Float(Float64Builder),
    Date(Date32Builder),
    DateTime(TimestampMillisecondBuilder),
    Text(StringBuilder),
}

impl ColumnBuilder {
    fn new(kind: ColumnKind) -> ColumnBuilder {
        match kind {
            ColumnKind::Boolean => ColumnBuilder::Boolean(BooleanBuilder::new()),
            ColumnKind::Integer => ColumnBuilder::Integer(Int64Builder::new()),
            ColumnKind::Float => ColumnBuilder::Float(Float64Builder::new()),
            ColumnKind::Date => ColumnBuilder::Date(Date32Builder::new()),
            ColumnKind::DateTime => ColumnBuilder::DateTime(TimestampMillisecondBuilder::new()),
            ColumnKind::Nothing | ColumnKind::Text => ColumnBuilder::Text(StringBuilder::new()),
        }
    }

    /// Appends `cell`, which the first reading found to fit the column's kind.
    fn append(&mut self, cell: &CellValue) {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
        let appended = match (&mut *self, cell) {
            (_, CellValue::Nothing) => false,
            (ColumnBuilder::Text(builder), cell) => {
                builder.append_value(cell.text());
                true
            }
            (ColumnBuilder::Boolean(builder), CellValue::Boolean(value)) => {
                builder.append_value(*value);
                true
            }
            (ColumnBuilder::Integer(builder), CellValue::Integer(value)) => {
                builder.append_value(*value);
                true
            }
            (ColumnBuilder::Float(builder), CellValue::Integer(value)) => {
                builder.append_value(*value as f64);
                true
            }
            (ColumnBuilder::Float(builder), CellValue::Float(value)) => {
                builder.append_value(*value);
                true
            }
            (ColumnBuilder::Date(builder), CellValue::Date(date)) => {
                builder.append_value((*date - epoch).num_days() as i32);
                true
            }
            (ColumnBuilder::DateTime(builder), CellValue::Date(date)) => {
                builder.append_value(date.and_time(NaiveTime::MIN).and_utc().timestamp_millis());
                true
            }
            (ColumnBuilder::DateTime(builder), CellValue::DateTime(date_time)) => {
                builder.append_value(date_time.and_utc().timestamp_millis());
                true
            }
            _ => false,
        };
        if !appended {
            self.append_null();
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Boolean(builder) => builder.append_null(),
            ColumnBuilder::Integer(builder) => builder.append_null(),
            ColumnBuilder::Float(builder) => builder.append_null(),
            ColumnBuilder::Date(builder) => builder.append_null(),
            ColumnBuilder::DateTime(builder) => builder.append_null(),
            ColumnBuilder::Text(builder) => builder.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Boolean(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Integer(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Float(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Date(builder) => Arc::new(builder.finish()),
            ColumnBuilder::DateTime(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Text(builder) => Arc::new(builder.finish()),
        }
    }

    fn len(&self) -> usize {
        match self {
            ColumnBuilder::Boolean(builder) => builder.len(),
            ColumnBuilder::Integer(builder) => builder.len(),
            ColumnBuilder::Float(builder) => builder.len(),
            ColumnBuilder::Date(builder) => builder.len(),
            ColumnBuilder::DateTime(builder) => builder.len(),
            ColumnBuilder::Text(builder) => builder.len(),
        }
    }
}

/// Turns the cells of the sheet's data rows into record batches of `rows_per_batch` rows.
struct RowAssembler {
    schema: SchemaRef,
    /// The table column of each sheet column (by sheet column index).
    slot_of_sheet_column: Vec<Option<usize>>,
    builders: Vec<ColumnBuilder>,
    row_cells: Vec<CellValue<'static>>,
    current_row: Option<u32>,
    lines: Vec<u64>,
    rows_per_batch: usize,
}

impl RowAssembler {
    fn new(layout: &SheetLayout, schema: SchemaRef, rows_per_batch: usize) -> RowAssembler {
        let width = layout
            .columns
            .iter()
            .map(|column| column.sheet_column as usize + 1)
            .max()
            .unwrap_or(0);
        let mut slot_of_sheet_column = vec![None; width];
        for (slot, column) in layout.columns.iter().enumerate() {
            slot_of_sheet_column[column.sheet_column as usize] = Some(slot);
        }
        RowAssembler {
            schema,
            slot_of_sheet_column,
            builders: layout
                .columns
                .iter()
                .map(|column| ColumnBuilder::new(column.kind))
                .collect(),
            row_cells: vec![CellValue::Nothing; layout.columns.len()],
            current_row: None,
            lines: Vec::with_capacity(rows_per_batch),
            rows_per_batch,
        }
    }

    /// Takes a cell of a data row; returns a full batch when one is ready.
    fn take_cell(&mut self, row: u32, column: u32, value: CellValue<'_>) -> Option<BatchWithLines> {
        let slot = self
            .slot_of_sheet_column
            .get(column as usize)
            .copied()
            .flatten()?;
        let mut ready = None;
        if self.current_row != Some(row) {
            ready = self.end_row();
            self.current_row = Some(row);
        }
        self.row_cells[slot] = value.into_owned();
        ready
    }

    /// Ends the row being assembled; returns a full batch when one is ready.
    fn end_row(&mut self) -> Option<BatchWithLines> {
        let row = self.current_row.take()?;
        for (builder, cell) in self.builders.iter_mut().zip(self.row_cells.iter_mut()) {
            builder.append(cell);
            *cell = CellValue::Nothing;
        }
        self.lines.push(u64::from(row) + 1);
        if self.lines.len() >= self.rows_per_batch {
            return self.take_batch();
        }
        None
    }

    fn take_batch(&mut self) -> Option<BatchWithLines> {
        if self
            .builders
            .first()
            .is_some_and(|builder| builder.len() == 0)
        {
            return None;
        }
        let columns: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect();
        let batch = RecordBatch::try_new(self.schema.clone(), columns).ok()?;
        Some((batch, Some(std::mem::take(&mut self.lines))))
    }
}

/// Reads the data rows of the surveyed sheet and sends them as batches; stops when the receiver
/// is gone.
fn send_rows(
    path: &Path,
    layout: &SheetLayout,
    schema: SchemaRef,
    rows_per_batch: usize,
    sender: &SyncSender<Result<BatchWithLines, TableError>>,
) -> Result<(), TableError> {
    let mut workbook = open_workbook(path)?;
    let mut assembler = RowAssembler::new(layout, schema, rows_per_batch);
    let mut receiver_gone = false;
    visit_cells(
        &mut workbook,
        path,
        &layout.sheet,
        &mut |row, column, value| {
            if value.is_nothing() || layout.header_row.is_some_and(|header| row <= header) {
                return true;
            }
            if let Some(batch) = assembler.take_cell(row, column, value) {
                receiver_gone = sender.send(Ok(batch)).is_err();
            }
            !receiver_gone
        },
    )?;
    if receiver_gone {
        return Ok(());
    }
    if let Some(batch) = assembler.end_row()
        && sender.send(Ok(batch)).is_err()
    {
        return Ok(());
    }
    if let Some(batch) = assembler.take_batch() {
        let _ = sender.send(Ok(batch));
    }
    Ok(())
}

/// The batches of a sheet, read on their own thread.
struct SheetBatches {
    path: PathBuf,
    /// What the reading thread needs; taken when it starts, at the first batch asked for (an
    /// input opened only for its schema, as a part checked against the others, reads no row).
    unstarted: Option<(SheetLayout, SchemaRef, usize)>,
    receiver: Option<Receiver<Result<BatchWithLines, TableError>>>,
    reading: Option<std::thread::JoinHandle<()>>,
}

impl SheetBatches {
    /// Starts the thread that reads the rows and sends them as batches.
    fn start(&mut self) -> Result<(), TableError> {
        let Some((layout, schema, rows_per_batch)) = self.unstarted.take() else {
            return Ok(());
        };
        let (sender, receiver) = sync_channel(2);
        let path = self.path.clone();
        let reading = std::thread::Builder::new()
            .name("workbook-reader".to_owned())
            .spawn(move || {
                if let Err(error) = send_rows(&path, &layout, schema, rows_per_batch, &sender) {
                    let _ = sender.send(Err(error));
                }
            })
            .map_err(|error| {
                TableError::new(
                    &self.path,
                    None,
                    format!("cannot start reading the workbook: {error}"),
                )
            })?;
        self.receiver = Some(receiver);
        self.reading = Some(reading);
        Ok(())
    }
}

impl Iterator for SheetBatches {
    type Item = Result<BatchWithLines, TableError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Err(error) = self.start() {
            return Some(Err(error));
        }
        match self.receiver.as_ref()?.recv() {
            Ok(item) => Some(item),
            Err(_) => {
                // The reading thread ended; a panic there must not pass for the end of the sheet.
                let reading = self.reading.take()?;
                match reading.join() {
                    Ok(()) => None,
                    Err(_) => Some(Err(TableError::new(
                        &self.path,
                        None,
                        "reading the workbook failed unexpectedly; the file may be damaged (open and save it again in Excel)",
                    ))),
                }
            }
        }
    }
}

/// A sheet of a workbook as a stream of record batches.
pub struct ExcelBatchReader {
    schema: SchemaRef,
    description: String,
    batches: SheetBatches,
}

impl ExcelBatchReader {
    /// Reads the sheet's header and learns its columns' types (one pass over the sheet); its rows
    /// are read from the first batch asked for.
    ///
    /// # Errors
    /// When the file is not a readable workbook, the sheet does not exist or is empty, or the
    /// header leaves a column with values unnamed or names two columns alike.
    pub fn open(
        path: &Path,
        rows_per_batch: usize,
        options: &InputOptions,
    ) -> Result<ExcelBatchReader, TableError> {
        let layout = survey_sheet(path, options)?;
        let schema: SchemaRef = Arc::new(Schema::new(
            layout
                .columns
                .iter()
                .map(|column| {
                    super::batch_stream::column_field(
                        &column.name,
                        column.kind.data_type(),
                        column.kind == ColumnKind::Nothing,
                    )
                })
                .collect::<Vec<_>>(),
        ));
        let description = format!(
            "sheet `{}` ({} of {}), {}",
            layout.sheet,
            layout.sheet_position + 1,
            layout.sheet_count,
            match layout.header_row {
                Some(row) => format!("row {} names the columns", row + 1),
                None =>
                    "no header row (columns `column_1`, `column_2`, ... by sheet column)".to_owned(),
            }
        );
        Ok(ExcelBatchReader {
            schema: schema.clone(),
            description,
            batches: SheetBatches {
                path: path.to_owned(),
                unstarted: Some((layout, schema, rows_per_batch)),
                receiver: None,
                reading: None,
            },
        })
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Which sheet is read and which row names the columns, in words, for `validate`.
    pub fn description(&self) -> String {
        self.description.clone()
    }
}

impl Iterator for ExcelBatchReader {
    type Item = Result<BatchWithLines, TableError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.batches.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_letters_are_excel_s() {
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(701), "ZZ");
        assert_eq!(column_letters(702), "AAA");
        assert_eq!(column_letters(16_383), "XFD");
    }

    #[test]
    fn kinds_merge_to_the_narrowest_type_that_holds_every_cell() {
        use ColumnKind::*;
        let merged =
            |kinds: &[ColumnKind]| kinds.iter().fold(Nothing, |all, kind| all.merge(*kind));
        assert_eq!(merged(&[Integer, Nothing, Integer]), Integer);
        assert_eq!(merged(&[Integer, Float]), Float);
        assert_eq!(merged(&[Date, DateTime, Nothing]), DateTime);
        assert_eq!(merged(&[Boolean, Integer]), Text);
        assert_eq!(merged(&[Integer, Text, Integer]), Text);
        assert_eq!(merged(&[Nothing]), Nothing);
    }

    #[test]
    fn cells_become_typed_values_and_general_format_text() {
        assert_eq!(CellValue::from_float(12.0), CellValue::Integer(12));
        assert_eq!(CellValue::from_float(0.5), CellValue::Float(0.5));
        assert_eq!(CellValue::from_float(1e300), CellValue::Float(1e300));
        assert_eq!(CellValue::from_float(0.5).text(), "0.5");
        assert_eq!(CellValue::Boolean(true).text(), "TRUE");
        let date = ExcelDateTime::new(45413.0, calamine::ExcelDateTimeType::DateTime, false);
        assert_eq!(
            CellValue::from_excel_date_time(&date),
            CellValue::Date(NaiveDate::from_ymd_opt(2024, 5, 1).unwrap())
        );
        let noon = ExcelDateTime::new(45413.5, calamine::ExcelDateTimeType::DateTime, false);
        assert_eq!(
            CellValue::from_excel_date_time(&noon).text(),
            "2024-05-01 12:00:00"
        );
        let time_of_day = ExcelDateTime::new(0.5, calamine::ExcelDateTimeType::DateTime, false);
        assert_eq!(
            CellValue::from_excel_date_time(&time_of_day).text(),
            "12:00:00"
        );
        assert_eq!(
            CellValue::from_iso_text("2024-05-01"),
            CellValue::Date(NaiveDate::from_ymd_opt(2024, 5, 1).unwrap())
        );
        assert_eq!(
            CellValue::from_iso_text("soon"),
            CellValue::Text(Cow::Borrowed("soon"))
        );
    }
}
