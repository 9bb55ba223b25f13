//! One Arrow cell as a template value (and as text for ids and text-only outputs).
//!
//! Which column types a template can show is checked once per column ([`check_template_type`])
//! before any row is rendered; a cell that still cannot be shown is an error naming why, never an
//! empty string. Timestamps with a time zone are shown as RFC 3339 with their offset.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::str::FromStr;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowDictionaryKeyType, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, DictionaryArray};
use arrow_schema::{DataType, TimeUnit};
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use minijinja::Value;

/// Why a cell could not become a template value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CellError {
    #[error("{0}")]
    Unsupported(String),
    #[error("the value cannot be shown: {0}")]
    Invalid(String),
}

/// Checks that cells of `data_type` can be shown in a template. `Err` says why not, in words
/// meant for the user (the caller adds the file and column).
pub fn check_template_type(data_type: &DataType) -> Result<(), String> {
    match data_type {
        DataType::Null
        | DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _)
        | DataType::Date32
        | DataType::Date64
        | DataType::Time32(_)
        | DataType::Time64(_)
        | DataType::Duration(_)
        | DataType::Timestamp(_, _) => Ok(()),
        DataType::Dictionary(key, value) => {
            if key.is_dictionary_key_type() {
                check_template_type(value)
            } else {
                Err(unsupported_type_message(data_type))
            }
        }
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            check_template_type(item.data_type())
        }
        DataType::Struct(fields) => fields
            .iter()
            .try_for_each(|field| check_template_type(field.data_type())),
        _ => Err(unsupported_type_message(data_type)),
    }
}

fn unsupported_type_message(data_type: &DataType) -> String {
    format!(
        "its type {data_type} cannot be shown in a template (text, numbers, booleans, dates, times, timestamps, decimals, and lists or structs of those can); convert the column, e.g. to text, or leave it out of the template"
    )
}

fn invalid(error: impl std::fmt::Display) -> CellError {
    CellError::Invalid(error.to_string())
}

/// The cell as Arrow displays it (dates, times, durations, decimals, naive timestamps).
fn arrow_display(array: &dyn Array, row: usize) -> Result<String, CellError> {
    let formatter = arrow_cast::display::ArrayFormatter::try_new(
        array,
        &arrow_cast::display::FormatOptions::default(),
    )
    .map_err(invalid)?;
    formatter.value(row).try_to_string().map_err(invalid)
}

/// The offset a timestamp's time zone names. Fixed offsets (`+09:00`) keep theirs; `UTC` and
/// named zones (`Europe/Paris`, whose offset needs a zone database) are shown in UTC.
fn zone_offset(time_zone: &str) -> FixedOffset {
    use chrono::Offset;
    arrow_array::timezone::Tz::from_str(time_zone)
        .ok()
        .map(|zone| {
            use chrono::TimeZone;
            zone.offset_from_utc_datetime(&DateTime::<Utc>::UNIX_EPOCH.naive_utc())
                .fix()
        })
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset"))
}

/// A timestamp cell with a time zone as RFC 3339 with its offset, e.g.
/// `2024-05-01T10:00:00.123456+00:00`.
pub fn zoned_timestamp_text(
    array: &dyn Array,
    row: usize,
    unit: TimeUnit,
    time_zone: &str,
) -> Result<String, CellError> {
    let utc = match unit {
        TimeUnit::Second => {
            DateTime::from_timestamp(array.as_primitive::<TimestampSecondType>().value(row), 0)
        }
        TimeUnit::Millisecond => DateTime::from_timestamp_millis(
            array.as_primitive::<TimestampMillisecondType>().value(row),
        ),
        TimeUnit::Microsecond => DateTime::from_timestamp_micros(
            array.as_primitive::<TimestampMicrosecondType>().value(row),
        ),
        TimeUnit::Nanosecond => Some(DateTime::from_timestamp_nanos(
            array.as_primitive::<TimestampNanosecondType>().value(row),
        )),
    }
    .ok_or_else(|| invalid("the timestamp is outside the years a calendar date can show"))?;
    Ok(utc
        .with_timezone(&zone_offset(time_zone))
        .to_rfc3339_opts(SecondsFormat::AutoSi, false))
}

fn dictionary_value<K: ArrowDictionaryKeyType>(
    array: &dyn Array,
    row: usize,
) -> Result<Value, CellError> {
    let dictionary: &DictionaryArray<K> = array.as_dictionary::<K>();
    let index = dictionary
        .key(row)
        .ok_or_else(|| invalid("the dictionary key is missing"))?;
    if index >= dictionary.values().len() {
        return Err(invalid("the dictionary key points past its values"));
    }
    cell_value(dictionary.values().as_ref(), index)
}

/// Whether a column of `data_type` holds text (read by [`text_cell`]).
pub fn is_text_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// The text of the cell at `row`, borrowed; `None` when it is null or the column holds no text.
pub fn text_cell(array: &dyn Array, row: usize) -> Option<&str> {
    if array.is_null(row) {
        return None;
    }
    match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Some(array.as_string::<i64>().value(row)),
        DataType::Utf8View => Some(array.as_string_view().value(row)),
        _ => None,
    }
}

/// Converts the cell at `row` into a minijinja value: text stays text, numbers stay numbers,
/// nulls become `none` (shown as nothing), lists become sequences, structs maps, and dates,
/// times, timestamps and decimals their ISO / exact text.
pub fn cell_value(array: &dyn Array, row: usize) -> Result<Value, CellError> {
    if array.is_null(row) {
        return Ok(Value::from(()));
    }
    if let Some(text) = text_cell(array, row) {
        return Ok(Value::from(text));
    }
    let value = match array.data_type() {
        DataType::Null => Value::from(()),
        DataType::Boolean => Value::from(array.as_boolean().value(row)),
        DataType::Int8 => Value::from(array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => Value::from(array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => Value::from(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => Value::from(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Value::from(array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => Value::from(array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => Value::from(array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => Value::from(array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float16 => Value::from(array.as_primitive::<Float16Type>().value(row).to_f64()),
        DataType::Float32 => Value::from(array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => Value::from(array.as_primitive::<Float64Type>().value(row)),
        DataType::Timestamp(unit, Some(time_zone)) => {
            Value::from(zoned_timestamp_text(array, row, *unit, time_zone)?)
        }
        DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _)
        | DataType::Date32
        | DataType::Date64
        | DataType::Time32(_)
        | DataType::Time64(_)
        | DataType::Duration(_)
        | DataType::Timestamp(_, None) => Value::from(arrow_display(array, row)?),
        DataType::Dictionary(key, _) => match key.as_ref() {
            DataType::Int8 => dictionary_value::<Int8Type>(array, row)?,
            DataType::Int16 => dictionary_value::<Int16Type>(array, row)?,
            DataType::Int32 => dictionary_value::<Int32Type>(array, row)?,
            DataType::Int64 => dictionary_value::<Int64Type>(array, row)?,
            DataType::UInt8 => dictionary_value::<UInt8Type>(array, row)?,
            DataType::UInt16 => dictionary_value::<UInt16Type>(array, row)?,
            DataType::UInt32 => dictionary_value::<UInt32Type>(array, row)?,
            DataType::UInt64 => dictionary_value::<UInt64Type>(array, row)?,
            _ => {
                return Err(CellError::Unsupported(unsupported_type_message(
                    array.data_type(),
                )));
            }
        },
        DataType::List(_) => sequence(array.as_list::<i32>().value(row).as_ref())?,
        DataType::LargeList(_) => sequence(array.as_list::<i64>().value(row).as_ref())?,
        DataType::FixedSizeList(_, _) => sequence(array.as_fixed_size_list().value(row).as_ref())?,
        DataType::Struct(fields) => {
            let structure = array.as_struct();
            let mut map = BTreeMap::new();
            for (field, column) in fields.iter().zip(structure.columns()) {
                map.insert(field.name().clone(), cell_value(column.as_ref(), row)?);
            }
            Value::from(map)
        }
        other => return Err(CellError::Unsupported(unsupported_type_message(other))),
    };
    Ok(value)
}

fn sequence(items: &dyn Array) -> Result<Value, CellError> {
    (0..items.len())
        .map(|index| cell_value(items, index))
        .collect::<Result<Vec<Value>, CellError>>()
        .map(Value::from)
}

/// The cell as text: strings as they are, everything else as a template shows it. Used for ids.
/// A null cell is the empty string (callers check for nulls first).
pub fn display_cell(array: &dyn Array, row: usize) -> Result<Cow<'_, str>, CellError> {
    if let Some(text) = text_cell(array, row) {
        return Ok(Cow::Borrowed(text));
    }
    let value = cell_value(array, row)?;
    Ok(Cow::Owned(if value.is_none() {
        String::new()
    } else {
        value.to_string()
    }))
}

/// The cell as text in a text-only column; an error (never an empty string) when it cannot be.
pub(super) fn cell_text(column: &dyn Array, row: usize) -> Result<String, String> {
    match column.data_type() {
        DataType::Timestamp(unit, Some(time_zone)) => {
            zoned_timestamp_text(column, row, *unit, time_zone).map_err(|error| error.to_string())
        }
        _ => arrow_cast::display::ArrayFormatter::try_new(
            column,
            &arrow_cast::display::FormatOptions::default(),
        )
        .and_then(|formatter| formatter.value(row).try_to_string())
        .map_err(|error| error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{
        ArrayRef, BinaryArray, Date32Array, Decimal128Array, Float64Array, Int64Array, StringArray,
        TimestampMicrosecondArray, TimestampSecondArray,
    };
    use std::sync::Arc;

    #[test]
    fn cells_keep_their_kind() {
        let text: ArrayRef = Arc::new(StringArray::from(vec![Some("好"), None]));
        assert_eq!(cell_value(&text, 0).unwrap().as_str(), Some("好"));
        assert!(cell_value(&text, 1).unwrap().is_none());
        let numbers: ArrayRef = Arc::new(Int64Array::from(vec![42]));
        assert_eq!(cell_value(&numbers, 0).unwrap().to_string(), "42");
        assert_eq!(display_cell(&numbers, 0).unwrap(), "42");
        let floats = Float64Array::from(vec![f64::NAN, 1.5]);
        assert_eq!(cell_value(&floats, 1).unwrap().to_string(), "1.5");
    }

    #[test]
    fn zoned_timestamps_are_rfc3339_with_their_offset() {
        // 2024-05-01T10:00:00.123456Z
        let micros = 1_714_557_600_123_456_i64;
        let utc = TimestampMicrosecondArray::from(vec![micros]).with_timezone("UTC");
        assert_eq!(
            display_cell(&utc, 0).unwrap(),
            "2024-05-01T10:00:00.123456+00:00"
        );
        let tokyo = TimestampSecondArray::from(vec![micros / 1_000_000]).with_timezone("+09:00");
        assert_eq!(
            display_cell(&tokyo, 0).unwrap(),
            "2024-05-01T19:00:00+09:00"
        );
        let paris =
            TimestampSecondArray::from(vec![micros / 1_000_000]).with_timezone("Europe/Paris");
        assert_eq!(
            display_cell(&paris, 0).unwrap(),
            "2024-05-01T10:00:00+00:00"
        );
        let naive = TimestampSecondArray::from(vec![micros / 1_000_000]);
        assert_eq!(display_cell(&naive, 0).unwrap(), "2024-05-01T10:00:00");
        let out_of_range = TimestampSecondArray::from(vec![i64::MAX]).with_timezone("UTC");
        assert!(matches!(
            display_cell(&out_of_range, 0),
            Err(CellError::Invalid(_))
        ));
    }

    #[test]
    fn dates_decimals_lists_and_dictionaries_show_their_values() {
        let date = Date32Array::from(vec![19_844]);
        assert_eq!(display_cell(&date, 0).unwrap(), "2024-05-01");
        let decimal = Decimal128Array::from(vec![123_456_789_012_345_678_901_234_567_i128])
            .with_precision_and_scale(38, 2)
            .unwrap();
        assert_eq!(
            display_cell(&decimal, 0).unwrap(),
            "1234567890123456789012345.67"
        );
        let mut list = ListBuilder::new(StringBuilder::new());
        list.values().append_value("a");
        list.values().append_value("b");
        list.append(true);
        let list = list.finish();
        assert_eq!(cell_value(&list, 0).unwrap().len(), Some(2));
        let dictionary: arrow_array::DictionaryArray<Int32Type> =
            vec!["x", "y", "x"].into_iter().collect();
        assert_eq!(display_cell(&dictionary, 2).unwrap(), "x");
        assert!(check_template_type(dictionary.data_type()).is_ok());
    }

    #[test]
    fn binary_cells_are_refused_not_shown_as_nothing() {
        let binary = BinaryArray::from(vec![&b"abc"[..]]);
        let message = check_template_type(binary.data_type()).unwrap_err();
        assert!(message.contains("Binary"), "{message}");
        assert!(matches!(
            cell_value(&binary, 0),
            Err(CellError::Unsupported(_))
        ));
        let nested = DataType::List(Arc::new(arrow_schema::Field::new(
            "item",
            DataType::Binary,
            true,
        )));
        assert!(check_template_type(&nested).is_err());
    }
}
