//! Canonical JSON: a value written with the keys of every object in byte order and no spaces, so
//! that two bodies that mean the same request are the same bytes whatever order their keys were
//! built or received in. The answer store keys requests by a hash of these bytes.

use serde_json::Value;

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
fn write_canonical_entries<'a>(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
