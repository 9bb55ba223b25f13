//! Canonical JSON: a value written with the keys of every object in byte order and no spaces, so
//! that two bodies that mean the same request are the same bytes whatever order their keys were
//! built or received in. The answer store keys requests by a hash of these bytes.

use serde_json::{Map, Value};

/// Appends `value` to `out` in canonical form.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => write_canonical_entries(map.iter(), out),
        Value::Array(items) => {
            out.push(b'[');
            for (position, item) in items.iter().enumerate() {
                if position > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("a JSON scalar serialises"),
    }
}

/// Appends an object made of `entries` (in any order, keys distinct) in canonical form.
pub fn write_canonical_entries<'a>(
    entries: impl Iterator<Item = (&'a String, &'a Value)>,
    out: &mut Vec<u8>,
) {
    let mut entries: Vec<(&String, &Value)> = entries.collect();
    entries.sort_unstable_by(|left, right| left.0.cmp(right.0));
    out.push(b'{');
    for (position, (key, value)) in entries.into_iter().enumerate() {
        if position > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key).expect("a JSON key serialises");
        out.push(b':');
        write_canonical(value, out);
    }
    out.push(b'}');
}

/// An object whose fixed entries are written in canonical form once, to which each use adds a
/// few entries of its own (a request body: the job's fixed parameters and the row's messages).
#[derive(Debug, Clone)]
pub struct CanonicalObject {
    /// (key, the value in canonical form), sorted by key.
    fixed: Vec<(String, Vec<u8>)>,
}

impl CanonicalObject {
    pub fn new(fixed: &Map<String, Value>) -> CanonicalObject {
        let mut entries: Vec<(String, Vec<u8>)> = fixed
            .iter()
            .map(|(key, value)| {
                let mut bytes = Vec::new();
                write_canonical(value, &mut bytes);
                (key.clone(), bytes)
            })
            .collect();
        entries.sort_unstable_by(|left, right| left.0.cmp(&right.0));
        CanonicalObject { fixed: entries }
    }

    /// The canonical bytes of the fixed entries together with `added` (whose keys the fixed
    /// entries do not have), exactly as [`write_canonical`] writes the whole object.
    pub fn with_entries(&self, added: &[(&str, &Value)], out: &mut Vec<u8>) {
        let added: Vec<(&str, Vec<u8>)> = added
            .iter()
            .map(|(key, value)| {
                let mut bytes = Vec::new();
                write_canonical(value, &mut bytes);
                (*key, bytes)
            })
            .collect();
        let mut entries: Vec<(&str, &[u8])> = self
            .fixed
            .iter()
            .map(|(key, bytes)| (key.as_str(), bytes.as_slice()))
            .chain(added.iter().map(|(key, bytes)| (*key, bytes.as_slice())))
            .collect();
        entries.sort_unstable_by(|left, right| left.0.cmp(right.0));
        out.push(b'{');
        for (position, (key, bytes)) in entries.into_iter().enumerate() {
            if position > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, key).expect("a JSON key serialises");
            out.push(b':');
            out.extend_from_slice(bytes);
        }
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canonical(value: &Value) -> String {
        let mut out = Vec::new();
        write_canonical(value, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn keys_are_sorted_at_every_depth_and_scalars_keep_their_text() {
        let value: Value = serde_json::from_str(
            r#"{"z": 1, "a": {"y": [true, null, {"c": "é\n", "b": 2.5}], "x": "\u4e2d"}, "m": -0}"#,
        )
        .unwrap();
        assert_eq!(
            canonical(&value),
            r#"{"a":{"x":"中","y":[true,null,{"b":2.5,"c":"é\n"}]},"m":-0.0,"z":1}"#
        );
    }

    #[test]
    fn fixed_entries_with_added_ones_equal_the_whole_object_written_at_once() {
        let fixed = json!({"model": "qwen-plus", "temperature": 0.2, "response_format": {"type": "json_object"}, "a": 1});
        let object = CanonicalObject::new(fixed.as_object().unwrap());
        for added_key in ["messages", "input", "aa", "zzz", "0"] {
            let added_value = json!([{"role": "user", "content": "你好"}]);
            let mut merged = fixed.as_object().unwrap().clone();
            merged.insert(added_key.to_owned(), added_value.clone());
            let mut out = Vec::new();
            object.with_entries(&[(added_key, &added_value)], &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                canonical(&Value::Object(merged)),
                "added key `{added_key}`"
            );
        }
        let mut out = Vec::new();
        object.with_entries(&[], &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), canonical(&fixed));
    }
}
