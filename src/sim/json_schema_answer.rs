//! Builds a JSON value that fits a JSON Schema, for answers to
//! `response_format: {"type": "json_schema", ...}`.
//!
//! Supported: `type` (one or a list), `properties`/`required`, `items`/`prefixItems`,
//! `minItems`/`maxItems`/`uniqueItems`, `enum`, `const`, `anyOf`/`oneOf`/`allOf`, local `$ref`
//! (`#/$defs/...`, `#/definitions/...`), `minimum`/`maximum` and their exclusive forms,
//! `multipleOf` for integers, `minLength`/`maxLength`, and the common string `format`s. `pattern`
//! is not honoured. An `enum` value is picked from a hash of the user's message and the field's
//! path, so the same text gets the same label whatever else the request says.

use serde_json::{Map, Number, Value};

use super::ids::{DeterministicRandom, digest_of_parts, number_of_parts, uuid_text};

/// Schemas nest deeper than this only by recursion; the answer stops there with `null`.
const MAX_SCHEMA_DEPTH: usize = 24;

pub(crate) struct SchemaAnswerer<'schema> {
    root: &'schema Value,
    random: DeterministicRandom,
    words: Vec<String>,
    enum_salt: u64,
}

impl<'schema> SchemaAnswerer<'schema> {
    /// `words` is the vocabulary strings are made of; `enum_salt` is a hash of the user message.
    pub(crate) fn new(
        root: &'schema Value,
        random: DeterministicRandom,
        words: Vec<String>,
        enum_salt: u64,
    ) -> SchemaAnswerer<'schema> {
        let words = if words.is_empty() {
            vec!["value".to_owned()]
        } else {
            words
        };
        SchemaAnswerer {
            root,
            random,
            words,
            enum_salt,
        }
    }

    pub(crate) fn answer(&mut self) -> Value {
        self.value_for(self.root, "$", 0)
    }

    fn value_for(&mut self, schema: &'schema Value, path: &str, depth: usize) -> Value {
        if depth > MAX_SCHEMA_DEPTH {
            return Value::Null;
        }
        let Some(object) = schema.as_object() else {
            return match schema {
                Value::Bool(false) => Value::Null,
                _ => Value::String(self.phrase(1, 3)),
            };
        };
        if let Some(reference) = object.get("$ref").and_then(Value::as_str)
            && let Some(target) = self.resolve(reference)
        {
            return self.value_for(target, path, depth + 1);
        }
        if let Some(constant) = object.get("const") {
            return constant.clone();
        }
        if let Some(Value::Array(choices)) = object.get("enum")
            && !choices.is_empty()
        {
            let index = number_of_parts(&[&self.enum_salt.to_le_bytes(), path.as_bytes()])
                % choices.len() as u64;
            return choices[index as usize].clone();
        }
        for keyword in ["anyOf", "oneOf"] {
            if let Some(Value::Array(alternatives)) = object.get(keyword)
                && let Some(chosen) = alternatives
                    .iter()
                    .find(|alternative| !is_null_schema(alternative))
                    .or(alternatives.first())
            {
                return self.value_for(chosen, path, depth + 1);
            }
        }
        if let Some(Value::Array(parts)) = object.get("allOf") {
            let mut merged = Map::new();
            for part in parts {
                match self.value_for(part, path, depth + 1) {
                    Value::Object(fields) => merged.extend(fields),
                    other => return other,
                }
            }
            if let Value::Object(own_fields) = self.object_value(object, path, depth) {
                merged.extend(own_fields);
            }
            return Value::Object(merged);
        }
        match schema_type(object) {
            "object" => self.object_value(object, path, depth),
            "array" => self.array_value(object, path, depth),
            "integer" => self.integer_value(object),
            "number" => self.number_value(object),
            "boolean" => Value::Bool(self.random.coin()),
            "null" => Value::Null,
            _ => Value::String(self.string_value(object)),
        }
    }

    fn resolve(&self, reference: &str) -> Option<&'schema Value> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            Some(self.root)
        } else {
            self.root.pointer(pointer)
        }
    }

    fn object_value(
        &mut self,
        object: &'schema Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Value {
        let mut fields = Map::new();
        if let Some(Value::Object(properties)) = object.get("properties") {
            for (name, property_schema) in properties {
                let value = self.value_for(property_schema, &format!("{path}.{name}"), depth + 1);
                fields.insert(name.clone(), value);
            }
        }
        if let Some(Value::Array(required)) = object.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !fields.contains_key(name) {
                    let value = Value::String(self.phrase(1, 3));
                    fields.insert(name.to_owned(), value);
                }
            }
        }
        Value::Object(fields)
    }

    fn array_value(
        &mut self,
        object: &'schema Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Value {
        let item_path = format!("{path}[]");
        if let Some(Value::Array(tuple)) = object.get("prefixItems").or(object.get("items")) {
            return Value::Array(
                tuple
                    .iter()
                    .enumerate()
                    .map(|(position, item)| {
                        self.value_for(item, &format!("{path}[{position}]"), depth + 1)
                    })
                    .collect(),
            );
        }
        let item_schema = object.get("items");
        let minimum_items = unsigned_keyword(object, "minItems").unwrap_or(0);
        let maximum_items = unsigned_keyword(object, "maxItems")
            .unwrap_or(minimum_items.max(3))
            .max(minimum_items);
        let low = minimum_items.max(1).min(maximum_items);
        let high = maximum_items.min(low.max(3));
        let wanted = self.random.between(low as i64, high as i64) as u64;
        let unique = object.get("uniqueItems") == Some(&Value::Bool(true));
        let mut items: Vec<Value> = Vec::new();
        let mut attempts = 0;
        while (items.len() as u64) < wanted && attempts < wanted * 8 + 8 {
            attempts += 1;
            let salt_path = format!("{item_path}#{attempts}");
            let item = match item_schema {
                Some(schema) => {
                    // Vary enum picks between items of one array.
                    let path_for_item = if unique {
                        salt_path.as_str()
                    } else {
                        item_path.as_str()
                    };
                    self.value_for(schema, path_for_item, depth + 1)
                }
                None => Value::String(self.phrase(1, 2)),
            };
            if unique && items.contains(&item) {
                continue;
            }
            items.push(item);
        }
        Value::Array(items)
    }

    fn integer_value(&mut self, object: &Map<String, Value>) -> Value {
        let (low, high) = numeric_bounds(object);
        let mut low_whole = low.map(|(value, exclusive)| {
            let whole = value.ceil() as i64;
            if exclusive && whole as f64 == value {
                whole + 1
            } else {
                whole
            }
        });
        let mut high_whole = high.map(|(value, exclusive)| {
            let whole = value.floor() as i64;
            if exclusive && whole as f64 == value {
                whole - 1
            } else {
                whole
            }
        });
        match (low_whole, high_whole) {
            (None, None) => {
                low_whole = Some(0);
                high_whole = Some(100);
            }
            (Some(low), None) => high_whole = Some(low.saturating_add(100)),
            (None, Some(high)) => low_whole = Some(high.saturating_sub(100)),
            (Some(_), Some(_)) => {}
        }
        let (low, high) = (low_whole.unwrap_or(0), high_whole.unwrap_or(0));
        let step = object
            .get("multipleOf")
            .and_then(Value::as_i64)
            .filter(|step| *step > 0)
            .unwrap_or(1);
        let first_multiple =
            low.div_euclid(step) * step + if low.rem_euclid(step) == 0 { 0 } else { step };
        if first_multiple > high {
            return Value::from(first_multiple);
        }
        let choices = (high - first_multiple) / step;
        Value::from(first_multiple + self.random.between(0, choices) * step)
    }

    fn number_value(&mut self, object: &Map<String, Value>) -> Value {
        let (low, high) = numeric_bounds(object);
        let (low_value, high_value) = match (low, high) {
            (None, None) => (0.0, 100.0),
            (Some((low, _)), None) => (low, low + 100.0),
            (None, Some((high, _))) => (high - 100.0, high),
            (Some((low, _)), Some((high, _))) => (low, high),
        };
        let raw = low_value + (0.05 + 0.9 * self.random.fraction()) * (high_value - low_value);
        let rounded = (raw * 100.0).round() / 100.0;
        let fits = |value: f64| {
            low.is_none_or(|(bound, exclusive)| {
                if exclusive {
                    value > bound
                } else {
                    value >= bound
                }
            }) && high.is_none_or(|(bound, exclusive)| {
                if exclusive {
                    value < bound
                } else {
                    value <= bound
                }
            })
        };
        let value = if fits(rounded) { rounded } else { raw };
        Number::from_f64(value).map_or(Value::Null, Value::Number)
    }

    fn string_value(&mut self, object: &Map<String, Value>) -> String {
        let format = object.get("format").and_then(Value::as_str).unwrap_or("");
        let month = self.random.between(1, 12);
        let day = self.random.between(1, 28);
        let mut text = match format {
            "date" => format!("2025-{month:02}-{day:02}"),
            "date-time" => format!(
                "2025-{month:02}-{day:02}T{:02}:{:02}:00Z",
                self.random.between(0, 23),
                self.random.between(0, 59)
            ),
            "time" => format!(
                "{:02}:{:02}:00",
                self.random.between(0, 23),
                self.random.between(0, 59)
            ),
            "email" => format!("{}@example.com", self.ascii_word()),
            "uri" | "url" => format!("https://example.com/{}", self.ascii_word()),
            "uuid" => {
                let digest = digest_of_parts(&[&self.random.next_number().to_le_bytes()]);
                uuid_text(&digest)
            }
            _ => self.phrase(1, 5),
        };
        let minimum_length = unsigned_keyword(object, "minLength").unwrap_or(0) as usize;
        while text.chars().count() < minimum_length {
            let word = self.random.pick(&self.words).clone();
            text.push(' ');
            text.push_str(&word);
        }
        if let Some(maximum_length) = unsigned_keyword(object, "maxLength") {
            text = text.chars().take(maximum_length as usize).collect();
        }
        text
    }

    fn phrase(&mut self, fewest_words: i64, most_words: i64) -> String {
        let count = self.random.between(fewest_words, most_words);
        (0..count)
            .map(|_| self.random.pick(&self.words).clone())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn ascii_word(&mut self) -> String {
        let word: String = self
            .random
            .pick(&self.words)
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        if word.is_empty() {
            "user".to_owned()
        } else {
            word
        }
    }
}

fn is_null_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

/// The type a schema asks for: the first non-null `type`, or a guess from its keywords.
fn schema_type(object: &Map<String, Value>) -> &str {
    match object.get("type") {
        Some(Value::String(kind)) => kind,
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|kind| *kind != "null")
            .unwrap_or("null"),
        _ if object.contains_key("properties") || object.contains_key("required") => "object",
        _ if object.contains_key("items") || object.contains_key("prefixItems") => "array",
        _ if object.contains_key("minimum") || object.contains_key("maximum") => "number",
        _ => "string",
    }
}

fn unsigned_keyword(object: &Map<String, Value>, keyword: &str) -> Option<u64> {
    object.get(keyword).and_then(Value::as_u64)
}

/// `(bound, exclusive)` for the lower and upper limits, from draft-6+ numeric `exclusive*`
/// keywords or draft-4 boolean ones.
type NumericBound = Option<(f64, bool)>;

fn numeric_bounds(object: &Map<String, Value>) -> (NumericBound, NumericBound) {
    let bound = |inclusive_keyword: &str, exclusive_keyword: &str| -> NumericBound {
        match object.get(exclusive_keyword) {
            Some(Value::Number(number)) => number.as_f64().map(|value| (value, true)),
            Some(Value::Bool(true)) => object
                .get(inclusive_keyword)
                .and_then(Value::as_f64)
                .map(|value| (value, true)),
            _ => object
                .get(inclusive_keyword)
                .and_then(Value::as_f64)
                .map(|value| (value, false)),
        }
    };
    (
        bound("minimum", "exclusiveMinimum"),
        bound("maximum", "exclusiveMaximum"),
    )
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{answer_value, content_of};
    use super::*;
    use serde_json::json;

    /// A small validator for the keywords the answerer supports.
    fn fits_schema(value: &Value, schema: &Value, root: &Value) -> Result<(), String> {
        let Some(object) = schema.as_object() else {
            return Ok(());
        };
        if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
            let target = root
                .pointer(reference.trim_start_matches('#'))
                .ok_or("dangling $ref")?;
            return fits_schema(value, target, root);
        }
        if let Some(constant) = object.get("const")
            && constant != value
        {
            return Err(format!("{value} is not the const {constant}"));
        }
        if let Some(Value::Array(choices)) = object.get("enum")
            && !choices.contains(value)
        {
            return Err(format!("{value} is not one of {choices:?}"));
        }
        for keyword in ["anyOf", "oneOf"] {
            if let Some(Value::Array(alternatives)) = object.get(keyword)
                && !alternatives
                    .iter()
                    .any(|alternative| fits_schema(value, alternative, root).is_ok())
            {
                return Err(format!("{value} fits none of {keyword}"));
            }
        }
        if let Some(Value::Array(parts)) = object.get("allOf") {
            for part in parts {
                fits_schema(value, part, root)?;
            }
        }
        let kinds: Vec<&str> = match object.get("type") {
            Some(Value::String(kind)) => vec![kind.as_str()],
            Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !kinds.is_empty() {
            let matches = kinds.iter().any(|kind| match *kind {
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "boolean" => value.is_boolean(),
                "null" => value.is_null(),
                _ => true,
            });
            if !matches {
                return Err(format!("{value} is not of type {kinds:?}"));
            }
        }
        if let Value::Object(fields) = value {
            if let Some(Value::Array(required)) = object.get("required") {
                for name in required.iter().filter_map(Value::as_str) {
                    if !fields.contains_key(name) {
                        return Err(format!("missing required `{name}`"));
                    }
                }
            }
            if let Some(Value::Object(properties)) = object.get("properties") {
                for (name, field) in fields {
                    match properties.get(name) {
                        Some(property_schema) => fits_schema(field, property_schema, root)?,
                        None if object.get("additionalProperties") == Some(&Value::Bool(false)) => {
                            return Err(format!("unexpected property `{name}`"));
                        }
                        None => {}
                    }
                }
            }
        }
        if let Value::Array(items) = value {
            if let Some(minimum) = object.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < minimum
            {
                return Err("too few items".to_owned());
            }
            if let Some(maximum) = object.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > maximum
            {
                return Err("too many items".to_owned());
            }
            if let Some(item_schema) = object.get("items").filter(|items| items.is_object()) {
                for item in items {
                    fits_schema(item, item_schema, root)?;
                }
            }
            if object.get("uniqueItems") == Some(&Value::Bool(true)) {
                for (position, item) in items.iter().enumerate() {
                    if items[..position].contains(item) {
                        return Err("duplicate items".to_owned());
                    }
                }
            }
        }
        if let Value::String(text) = value {
            let length = text.chars().count() as u64;
            if object
                .get("minLength")
                .and_then(Value::as_u64)
                .is_some_and(|minimum| length < minimum)
                || object
                    .get("maxLength")
                    .and_then(Value::as_u64)
                    .is_some_and(|maximum| length > maximum)
            {
                return Err(format!("{text:?} has the wrong length"));
            }
        }
        if let Some(number) = value.as_f64() {
            let (low, high) = numeric_bounds(object);
            if let Some((bound, exclusive)) = low
                && (number < bound || (exclusive && number == bound))
            {
                return Err(format!("{number} is below {bound}"));
            }
            if let Some((bound, exclusive)) = high
                && (number > bound || (exclusive && number == bound))
            {
                return Err(format!("{number} is above {bound}"));
            }
            if let Some(step) = object.get("multipleOf").and_then(Value::as_i64)
                && let Some(whole) = value.as_i64()
                && whole % step != 0
            {
                return Err(format!("{whole} is not a multiple of {step}"));
            }
        }
        Ok(())
    }

    fn answer_for(schema: &Value, seed: u64) -> Value {
        let random = DeterministicRandom::from_parts(&[&seed.to_le_bytes()]);
        let words = vec!["alpha".to_owned(), "beta".to_owned(), "gamma".to_owned()];
        SchemaAnswerer::new(schema, random, words, seed).answer()
    }

    #[test]
    fn answers_fit_a_rich_schema_for_many_seeds() {
        let schema = json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["label", "score", "tags", "confidence", "valid", "note", "when", "address"],
            "properties": {
                "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
                "score": {"type": "integer", "minimum": 1, "maximum": 5},
                "even": {"type": "integer", "minimum": 3, "exclusiveMaximum": 20, "multipleOf": 2},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b", "c", "d"]}, "minItems": 2, "maxItems": 4, "uniqueItems": true},
                "confidence": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "valid": {"type": "boolean"},
                "note": {"type": ["string", "null"], "minLength": 12, "maxLength": 20},
                "when": {"type": "string", "format": "date"},
                "address": {"$ref": "#/$defs/address"},
                "choice": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": -5, "maximum": -1}]},
                "fixed": {"const": "v1"}
            },
            "$defs": {
                "address": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "lines": {"type": "array", "items": {"type": "string"}}},
                    "required": ["city", "lines"]
                }
            }
        });
        for seed in 0..200 {
            let value = answer_for(&schema, seed);
            fits_schema(&value, &schema, &schema)
                .unwrap_or_else(|error| panic!("seed {seed}: {error}: {value}"));
        }
    }

    #[test]
    fn enum_picks_follow_the_salt_and_vary_across_salts() {
        let schema = json!({"type": "string", "enum": ["a", "b", "c", "d", "e"]});
        assert_eq!(answer_for(&schema, 7), answer_for(&schema, 7));
        let distinct: std::collections::BTreeSet<String> = (0..50)
            .map(|seed| answer_for(&schema, seed).to_string())
            .collect();
        assert!(distinct.len() >= 3);
    }

    #[test]
    fn recursive_schemas_terminate() {
        let schema = json!({
            "$ref": "#/$defs/node",
            "$defs": {"node": {"type": "object", "required": ["child"], "properties": {"child": {"$ref": "#/$defs/node"}}}}
        });
        let value = answer_for(&schema, 1);
        assert!(value.is_object());
    }

    #[test]
    fn json_schema_answers_fit_their_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
                "stars": {"type": "integer", "minimum": 1, "maximum": 5},
                "topics": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                "spam": {"type": "boolean"},
                "score": {"type": "number", "minimum": 0, "maximum": 1}
            },
            "required": ["sentiment", "stars", "topics", "spam", "score"],
            "additionalProperties": false
        });
        let mut sentiments = std::collections::BTreeSet::new();
        for review in [
            "Great phone, fast delivery",
            "Broke after a week",
            "It is a phone",
            "Love the colour",
            "Too expensive",
            "Works as described",
        ] {
            let (body, _) = answer_value(
                "/v1/chat/completions",
                json!({"model": "qwen-flash", "messages": [{"role": "user", "content": review}],
                       "response_format": {"type": "json_schema", "json_schema": {"name": "review", "schema": schema}}}),
            );
            let parsed: Value = serde_json::from_str(content_of(&body)).unwrap();
            fits_schema(&parsed, &schema, &schema).unwrap();
            sentiments.insert(parsed["sentiment"].as_str().unwrap().to_owned());
            // The same review gets the same label even when other parameters change.
            let (again, _) = answer_value(
                "/v1/chat/completions",
                json!({"model": "qwen-flash", "temperature": 0.2, "messages": [{"role": "user", "content": review}],
                       "response_format": {"type": "json_schema", "json_schema": {"name": "review", "schema": schema}}}),
            );
            let reparsed: Value = serde_json::from_str(content_of(&again)).unwrap();
            assert_eq!(reparsed["sentiment"], parsed["sentiment"]);
        }
        assert!(sentiments.len() >= 2);
    }
}
