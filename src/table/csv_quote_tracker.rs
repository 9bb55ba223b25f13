//! Watches the bytes of a CSV file as the csv crate reads them, and stops at quoting the crate
//! accepts silently: a quoted value still open at the end of the file (every later line would
//! become part of that one cell) and text after a closing quote (`"He said "hi""`, which the
//! crate turns into a mangled cell).
//!
//! The tracker mirrors csv-core's parser for the settings `CsvBatchReader` uses (`,` delimiter,
//! `"` quote, doubled quotes as escapes, `\r`, `\n` or `\r\n` record ends, blank lines skipped,
//! a leading UTF-8 byte order mark ignored), so its rows and columns are the crate's.

use std::collections::VecDeque;
use std::io::Read;

/// What is wrong with the quoting, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CSV quoting problem in record {record}, line {line}, field {field}")]
pub struct QuoteProblem {
    pub kind: QuoteProblemKind,
    /// The record holding the problem: 0 is the header, 1 the first data row.
    pub record: u64,
    /// The physical line (from 1) where the quote opened, or where the stray text is.
    pub line: u64,
    /// The field's index in its record (from 0).
    pub field: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteProblemKind {
    /// The file ends inside a quoted value.
    NeverClosed,
    /// A quoted value's closing quote is followed by more text before the next `,` or line end.
    TextAfterClosingQuote,
}

impl QuoteProblem {
    /// What to tell the user, without the location.
    pub fn advice(&self) -> &'static str {
        match self.kind {
            QuoteProblemKind::NeverClosed => {
                "the quoted value that starts here is never closed, so every later line of the file would become part of this one cell; close the quote, and write a quote inside a quoted value as two quotes `\"\"`"
            }
            QuoteProblemKind::TextAfterClosingQuote => {
                "text follows the closing quote of a quoted value; inside a quoted value write a quote as two quotes `\"\"` (e.g. `\"He said \"\"hi\"\"\"`)"
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    StartRecord,
    StartField,
    InField,
    InQuotedField,
    /// Just after a quote inside a quoted value: a closing quote, or the first of two.
    QuoteInQuotedField,
}

const BYTE_ORDER_MARK: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// A reader that passes bytes through unchanged up to the first [`QuoteProblem`], then fails
/// with it (an `io::Error` of kind `Other` wrapping it). The csv crate so reads every record
/// before the problem as usual, and gets the error while reading the record that has it.
/// It also notes the line each record starts on (csv's own positions count a skipped blank line
/// as the record's).
pub struct QuoteTrackingReader<R> {
    inner: R,
    /// The byte between fields (`,` unless the input says otherwise).
    delimiter: u8,
    /// The byte that quotes a field (`"` unless the input says otherwise); `None`: fields are
    /// never quoted.
    quote: Option<u8>,
    state: State,
    /// The line of the next byte, from 1.
    line: u64,
    records_started: u64,
    record: u64,
    field: usize,
    /// Where the quoted value now open started: (record, line, field).
    opened_at: (u64, u64, usize),
    /// Bytes of the file seen so far, up to the length of a byte order mark.
    bytes_seen: usize,
    problem: Option<QuoteProblem>,
    /// Start lines of the records seen but not yet taken by [`Self::next_record_line`].
    record_lines: VecDeque<u64>,
}

impl<R: Read> QuoteTrackingReader<R> {
    /// A tracker of fields separated by `delimiter` and quoted by `quote`.
    pub fn new(inner: R, delimiter: u8, quote: Option<u8>) -> QuoteTrackingReader<R> {
        QuoteTrackingReader {
            inner,
            delimiter,
            quote,
            state: State::StartRecord,
            line: 1,
            records_started: 0,
            record: 0,
            field: 0,
            opened_at: (0, 1, 0),
            bytes_seen: 0,
            problem: None,
            record_lines: VecDeque::new(),
        }
    }

    /// The line the next record (in file order, the header first) starts on. The tracker reads
    /// ahead of the csv crate by at most one buffer, so this queue stays short.
    pub fn next_record_line(&mut self) -> Option<u64> {
        self.record_lines.pop_front()
    }

    fn start_field(&mut self, byte: u8) {
        self.state = match byte {
            quote if Some(quote) == self.quote => {
                self.opened_at = (self.record, self.line, self.field);
                State::InQuotedField
            }
            delimiter if delimiter == self.delimiter => {
                self.field += 1;
                State::StartField
            }
            b'\n' | b'\r' => State::StartRecord,
            _ => State::InField,
        };
    }

    /// Follows `bytes`; `Err` has the offset of the byte with the problem.
    fn scan(&mut self, bytes: &[u8]) -> Result<(), (usize, QuoteProblem)> {
        let mut offset = 0;
        while offset < bytes.len() {
            // Inside a value only a few bytes matter: skip to the next one (memchr), counting
            // the lines a quoted value spans.
            if self.bytes_seen >= BYTE_ORDER_MARK.len() {
                let rest = &bytes[offset..];
                let skip = match (self.state, self.quote) {
                    (State::InField, _) => {
                        memchr::memchr3(self.delimiter, b'\n', b'\r', rest).unwrap_or(rest.len())
                    }
                    (State::InQuotedField, Some(quote)) => {
                        let skip = memchr::memchr(quote, rest).unwrap_or(rest.len());
                        self.line += memchr::memchr_iter(b'\n', &rest[..skip]).count() as u64;
                        skip
                    }
                    _ => 0,
                };
                offset += skip;
                if offset == bytes.len() {
                    break;
                }
            }
            let byte = bytes[offset];
            offset += 1;
            // csv-core drops a byte order mark at the very start of the file.
            if self.bytes_seen < BYTE_ORDER_MARK.len() {
                let position = self.bytes_seen;
                self.bytes_seen += 1;
                if byte == BYTE_ORDER_MARK[position] && self.state == State::StartRecord {
                    continue;
                }
                self.bytes_seen = BYTE_ORDER_MARK.len();
            }
            match self.state {
                State::StartRecord => {
                    if byte != b'\n' && byte != b'\r' {
                        self.record = self.records_started;
                        self.records_started += 1;
                        self.record_lines.push_back(self.line);
                        self.field = 0;
                        self.start_field(byte);
                    }
                }
                State::StartField => self.start_field(byte),
                State::InField => match byte {
                    delimiter if delimiter == self.delimiter => {
                        self.field += 1;
                        self.state = State::StartField;
                    }
                    b'\n' | b'\r' => self.state = State::StartRecord,
                    _ => {}
                },
                State::InQuotedField => {
                    if Some(byte) == self.quote {
                        self.state = State::QuoteInQuotedField;
                    }
                }
                State::QuoteInQuotedField => match byte {
                    quote if Some(quote) == self.quote => self.state = State::InQuotedField,
                    delimiter if delimiter == self.delimiter => {
                        self.field += 1;
                        self.state = State::StartField;
                    }
                    b'\n' | b'\r' => self.state = State::StartRecord,
                    _ => {
                        let problem = QuoteProblem {
                            kind: QuoteProblemKind::TextAfterClosingQuote,
                            record: self.record,
                            line: self.line,
                            field: self.field,
                        };
                        return Err((offset - 1, problem));
                    }
                },
            }
            if byte == b'\n' {
                self.line += 1;
            }
        }
        Ok(())
    }

    fn at_end_of_file(&self) -> Result<(), QuoteProblem> {
        if self.state == State::InQuotedField {
            let (record, line, field) = self.opened_at;
            return Err(QuoteProblem {
                kind: QuoteProblemKind::NeverClosed,
                record,
                line,
                field,
            });
        }
        Ok(())
    }
}

impl<R: Read> Read for QuoteTrackingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        if let Some(problem) = self.problem.clone() {
            return Err(std::io::Error::other(problem));
        }
        let read = self.inner.read(buffer)?;
        let checked = if read == 0 {
            self.at_end_of_file().map_err(|problem| (0, problem))
        } else {
            self.scan(&buffer[..read])
        };
        match checked {
            Ok(()) => Ok(read),
            Err((offset, problem)) => {
                self.problem = Some(problem.clone());
                if offset > 0 {
                    // Hand over the bytes before the problem; the next read fails.
                    Ok(offset)
                } else {
                    Err(std::io::Error::other(problem))
                }
            }
        }
    }
}

/// The quoting problem an I/O error from a [`QuoteTrackingReader`] carries, if any.
pub fn quote_problem_of(error: &std::io::Error) -> Option<&QuoteProblem> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<QuoteProblem>())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most `chunk` bytes per read, to cross every buffer boundary.
    struct Trickle<'a> {
        bytes: &'a [u8],
        chunk: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            let count = self.chunk.min(buffer.len()).min(self.bytes.len());
            buffer[..count].copy_from_slice(&self.bytes[..count]);
            self.bytes = &self.bytes[count..];
            Ok(count)
        }
    }

    fn check(bytes: &[u8]) -> Result<(), QuoteProblem> {
        let mut outcomes = Vec::new();
        for chunk in [1, 2, 3, 7, 4096] {
            let mut reader = QuoteTrackingReader::new(Trickle { bytes, chunk }, b',', Some(b'"'));
            let mut sink = Vec::new();
            let outcome = match reader.read_to_end(&mut sink) {
                Ok(_) => Ok(()),
                Err(error) => Err(quote_problem_of(&error).expect("a quote problem").clone()),
            };
            outcomes.push(outcome);
        }
        assert!(outcomes.windows(2).all(|pair| pair[0] == pair[1]));
        outcomes.pop().unwrap()
    }

    #[test]
    fn well_quoted_files_pass_through() {
        for bytes in [
            &b"id,text\n1,\"a, b\"\n2,\"line one\nline two\"\n"[..],
            b"id,text\r\n1,\"say \"\"hi\"\"\"\r\n2,\"\"\"\"\r\n",
            b"id,text\n1,\"no newline at the end\"",
            b"\xef\xbb\xbf\"id\",\"text\"\n\"1\",\"x\"\n",
            b"id,text\n1,he said \"hi\" here\n",
            b"",
        ] {
            assert_eq!(check(bytes), Ok(()), "{}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn a_quote_open_at_the_end_names_where_it_opened() {
        let problem =
            check(b"id,text\n1,a\n\n2,\"b\nc\"\n3,\"never closed\n4,d\n5,e\n").unwrap_err();
        assert_eq!(
            problem,
            QuoteProblem {
                kind: QuoteProblemKind::NeverClosed,
                record: 3,
                line: 6,
                field: 1,
            }
        );
        let in_header = check(b"id,\"text\n1,a\n").unwrap_err();
        assert_eq!((in_header.record, in_header.line), (0, 1));
    }

    #[test]
    fn without_quoting_a_quote_is_text_and_opens_nothing() {
        let mut reader = QuoteTrackingReader::new(&b"id\ttext\n1\t\"a\n2\tb\"c\n"[..], b'\t', None);
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        let lines: Vec<u64> = std::iter::from_fn(|| reader.next_record_line()).collect();
        assert_eq!(lines, [1, 2, 3]);
        let mut quoted = QuoteTrackingReader::new(&b"id,text\n1,'a\n2'\n"[..], b',', Some(b'\''));
        std::io::copy(&mut quoted, &mut std::io::sink()).unwrap();
        let lines: Vec<u64> = std::iter::from_fn(|| quoted.next_record_line()).collect();
        assert_eq!(lines, [1, 2]);
    }

    #[test]
    fn record_start_lines_skip_blank_lines() {
        let mut reader = QuoteTrackingReader::new(
            &b"\xef\xbb\xbfid,text\n1,\"a\nb\"\n\n\r\n2,c\r\n3,d"[..],
            b',',
            Some(b'"'),
        );
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        let lines: Vec<u64> = std::iter::from_fn(|| reader.next_record_line()).collect();
        assert_eq!(lines, [1, 2, 6, 7]);
    }

    #[test]
    fn text_after_a_closing_quote_is_found_where_it_is() {
        let problem = check(b"id,text,note\n1,\"ok\",x\n2,\"He said \"hi\"\",y\n").unwrap_err();
        assert_eq!(
            problem,
            QuoteProblem {
                kind: QuoteProblemKind::TextAfterClosingQuote,
                record: 2,
                line: 3,
                field: 1,
            }
        );
    }
}
