//! A pull reader over one JSON text (RFC 8259) for the hot result lines: it reads the values a
//! caller asks for, borrowed where they hold no escape, and passes over the rest, checked but
//! not built. Anything that is not JSON, or nests deeper than [`DEEPEST_NESTING`], makes it
//! give `None`, and the caller then leaves the text to serde_json.
//!
//! serde_json looks at each byte on its own and builds through its visitor machinery; a
//! result line of ~460 bytes holds ~30 strings, so here a string's text is scanned eight bytes
//! at a time for the bytes that end it or need a look (`"`, `\`, a control byte), and keys are
//! compared as they are written.

use std::borrow::Cow;

use crate::json_string::next_byte_to_escape;

/// How deep values may nest before the reader gives up: under serde_json's limit of 128, so
/// whatever this reader takes, serde_json takes too.
pub const DEEPEST_NESTING: u32 = 100;

/// What kind of value comes next, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextValue {
    Object,
    Array,
    String,
    Number,
    True,
    False,
    Null,
}

pub struct JsonCursor<'a> {
    text: &'a str,
    at: usize,
    /// Objects and arrays open around the cursor.
    depth: u32,
}

impl<'a> JsonCursor<'a> {
    pub fn new(text: &'a str) -> JsonCursor<'a> {
        JsonCursor::starting_at(text, 0)
    }

    /// A cursor at byte `at` of `text`, outside any object or array.
    pub(crate) fn starting_at(text: &'a str, at: usize) -> JsonCursor<'a> {
        JsonCursor { text, at, depth: 0 }
    }

    /// Where the cursor is: the byte after what it has read.
    pub(crate) fn position(&self) -> usize {
        self.at
    }

    /// Where the next value starts, after the whitespace before it.
    pub(crate) fn next_value_start(&mut self) -> usize {
        self.skip_whitespace();
        self.at
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.at) {
            self.at += 1;
        }
    }

    /// The first byte after whitespace, not taken.
    fn peek_byte(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes().get(self.at).copied()
    }

    /// Takes `byte` after whitespace.
    fn expect_byte(&mut self, byte: u8) -> Option<()> {
        (self.peek_byte()? == byte).then(|| self.at += 1)
    }

    /// The kind of the next value, not read.
    pub fn peek(&mut self) -> Option<NextValue> {
        Some(match self.peek_byte()? {
            b'{' => NextValue::Object,
            b'[' => NextValue::Array,
            b'"' => NextValue::String,
            b'-' | b'0'..=b'9' => NextValue::Number,
            b't' => NextValue::True,
            b'f' => NextValue::False,
            b'n' => NextValue::Null,
            _ => return None,
        })
    }

    /// Checks that only whitespace is left.
    pub fn finish(&mut self) -> Option<()> {
        self.skip_whitespace();
        (self.at == self.text.len()).then_some(())
    }

    /// Reads `null`, `true` or `false`.
    fn literal(&mut self, word: &str) -> Option<()> {
        self.skip_whitespace();
        let end = self.at + word.len();
        (self.bytes().get(self.at..end)? == word.as_bytes()).then(|| self.at = end)
    }

    /// Reads a `null`; `None` when something else comes.
    pub fn null(&mut self) -> Option<()> {
        self.literal("null")
    }

    /// Whether a null comes next, read if so.
    pub fn take_null(&mut self) -> Option<bool> {
        if self.peek()? == NextValue::Null {
            self.null()?;
            return Some(true);
        }
        Some(false)
    }

    /// Reads a string as it is written, between its quotes, checking its escapes; with whether
    /// it holds any.
    pub(crate) fn written_string(&mut self) -> Option<(&'a str, bool)> {
        self.expect_byte(b'"')?;
        let bytes = self.bytes();
        let start = self.at;
        let mut index = start;
        let mut escaped = false;
        loop {
            // No byte that must be escaped: the string is not closed.
            index = next_byte_to_escape(bytes, index)?;
            match bytes[index] {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    index += 1;
                    match *bytes.get(index)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => index += 1,
                        b'u' => index = after_unicode_escape(bytes, index)?,
                        _ => return None,
                    }
                }
                // A control byte must be escaped (RFC 8259 §7).
                _ => return None,
            }
        }
        self.at = index + 1;
        // SAFETY: `start` follows the opening quote and `index` is at the closing one; a byte
        // after or at an ASCII byte starts a character, so both are boundaries of `text`.
        let written = unsafe { self.text.get_unchecked(start..index) };
        Some((written, escaped))
    }

    /// Reads a string, borrowed from the text where it holds no escape.
    pub fn string(&mut self) -> Option<Cow<'a, str>> {
        let (written, escaped) = self.written_string()?;
        decoded_string(written, escaped)
    }

    /// Reads a string or null.
    pub fn optional_string(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.take_null()? {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// Reads a number, checking its form; gives it as written.
    fn number(&mut self) -> Option<&'a str> {
        self.number_and_whether_whole().map(|(written, _)| written)
    }

    /// Reads a number, checking its form; gives it as written, and whether it is written as a
    /// whole number without sign (digits only).
    pub(crate) fn number_and_whether_whole(&mut self) -> Option<(&'a str, bool)> {
        self.skip_whitespace();
        let bytes = self.bytes();
        let start = self.at;
        let mut index = start;
        let digits_from = |mut index: usize| {
            while bytes.get(index).is_some_and(u8::is_ascii_digit) {
                index += 1;
            }
            index
        };
        let negative = bytes.get(index) == Some(&b'-');
        if negative {
            index += 1;
        }
        let mut integer = true;
        match bytes.get(index)? {
            b'0' => index += 1,
            b'1'..=b'9' => index = digits_from(index + 1),
            _ => return None,
        }
        if bytes.get(index) == Some(&b'.') {
            integer = false;
            let fraction_end = digits_from(index + 1);
            if fraction_end == index + 1 {
                return None;
            }
            index = fraction_end;
        }
        if let Some(b'e' | b'E') = bytes.get(index) {
            integer = false;
            index += 1;
            if let Some(b'+' | b'-') = bytes.get(index) {
                index += 1;
            }
            let exponent_end = digits_from(index);
            if exponent_end == index {
                return None;
            }
            index = exponent_end;
        }
        let written = &self.text[start..index];
        // serde_json refuses a number that overflows an f64; near the limits its rounding may
        // differ from Rust's, so anything beyond 1e±300 (but zero) is left to it.
        if !integer || written.len() > 20 {
            let magnitude = written.parse::<f64>().ok()?.abs();
            let written_zero = written.split(['e', 'E']).next().is_some_and(|mantissa| {
                mantissa
                    .bytes()
                    .all(|byte| matches!(byte, b'0' | b'.' | b'-'))
            });
            if !(magnitude < 1e300 && (magnitude > 1e-300 || written_zero)) {
                return None;
            }
        }
        self.at = index;
        Some((written, integer && !negative))
    }

    /// Reads a whole number from 0 to `u64::MAX` written without sign, fraction or exponent;
    /// `None` for any other value.
    pub fn whole_number(&mut self) -> Option<u64> {
        let (written, whole) = self.number_and_whether_whole()?;
        whole_number_of(written, whole)
    }

    /// Reads a whole number or null.
    pub fn optional_whole_number(&mut self) -> Option<Option<u64>> {
        if self.take_null()? {
            return Some(None);
        }
        self.whole_number().map(Some)
    }

    /// Takes the opening bracket of an object or array, `None` for anything else or when it
    /// would nest too deep.
    fn open(&mut self, bracket: u8) -> Option<()> {
        self.expect_byte(bracket)?;
        self.depth += 1;
        (self.depth <= DEEPEST_NESTING).then_some(())
    }

    /// Takes the closing bracket at the cursor (found by the caller): the container is read.
    fn close(&mut self) -> Option<()> {
        self.at += 1;
        self.depth -= 1;
        Some(())
    }

    /// Reads the object that comes next, calling `field` with the index in `names` of each
    /// key named there, to read its value; other keys' values are passed over. A key named
    /// twice, or one written with an escape, makes it `None`: serde's typed fields refuse the
    /// first, and the second may name a field under another spelling.
    pub fn object(
        &mut self,
        names: &[&str],
        mut field: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        debug_assert!(names.len() <= 32);
        self.open(b'{')?;
        let mut seen: u32 = 0;
        if self.peek_byte()? == b'}' {
            return self.close();
        }
        loop {
            let (key, escaped) = self.written_string()?;
            if escaped {
                return None;
            }
            self.expect_byte(b':')?;
            match names.iter().position(|name| *name == key) {
                Some(index) => {
                    if seen & (1 << index) != 0 {
                        return None;
                    }
                    seen |= 1 << index;
                    field(self, index)?;
                }
                None => self.skip()?,
            }
            match self.peek_byte()? {
                b',' => self.at += 1,
                b'}' => break,
                _ => return None,
            }
            // A key must follow a comma.
            if self.peek_byte()? != b'"' {
                return None;
            }
        }
        self.close()
    }

    /// Reads the array that comes next, calling `item` for each item with its index (to read
    /// it).
    pub fn array(&mut self, mut item: impl FnMut(&mut Self, usize) -> Option<()>) -> Option<()> {
        self.open(b'[')?;
        if self.peek_byte()? == b']' {
            return self.close();
        }
        let mut index = 0;
        loop {
            item(self, index)?;
            index += 1;
            match self.peek_byte()? {
                b',' => self.at += 1,
                b']' => break,
                _ => return None,
            }
        }
        self.close()
    }

    /// Passes over the next value, checking that it is JSON.
    pub fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            NextValue::Object => self.object(&[], |_, _| None),
            NextValue::Array => self.array(|cursor, _| cursor.skip()),
            NextValue::String => self.written_string().map(drop),
            NextValue::Number => self.number().map(drop),
            NextValue::True => self.literal("true"),
            NextValue::False => self.literal("false"),
            NextValue::Null => self.null(),
        }
    }
}

/// A string's text from its written form (as [`JsonCursor::written_string`] gives it):
/// borrowed when it holds no escape.
pub(crate) fn decoded_string(written: &str, escaped: bool) -> Option<Cow<'_, str>> {
    if !escaped {
        return Some(Cow::Borrowed(written));
    }
    let mut decoded = String::with_capacity(written.len());
    unescape_into(written, &mut decoded)?;
    Some(Cow::Owned(decoded))
}

/// A number as [`JsonCursor::number_and_whether_whole`] gives it, as a whole number from 0 to
/// `u64::MAX`; `None` for any other.
pub(crate) fn whole_number_of(written: &str, whole: bool) -> Option<u64> {
    if !whole {
        return None;
    }
    // Digits only: what is left to check is that they fit.
    written.bytes().try_fold(0_u64, |number, digit| {
        number.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// Where the next backslash is: looked for byte by byte in a short text (an answer in JSON
/// is a few dozen bytes with an escape every few, where `memchr`'s call for each cost more),
/// with `memchr` in a long one.
#[inline]
fn next_backslash(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < 64 {
        bytes.iter().position(|byte| *byte == b'\\')
    } else {
        memchr::memchr(b'\\', bytes)
    }
}

/// The four hex digits of a `\u` escape whose `u` is at `u`, as a UTF-16 unit.
fn utf16_unit(bytes: &[u8], u: usize) -> Option<u16> {
    let hex = bytes.get(u + 1..u + 5)?;
    if !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// Where the text goes on after the `\u` escape whose `u` is at `u`: after a second escape
/// too when the first is the leading half of a surrogate pair. A half without its other half
/// is `None`, as serde_json refuses it even in a value it passes over.
fn after_unicode_escape(bytes: &[u8], u: usize) -> Option<usize> {
    match utf16_unit(bytes, u)? {
        0xD800..=0xDBFF => {
            if bytes.get(u + 5..u + 7)? != b"\\u" {
                return None;
            }
            (0xDC00..=0xDFFF)
                .contains(&utf16_unit(bytes, u + 6)?)
                .then_some(u + 11)
        }
        0xDC00..=0xDFFF => None,
        _ => Some(u + 5),
    }
}

/// Appends the text of a string written with escapes (checked by the reader) to `decoded`;
/// `None` for an escape the reader would have refused (so never, after it).
fn unescape_into(written: &str, decoded: &mut String) -> Option<()> {
    let mut rest = written;
    while let Some(backslash) = next_backslash(rest.as_bytes()) {
        decoded.push_str(&rest[..backslash]);
        let escape = &rest[backslash + 1..];
        let (character, length) = match *escape.as_bytes().first()? {
            b'"' => ('"', 1),
            b'\\' => ('\\', 1),
            b'/' => ('/', 1),
            b'b' => ('\u{8}', 1),
            b'f' => ('\u{c}', 1),
            b'n' => ('\n', 1),
            b'r' => ('\r', 1),
            b't' => ('\t', 1),
            // `u`: the reader checked its digits, and that a surrogate half has its other half
            // right after it (`after_unicode_escape`).
            _ => {
                let length = after_unicode_escape(escape.as_bytes(), 0)?;
                let first = u32::from(utf16_unit(escape.as_bytes(), 0)?);
                let code = if length == 11 {
                    let second = u32::from(utf16_unit(escape.as_bytes(), 6)?);
                    0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                } else {
                    first
                };
                (char::from_u32(code)?, length)
            }
        };
        decoded.push(character);
        rest = &escape[length..];
    }
    decoded.push_str(rest);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skips(text: &str) -> bool {
        let mut cursor = JsonCursor::new(text);
        cursor.skip().is_some() && cursor.finish().is_some()
    }

    #[test]
    fn passes_over_what_serde_json_takes_and_refuses_what_it_refuses() {
        let texts = [
            r#"{}"#,
            r#"[]"#,
            r#" { "a" : [ 1 , -2.5e+3 , true , false , null , "x\"y" , { } ] } "#,
            r#"{"a":"\u00e9\ud83d\ude00\n\t\\\/"}"#,
            r#"0"#,
            r#"-0.0E-0"#,
            r#""中文""#,
            r#"{"a":1,}"#,
            r#"{"a":1"b":2}"#,
            r#"[1,]"#,
            r#"[,1]"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            r#"01"#,
            r#"1."#,
            r#".5"#,
            r#"1e"#,
            r#"-"#,
            r#"+1"#,
            r#""\x""#,
            r#""\u12""#,
            r#""\u12g4""#,
            r#"["\ud83d"]"#,
            r#"["\ude00"]"#,
            r#"["\ud83d\u0041"]"#,
            r#"["\ud83d\n"]"#,
            r#"["\ud83d\ude00"]"#,
            "\"a\u{1}b\"",
            r#""open"#,
            r#"nul"#,
            r#"truex"#,
            r#"{"a":[}"#,
            r#"[1] 2"#,
            r#"[1e400]"#,
            r#"[-1.5E+999]"#,
            r#"[123456789012345678901234567890]"#,
            r#"[0e999]"#,
            "",
            " ",
        ];
        for text in texts {
            let serde_takes = serde_json::from_str::<serde_json::Value>(text).is_ok();
            assert_eq!(skips(text), serde_takes, "{text:?}");
        }
    }

    #[test]
    fn strings_are_borrowed_without_escapes_and_decoded_as_serde_json_decodes_them() {
        for text in [
            r#""plain 中文 text""#,
            r#""{\"sentiment\":\"positive\"}""#,
            r#""\u00e9\ud83d\ude00\n\r\t\b\f\\\/ end""#,
            r#""\u4e2d\u6587""#,
            r#""""#,
            // Long enough that its escapes are looked for with `memchr`, and one at the edge.
            r#""a long summary, 中文 and all: \"first\", then\nsecond line \u00e9 and a last \\ end""#,
            r#""0123456789012345678901234567890123456789012345678901234567890\n""#,
        ] {
            let mut cursor = JsonCursor::new(text);
            let read = cursor.string().unwrap();
            assert_eq!(
                read,
                serde_json::from_str::<String>(text).unwrap(),
                "{text}"
            );
            assert_eq!(matches!(read, Cow::Borrowed(_)), !text.contains('\\'));
        }
        for lone_half in [r#""\ud83d""#, r#""\ude00""#, r#""\ud83d\u0041""#] {
            assert!(serde_json::from_str::<String>(lone_half).is_err());
            assert!(JsonCursor::new(lone_half).string().is_none(), "{lone_half}");
        }
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused() {
        let deep = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        assert!(skips(&deep(DEEPEST_NESTING as usize)));
        assert!(!skips(&deep(DEEPEST_NESTING as usize + 1)));
    }

    #[test]
    fn numbers_are_read_and_refused_as_serde_json_reads_them() {
        // A fixed xorshift sequence over texts of digits, signs, points and exponents, up to
        // 24 bytes: the same texts on every run.
        let mut state: u64 = 0x2f6b_1d3e_9a85_c407;
        let alphabet = b"0123456789000-.eE+";
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let length = 1 + (state % 24) as usize;
            let mut written = String::new();
            let mut bits = state;
            for place in 0..length {
                if place % 12 == 0 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    bits = state;
                }
                written.push(char::from(
                    alphabet[(bits % alphabet.len() as u64) as usize],
                ));
                bits /= alphabet.len() as u64;
            }
            let text = format!("[{written}]");
            let serde_value = serde_json::from_str::<serde_json::Value>(&text).ok();
            // Never looser than serde_json; stricter only past 1e±300, as the module says.
            match (skips(&text), serde_value.is_some()) {
                (true, false) => panic!("taken, yet serde_json refuses it: {text}"),
                (false, true) => {
                    let magnitude = written.parse::<f64>().map_or(0.0, f64::abs);
                    let mantissa = written.split(['e', 'E']).next().unwrap_or_default();
                    let beyond = magnitude >= 1e300
                        || (magnitude <= 1e-300
                            && mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b)));
                    assert!(beyond, "refused: {text}");
                }
                _ => {}
            }
            let whole = JsonCursor::new(&written).whole_number().filter(|_| {
                // Only the number itself, nothing after it.
                let mut cursor = JsonCursor::new(&written);
                cursor.whole_number().is_some() && cursor.finish().is_some()
            });
            let serde_whole = serde_value
                .as_ref()
                .and_then(|value| value[0].as_u64())
                .filter(|_| written.bytes().all(|byte| byte.is_ascii_digit()));
            assert_eq!(whole, serde_whole, "{text}");
        }
    }

    #[test]
    fn whole_numbers_are_only_digits_within_u64() {
        let read = |text: &str| JsonCursor::new(text).whole_number();
        assert_eq!(read("0"), Some(0));
        assert_eq!(read("18446744073709551615"), Some(u64::MAX));
        for refused in ["18446744073709551616", "-1", "-0", "1.0", "1e2", "\"1\""] {
            assert_eq!(read(refused), None, "{refused}");
        }
    }
}
