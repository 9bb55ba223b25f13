//! The text of a CSV or JSON Lines input as UTF-8, streamed, whatever it was written in: gzip'd or not (by the `.gz` extension), in UTF-8, UTF-16 or a legacy encoding such as GBK/GB18030, Big5 or Shift_JIS, found from a byte-order mark, from being valid UTF-8, or by `chardetng`'s guess, unless the job names it (`[input] encoding`, any WHATWG label).
//!
//! Decoding is strict: a byte sequence the encoding does not allow is an error naming its line
//! and byte, never a silent U+FFFD in a prompt that is then paid for.

use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::path::Path;

use encoding_rs::{Decoder, DecoderResult, Encoding, UTF_8};

use super::TableError;

/// How many bytes the start of a file is looked at to find its encoding and delimiter.
const SAMPLE_BYTES: usize = 64 * 1024;

/// How the encoding of an input was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodingFound {
    /// `[input] encoding` named it.
    Named,
    /// The file starts with its byte-order mark.
    ByteOrderMark,
    /// The start of the file is valid UTF-8.
    ValidUtf8,
    /// Not UTF-8: `chardetng` guessed a Chinese, Japanese or Korean encoding from the start.
    Guessed,
    /// Neither valid UTF-8 nor a recognisable CJK encoding: read as UTF-8, so that the first bad
    /// byte is reported where it is (a guess at a single-byte encoding would turn a damaged
    /// UTF-8 file into wrong text without a word).
    AssumedUtf8,
}

/// The encoding an input is read in, and how it was chosen; `validate` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextEncoding {
    pub encoding: &'static Encoding,
    pub found: EncodingFound,
}

impl std::fmt::Display for TextEncoding {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match self.found {
            EncodingFound::Named => "named by `[input] encoding`",
            EncodingFound::ByteOrderMark => "from its byte-order mark",
            EncodingFound::ValidUtf8 => "the file is valid UTF-8",
            EncodingFound::Guessed => {
                "guessed from the start of the file; name it with `[input] encoding` if the text looks wrong"
            }
            EncodingFound::AssumedUtf8 => {
                "assumed: the file is neither valid UTF-8 nor in a recognisable Chinese, Japanese or Korean encoding; name its encoding with `[input] encoding`"
            }
        };
        write!(formatter, "{} ({how})", self.encoding.name())
    }
}

/// The encoding `label` names (a WHATWG label: `gbk`, `gb18030`, `utf-16le`, `big5`,
/// `shift_jis`, ...), or `None` for an unknown label.
#[must_use]
pub fn encoding_for_label(label: &str) -> Option<&'static Encoding> {
    Encoding::for_label(label.trim().as_bytes())
}

/// Whether `path` is gzip-compressed by its name (`.gz`, any case).
#[must_use]
pub fn is_gzip(path: &Path) -> bool {
    path.extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("gz"))
}

/// An input opened as text: a stream of UTF-8, the encoding it was decoded from, and its first
/// decoded bytes, which the stream starts with again (for sniffing a delimiter).
pub struct OpenedText {
    pub stream: Box<dyn Read + Send>,
    pub encoding: TextEncoding,
    pub sample: Vec<u8>,
}

/// The input at `path` as text (see [`OpenedText`]).
///
/// # Errors
/// When the file cannot be opened or its start cannot be read (not gzip when named `.gz`, or
/// invalid in the named encoding).
pub fn open_text(path: &Path, named: Option<&'static Encoding>) -> Result<OpenedText, TableError> {
    let file = File::open(path)
        .map_err(|error| TableError::new(path, None, format!("cannot open the file: {error}")))?;
    let mut raw: Box<dyn Read + Send> = if is_gzip(path) {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(file)
    };
    let sample = read_up_to(&mut raw, SAMPLE_BYTES).map_err(|error| {
        TableError::new(
            path,
            None,
            format!(
                "cannot read the file: {error}{}",
                if is_gzip(path) {
                    "; a `.gz` input must be gzip-compressed"
                } else {
                    ""
                }
            ),
        )
    })?;
    let encoding = choose_encoding(&sample, named);
    let whole: Box<dyn Read + Send> = Box::new(Cursor::new(sample).chain(raw));
    let mut decoded: Box<dyn Read + Send> = if encoding.encoding == UTF_8 {
        // UTF-8 is read as it is: the readers check it and name a bad byte's row and column.
        whole
    } else {
        Box::new(StrictDecoder::new(whole, encoding.encoding))
    };
    let decoded_sample = read_up_to(&mut decoded, SAMPLE_BYTES)
        .map_err(|error| TableError::new(path, None, error.to_string()))?;
    let stream: Box<dyn Read + Send> = Box::new(Cursor::new(decoded_sample.clone()).chain(decoded));
    Ok(OpenedText {
        stream,
        encoding,
        sample: decoded_sample,
    })
}

/// Reads until `limit` bytes or the end of the stream.
fn read_up_to(reader: &mut dyn Read, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(limit.min(1 << 16));
    reader.take(limit as u64).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The encoding of a file that starts with `sample`: the named one, else its byte-order mark,
/// else UTF-8 when the sample is valid UTF-8 (a sequence cut at the sample's end allowed), else
/// `chardetng`'s guess.
fn choose_encoding(sample: &[u8], named: Option<&'static Encoding>) -> TextEncoding {
    if let Some(encoding) = named {
        return TextEncoding {
            encoding,
            found: EncodingFound::Named,
        };
    }
    if let Some((encoding, _)) = Encoding::for_bom(sample) {
        return TextEncoding {
            encoding,
            found: EncodingFound::ByteOrderMark,
        };
    }
    let valid_utf8 = match std::str::from_utf8(sample) {
        Ok(_) => true,
        // Only a sequence cut off by the end of the sample.
        Err(error) => error.error_len().is_none(),
    };
    if valid_utf8 {
        return TextEncoding {
            encoding: UTF_8,
            found: EncodingFound::ValidUtf8,
        };
    }
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(sample, sample.len() < SAMPLE_BYTES);
    let guess = detector.guess(None, false);
    let multi_byte_cjk = [
        encoding_rs::GBK,
        encoding_rs::GB18030,
        encoding_rs::BIG5,
        encoding_rs::SHIFT_JIS,
        encoding_rs::EUC_JP,
        encoding_rs::EUC_KR,
        encoding_rs::ISO_2022_JP,
    ];
    if multi_byte_cjk.contains(&guess) {
        TextEncoding {
            // GBK files are read as GB18030, its superset (WHATWG decodes both the same way),
            // and said so.
            encoding: if guess == encoding_rs::GBK {
                encoding_rs::GB18030
            } else {
                guess
            },
            found: EncodingFound::Guessed,
        }
    } else {
        TextEncoding {
            encoding: UTF_8,
            found: EncodingFound::AssumedUtf8,
        }
    }
}

/// Decodes a stream into UTF-8, failing at the first byte sequence the encoding does not allow
/// with the line and byte where it is. A byte-order mark is removed.
struct StrictDecoder<R> {
    inner: R,
    decoder: Decoder,
    encoding: &'static Encoding,
    input: Vec<u8>,
    input_start: usize,
    input_end: usize,
    input_ended: bool,
    output: Vec<u8>,
    output_start: usize,
    finished: bool,
    /// Input bytes handed to the decoder so far.
    bytes_decoded: u64,
    /// Line breaks decoded so far.
    line_breaks: u64,
}

impl<R: Read> StrictDecoder<R> {
    fn new(inner: R, encoding: &'static Encoding) -> StrictDecoder<R> {
        StrictDecoder {
            inner,
            decoder: encoding.new_decoder_with_bom_removal(),
            encoding,
            input: vec![0; 1 << 16],
            input_start: 0,
            input_end: 0,
            input_ended: false,
            output: Vec::new(),
            output_start: 0,
            finished: false,
            bytes_decoded: 0,
            line_breaks: 0,
        }
    }
}

impl<R: Read> Read for StrictDecoder<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.output_start < self.output.len() {
                let count = buffer.len().min(self.output.len() - self.output_start);
                buffer[..count]
                    .copy_from_slice(&self.output[self.output_start..self.output_start + count]);
                self.output_start += count;
                return Ok(count);
            }
            if self.finished {
                return Ok(0);
            }
            if self.input_start == self.input_end && !self.input_ended {
                let read = self.inner.read(&mut self.input)?;
                self.input_start = 0;
                self.input_end = read;
                self.input_ended = read == 0;
            }
            let pending = &self.input[self.input_start..self.input_end];
            let capacity = self
                .decoder
                .max_utf8_buffer_length_without_replacement(pending.len())
                .unwrap_or(1 << 18)
                .max(64);
            self.output.clear();
            self.output.resize(capacity, 0);
            let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                pending,
                &mut self.output,
                self.input_ended,
            );
            self.output.truncate(written);
            self.output_start = 0;
            self.input_start += read;
            self.bytes_decoded += read as u64;
            match result {
                DecoderResult::InputEmpty => self.finished = self.input_ended,
                DecoderResult::OutputFull => {}
                DecoderResult::Malformed(bad, after) => {
                    self.line_breaks +=
                        self.output.iter().filter(|byte| **byte == b'\n').count() as u64;
                    let offset = self.bytes_decoded - u64::from(bad) - u64::from(after);
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "line {}, byte {offset} of the file is not valid {} ({} byte(s) that encoding does not allow); name the file's encoding with `[input] encoding` (for example \"gb18030\", \"utf-16le\", \"big5\")",
                            self.line_breaks + 1,
                            self.encoding.name(),
                            bad
                        ),
                    ));
                }
            }
            self.line_breaks += self.output.iter().filter(|byte| **byte == b'\n').count() as u64;
        }
    }
}

/// The field delimiter of a CSV whose decoded start is `sample`: the one of `,` `;` tab `|` that
/// splits the first lines (at most 50, outside quotes) into the same number of fields, the most
/// fields winning; `,` when none does.
#[must_use]
pub fn sniff_delimiter(sample: &[u8]) -> u8 {
    const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];
    // Only whole lines: the sample may end in the middle of one.
    let whole = match sample.iter().rposition(|byte| *byte == b'\n') {
        Some(last) if sample.len() == SAMPLE_BYTES => &sample[..last],
        _ => sample,
    };
    let mut best: Option<(u8, usize)> = None;
    for candidate in CANDIDATES {
        let counts = counts_per_line(whole, candidate, 50);
        let Some(first) = counts.first().copied() else {
            continue;
        };
        if first == 0 || counts.iter().any(|count| *count != first) {
            continue;
        }
        if best.is_none_or(|(_, most)| first > most) {
            best = Some((candidate, first));
        }
    }
    best.map_or(b',', |(delimiter, _)| delimiter)
}

/// How many times `delimiter` occurs outside double quotes on each of the first `lines` records.
fn counts_per_line(text: &[u8], delimiter: u8, lines: usize) -> Vec<usize> {
    let mut counts = Vec::new();
    let mut in_quotes = false;
    let mut count = 0;
    let mut line_has_content = false;
    for byte in text {
        match byte {
            b'"' => in_quotes = !in_quotes,
            b'\n' if !in_quotes => {
                if line_has_content {
                    counts.push(count);
                    if counts.len() == lines {
                        return counts;
                    }
                }
                count = 0;
                line_has_content = false;
                continue;
            }
            byte if *byte == delimiter && !in_quotes => count += 1,
            _ => {}
        }
        if *byte != b'\r' {
            line_has_content = true;
        }
    }
    if line_has_content {
        counts.push(count);
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8], encoding: &'static Encoding) -> std::io::Result<String> {
        let mut text = String::new();
        StrictDecoder::new(bytes, encoding).read_to_string(&mut text)?;
        Ok(text)
    }

    #[test]
    fn encodings_are_found_by_mark_validity_and_guess() {
        let chinese = "编号,评论\n1,质量很好，物流很快\n2,包装破损，不太满意\n".repeat(20);
        let (gbk, _, _) = encoding_rs::GBK.encode(&chinese);
        assert_eq!(
            choose_encoding(chinese.as_bytes(), None).found,
            EncodingFound::ValidUtf8
        );
        let guessed = choose_encoding(&gbk, None);
        assert_eq!(guessed.found, EncodingFound::Guessed);
        assert_eq!(
            guessed.encoding,
            encoding_rs::GB18030,
            "{}",
            guessed.encoding.name()
        );
        let mut utf16 = vec![0xFF, 0xFE];
        for unit in "id,text\n".encode_utf16() {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        let marked = choose_encoding(&utf16, None);
        assert_eq!(marked.encoding, encoding_rs::UTF_16LE);
        assert_eq!(
            decode_all(&utf16, encoding_rs::UTF_16LE).unwrap(),
            "id,text\n"
        );
        assert_eq!(
            choose_encoding(b"abc", encoding_for_label("GB18030")).encoding,
            encoding_rs::GB18030
        );
        assert!(encoding_for_label("no-such-encoding").is_none());
        // Damaged UTF-8 is not taken for a single-byte encoding.
        let damaged = b"id,text\n1,caf\xc3\xa9 ok\n2,bad \xff byte\n";
        assert_eq!(
            choose_encoding(damaged, None).found,
            EncodingFound::AssumedUtf8
        );
        assert_eq!(choose_encoding(damaged, None).encoding, UTF_8);
        // A multi-byte sequence cut by the end of the sample is still UTF-8.
        let cut = &"好".as_bytes()[..2];
        assert_eq!(choose_encoding(cut, None).found, EncodingFound::ValidUtf8);
    }

    #[test]
    fn decoding_is_strict_and_names_the_line_and_byte() {
        let chinese = "1,好\n2,坏\n";
        let (gbk, _, _) = encoding_rs::GBK.encode(chinese);
        assert_eq!(decode_all(&gbk, encoding_rs::GBK).unwrap(), chinese);
        // 0x80 alone is not a GBK character.
        let mut bad = gbk.to_vec();
        bad.extend_from_slice(b"3,\x81\x20\n");
        let error = decode_all(&bad, encoding_rs::GBK).unwrap_err().to_string();
        assert!(error.contains("line 3"), "{error}");
        assert!(
            error.contains(&format!("byte {}", gbk.len() + 2)),
            "{error}"
        );
        assert!(error.contains("`[input] encoding`"), "{error}");
        // Large inputs decode across buffer boundaries unchanged.
        let long = "评论内容，".repeat(50_000);
        let (long_gbk, _, _) = encoding_rs::GB18030.encode(&long);
        assert_eq!(decode_all(&long_gbk, encoding_rs::GB18030).unwrap(), long);
    }

    #[test]
    fn delimiters_are_sniffed_from_consistent_lines() {
        assert_eq!(sniff_delimiter(b"a,b,c\n1,2,3\n"), b',');
        assert_eq!(sniff_delimiter(b"a;b;c\n1;2,5;3\n"), b';');
        assert_eq!(sniff_delimiter(b"a\tb\n1\t\"x,y\"\n"), b'\t');
        assert_eq!(sniff_delimiter(b"a|b\n1|2\n"), b'|');
        assert_eq!(sniff_delimiter(b"text\nhello, world\n"), b',');
        assert_eq!(sniff_delimiter(b"a;b\n\"x;y\";z\n"), b';');
        assert_eq!(sniff_delimiter(b""), b',');
    }
}
