//! A request line and its body's digest, written from pieces made once per job: the job's
//! fixed body is escaped and sorted once, and each row adds only its custom_id and its messages
//! (or embeddings input), each escaped once. The line's bytes are those of serialising
//! `{"custom_id", "method", "url", "body": {fixed…, <per-row entry>}}`; the digest is the SHA-256
//! of the body in canonical JSON (keys in byte order at every depth), which keys the request
//! ([`crate::request_key`]).

use crate::json_string::push_json_string;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::canonical_json::write_canonical;
use crate::request_key::BodyDigest;

/// What every request line starts and ends with.
const LINE_START: &[u8] = b"{\"custom_id\":";
const LINE_END: &[u8] = b"}}";

/// Writes the request lines of one job.
#[derive(Debug, Clone)]
pub struct RequestLineWriter {
    /// `,"method":"POST","url":…,"body":{` the fixed entries, then `"<per-row key>":`.
    line_middle: Vec<u8>,
    /// The canonical body up to the per-row entry's value.
    canonical_before: Vec<u8>,
    /// The canonical body after the per-row entry's value.
    canonical_after: Vec<u8>,
    /// A start that every row's entry is expected to have (the messages up to the user's text,
    /// when the system prompt is the job's own), and the digest's state after the canonical
    /// body up to its end: a row whose entry starts so hashes only the rest.
    hashed_entry_start: Option<(Vec<u8>, Sha256)>,
}

impl RequestLineWriter {
    /// A writer for bodies made of `fixed` and one entry per row named `per_row_key` (which
    /// `fixed` does not have), sent to `endpoint`.
    pub fn new(fixed: &Map<String, Value>, endpoint: &str, per_row_key: &str) -> RequestLineWriter {
        debug_assert!(!fixed.contains_key(per_row_key));
        let entry = |key: &str, value: &Value, out: &mut Vec<u8>| {
            push_json_string(out, key);
            out.push(b':');
            write_canonical(value, out);
        };
        // serde_json's map keeps keys in byte order: the order serialising it writes them in.
        let mut line_middle = b",\"method\":\"POST\",\"url\":".to_vec();
        push_json_string(&mut line_middle, endpoint);
        line_middle.extend_from_slice(b",\"body\":{");
        for (key, value) in fixed {
            entry(key, value, &mut line_middle);
            line_middle.push(b',');
        }
        push_json_string(&mut line_middle, per_row_key);
        line_middle.push(b':');

        let mut canonical_before = vec![b'{'];
        let mut canonical_after = Vec::new();
        for (key, value) in fixed {
            if key.as_str() < per_row_key {
                entry(key, value, &mut canonical_before);
                canonical_before.push(b',');
            } else {
                canonical_after.push(b',');
                entry(key, value, &mut canonical_after);
            }
        }
        push_json_string(&mut canonical_before, per_row_key);
        canonical_before.push(b':');
        canonical_after.push(b'}');
        RequestLineWriter {
            line_middle,
            canonical_before,
            canonical_after,
            hashed_entry_start: None,
        }
    }

    /// Hashes `start` once, after the canonical body's fixed beginning, for the rows whose
    /// entry starts with it (others are hashed whole). Digests are the same either way.
    #[must_use]
    pub fn with_entry_start(mut self, start: Vec<u8>) -> RequestLineWriter {
        let mut hasher = Sha256::new();
        hasher.update(&self.canonical_before);
        hasher.update(&start);
        self.hashed_entry_start = Some((start, hasher));
        self
    }

    /// The line (without its newline) of the request `custom_id` whose per-row entry is
    /// `per_row_value` (JSON, keys in byte order), and its body's digest.
    pub fn write(&self, custom_id: &str, per_row_value: &[u8]) -> (Vec<u8>, BodyDigest) {
        if let Some((start, _)) = &self.hashed_entry_start
            && let Some(rest) = per_row_value.strip_prefix(start.as_slice())
        {
            return self.write_after_entry_start(custom_id, rest);
        }
        let mut hasher = Sha256::new();
        hasher.update(&self.canonical_before);
        hasher.update(per_row_value);
        hasher.update(&self.canonical_after);
        (
            self.line(custom_id, &[per_row_value]),
            hasher.finalize().into(),
        )
    }

    /// As [`Self::write`] for the entry made of the start given to [`Self::with_entry_start`]
    /// and `rest`, which the caller has not had to write out (nor this to compare) row by row.
    ///
    /// # Panics
    /// When no start was given.
    pub fn write_after_entry_start(&self, custom_id: &str, rest: &[u8]) -> (Vec<u8>, BodyDigest) {
        let (start, hashed) = self.entry_start();
        (
            self.line(custom_id, &[start, rest]),
            self.digest_after_entry_start(hashed, rest),
        )
    }

    /// The start given to [`Self::with_entry_start`], and the body's hash up to its end.
    ///
    /// # Panics
    /// When no start was given.
    fn entry_start(&self) -> (&[u8], &Sha256) {
        let (start, hashed) = self
            .hashed_entry_start
            .as_ref()
            .expect("an entry start given to the writer");
        (start, hashed)
    }

    /// The digest of the body whose entry is the start (hashed up to its end in `hashed`) and
    /// then `rest`.
    fn digest_after_entry_start(&self, hashed: &Sha256, rest: &[u8]) -> BodyDigest {
        let mut hasher = hashed.clone();
        hasher.update(rest);
        hasher.update(&self.canonical_after);
        hasher.finalize().into()
    }

    /// As [`Self::write_after_entry_start`] for the rest made of `text` as a JSON string, then
    /// `after_text`: the text is escaped straight into the line, and the digest hashes it there
    /// (no buffer of its own to fill and copy for every row).
    ///
    /// # Panics
    /// When no start was given.
    pub fn write_text_after_entry_start(
        &self,
        custom_id: &str,
        text: &str,
        after_text: &[u8],
    ) -> (Vec<u8>, BodyDigest) {
        let (start, hashed) = self.entry_start();
        // Room for the text's quotes and a few escapes (its line breaks, say): a line that
        // outgrows its room is copied whole into twice the room.
        let text_room = text.len() + text.len() / 8 + 16;
        let mut line = self.line_start(custom_id, start.len() + text_room + after_text.len());
        line.extend_from_slice(start);
        let rest_at = line.len();
        push_json_string(&mut line, text);
        line.extend_from_slice(after_text);
        let digest = self.digest_after_entry_start(hashed, &line[rest_at..]);
        line.extend_from_slice(LINE_END);
        (line, digest)
    }

    /// The line of `custom_id` up to its per-row entry, with room for `entry_bytes` more and
    /// the line's end.
    fn line_start(&self, custom_id: &str, entry_bytes: usize) -> Vec<u8> {
        // The whole line, so it is never grown (and copied) on the way: an id needing no escape
        // takes its length and two quotes.
        let mut line = Vec::with_capacity(
            LINE_START.len()
                + custom_id.len()
                + 2
                + self.line_middle.len()
                + entry_bytes
                + LINE_END.len(),
        );
        line.extend_from_slice(LINE_START);
        push_json_string(&mut line, custom_id);
        line.extend_from_slice(&self.line_middle);
        line
    }

    /// The line of `custom_id` whose per-row entry is `entry`'s pieces one after another.
    fn line(&self, custom_id: &str, entry: &[&[u8]]) -> Vec<u8> {
        let mut line = self.line_start(
            custom_id,
            entry.iter().map(|piece| piece.len()).sum::<usize>(),
        );
        for piece in entry {
            line.extend_from_slice(piece);
        }
        line.extend_from_slice(LINE_END);
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The line as serialising the whole request writes it, and the digest of the canonical body.
    fn serialised(
        fixed: &Value,
        endpoint: &str,
        id: &str,
        key: &str,
        value: &Value,
    ) -> (String, BodyDigest) {
        let mut body = fixed.as_object().unwrap().clone();
        let mut line = serde_json::to_string(&json!({"custom_id": id})).unwrap();
        line.pop();
        line.push_str(&format!(
            ",\"method\":\"POST\",\"url\":{},\"body\":{}",
            serde_json::to_string(endpoint).unwrap(),
            {
                let mut fixed_text = serde_json::to_string(&body).unwrap();
                fixed_text.pop();
                if !body.is_empty() {
                    fixed_text.push(',');
                }
                format!(
                    "{fixed_text}{}:{}}}",
                    serde_json::to_string(key).unwrap(),
                    serde_json::to_string(value).unwrap()
                )
            }
        ));
        line.push('}');
        body.insert(key.to_owned(), value.clone());
        let mut canonical = Vec::new();
        write_canonical(&Value::Object(body), &mut canonical);
        (line, crate::request_key::body_digest(&canonical))
    }

    #[test]
    fn lines_and_digests_equal_serialising_the_whole_request() {
        let fixed_bodies = [
            json!({"model": "qwen-flash", "max_tokens": 20, "response_format": {"type": "json_object"}}),
            json!({"model": "m", "temperature": 0.2, "stop": ["\n", "\"end\""], "seed": -3, "enable_thinking": false}),
            json!({"model": "text-embedding-v4", "dimensions": 512}),
            json!({"zzz": 1, "aaa": {"b": [1.5, null, "é"], "a": true}}),
        ];
        let messages = json!([
            {"content": "You label \"sentiment\".\n\tOnly JSON \u{1}.", "role": "system"},
            {"content": "评论：很好\\很好", "role": "user"},
        ]);
        for fixed in &fixed_bodies {
            for (key, value) in [("messages", &messages), ("input", &json!("一段文字 \"x\""))] {
                for endpoint in ["/v1/chat/completions", "/v1/embeddings"] {
                    for id in ["1", "zh-00000001", "id \"quoted\" \\ 中"] {
                        let writer =
                            RequestLineWriter::new(fixed.as_object().unwrap(), endpoint, key);
                        let (line, digest) =
                            writer.write(id, serde_json::to_string(value).unwrap().as_bytes());
                        let (expected_line, expected_digest) =
                            serialised(fixed, endpoint, id, key, value);
                        assert_eq!(String::from_utf8(line).unwrap(), expected_line);
                        assert_eq!(digest, expected_digest, "{fixed} {key} {id}");
                        // A start hashed once, whether the entry has it or not, at every
                        // length around SHA-256's 64-byte blocks.
                        let value_text = serde_json::to_string(value).unwrap().into_bytes();
                        let mut other_start = value_text[..value_text.len() / 2].to_vec();
                        *other_start.last_mut().unwrap() ^= 1;
                        let lengths = [0, 1, 2, 63, 64, 65, value_text.len() - 1, value_text.len()];
                        let starts = lengths
                            .iter()
                            .map(|length| value_text[..(*length).min(value_text.len())].to_vec())
                            .chain([other_start, [value_text.clone(), b"x".to_vec()].concat()]);
                        for start in starts {
                            let with_start =
                                RequestLineWriter::new(fixed.as_object().unwrap(), endpoint, key)
                                    .with_entry_start(start.clone());
                            let (line, digest) = with_start.write(id, &value_text);
                            assert_eq!(String::from_utf8(line).unwrap(), expected_line);
                            assert_eq!(
                                digest,
                                expected_digest,
                                "{fixed} {key} {id} start {:?}",
                                String::from_utf8_lossy(&start)
                            );
                            // The entry given as the rest after its start, when it has it.
                            if let Some(rest) = value_text.strip_prefix(start.as_slice()) {
                                let (line, digest) = with_start.write_after_entry_start(id, rest);
                                assert_eq!(String::from_utf8(line).unwrap(), expected_line);
                                assert_eq!(digest, expected_digest);
                            }
                        }
                        // A message's text escaped into the line after a start that ends
                        // where its string begins.
                        let mut texts_found = 0;
                        for text in [
                            "评论：很好\\很好",
                            "You label \"sentiment\".\n\tOnly JSON \u{1}.",
                        ] {
                            let string = serde_json::to_string(text).unwrap();
                            let Some(at) = String::from_utf8_lossy(&value_text).find(&string)
                            else {
                                continue;
                            };
                            let with_start =
                                RequestLineWriter::new(fixed.as_object().unwrap(), endpoint, key)
                                    .with_entry_start(value_text[..at].to_vec());
                            let (line, digest) = with_start.write_text_after_entry_start(
                                id,
                                text,
                                &value_text[at + string.len()..],
                            );
                            assert_eq!(String::from_utf8(line).unwrap(), expected_line);
                            assert_eq!(digest, expected_digest, "{fixed} {key} {id} {text}");
                            texts_found += 1;
                        }
                        assert_eq!(texts_found, if key == "messages" { 2 } else { 0 });
                    }
                }
            }
        }
    }
}
