//! Output columns: the result columns dashbatch adds to every row (the one list of their names),
//! and declared output fields: the JSON schema they give the model, and the parsing of a JSON
//! answer into typed values (or a reason why the answer does not fit).

use serde_json::{Map, Value, json};

use crate::job::{OutputFieldSpec, OutputFieldType};

/// A column the join adds after the kept input columns. [`ResultColumn::ALL`] is their order
/// (the declared fields follow); `embedding` is written by embeddings jobs only, which have no
/// declared fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultColumn {
    CustomId,
    Status,
    Content,
    FinishReason,
    PromptTokens,
    CompletionTokens,
    ReasoningTokens,
    TotalTokens,
    Cost,
    ErrorCode,
    ErrorMessage,
    BatchId,
    RequestId,
    AnswerSource,
    Embedding,
}

impl ResultColumn {
    pub const ALL: [ResultColumn; 15] = [
        ResultColumn::CustomId,
        ResultColumn::Status,
        ResultColumn::Content,
        ResultColumn::FinishReason,
        ResultColumn::PromptTokens,
        ResultColumn::CompletionTokens,
        ResultColumn::ReasoningTokens,
        ResultColumn::TotalTokens,
        ResultColumn::Cost,
        ResultColumn::ErrorCode,
        ResultColumn::ErrorMessage,
        ResultColumn::BatchId,
        ResultColumn::RequestId,
        ResultColumn::AnswerSource,
        ResultColumn::Embedding,
    ];

    /// The column's name before `[output] result_prefix`.
    pub const fn name(self) -> &'static str {
        match self {
            ResultColumn::CustomId => "custom_id",
            ResultColumn::Status => "status",
            ResultColumn::Content => "content",
            ResultColumn::FinishReason => "finish_reason",
            ResultColumn::PromptTokens => "prompt_tokens",
            ResultColumn::CompletionTokens => "completion_tokens",
            ResultColumn::ReasoningTokens => "reasoning_tokens",
            ResultColumn::TotalTokens => "total_tokens",
            ResultColumn::Cost => "cost",
            ResultColumn::ErrorCode => "error_code",
            ResultColumn::ErrorMessage => "error_message",
            ResultColumn::BatchId => "batch_id",
            ResultColumn::RequestId => "request_id",
            ResultColumn::AnswerSource => "answer_source",
            ResultColumn::Embedding => "embedding",
        }
    }
}

/// The names of [`ResultColumn::ALL`], in order.
pub const RESULT_COLUMN_NAMES: [&str; ResultColumn::ALL.len()] = {
    let mut names = [""; ResultColumn::ALL.len()];
    let mut index = 0;
    while index < names.len() {
        names[index] = ResultColumn::ALL[index].name();
        index += 1;
    }
    names
};

/// The JSON schema of an answer object holding the declared fields.
pub fn answer_json_schema(fields: &[OutputFieldSpec]) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in fields {
        let mut property = match field.field_type {
            OutputFieldType::String => json!({"type": "string"}),
            OutputFieldType::Integer => json!({"type": "integer"}),
            OutputFieldType::Float => json!({"type": "number"}),
            OutputFieldType::Boolean => json!({"type": "boolean"}),
            OutputFieldType::Label => json!({
                "type": "string",
                "enum": field.labels.clone().unwrap_or_default(),
            }),
        };
        if let Some(description) = &field.description {
            property["description"] = Value::from(description.clone());
        }
        properties.insert(field.name.clone(), property);
        if field.required {
            required.push(Value::from(field.name.clone()));
        }
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// The instruction appended to the system prompt where the provider cannot take the schema in
/// `response_format`. It contains the word JSON, which DashScope's `json_object` mode requires.
pub fn schema_instruction(fields: &[OutputFieldSpec]) -> String {
    format!(
        "{SCHEMA_INSTRUCTION_LEAD}\n{}",
        serde_json::to_string(&answer_json_schema(fields)).expect("schema serialises")
    )
}

/// The words before the schema in [`schema_instruction`]; the simulator finds the schema after
/// them, as a model reads it from the prompt.
pub const SCHEMA_INSTRUCTION_LEAD: &str =
    "Answer with a single JSON object that fits this JSON Schema, and nothing else:";

/// A typed field value parsed from an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Missing,
    Text(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
}

/// Parses `content` as a JSON object and checks each declared field. On success, one value per
/// field in declaration order; otherwise a sentence saying what does not fit.
pub fn parse_answer(fields: &[OutputFieldSpec], content: &str) -> Result<Vec<FieldValue>, String> {
    let trimmed = strip_code_fence(content.trim());
    if let Some(values) = crate::declared_field_reading::declared_values_if_all_fit(fields, trimmed)
    {
        return Ok(values);
    }
    let value: Value = serde_json::from_str(trimmed)
        .map_err(|error| format!("the answer is not valid JSON ({error})"))?;
    let Value::Object(object) = value else {
        return Err("the answer is JSON but not an object".to_owned());
    };
    let mut values = Vec::with_capacity(fields.len());
    for field in fields {
        let found = object.get(&field.name).filter(|value| !value.is_null());
        let Some(found) = found else {
            if field.required {
                return Err(format!("field `{}` is missing", field.name));
            }
            values.push(FieldValue::Missing);
            continue;
        };
        let parsed = match field.field_type {
            OutputFieldType::String => found.as_str().map(|text| FieldValue::Text(text.to_owned())),
            OutputFieldType::Integer => found
                .as_i64()
                .or_else(|| {
                    found
                        .as_f64()
                        .filter(|number| number.fract() == 0.0 && number.abs() < 9.0e15)
                        .map(|number| number as i64)
                })
                .map(FieldValue::Integer),
            OutputFieldType::Float => found.as_f64().map(FieldValue::Float),
            OutputFieldType::Boolean => found.as_bool().map(FieldValue::Boolean),
            OutputFieldType::Label => {
                let labels = field.labels.as_deref().unwrap_or_default();
                match found.as_str() {
                    Some(text) if labels.iter().any(|label| label == text) => {
                        Some(FieldValue::Text(text.to_owned()))
                    }
                    Some(text) => {
                        return Err(format!(
                            "field `{}` is `{text}`, not one of {}",
                            field.name,
                            labels
                                .iter()
                                .map(|label| format!("`{label}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    None => None,
                }
            }
        };
        match parsed {
            Some(value) => values.push(value),
            None => {
                return Err(format!(
                    "field `{}` should be {} but is {}",
                    field.name,
                    type_name(field.field_type),
                    found
                ));
            }
        }
    }
    Ok(values)
}

fn type_name(field_type: OutputFieldType) -> &'static str {
    match field_type {
        OutputFieldType::String | OutputFieldType::Label => "a string",
        OutputFieldType::Integer => "an integer",
        OutputFieldType::Float => "a number",
        OutputFieldType::Boolean => "true or false",
    }
}

/// Models sometimes wrap JSON in a Markdown code fence; accept that.
fn strip_code_fence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_column_names_are_unique_and_in_order() {
        let unique: std::collections::BTreeSet<&str> =
            RESULT_COLUMN_NAMES.iter().copied().collect();
        assert_eq!(unique.len(), ResultColumn::ALL.len());
        assert_eq!(RESULT_COLUMN_NAMES[0], "custom_id");
        assert_eq!(RESULT_COLUMN_NAMES[1], "status");
    }

    fn fields() -> Vec<OutputFieldSpec> {
        vec![
            OutputFieldSpec {
                name: "sentiment".into(),
                field_type: OutputFieldType::Label,
                labels: Some(vec!["positive".into(), "negative".into()]),
                description: None,
                required: true,
            },
            OutputFieldSpec {
                name: "confidence".into(),
                field_type: OutputFieldType::Float,
                labels: None,
                description: Some("0 to 1".into()),
                required: true,
            },
            OutputFieldSpec {
                name: "stars".into(),
                field_type: OutputFieldType::Integer,
                labels: None,
                description: None,
                required: false,
            },
        ]
    }

    #[test]
    fn schema_lists_fields_labels_and_required() {
        let schema = answer_json_schema(&fields());
        assert_eq!(schema["properties"]["sentiment"]["enum"][1], "negative");
        assert_eq!(schema["properties"]["confidence"]["type"], "number");
        assert_eq!(schema["required"], json!(["sentiment", "confidence"]));
    }

    #[test]
    fn fitting_answer_parses_into_typed_values() {
        let values = parse_answer(
            &fields(),
            "```json\n{\"sentiment\":\"positive\",\"confidence\":1,\"stars\":4.0}\n```",
        )
        .unwrap();
        assert_eq!(
            values,
            vec![
                FieldValue::Text("positive".into()),
                FieldValue::Float(1.0),
                FieldValue::Integer(4)
            ]
        );
    }

    #[test]
    fn answers_that_do_not_fit_say_why() {
        let fields = fields();
        assert!(
            parse_answer(&fields, "positive")
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(
            parse_answer(&fields, "[1]")
                .unwrap_err()
                .contains("not an object")
        );
        assert!(
            parse_answer(&fields, "{\"sentiment\":\"meh\",\"confidence\":0.5}")
                .unwrap_err()
                .contains("not one of `positive`, `negative`")
        );
        assert!(
            parse_answer(&fields, "{\"sentiment\":\"positive\"}")
                .unwrap_err()
                .contains("`confidence` is missing")
        );
        assert!(
            parse_answer(
                &fields,
                "{\"sentiment\":\"positive\",\"confidence\":\"high\"}"
            )
            .unwrap_err()
            .contains("should be a number")
        );
        let optional_missing =
            parse_answer(&fields, "{\"sentiment\":\"negative\",\"confidence\":0.2}").unwrap();
        assert_eq!(optional_missing[2], FieldValue::Missing);
    }
}
