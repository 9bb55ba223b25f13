//! The shape of a chat answer line: its bytes outside its string and number values. The lines
//! of a batch nearly all share one shape, so a line of the shape learnt from an earlier line is
//! read by comparing those bytes and checking each value where it stands, not by walking its
//! objects and matching their keys (a third of the instructions of [`read_chat_success_line`]).
//!
//! A line that matches a shape holds the tokens of the line it was learnt from, in the same
//! order, but for the values of its strings and numbers. [`read_chat_success_line`] would walk
//! it the same way and read the same fields from the same values, so the shape notes which
//! value each field was read from when it learns, and reads them here as the cursor does: each
//! string and number checked by the cursor's own code, a status code that must be 200, counts
//! that must be whole. A line that does not match, or that this reading would refuse, is left
//! to [`read_chat_success_line`].

use std::cell::RefCell;

use crate::chat_success_line::{
    ChatSuccessLine, LineField, ReadChatFields, chat_success_line_of, read_chat_success_line,
    read_chat_success_line_noting,
};
use crate::json_cursor::{JsonCursor, decoded_string, whole_number_of};

/// Lines in a row that a reader's shape does not match before it learns another from the next
/// chat answer: a batch of two shapes keeps one, and learning (the line read again with its
/// fields' places noted, walked for its values, and read back by the new shape) costs at most
/// about three readings in eight more where no shape holds.
const MISSES_BEFORE_RELEARNING: u32 = 8;

/// One string or number of a shape.
#[derive(Debug, Clone, Copy)]
struct ShapeValue {
    /// Where the value starts in the shape's line (at its opening quote, for a string), where
    /// it ends, and where the next value starts (or the line ends): a line that writes the same
    /// value (a model, a finish reason, a count the batch's lines share) and the same bytes
    /// after it is read with one comparison.
    start: usize,
    end: usize,
    next_start: usize,
    is_number: bool,
    /// The field read from this value, if any is.
    field: Option<LineField>,
    /// Whether the string holds an escape, in the shape's line.
    escaped: bool,
    /// The number, when it is a whole one, in the shape's line.
    whole_number: Option<u64>,
}

/// A chat answer line with where its values are: the bytes outside them (keys, brackets,
/// commas, colons, whitespace, `null`s and booleans) are the shape.
#[derive(Debug)]
pub struct ChatLineShape {
    line: Vec<u8>,
    values: Vec<ShapeValue>,
}

impl ChatLineShape {
    /// The shape of `text`, with the field read from each value; `None` for a line that
    /// [`read_chat_success_line`] does not take, or one whose shape would not read it back
    /// exactly as that does.
    pub fn learn(text: &str) -> Option<ChatLineShape> {
        let places = RefCell::new(Vec::new());
        let read = read_chat_success_line_noting(text, &places)?;
        let places = places.into_inner();
        let bytes = text.as_bytes();
        let mut values: Vec<ShapeValue> = Vec::new();
        let mut index = 0;
        while let Some(&byte) = bytes.get(index) {
            let mut cursor = JsonCursor::starting_at(text, index);
            let (mut escaped, mut whole_number) = (false, None);
            let is_number = match byte {
                b'"' => {
                    escaped = cursor.written_string()?.1;
                    let mut after = JsonCursor::starting_at(text, cursor.position());
                    // A key (followed by its colon) is part of the shape.
                    if bytes.get(after.next_value_start()) == Some(&b':') {
                        index = cursor.position();
                        continue;
                    }
                    false
                }
                b'-' | b'0'..=b'9' => {
                    let (written, whole) = cursor.number_and_whether_whole()?;
                    whole_number = whole_number_of(written, whole);
                    true
                }
                _ => {
                    index += 1;
                    continue;
                }
            };
            if let Some(last) = values.last_mut() {
                last.next_start = index;
            }
            values.push(ShapeValue {
                start: index,
                end: cursor.position(),
                next_start: bytes.len(),
                is_number,
                field: places
                    .iter()
                    .find(|(_, at)| *at == index)
                    .map(|(field, _)| *field),
                escaped,
                whole_number,
            });
            index = cursor.position();
        }
        // A field is read from a string, a number or a null, so each has a value here or its
        // null in the shape; reading the line back as the cursor read it checks that too.
        let shape = ChatLineShape {
            line: bytes.to_vec(),
            values,
        };
        (shape.read(text)? == read).then_some(shape)
    }

    /// `text` read as [`read_chat_success_line`] reads it, when it has this shape and the
    /// cursor would take it; `None` otherwise.
    pub fn read<'a>(&self, text: &'a str) -> Option<ChatSuccessLine<'a>> {
        let bytes = text.as_bytes();
        let line = &self.line[..];
        let mut fields = ReadChatFields::default();
        let opening = self.values.first().map_or(line.len(), |value| value.start);
        if !same_bytes(bytes.get(..opening)?, &line[..opening]) {
            return None;
        }
        let mut at = opening;
        for value in &self.values {
            // The same bytes make the same string (its closing quote is the first that is
            // not escaped, as it was in the shape's line), and the same number (the bytes
            // after it are no digit, point or exponent).
            let same_and_after = &line[value.start..value.next_start];
            if bytes
                .get(at..at + same_and_after.len())
                .is_some_and(|written| same_bytes(written, same_and_after))
            {
                if let Some(field) = value.field {
                    if value.is_number {
                        take_number(&mut fields, field, value.whole_number?)?;
                    } else {
                        // Between the quotes, ASCII both: boundaries of the text.
                        let written = text.get(at + 1..at + value.end - value.start - 1)?;
                        take_text(&mut fields, field, decoded_string(written, value.escaped)?)?;
                    }
                }
                at += same_and_after.len();
                continue;
            }
            let mut cursor = JsonCursor::starting_at(text, at);
            if value.is_number {
                let (written, whole) = cursor.number_and_whether_whole()?;
                if let Some(field) = value.field {
                    take_number(&mut fields, field, whole_number_of(written, whole)?)?;
                }
            } else {
                let (written, escaped) = cursor.written_string()?;
                if let Some(field) = value.field {
                    take_text(&mut fields, field, decoded_string(written, escaped)?)?;
                }
            }
            at = cursor.position();
            let after = &line[value.end..value.next_start];
            if !same_bytes(bytes.get(at..at + after.len())?, after) {
                return None;
            }
            at += after.len();
        }
        if at != bytes.len() {
            return None;
        }
        chat_success_line_of(fields)
    }
}

/// Whether `written` and `expected` hold the same bytes: compared eight at a time in place, as
/// the runs between values are short (a call to `memcmp` for each cost more than the compare).
#[inline]
fn same_bytes(written: &[u8], expected: &[u8]) -> bool {
    if written.len() != expected.len() {
        return false;
    }
    let length = written.len();
    let word =
        |bytes: &[u8], at: usize| u64::from_ne_bytes(bytes[at..at + 8].try_into().expect("8"));
    let half =
        |bytes: &[u8], at: usize| u32::from_ne_bytes(bytes[at..at + 4].try_into().expect("4"));
    if length >= 8 {
        let mut at = 0;
        while at + 8 < length {
            if word(written, at) != word(expected, at) {
                return false;
            }
            at += 8;
        }
        // The last eight, which may overlap the ones before.
        return word(written, length - 8) == word(expected, length - 8);
    }
    if length >= 4 {
        return half(written, 0) == half(expected, 0)
            && half(written, length - 4) == half(expected, length - 4);
    }
    written
        .iter()
        .zip(expected)
        .all(|(written, expected)| written == expected)
}

/// A whole number read for `field`: a status code must be 200, as the cursor requires of an
/// answer; `None` for a field that is not a number.
fn take_number(fields: &mut ReadChatFields<'_>, field: LineField, number: u64) -> Option<()> {
    let count = match field {
        LineField::StatusCode => return (number == 200).then_some(()),
        LineField::PromptTokens => &mut fields.usage.prompt_tokens,
        LineField::CompletionTokens => &mut fields.usage.completion_tokens,
        LineField::TotalTokens => &mut fields.usage.total_tokens,
        LineField::ReasoningTokens => &mut fields.usage.reasoning_tokens,
        LineField::DetailedReasoningTokens => &mut fields.detailed_reasoning_tokens,
        _ => return None,
    };
    *count = Some(number);
    Some(())
}

/// A string read for `field`; `None` for a field that is not a text.
fn take_text<'a>(
    fields: &mut ReadChatFields<'a>,
    field: LineField,
    text: std::borrow::Cow<'a, str>,
) -> Option<()> {
    let place = match field {
        LineField::Id => &mut fields.id,
        LineField::CustomId => &mut fields.custom_id,
        LineField::RequestId => &mut fields.request_id,
        LineField::Content => &mut fields.content,
        LineField::FinishReason => &mut fields.finish_reason,
        _ => return None,
    };
    *place = Some(text);
    Some(())
}

/// Reads chat answer lines with the shape of the ones before, learning another shape when
/// [`MISSES_BEFORE_RELEARNING`] lines in a row do not have it.
#[derive(Debug)]
pub struct ChatLineReader {
    shape: Option<ChatLineShape>,
    misses_in_a_row: u32,
}

impl Default for ChatLineReader {
    fn default() -> ChatLineReader {
        ChatLineReader {
            shape: None,
            // The first chat answer teaches the first shape.
            misses_in_a_row: MISSES_BEFORE_RELEARNING - 1,
        }
    }
}

impl ChatLineReader {
    /// `text` as [`read_chat_success_line`] reads it.
    pub fn read<'a>(&mut self, text: &'a str) -> Option<ChatSuccessLine<'a>> {
        if let Some(line) = self.shape.as_ref().and_then(|shape| shape.read(text)) {
            self.misses_in_a_row = 0;
            return Some(line);
        }
        let line = read_chat_success_line(text)?;
        self.misses_in_a_row += 1;
        if self.misses_in_a_row >= MISSES_BEFORE_RELEARNING {
            self.misses_in_a_row = 0;
            if let Some(shape) = ChatLineShape::learn(text) {
                self.shape = Some(shape);
            }
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEEDS: [&str; 5] = [
        r#"{"id":"ccef","custom_id":"zh-00053096","response":{"status_code":200,"request_id":"ccef","body":{"created":1796312841,"usage":{"completion_tokens":6,"prompt_tokens":68,"total_tokens":74},"model":"qwen-flash","id":"chatcmpl-ccef","choices":[{"finish_reason":"stop","index":0,"message":{"role":"assistant","content":"{\"sentiment\":\"positive\"}"}}],"object":"chat.completion"}},"error":null}"#,
        r#"{"custom_id":"c\u002d2","response":{"status_code":200,"body":{"usage":{"prompt_tokens":1,"completion_tokens":9,"total_tokens":10,"reasoning_tokens":3,"completion_tokens_details":{"reasoning_tokens":7}},"choices":[{"message":{"content":"\u4e2d\ud83d\ude00 \\ \/ \n"},"finish_reason":"length"},{"message":{"content":"second"}}]}}}"#,
        r#" { "id" : "L" , "custom_id" : "c-3" , "response" : { "request_id" : null , "status_code" : 200 , "body" : { "data" : null , "usage" : null , "choices" : [ ] } } , "error" : null } "#,
        r#"{"custom_id":"c-4","error":null,"response":{"body":{"choices":[{"message":null,"finish_reason":null}],"usage":{"prompt_tokens":null},"created":-1.5e3},"status_code":200}}"#,
        r#"{"id":"same","custom_id":"same","response":{"status_code":200,"request_id":"same","body":{"usage":{"prompt_tokens":5,"completion_tokens":5,"total_tokens":5,"completion_tokens_details":{"reasoning_tokens":null}},"choices":[{"message":{"content":"5"},"finish_reason":"5"}]}}}"#,
    ];

    /// Bytes that change what JSON means where they land, and escapes.
    const MEANINGFUL: [&str; 24] = [
        "\"", "\\", "{", "}", "[", "]", ",", ":", " ", "0", "1", "9", "-", ".", "e", "n", "\\n",
        "\\u00e9", "\\ud83d", "\\\"", "\u{1}", "中", "null", "200",
    ];

    /// A fixed xorshift sequence: the same mutants on every run.
    fn sequence() -> impl FnMut(usize) -> usize {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        move |below: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % below as u64) as usize
        }
    }

    #[test]
    fn every_seed_has_a_shape_that_reads_it_back() {
        for seed in SEEDS {
            let shape = ChatLineShape::learn(seed).unwrap_or_else(|| panic!("no shape: {seed}"));
            assert_eq!(shape.read(seed), read_chat_success_line(seed), "{seed}");
        }
    }

    #[test]
    fn a_line_that_is_no_chat_answer_has_no_shape() {
        for line in [
            "",
            "{}",
            r#"{"custom_id":"a","response":{"status_code":500,"body":{}}}"#,
            r#"{"custom_id":"a","response":{"status_code":200,"body":{}},"error":{"code":"x"}}"#,
        ] {
            assert!(ChatLineShape::learn(line).is_none(), "{line}");
        }
    }

    #[test]
    fn each_field_is_read_from_its_own_value_even_where_values_are_alike() {
        let shape = ChatLineShape::learn(SEEDS[4]).unwrap();
        let other = r#"{"id":"i","custom_id":"c","response":{"status_code":200,"request_id":"r","body":{"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"completion_tokens_details":{"reasoning_tokens":null}},"choices":[{"message":{"content":"t"},"finish_reason":"f"}]}}}"#;
        let line = shape.read(other).expect("the same shape");
        assert_eq!(line, read_chat_success_line(other).unwrap());
        assert_eq!(line.custom_id, "c");
        assert_eq!(line.request_id.as_deref(), Some("r"));
        assert_eq!(line.content.as_deref(), Some("t"));
        assert_eq!(line.finish_reason.as_deref(), Some("f"));
        assert_eq!(line.usage.prompt_tokens, Some(1));
        assert_eq!(line.usage.completion_tokens, Some(2));
        assert_eq!(line.usage.total_tokens, Some(3));
    }

    #[test]
    fn what_a_shape_takes_it_reads_as_the_cursor_reads_it() {
        let mut next = sequence();
        let shapes: Vec<ChatLineShape> = SEEDS
            .iter()
            .map(|seed| ChatLineShape::learn(seed).unwrap())
            .collect();
        let (mut taken, mut refused, mut left) = (0, 0, 0);
        for _ in 0..100_000 {
            let which = next(SEEDS.len());
            let mut text = SEEDS[which].to_owned();
            // Where values start: most changes land inside one, as most of a batch's lines
            // differ from each other only there.
            let value_starts: Vec<usize> = text
                .match_indices(':')
                .map(|(colon, _)| {
                    let after =
                        colon + 1 + text[colon + 1..].len() - text[colon + 1..].trim_start().len();
                    after + usize::from(text[after..].starts_with('"'))
                })
                .collect();
            for _ in 0..1 + next(2) {
                let mut place = if next(3) == 0 {
                    next(text.len() + 1)
                } else {
                    value_starts[next(value_starts.len())].min(text.len())
                };
                while !text.is_char_boundary(place) {
                    place -= 1;
                }
                let meaningful = MEANINGFUL[next(MEANINGFUL.len())];
                match next(8) {
                    0 | 1 => {
                        let end = text[place..]
                            .char_indices()
                            .nth(1)
                            .map_or(text.len(), |(at, _)| place + at);
                        text.replace_range(place..end, meaningful);
                    }
                    2 => text.truncate(place),
                    _ => text.insert_str(place, meaningful),
                }
            }
            let full = read_chat_success_line(&text);
            match shapes[which].read(&text) {
                Some(line) => {
                    taken += 1;
                    assert_eq!(Some(line), full, "{text}");
                }
                None if full.is_some() => left += 1,
                None => refused += 1,
            }
        }
        // Lines of the shape were read many times; others were left to the cursor, and lines
        // that are no answer were refused.
        assert!(
            taken > 8_000 && left > 2_000 && refused > 10_000,
            "{taken} taken, {left} left to the cursor, {refused} refused"
        );
    }

    #[test]
    fn a_reader_reads_every_line_as_the_cursor_reads_it_and_keeps_a_shape_that_holds() {
        let mut next = sequence();
        let mut reader = ChatLineReader::default();
        for round in 0..2_000 {
            // Runs of one shape, with now and then a line of another.
            let seed = if next(10) == 0 {
                next(SEEDS.len())
            } else {
                round / 500
            };
            let text = SEEDS[seed % SEEDS.len()].replace("200", ["200", "201"][next(9) / 8]);
            assert_eq!(reader.read(&text), read_chat_success_line(&text), "{text}");
        }
        let shape = reader.shape.as_ref().expect("a shape learnt");
        assert!(
            shape.read(SEEDS[3]).is_some(),
            "the last run's shape is kept"
        );
    }
}
