//! CSV records split from a byte stream in one pass: fields at the delimiter, quoted values
//! unquoted (a doubled quote inside is one quote; delimiters and line ends inside are text),
//! `\r`, `\n` or `\r\n` ending a record, blank lines skipped, a leading UTF-8 byte order mark
//! dropped, and the line each record starts on. The quoting a lenient reader would take
//! silently is refused with where it is: a quoted value still open at the end of the file
//! (every later line would become part of that one cell) and text after a closing quote
//! (`"He said "hi""`, which would become a mangled cell). A record is held whole before it is
//! handed out, so one that runs past [`MAX_RECORD_BYTES`] is refused where it starts: a quote
//! left open near the start of a huge file, or a file with no line ends, would otherwise be
//! gathered into memory whole before the end of the file told what is wrong.
//!
//! Inside a value only the delimiter, the line ends and the quote matter: the reader finds the
//! next of them with `memchr` and copies the bytes before it at once. The records are the csv
//! crate's for the same settings (`tests::records_are_the_csv_crates_wherever_the_quoting_is_sound`).

use std::io::Read;

/// What is wrong with the quoting, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CSV quoting problem in record {record}, line {line}, field {field}")]
pub struct QuoteProblem {
    pub kind: QuoteProblemKind,
    /// The record holding the problem: 0 is the first (the header, when there is one).
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
    /// A quoted value's closing quote is followed by more text before the next delimiter or
    /// line end.
    TextAfterClosingQuote,
    /// A record inside a quoted value runs past [`MAX_RECORD_BYTES`]: its quote is most likely
    /// never closed.
    QuotedPastLimit,
    /// A record without an open quote runs past [`MAX_RECORD_BYTES`] with no line end.
    RecordPastLimit,
}

/// The most bytes one record may hold: ten times the longest request line a provider takes
/// (DashScope's 6 MB, `provider.rs`), room for the columns kept beside the prompt. Only a
/// file that is not what it says (a quote never closed, no line ends) comes near it.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// What a record holds for where each of its fields ends.
const FIELD_END_BYTES: usize = std::mem::size_of::<usize>();

impl QuoteProblem {
    /// What to tell the user, without the location.
    pub fn advice(&self) -> String {
        let limit = crate::readable_number::readable_bytes(MAX_RECORD_BYTES as u64);
        match self.kind {
            QuoteProblemKind::NeverClosed => {
                "the quoted value that starts here is never closed, so every later line of the file would become part of this one cell; close the quote, and write a quote inside a quoted value as two quotes `\"\"`".to_owned()
            }
            QuoteProblemKind::TextAfterClosingQuote => {
                "text follows the closing quote of a quoted value; inside a quoted value write a quote as two quotes `\"\"` (e.g. `\"He said \"\"hi\"\"\"`)".to_owned()
            }
            QuoteProblemKind::QuotedPastLimit => format!(
                "the quoted value that starts here runs on past {limit}, so its quote is most likely never closed and the lines after it are being taken into this one cell; close the quote, and write a quote inside a quoted value as two quotes `\"\"`"
            ),
            QuoteProblemKind::RecordPastLimit => format!(
                "the row that starts here runs on past {limit} without a line end; check that the file is a CSV or TSV file with one row a line, and that `[input] delimiter` is right"
            ),
        }
    }
}

/// Why the next record could not be read.
#[derive(Debug)]
pub enum CsvReadError {
    /// The bytes could not be read (or decoded, for a stream that decodes).
    Io(std::io::Error),
    Quote(QuoteProblem),
}

/// One record: its fields' bytes end to end, where each field ends, and where it is.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CsvRecord {
    bytes: Vec<u8>,
    field_ends: Vec<usize>,
    index: u64,
    line: u64,
}

impl CsvRecord {
    /// A record of these fields (names made up for a file without a header row).
    pub fn of_fields<'a>(fields: impl IntoIterator<Item = &'a [u8]>) -> CsvRecord {
        let mut record = CsvRecord::default();
        for field in fields {
            record.bytes.extend_from_slice(field);
            record.field_ends.push(record.bytes.len());
        }
        record
    }

    /// The bytes of its fields, end to end.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// How many fields the record has.
    pub fn len(&self) -> usize {
        self.field_ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.field_ends.is_empty()
    }

    /// The fields' bytes, unquoted, in order.
    pub fn fields(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        let mut start = 0;
        self.field_ends.iter().map(move |&end| {
            let field = &self.bytes[start..end];
            start = end;
            field
        })
    }

    /// The fields as text, or the first field that is not UTF-8 (its index) and where in it
    /// the text stops being UTF-8. The record is checked as a whole, the fields one by one only
    /// when that fails (or a field's end splits a character).
    pub fn text_fields(
        &self,
    ) -> Result<impl ExactSizeIterator<Item = &str> + '_, (usize, std::str::Utf8Error)> {
        match crate::utf8_check::checked_utf8(&self.bytes) {
            Ok(text)
                if self
                    .field_ends
                    .iter()
                    .all(|&end| text.is_char_boundary(end)) =>
            {
                let mut start = 0;
                Ok(self.field_ends.iter().map(move |&end| {
                    let field = &text[start..end];
                    start = end;
                    field
                }))
            }
            _ => Err(self.first_field_not_utf8()),
        }
    }

    /// The first field that is not UTF-8; there is one when the whole record is not, or when
    /// a field's end falls inside a character.
    fn first_field_not_utf8(&self) -> (usize, std::str::Utf8Error) {
        self.fields()
            .enumerate()
            .find_map(|(index, field)| {
                crate::utf8_check::checked_utf8(field)
                    .err()
                    .map(|error| (index, error))
            })
            .expect("fields that are each UTF-8 make a record that is")
    }

    /// The record's place in the file: 0 is the first record (the header, when there is one).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The physical line (from 1) the record starts on.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Refuses `adding` more bytes when the record would then hold more than
    /// [`MAX_RECORD_BYTES`] of memory: its fields' bytes and where each ends (a row of many
    /// empty fields holds a place for each). Checked before each run of bytes is added, so a
    /// record holds no more than that and the few bytes added unchecked at a field's end (a
    /// doubled quote, the field's end): the error, of `kind`, names `line` and the field being
    /// read.
    fn refuse_growth_past_limit(
        &self,
        adding: usize,
        kind: QuoteProblemKind,
        line: u64,
    ) -> Result<(), CsvReadError> {
        let holds = self.bytes.len() + self.field_ends.len() * FIELD_END_BYTES;
        if holds.saturating_add(adding) <= MAX_RECORD_BYTES {
            return Ok(());
        }
        Err(CsvReadError::Quote(QuoteProblem {
            kind,
            record: self.index,
            line,
            field: self.len(),
        }))
    }

    fn end_field(&mut self) {
        self.field_ends.push(self.bytes.len());
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

/// Bytes read from the stream at a time (room for a byte order mark at least).
const BUFFER_BYTES: usize = 64 * 1024;
const _: () = assert!(BUFFER_BYTES >= BYTE_ORDER_MARK.len());

/// Splits the bytes of a CSV stream into [`CsvRecord`]s.
pub struct CsvRecordReader<R> {
    inner: R,
    buffer: Vec<u8>,
    /// The unread bytes are `buffer[start..end]`.
    start: usize,
    end: usize,
    input_ended: bool,
    byte_order_mark_checked: bool,
    delimiter: u8,
    /// The byte that quotes a field; `None`: fields are never quoted.
    quote: Option<u8>,
    /// The line of the next unread byte, from 1.
    line: u64,
    records_started: u64,
}

impl<R: Read> CsvRecordReader<R> {
    /// A reader of fields separated by `delimiter` and quoted by `quote`.
    pub fn new(inner: R, delimiter: u8, quote: Option<u8>) -> CsvRecordReader<R> {
        CsvRecordReader {
            inner,
            buffer: vec![0; BUFFER_BYTES],
            start: 0,
            end: 0,
            input_ended: false,
            byte_order_mark_checked: false,
            delimiter,
            quote,
            line: 1,
            records_started: 0,
        }
    }

    /// Reads the next record into `record` (its old fields are dropped); `Ok(false)` at the end
    /// of the input. After an error the input is over: nothing is read past a problem.
    pub fn read_record(&mut self, record: &mut CsvRecord) -> Result<bool, CsvReadError> {
        let outcome = self.read_record_until_error(record);
        if outcome.is_err() {
            self.input_ended = true;
            self.start = self.end;
        }
        outcome
    }

    fn read_record_until_error(&mut self, record: &mut CsvRecord) -> Result<bool, CsvReadError> {
        record.bytes.clear();
        record.field_ends.clear();
        if !self.byte_order_mark_checked {
            self.drop_byte_order_mark()?;
        }
        let delimiter = self.delimiter;
        let mut state = State::StartRecord;
        let mut opened_on_line = 0;
        loop {
            if self.start == self.end && !self.fill()? {
                return match state {
                    State::StartRecord => Ok(false),
                    State::InQuotedField => Err(CsvReadError::Quote(QuoteProblem {
                        kind: QuoteProblemKind::NeverClosed,
                        record: record.index,
                        line: opened_on_line,
                        field: record.len(),
                    })),
                    State::StartField | State::InField | State::QuoteInQuotedField => {
                        record.end_field();
                        Ok(true)
                    }
                };
            }
            let unread = &self.buffer[self.start..self.end];
            match (state, self.quote) {
                (State::StartRecord, _) => match unread[0] {
                    b'\n' => {
                        self.line += 1;
                        self.start += 1;
                    }
                    b'\r' => self.start += 1,
                    _ => {
                        record.index = self.records_started;
                        record.line = self.line;
                        self.records_started += 1;
                        state = State::StartField;
                    }
                },
                (State::StartField, Some(quote)) if unread[0] == quote => {
                    self.start += 1;
                    opened_on_line = self.line;
                    state = State::InQuotedField;
                }
                // A delimiter or line end here ends an empty field, as in a field.
                (State::StartField | State::InField, _) => {
                    match memchr::memchr3(delimiter, b'\n', b'\r', unread) {
                        Some(at) => {
                            record.refuse_growth_past_limit(
                                at + FIELD_END_BYTES,
                                QuoteProblemKind::RecordPastLimit,
                                record.line,
                            )?;
                            record.bytes.extend_from_slice(&unread[..at]);
                            let byte = unread[at];
                            self.start += at + 1;
                            record.end_field();
                            if byte == delimiter {
                                state = State::StartField;
                            } else {
                                if byte == b'\n' {
                                    self.line += 1;
                                }
                                return Ok(true);
                            }
                        }
                        None => {
                            record.refuse_growth_past_limit(
                                unread.len(),
                                QuoteProblemKind::RecordPastLimit,
                                record.line,
                            )?;
                            record.bytes.extend_from_slice(unread);
                            self.start = self.end;
                            state = State::InField;
                        }
                    }
                }
                (State::InQuotedField, Some(quote)) => {
                    let inside = match memchr::memchr(quote, unread) {
                        Some(at) => {
                            state = State::QuoteInQuotedField;
                            &unread[..at]
                        }
                        None => unread,
                    };
                    record.refuse_growth_past_limit(
                        inside.len(),
                        QuoteProblemKind::QuotedPastLimit,
                        opened_on_line,
                    )?;
                    self.line += memchr::memchr_iter(b'\n', inside).count() as u64;
                    record.bytes.extend_from_slice(inside);
                    self.start += inside.len() + usize::from(state == State::QuoteInQuotedField);
                }
                (State::QuoteInQuotedField, Some(quote)) => {
                    let byte = unread[0];
                    if byte == quote {
                        record.bytes.push(quote);
                        self.start += 1;
                        state = State::InQuotedField;
                    } else if byte == delimiter {
                        self.start += 1;
                        record.end_field();
                        state = State::StartField;
                    } else if byte == b'\n' || byte == b'\r' {
                        self.start += 1;
                        if byte == b'\n' {
                            self.line += 1;
                        }
                        record.end_field();
                        return Ok(true);
                    } else {
                        return Err(CsvReadError::Quote(QuoteProblem {
                            kind: QuoteProblemKind::TextAfterClosingQuote,
                            record: record.index,
                            line: self.line,
                            field: record.len(),
                        }));
                    }
                }
                (State::InQuotedField | State::QuoteInQuotedField, None) => {
                    unreachable!("a field is quoted only when there is a quote byte")
                }
            }
        }
    }

    /// Reads more bytes after the unread ones; `false` when the input has ended.
    fn fill(&mut self) -> Result<bool, CsvReadError> {
        if self.input_ended {
            return Ok(false);
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        // Bytes are left unread only by the byte-order mark's check, a few at the buffer's
        // start: there is always room to read into.
        debug_assert!(self.end < self.buffer.len());
        loop {
            match self.inner.read(&mut self.buffer[self.end..]) {
                Ok(0) => {
                    self.input_ended = true;
                    return Ok(false);
                }
                Ok(read) => {
                    self.end += read;
                    return Ok(true);
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(CsvReadError::Io(error)),
            }
        }
    }

    /// Drops a byte order mark at the very start of the input.
    fn drop_byte_order_mark(&mut self) -> Result<(), CsvReadError> {
        while self.end - self.start < BYTE_ORDER_MARK.len() && self.fill()? {}
        if self.buffer[self.start..self.end].starts_with(&BYTE_ORDER_MARK) {
            self.start += BYTE_ORDER_MARK.len();
        }
        self.byte_order_mark_checked = true;
        Ok(())
    }
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

    type Fields = Vec<Vec<u8>>;

    /// Every record (fields, index, line) or the quoting problem, read in chunks of several
    /// sizes; every chunking must give the same.
    fn read_with(
        bytes: &[u8],
        delimiter: u8,
        quote: Option<u8>,
    ) -> Result<Vec<(Fields, u64, u64)>, QuoteProblem> {
        let mut outcomes = Vec::new();
        for chunk in [1, 2, 3, 7, 4096] {
            let mut reader = CsvRecordReader::new(Trickle { bytes, chunk }, delimiter, quote);
            let mut record = CsvRecord::default();
            let mut records = Vec::new();
            let outcome = loop {
                match reader.read_record(&mut record) {
                    Ok(true) => records.push((
                        record.fields().map(<[u8]>::to_vec).collect(),
                        record.index(),
                        record.line(),
                    )),
                    Ok(false) => break Ok(records),
                    Err(CsvReadError::Quote(problem)) => break Err(problem),
                    Err(CsvReadError::Io(error)) => panic!("{error}"),
                }
            };
            outcomes.push(outcome);
        }
        assert!(outcomes.windows(2).all(|pair| pair[0] == pair[1]));
        outcomes.pop().unwrap()
    }

    fn read(bytes: &[u8]) -> Result<Vec<(Fields, u64, u64)>, QuoteProblem> {
        read_with(bytes, b',', Some(b'"'))
    }

    fn fields(records: &[(Fields, u64, u64)]) -> Vec<Vec<String>> {
        records
            .iter()
            .map(|(fields, _, _)| {
                fields
                    .iter()
                    .map(|field| String::from_utf8_lossy(field).into_owned())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn well_quoted_values_are_unquoted() {
        let records = read(b"id,text\n1,\"a, b\"\n2,\"line one\nline two\"\n").unwrap();
        assert_eq!(
            fields(&records),
            [
                vec!["id", "text"],
                vec!["1", "a, b"],
                vec!["2", "line one\nline two"]
            ]
        );
        let records = read(b"id,text\r\n1,\"say \"\"hi\"\"\"\r\n2,\"\"\"\"\r\n3,\"\"").unwrap();
        assert_eq!(
            fields(&records),
            [
                vec!["id", "text"],
                vec!["1", "say \"hi\""],
                vec!["2", "\""],
                vec!["3", ""]
            ]
        );
        let records = read(b"\xef\xbb\xbf\"id\",\"text\"\n\"1\",\"x\"").unwrap();
        assert_eq!(fields(&records), [vec!["id", "text"], vec!["1", "x"]]);
        let records = read(b"id,text\n1,he said \"hi\" here\n2,\n3,a,\n").unwrap();
        assert_eq!(
            fields(&records)[1..],
            [
                vec!["1", "he said \"hi\" here"],
                vec!["2", ""],
                vec!["3", "a", ""]
            ]
        );
        assert_eq!(read(b"").unwrap(), []);
        assert_eq!(read(b"\xef\xbb\xbf").unwrap(), []);
        assert_eq!(read(b"\n\r\n\r").unwrap(), []);
    }

    #[test]
    fn records_know_their_place_and_the_line_they_start_on() {
        let records = read(b"id,text\n1,\"a\nb\"\n\n\r\n2,c\r3,d").unwrap();
        let places: Vec<(u64, u64)> = records
            .iter()
            .map(|(_, index, line)| (*index, *line))
            .collect();
        assert_eq!(places, [(0, 1), (1, 2), (2, 6), (3, 6)]);
    }

    #[test]
    fn a_record_past_the_limit_is_refused_where_it_starts_before_the_file_ends() {
        /// The third record of `bytes` (after a header and a row): refused, and the record
        /// never held more than the limit.
        fn refused(bytes: Vec<u8>) -> QuoteProblem {
            let mut reader = CsvRecordReader::new(&bytes[..], b',', Some(b'"'));
            let mut record = CsvRecord::default();
            assert!(reader.read_record(&mut record).unwrap());
            assert!(reader.read_record(&mut record).unwrap());
            let Err(CsvReadError::Quote(problem)) = reader.read_record(&mut record) else {
                panic!("not refused");
            };
            assert!(record.bytes.len() <= MAX_RECORD_BYTES);
            // Room reserved past the bytes is never written, so never resident.
            assert!(record.bytes.capacity() <= 2 * MAX_RECORD_BYTES);
            problem
        }
        let cell = "x".repeat(1 << 20);
        let chunks = MAX_RECORD_BYTES / cell.len() + 2;
        // A quote opened on line 3, then more lines than the limit holds.
        let mut open_quote = b"id,text\n1,a\n2,\"opens\n".to_vec();
        for _ in 0..chunks {
            open_quote.extend_from_slice(cell.as_bytes());
            open_quote.push(b'\n');
        }
        assert_eq!(
            refused(open_quote),
            QuoteProblem {
                kind: QuoteProblemKind::QuotedPastLimit,
                record: 2,
                line: 3,
                field: 1
            }
        );
        // No line end at all, in one field or in many.
        let mut unquoted = b"id,text\n1,a\n2,".to_vec();
        unquoted.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES + 1));
        let mut fields = b"id,text\n1,a\n2,".to_vec();
        for _ in 0..chunks {
            fields.extend_from_slice(cell.as_bytes());
            fields.push(b',');
        }
        for bytes in [unquoted, fields] {
            let problem = refused(bytes);
            assert_eq!(problem.kind, QuoteProblemKind::RecordPastLimit);
            assert_eq!((problem.record, problem.line), (2, 3));
        }
        // Empty fields hold a place each: named where the row went past the limit.
        let mut empty_fields = b"id,text\n1,a\n".to_vec();
        empty_fields.resize(
            empty_fields.len() + MAX_RECORD_BYTES / FIELD_END_BYTES + 2,
            b',',
        );
        let problem = refused(empty_fields);
        assert_eq!(problem.kind, QuoteProblemKind::RecordPastLimit);
        assert_eq!(
            (problem.line, problem.field),
            (3, MAX_RECORD_BYTES / FIELD_END_BYTES)
        );
        // Just under the limit, a record is read.
        let mut under = b"id,text\n1,".to_vec();
        under.resize(under.len() + MAX_RECORD_BYTES - 64, b'y');
        let mut reader = CsvRecordReader::new(&under[..], b',', Some(b'"'));
        let mut record = CsvRecord::default();
        assert!(reader.read_record(&mut record).unwrap());
        assert!(reader.read_record(&mut record).unwrap());
        assert_eq!(record.fields().nth(1).unwrap().len(), MAX_RECORD_BYTES - 64);
        assert!(!reader.read_record(&mut record).unwrap());
    }

    #[test]
    fn a_quote_open_at_the_end_names_where_it_opened() {
        let problem =
            read(b"id,text\n1,a\n\n2,\"b\nc\"\n3,\"never closed\n4,d\n5,e\n").unwrap_err();
        assert_eq!(
            problem,
            QuoteProblem {
                kind: QuoteProblemKind::NeverClosed,
                record: 3,
                line: 6,
                field: 1,
            }
        );
        let in_header = read(b"id,\"text\n1,a\n").unwrap_err();
        assert_eq!((in_header.record, in_header.line), (0, 1));
    }

    #[test]
    fn text_after_a_closing_quote_names_where_it_is() {
        let problem = read(b"id,text\n1,\"a\"\n2,\"b\nc\" and more\n").unwrap_err();
        assert_eq!(
            problem,
            QuoteProblem {
                kind: QuoteProblemKind::TextAfterClosingQuote,
                record: 2,
                line: 4,
                field: 1,
            }
        );
    }

    #[test]
    fn text_fields_are_checked_together_and_a_bad_one_is_named() {
        let record = CsvRecord::of_fields(["id".as_bytes(), "好评".as_bytes(), b""]);
        let fields: Vec<&str> = record.text_fields().unwrap().collect();
        assert_eq!(fields, ["id", "好评", ""]);
        // Each field cut inside a character, though the bytes together are UTF-8.
        let split = "好".as_bytes();
        let record = CsvRecord::of_fields([&split[..1], &split[1..]]);
        let (field, error) = record.text_fields().err().unwrap();
        assert_eq!((field, error.valid_up_to()), (0, 0));
        let record = CsvRecord::of_fields([&b"ok"[..], b"fine", b"bad \xff"]);
        let (field, error) = record.text_fields().err().unwrap();
        assert_eq!((field, error.valid_up_to()), (2, 4));
    }

    #[test]
    fn nothing_is_read_past_a_problem() {
        let bytes = b"id,x\n1,\"a\"b,c\n2,d\n";
        let mut reader = CsvRecordReader::new(&bytes[..], b',', Some(b'"'));
        let mut record = CsvRecord::default();
        assert!(reader.read_record(&mut record).unwrap());
        assert!(matches!(
            reader.read_record(&mut record),
            Err(CsvReadError::Quote(_))
        ));
        assert!(!reader.read_record(&mut record).unwrap());
    }

    #[test]
    fn without_quoting_a_quote_is_text_and_opens_nothing() {
        let records = read_with(b"id\ttext\n1\t\"a\n2\tb\"c\n", b'\t', None).unwrap();
        assert_eq!(
            fields(&records),
            [vec!["id", "text"], vec!["1", "\"a"], vec!["2", "b\"c"]]
        );
        let records = read_with(b"id,text\n1,'a\n2'\n", b',', Some(b'\'')).unwrap();
        assert_eq!(fields(&records), [vec!["id", "text"], vec!["1", "a\n2"]]);
    }

    /// A small random generator (splitmix64), so the test needs no crate and repeats itself.
    fn next_random(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = *state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    #[test]
    fn records_are_the_csv_crates_wherever_the_quoting_is_sound() {
        let alphabet: [&[u8]; 11] = [
            b"a",
            b"b",
            b",",
            b"\"",
            b"\n",
            b"\r",
            b" ",
            "好".as_bytes(),
            b"\t",
            &BYTE_ORDER_MARK,
            b"\xef",
        ];
        let mut state = 7;
        let mut compared = 0;
        for _ in 0..20_000 {
            let length = (next_random(&mut state) % 24) as usize;
            let mut bytes = Vec::new();
            for _ in 0..length {
                let pick = next_random(&mut state) as usize % alphabet.len();
                bytes.extend_from_slice(alphabet[pick]);
            }
            for (delimiter, quote) in [(b',', Some(b'"')), (b'\t', None)] {
                let mut builder = csv::ReaderBuilder::new();
                builder
                    .has_headers(false)
                    .flexible(true)
                    .delimiter(delimiter);
                match quote {
                    Some(quote) => builder.quote(quote),
                    None => builder.quoting(false),
                };
                let theirs: Vec<Vec<Vec<u8>>> = builder
                    .from_reader(&bytes[..])
                    .byte_records()
                    .map(|record| record.unwrap().iter().map(<[u8]>::to_vec).collect())
                    .collect();
                match read_with(&bytes, delimiter, quote) {
                    Ok(ours) => {
                        let ours: Vec<Fields> = ours.into_iter().map(|(f, _, _)| f).collect();
                        assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(&bytes));
                        compared += 1;
                    }
                    // Refused where the csv crate reads on: only for quoting, and only from
                    // the record with the problem on (the ones before it were the crate's).
                    Err(problem) => {
                        assert!(quote.is_some(), "{problem:?}");
                        let mut reader = CsvRecordReader::new(&bytes[..], delimiter, quote);
                        let mut record = CsvRecord::default();
                        for (index, their_fields) in theirs.iter().enumerate() {
                            if index as u64 == problem.record {
                                break;
                            }
                            assert!(reader.read_record(&mut record).unwrap());
                            let our_fields: Fields = record.fields().map(<[u8]>::to_vec).collect();
                            assert_eq!(&our_fields, their_fields);
                        }
                        assert!(reader.read_record(&mut record).is_err());
                        assert!(!reader.read_record(&mut record).unwrap(), "nothing after");
                    }
                }
            }
        }
        assert!(compared > 30_000, "{compared}");
    }
}
