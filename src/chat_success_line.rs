//! The common result line, a 200 chat answer without error, pulled field by field from its text
//! ([`JsonCursor`]): no JSON tree, no allocation for texts without escapes, and every field
//! the answer does not need passed over, checked but unread.

use std::borrow::Cow;
use std::cell::RefCell;

use crate::json_cursor::{JsonCursor, NextValue};
use crate::row_result::{ChatUsage, RowResult};

/// A result line that is a 200 chat answer without error, its texts borrowed from the line
/// where they hold no escapes.
#[derive(Debug, PartialEq, Eq)]
pub struct ChatSuccessLine<'a> {
    pub custom_id: Cow<'a, str>,
    /// The response's request id, or the line's own id without one.
    pub request_id: Option<Cow<'a, str>>,
    pub content: Option<Cow<'a, str>>,
    pub finish_reason: Option<Cow<'a, str>>,
    pub usage: ChatUsage,
}

impl ChatSuccessLine<'_> {
    /// Its custom_id and result, as [`crate::row_result::classify_result_line`] classifies the
    /// parsed line.
    pub fn into_owned_result(self) -> (String, RowResult) {
        let result = self.usage.into_result(
            self.request_id.map(Cow::into_owned),
            self.content.map(Cow::into_owned),
            self.finish_reason.map(Cow::into_owned),
        );
        (self.custom_id.into_owned(), result)
    }
}

/// A line that is a 200 chat answer without error, read into borrowed typed fields; `None` for
/// any other line, and for anything this reading does not take (a body sent as a string, an
/// embedding, a count that is not a whole number, a repeated key, a line that is not JSON),
/// which [`crate::row_result::classify_result_text_in_full`] then classifies: whatever it
/// takes, it reads as that full parse does.
pub fn read_chat_success_line(text: &str) -> Option<ChatSuccessLine<'_>> {
    read_chat_success_line_noting(text, &())
}

/// The fields of a line that a [`ChatSuccessLine`] takes its values from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineField {
    Id,
    CustomId,
    StatusCode,
    RequestId,
    Content,
    FinishReason,
    PromptTokens,
    CompletionTokens,
    TotalTokens,
    ReasoningTokens,
    /// `completion_tokens_details.reasoning_tokens`, taken over `reasoning_tokens`.
    DetailedReasoningTokens,
}

/// Told where the value of each field read starts, as a line is read: how
/// [`crate::chat_line_shape`] learns which of a line's values is which. `()` is told nothing.
pub(crate) trait NoteFieldPlaces {
    fn note(&self, field: LineField, cursor: &mut JsonCursor<'_>);
}

impl NoteFieldPlaces for () {
    #[inline(always)]
    fn note(&self, _: LineField, _: &mut JsonCursor<'_>) {}
}

impl NoteFieldPlaces for RefCell<Vec<(LineField, usize)>> {
    fn note(&self, field: LineField, cursor: &mut JsonCursor<'_>) {
        self.borrow_mut().push((field, cursor.next_value_start()));
    }
}

/// [`read_chat_success_line`], telling `places` where each field's value starts.
pub(crate) fn read_chat_success_line_noting<'a>(
    text: &'a str,
    places: &impl NoteFieldPlaces,
) -> Option<ChatSuccessLine<'a>> {
    let mut cursor = JsonCursor::new(text);
    let line = read_line(&mut cursor, places)?;
    cursor.finish()?;
    let response = line.response?;
    let body = response.body?;
    if response.status_code != 200 || line.has_error || body.has_data {
        return None;
    }
    chat_success_line_of(ReadChatFields {
        id: line.id,
        custom_id: line.custom_id,
        request_id: response.request_id,
        content: body.content,
        finish_reason: body.finish_reason,
        usage: body.usage,
        detailed_reasoning_tokens: body.detailed_reasoning_tokens,
    })
}

/// A 200 chat answer's values as a [`ChatSuccessLine`]: the response's request id, or the
/// line's own id without one; the detailed reasoning count, or the plain one without it.
pub(crate) fn chat_success_line_of(fields: ReadChatFields<'_>) -> Option<ChatSuccessLine<'_>> {
    let ReadChatFields {
        id,
        custom_id,
        request_id,
        content,
        finish_reason,
        mut usage,
        detailed_reasoning_tokens,
    } = fields;
    usage.reasoning_tokens = detailed_reasoning_tokens.or(usage.reasoning_tokens);
    Some(ChatSuccessLine {
        custom_id: custom_id?,
        request_id: request_id.or(id),
        content,
        finish_reason,
        usage,
    })
}

/// The values of a chat answer line, each from its own field, before they are put together.
#[derive(Default)]
pub(crate) struct ReadChatFields<'a> {
    pub id: Option<Cow<'a, str>>,
    pub custom_id: Option<Cow<'a, str>>,
    pub request_id: Option<Cow<'a, str>>,
    pub content: Option<Cow<'a, str>>,
    pub finish_reason: Option<Cow<'a, str>>,
    pub usage: ChatUsage,
    pub detailed_reasoning_tokens: Option<u64>,
}

/// The top-level fields of a result line that a chat answer needs.
struct LineFields<'a> {
    id: Option<Cow<'a, str>>,
    custom_id: Option<Cow<'a, str>>,
    response: Option<ResponseFields<'a>>,
    /// `error` is there and not null.
    has_error: bool,
}

struct ResponseFields<'a> {
    status_code: u16,
    request_id: Option<Cow<'a, str>>,
    body: Option<BodyFields<'a>>,
}

#[derive(Default)]
struct BodyFields<'a> {
    usage: ChatUsage,
    detailed_reasoning_tokens: Option<u64>,
    content: Option<Cow<'a, str>>,
    finish_reason: Option<Cow<'a, str>>,
    /// `data` (an embeddings answer) is there and not null.
    has_data: bool,
}

/// Whether the next value is anything but null; it is read either way.
fn is_not_null(cursor: &mut JsonCursor<'_>) -> Option<bool> {
    if cursor.take_null()? {
        return Some(false);
    }
    cursor.skip()?;
    Some(true)
}

/// An object, or `None` for a null; any other value is not what the field takes.
fn optional_object<'a, T>(
    cursor: &mut JsonCursor<'a>,
    read: impl FnOnce(&mut JsonCursor<'a>) -> Option<T>,
) -> Option<Option<T>> {
    match cursor.peek()? {
        NextValue::Null => cursor.null().map(|()| None),
        NextValue::Object => read(cursor).map(Some),
        _ => None,
    }
}

/// The field `name` of an object that may be null, read with `read`; `None` inside for a null
/// object or a field missing or null.
fn field_of_optional_object<'a, T>(
    cursor: &mut JsonCursor<'a>,
    name: &str,
    read: impl Fn(&mut JsonCursor<'a>) -> Option<Option<T>>,
) -> Option<Option<T>> {
    let read_object = |cursor: &mut JsonCursor<'a>| {
        let mut value = None;
        cursor.object(&[name], |cursor, _| {
            value = read(cursor)?;
            Some(())
        })?;
        Some(value)
    };
    Some(optional_object(cursor, read_object)?.flatten())
}

fn read_line<'a>(
    cursor: &mut JsonCursor<'a>,
    places: &impl NoteFieldPlaces,
) -> Option<LineFields<'a>> {
    let mut line = LineFields {
        id: None,
        custom_id: None,
        response: None,
        has_error: false,
    };
    cursor.object(
        &["id", "custom_id", "response", "error"],
        |cursor, field| {
            match field {
                0 => {
                    places.note(LineField::Id, cursor);
                    line.id = cursor.optional_string()?;
                }
                1 => {
                    places.note(LineField::CustomId, cursor);
                    line.custom_id = Some(cursor.string()?);
                }
                2 => {
                    line.response =
                        optional_object(cursor, |cursor| read_response(cursor, places))?;
                }
                _ => line.has_error = is_not_null(cursor)?,
            }
            Some(())
        },
    )?;
    Some(line)
}

fn read_response<'a>(
    cursor: &mut JsonCursor<'a>,
    places: &impl NoteFieldPlaces,
) -> Option<ResponseFields<'a>> {
    let mut status_code = None;
    let mut request_id = None;
    let mut body = None;
    cursor.object(&["status_code", "request_id", "body"], |cursor, field| {
        match field {
            0 => {
                places.note(LineField::StatusCode, cursor);
                status_code = Some(u16::try_from(cursor.whole_number()?).ok()?);
            }
            1 => {
                places.note(LineField::RequestId, cursor);
                request_id = cursor.optional_string()?;
            }
            _ => body = optional_object(cursor, |cursor| read_body(cursor, places))?,
        }
        Some(())
    })?;
    Some(ResponseFields {
        status_code: status_code?,
        request_id,
        body,
    })
}

fn read_body<'a>(
    cursor: &mut JsonCursor<'a>,
    places: &impl NoteFieldPlaces,
) -> Option<BodyFields<'a>> {
    let mut body = BodyFields::default();
    cursor.object(&["usage", "choices", "data"], |cursor, field| {
        match field {
            0 => {
                (body.usage, body.detailed_reasoning_tokens) =
                    optional_object(cursor, |cursor| read_usage(cursor, places))?
                        .unwrap_or_default();
            }
            1 => {
                if !cursor.take_null()? {
                    (body.content, body.finish_reason) = read_first_choice(cursor, places)?;
                }
            }
            _ => body.has_data = is_not_null(cursor)?,
        }
        Some(())
    })?;
    Some(body)
}

/// `usage`: the token counts, and the reasoning tokens of `completion_tokens_details`.
fn read_usage(
    cursor: &mut JsonCursor<'_>,
    places: &impl NoteFieldPlaces,
) -> Option<(ChatUsage, Option<u64>)> {
    let mut usage = ChatUsage::default();
    let mut detailed_reasoning_tokens = None;
    let names = [
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "reasoning_tokens",
        "completion_tokens_details",
    ];
    cursor.object(&names, |cursor, field| {
        let count = match field {
            0 => (LineField::PromptTokens, &mut usage.prompt_tokens),
            1 => (LineField::CompletionTokens, &mut usage.completion_tokens),
            2 => (LineField::TotalTokens, &mut usage.total_tokens),
            3 => (LineField::ReasoningTokens, &mut usage.reasoning_tokens),
            _ => {
                detailed_reasoning_tokens =
                    field_of_optional_object(cursor, "reasoning_tokens", |cursor| {
                        places.note(LineField::DetailedReasoningTokens, cursor);
                        cursor.optional_whole_number()
                    })?;
                return Some(());
            }
        };
        places.note(count.0, cursor);
        *count.1 = cursor.optional_whole_number()?;
        Some(())
    })?;
    Some((usage, detailed_reasoning_tokens))
}

type ChoiceTexts<'a> = (Option<Cow<'a, str>>, Option<Cow<'a, str>>);

/// The content and finish reason of the first of `choices` (an array whose first item, when
/// there is one, is an object); the other choices are passed over.
fn read_first_choice<'a>(
    cursor: &mut JsonCursor<'a>,
    places: &impl NoteFieldPlaces,
) -> Option<ChoiceTexts<'a>> {
    let mut texts = (None, None);
    // `array` and `object` refuse any other value.
    cursor.array(|cursor, index| {
        if index > 0 {
            return cursor.skip();
        }
        cursor.object(&["message", "finish_reason"], |cursor, field| {
            match field {
                0 => {
                    texts.0 = field_of_optional_object(cursor, "content", |cursor| {
                        places.note(LineField::Content, cursor);
                        cursor.optional_string()
                    })?;
                }
                _ => {
                    places.note(LineField::FinishReason, cursor);
                    texts.1 = cursor.optional_string()?;
                }
            }
            Some(())
        })
    })?;
    Some(texts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row_result::classify_result_text_in_full;
    use crate::wire::BatchStatus;

    const SEEDS: [&str; 4] = [
        r#"{"id":"02d3","custom_id":"zh-00013792","response":{"status_code":200,"request_id":"02d3","body":{"created":1796268868,"usage":{"completion_tokens":6,"prompt_tokens":76,"total_tokens":82},"model":"qwen-flash","id":"chatcmpl-02d3","choices":[{"finish_reason":"stop","index":0,"message":{"role":"assistant","content":"{\"sentiment\":\"positive\"}"}}],"object":"chat.completion"}},"error":null}"#,
        r#"{"custom_id":"c-2","response":{"status_code":200,"body":{"usage":{"prompt_tokens":1,"completion_tokens":9,"total_tokens":10,"reasoning_tokens":3,"completion_tokens_details":{"reasoning_tokens":7}},"choices":[{"message":{"content":"\u4e2d\ud83d\ude00 \\ \/ \n"},"finish_reason":"length"},{"message":{"content":"second"}}]}}}"#,
        r#" { "id" : "L" , "custom_id" : "c-3" , "response" : { "request_id" : null , "status_code" : 200 , "body" : { "data" : null , "usage" : null , "choices" : [ ] } } , "error" : null } "#,
        r#"{"custom_id":"c-4","error":null,"response":{"body":{"choices":[{"message":null,"finish_reason":null}],"usage":{"prompt_tokens":null}},"status_code":200}}"#,
    ];

    /// Bytes that change what JSON means where they land.
    const MEANINGFUL: &[u8] = b"\"\\{}[],: 0123456789-+.eEnultrfa\t\x01";

    #[test]
    fn the_seed_lines_are_all_chat_answers() {
        for seed in SEEDS {
            assert!(read_chat_success_line(seed).is_some(), "{seed}");
        }
    }

    #[test]
    fn whatever_it_takes_it_reads_as_the_full_parse_reads_it() {
        // A fixed xorshift sequence: the same mutants on every run.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |below: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % below as u64) as usize
        };
        let mut taken = 0;
        let mut refused = 0;
        for _ in 0..60_000 {
            let mut text: Vec<char> = SEEDS[next(SEEDS.len())].chars().collect();
            for _ in 0..1 + next(3) {
                let place = next(text.len() + 1);
                let meaningful = char::from(MEANINGFUL[next(MEANINGFUL.len())]);
                match next(5) {
                    0 if place < text.len() => {
                        text.remove(place);
                    }
                    1 => text.insert(place, meaningful),
                    2 if place < text.len() => text[place] = meaningful,
                    3 => {
                        let end = (place + next(12)).min(text.len());
                        let copied: Vec<char> = text[place..end].to_vec();
                        let at = next(text.len() + 1);
                        text.splice(at..at, copied);
                    }
                    _ => text.truncate(place),
                }
            }
            let text: String = text.into_iter().collect();
            let Some(line) = read_chat_success_line(&text) else {
                refused += 1;
                continue;
            };
            taken += 1;
            let read = line.into_owned_result();
            for batch_status in [BatchStatus::Completed, BatchStatus::Expired] {
                let full =
                    classify_result_text_in_full(&text, batch_status).unwrap_or_else(|error| {
                        panic!("taken, yet the full parse refuses ({error}): {text}")
                    });
                assert_eq!(read, full, "{text}");
            }
        }
        // Both kinds of outcome were tried many times.
        assert!(
            taken > 5_000 && refused > 5_000,
            "{taken} taken, {refused} refused"
        );
    }
}
