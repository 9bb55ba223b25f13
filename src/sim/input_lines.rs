//! Reading the request lines of a JSONL input file as a stream, one line at a time.
//!
//! Blank lines are skipped (they are not requests). Each request line gets a 0-based `index`
//! among request lines, its 1-based physical `line_number` (what `errors.data[].line` reports) and
//! its byte offset, so a later pass can seek straight to a block of lines.

use std::io::{self, BufRead, Seek, SeekFrom};

/// One non-blank line of an input file, without its line ending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InputLine {
    pub(crate) index: u64,
    pub(crate) line_number: u64,
    pub(crate) byte_offset: u64,
    pub(crate) bytes: Vec<u8>,
}

/// Something that can be read as lines and seeked (a file on disk or bytes in memory).
pub(crate) trait LineSource: BufRead + Seek + Send {}

impl<T: BufRead + Seek + Send> LineSource for T {}

/// Visits every request line in file order. Stops at the first error of the visitor.
pub(crate) fn scan_request_lines<Visitor>(
    source: &mut dyn LineSource,
    mut visit: Visitor,
) -> io::Result<()>
where
    Visitor: FnMut(InputLine) -> io::Result<()>,
{
    source.seek(SeekFrom::Start(0))?;
    let mut reader = RequestLineReader::new(source, 0, 0, 0);
    while let Some(line) = reader.next_line()? {
        visit(line)?;
    }
    Ok(())
}

/// Reads request lines from a byte offset on, for reading one block of a file.
pub(crate) struct RequestLineReader<'source> {
    source: &'source mut dyn LineSource,
    next_index: u64,
    next_line_number: u64,
    offset: u64,
    buffer: Vec<u8>,
}

impl<'source> RequestLineReader<'source> {
    /// `source` must already be positioned at `offset`, the start of a physical line whose
    /// request index (if it is not blank) is `first_index`.
    pub(crate) fn new(
        source: &'source mut dyn LineSource,
        offset: u64,
        first_index: u64,
        first_line_number: u64,
    ) -> RequestLineReader<'source> {
        RequestLineReader {
            source,
            next_index: first_index,
            next_line_number: first_line_number,
            offset,
            buffer: Vec::new(),
        }
    }

    /// Positions `source` at `offset` and reads from there.
    pub(crate) fn starting_at(
        source: &'source mut dyn LineSource,
        offset: u64,
        first_index: u64,
    ) -> io::Result<RequestLineReader<'source>> {
        source.seek(SeekFrom::Start(offset))?;
        Ok(RequestLineReader::new(source, offset, first_index, 0))
    }

    pub(crate) fn next_line(&mut self) -> io::Result<Option<InputLine>> {
        loop {
            self.buffer.clear();
            let read = self.source.read_until(b'\n', &mut self.buffer)?;
            if read == 0 {
                return Ok(None);
            }
            let byte_offset = self.offset;
            self.offset += read as u64;
            self.next_line_number += 1;
            let mut content: &[u8] = &self.buffer;
            while let Some((last, rest)) = content.split_last()
                && (*last == b'\n' || *last == b'\r')
            {
                content = rest;
            }
            if content.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let line = InputLine {
                index: self.next_index,
                line_number: self.next_line_number,
                byte_offset,
                bytes: content.to_vec(),
            };
            self.next_index += 1;
            return Ok(Some(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn blank_lines_are_skipped_but_counted_as_physical_lines() {
        let mut source = Cursor::new(b"{\"a\":1}\r\n\n  \n{\"b\":2}\n{\"c\":3}".to_vec());
        let mut lines = Vec::new();
        scan_request_lines(&mut source, |line| {
            lines.push(line);
            Ok(())
        })
        .unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].bytes, b"{\"a\":1}");
        assert_eq!(
            (lines[1].index, lines[1].line_number, lines[1].byte_offset),
            (1, 4, 13)
        );
        assert_eq!(lines[2].bytes, b"{\"c\":3}");
        let mut reader = RequestLineReader::starting_at(&mut source, 13, 1).unwrap();
        assert_eq!(reader.next_line().unwrap().unwrap().bytes, b"{\"b\":2}");
        assert_eq!(reader.next_line().unwrap().unwrap().index, 2);
        assert!(reader.next_line().unwrap().is_none());
    }
}
