//! Reading an answer's declared fields straight from its JSON text, without building a JSON
//! tree: the common case of the join, where every answer fits. Any answer this reading does not
//! take whole (not an object, a field missing or of another type, a key written with escapes,
//! invalid JSON) gives `None`, and `output_fields::parse_answer` reads it in full, which says
//! what does not fit. Where it gives values, they are the ones the full reading gives.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::job::{OutputFieldSpec, OutputFieldType};
use crate::output_fields::FieldValue;

/// The declared fields' values of `answer` (already trimmed of white space and code fences),
/// in declaration order, when the answer is a JSON object and every field fits; else `None`.
pub(crate) fn declared_values_if_all_fit(
    fields: &[OutputFieldSpec],
    answer: &str,
) -> Option<Vec<FieldValue>> {
    let mut deserializer = serde_json::Deserializer::from_str(answer);
    let found = DeclaredFieldsSeed { fields }
        .deserialize(&mut deserializer)
        .ok()?;
    deserializer.end().ok()?;
    let mut values = Vec::with_capacity(fields.len());
    for (field, value) in fields.iter().zip(found) {
        let value = match value {
            None | Some(JsonScalar::Null) => {
                if field.required {
                    return None;
                }
                values.push(FieldValue::Missing);
                continue;
            }
            Some(value) => value,
        };
        values.push(fitted_value(field, value)?);
    }
    Some(values)
}

/// `value` as `field`'s type, as the full reading converts it (`serde_json::Value`'s `as_i64`,
/// `as_f64`, `as_str`, `as_bool`); `None` where it does not fit.
fn fitted_value(field: &OutputFieldSpec, value: JsonScalar<'_>) -> Option<FieldValue> {
    match (field.field_type, value) {
        (OutputFieldType::String, JsonScalar::Text(text)) => {
            Some(FieldValue::Text(text.into_owned()))
        }
        (OutputFieldType::Label, JsonScalar::Text(text)) => {
            let labels = field.labels.as_deref().unwrap_or_default();
            labels
                .iter()
                .any(|label| *label == text)
                .then(|| FieldValue::Text(text.into_owned()))
        }
        (OutputFieldType::Integer, JsonScalar::Signed(number)) => Some(FieldValue::Integer(number)),
        (OutputFieldType::Integer, JsonScalar::Unsigned(number)) => {
            i64::try_from(number).ok().map(FieldValue::Integer)
        }
        (OutputFieldType::Integer, JsonScalar::Float(number)) => (number.fract() == 0.0
            && number.abs() < 9.0e15)
            .then_some(FieldValue::Integer(number as i64)),
        (OutputFieldType::Float, JsonScalar::Signed(number)) => {
            Some(FieldValue::Float(number as f64))
        }
        (OutputFieldType::Float, JsonScalar::Unsigned(number)) => {
            Some(FieldValue::Float(number as f64))
        }
        (OutputFieldType::Float, JsonScalar::Float(number)) => Some(FieldValue::Float(number)),
        (OutputFieldType::Boolean, JsonScalar::Bool(value)) => Some(FieldValue::Boolean(value)),
        _ => None,
    }
}

/// One JSON value as serde_json reads numbers into a `Value`: non-negative integers as
/// unsigned, negative ones as signed, the rest as floats. Arrays and objects are read through
/// (so invalid JSON inside them is still an error) and kept only as `Nested`.
enum JsonScalar<'a> {
    Null,
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Text(Cow<'a, str>),
    Nested,
}

impl<'de> serde::Deserialize<'de> for JsonScalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonScalarVisitor)
    }
}

struct JsonScalarVisitor;

impl<'de> Visitor<'de> for JsonScalarVisitor {
    type Value = JsonScalar<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(JsonScalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(JsonScalar::Null)
    }
    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(JsonScalar::Bool(value))
    }
    fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
        Ok(JsonScalar::Unsigned(value))
    }
    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        Ok(JsonScalar::Signed(value))
    }
    fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
        Ok(JsonScalar::Float(value))
    }
    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(JsonScalar::Text(Cow::Borrowed(value)))
    }
    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(JsonScalar::Text(Cow::Owned(value.to_owned())))
    }
    fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
        Ok(JsonScalar::Text(Cow::Owned(value)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Self::Value, A::Error> {
        while items.next_element::<IgnoredAny>()?.is_some() {}
        Ok(JsonScalar::Nested)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Self::Value, A::Error> {
        while entries.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(JsonScalar::Nested)
    }
}

/// Reads a JSON object, keeping the value of each declared field (the last one, when a key is
/// repeated, as a `Value` map keeps it) and reading through the rest.
struct DeclaredFieldsSeed<'f> {
    fields: &'f [OutputFieldSpec],
}

impl<'de> DeserializeSeed<'de> for DeclaredFieldsSeed<'_> {
    type Value = Vec<Option<JsonScalar<'de>>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DeclaredFieldsSeed<'_> {
    type Value = Vec<Option<JsonScalar<'de>>>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Self::Value, A::Error> {
        let mut found: Vec<Option<JsonScalar<'de>>> = std::iter::repeat_with(|| None)
            .take(self.fields.len())
            .collect();
        // A key written with escapes is not borrowed and fails here: the full reading takes it.
        while let Some(key) = entries.next_key::<&'de str>()? {
            match self.fields.iter().position(|field| field.name == key) {
                Some(index) => found[index] = Some(entries.next_value()?),
                None => {
                    entries.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output_fields::parse_answer;

    fn field(name: &str, field_type: OutputFieldType, required: bool) -> OutputFieldSpec {
        OutputFieldSpec {
            name: name.into(),
            field_type,
            labels: (field_type == OutputFieldType::Label)
                .then(|| vec!["positive".into(), "negative".into()]),
            description: None,
            required,
        }
    }

    fn every_type() -> Vec<OutputFieldSpec> {
        vec![
            field("label", OutputFieldType::Label, true),
            field("text", OutputFieldType::String, false),
            field("count", OutputFieldType::Integer, false),
            field("score", OutputFieldType::Float, false),
            field("flag", OutputFieldType::Boolean, false),
        ]
    }

    #[test]
    fn where_it_reads_an_answer_it_gives_what_the_full_reading_gives() {
        let fields = every_type();
        let answers = [
            r#"{"label":"positive"}"#,
            r#"{"label":"negative","text":"好评\n第二行 \"引号\"","count":3,"score":0.5,"flag":true}"#,
            r#"{"label":"positive","count":-7,"score":-2,"flag":false,"extra":{"a":[1,2,{"b":null}]}}"#,
            r#"{"label":"positive","count":4.0,"score":18446744073709551615}"#,
            r#"{"label":"positive","count":9223372036854775807,"score":1e300}"#,
            r#"{"label":"positive","text":null,"count":null}"#,
            r#"{"label":"negative","label":"positive"}"#,
            r#"  {"label" : "positive" , "flag" : false }  "#,
        ];
        for answer in answers {
            let fast = declared_values_if_all_fit(&fields, answer.trim());
            assert_eq!(
                fast,
                Some(parse_answer(&fields, answer).unwrap()),
                "{answer}"
            );
        }
    }

    #[test]
    fn answers_it_does_not_take_whole_are_left_to_the_full_reading() {
        let fields = every_type();
        let answers = [
            "positive",
            "[1]",
            "null",
            r#"{"label":"meh"}"#,
            r#"{"text":"no label"}"#,
            r#"{"label":null}"#,
            r#"{"label":"positive","count":4.5}"#,
            r#"{"label":"positive","count":9223372036854775808}"#,
            r#"{"label":"positive","count":1e16}"#,
            r#"{"label":"positive","score":"high"}"#,
            r#"{"label":"positive","flag":1}"#,
            r#"{"label":"positive","text":["a"]}"#,
            r#"{"lab\u0065l":"positive"}"#,
            r#"{"label":"positive"} trailing"#,
            r#"{"label":"positive","extra":[1,}"#,
            r#"{"label":"positive""#,
        ];
        for answer in answers {
            assert_eq!(
                declared_values_if_all_fit(&fields, answer),
                None,
                "{answer}"
            );
        }
        // The full reading still reads the escaped key.
        assert_eq!(
            parse_answer(&fields, r#"{"lab\u0065l":"positive"}"#).unwrap()[0],
            FieldValue::Text("positive".into())
        );
    }
}
