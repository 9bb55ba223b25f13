//! The lines of a text stream, each at most a given length: a line that runs on past it is an
//! error where it starts, before it is held in memory whole. A JSON Lines input that is one
//! huge line (a JSON array saved as `.jsonl`, say) is refused at the limit instead of being
//! read into one string the size of the file.

use std::io::{BufRead, Read};

/// The lines of `reader` as [`BufRead::lines`] gives them (without `\n` or `\r\n`), each of at
/// most `limit` bytes.
pub struct BoundedLines<R> {
    reader: R,
    limit: usize,
    /// The stream ended, or a line was refused: nothing more is read.
    ended: bool,
}

/// What a line past the limit is told as: `InvalidData`, with this text.
pub const LINE_PAST_LIMIT: &str = "the line runs on past the longest line dashbatch reads";

impl<R: BufRead> BoundedLines<R> {
    pub fn new(reader: R, limit: usize) -> BoundedLines<R> {
        BoundedLines {
            reader,
            limit,
            ended: false,
        }
    }
}

impl<R: BufRead> Iterator for BoundedLines<R> {
    type Item = std::io::Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        let mut bytes = Vec::new();
        // One byte past the limit (and its line end) tells a line that is too long.
        let most = self.limit as u64 + 2;
        let read = match (&mut self.reader).take(most).read_until(b'\n', &mut bytes) {
            Ok(read) => read,
            Err(error) => {
                self.ended = true;
                return Some(Err(error));
            }
        };
        if read == 0 {
            self.ended = true;
            return None;
        }
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        if bytes.len() > self.limit {
            self.ended = true;
            return Some(Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                LINE_PAST_LIMIT,
            )));
        }
        Some(String::from_utf8(bytes).map_err(|_| {
            self.ended = true;
            // As `BufRead::lines` says it, which the readers tell apart from a decoder's error.
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[u8], limit: usize) -> Vec<Result<String, String>> {
        BoundedLines::new(text, limit)
            .map(|line| line.map_err(|error| error.to_string()))
            .collect()
    }

    #[test]
    fn lines_come_as_the_standard_library_gives_them_up_to_the_limit() {
        for text in [
            &b"a\nbb\r\n\nccc"[..],
            b"",
            b"\n",
            b"one\r\ntwo\r\n",
            b"x\ry\n",
            "\u{feff}{\"a\":1}\n".as_bytes(),
        ] {
            let expected: Vec<Result<String, String>> = text
                .lines()
                .map(|line| line.map_err(|error| error.to_string()))
                .collect();
            assert_eq!(lines(text, 16), expected, "{text:?}");
        }
        assert_eq!(lines(b"12345678\n", 8), [Ok("12345678".to_owned())]);
        assert_eq!(
            lines(b"12345678\r\n9", 8),
            [Ok("12345678".to_owned()), Ok("9".to_owned())]
        );
    }

    #[test]
    fn a_line_past_the_limit_is_refused_and_nothing_is_read_after_it() {
        let refused =
            Err(std::io::Error::new(std::io::ErrorKind::InvalidData, LINE_PAST_LIMIT).to_string());
        assert_eq!(
            lines(b"ok\n123456789\nnever read\n", 8),
            [Ok("ok".to_owned()), refused.clone()]
        );
        // With no line end at all, the line is not read past the limit.
        let huge = vec![b'['; 1 << 20];
        let mut reader = BoundedLines::new(&huge[..], 1000);
        assert_eq!(
            reader
                .next()
                .map(|line| line.map_err(|error| error.to_string())),
            Some(refused)
        );
        assert!(reader.next().is_none());
        let mut bad = BoundedLines::new(&b"\xff\nok\n"[..], 8);
        let error = bad.next().unwrap().unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
        assert!(bad.next().is_none());
    }
}
