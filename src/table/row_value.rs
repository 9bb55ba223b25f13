//! One cell of an Arrow array as a template value (and as text for ids).

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use minijinja::Value;

/// Converts the cell at `row` of `array` into a minijinja value: text stays text, numbers stay
/// numbers, nulls become `none`, and anything else is rendered the way Arrow displays it.
pub fn arrow_value_to_template_value(array: &ArrayRef, row: usize) -> Value {
    if array.is_null(row) {
        return Value::from(());
    }
    match array.data_type() {
        DataType::Utf8 => Value::from(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Value::from(array.as_string::<i64>().value(row)),
        DataType::Utf8View => Value::from(array.as_string_view().value(row)),
        DataType::Boolean => Value::from(array.as_boolean().value(row)),
        DataType::Int8 => Value::from(array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => Value::from(array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => Value::from(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => Value::from(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Value::from(array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => Value::from(array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => Value::from(array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => Value::from(array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float32 => Value::from(array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => Value::from(array.as_primitive::<Float64Type>().value(row)),
        _ => Value::from(display_cell(array, row)),
    }
}

/// The cell as text, the way Arrow displays it (used for ids and for types templates don't know).
pub fn display_cell(array: &ArrayRef, row: usize) -> String {
    match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(row).to_owned(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row).to_owned(),
        DataType::Utf8View => array.as_string_view().value(row).to_owned(),
        _ => arrow_cast::display::ArrayFormatter::try_new(
            array.as_ref(),
            &arrow_cast::display::FormatOptions::default(),
        )
        .map(|formatter| formatter.value(row).to_string())
        .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn cells_keep_their_kind() {
        let text: ArrayRef = Arc::new(StringArray::from(vec![Some("好"), None]));
        assert_eq!(arrow_value_to_template_value(&text, 0).as_str(), Some("好"));
        assert!(arrow_value_to_template_value(&text, 1).is_none());
        let numbers: ArrayRef = Arc::new(Int64Array::from(vec![42]));
        assert_eq!(arrow_value_to_template_value(&numbers, 0).to_string(), "42");
        assert_eq!(display_cell(&numbers, 0), "42");
    }
}
