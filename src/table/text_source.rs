//! The text of a CSV or JSON Lines input as UTF-8, streamed, whatever it was written in: compressed or not (`.gz`, `.zst`, `.bz2`, `.xz`), in UTF-8, UTF-16 or a legacy encoding such as GBK/GB18030, Big5 or Shift_JIS, found from a byte-order mark, from being valid UTF-8, or by `chardetng`'s guess, unless the job names it (`[input] encoding`, any WHATWG label).
//!
//! Decoding is strict: a byte sequence the encoding does not allow is an error naming its line
//! and byte, never a silent U+FFFD in a prompt that is then paid for.

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;

use encoding_rs::{Decoder, DecoderResult, Encoding, UTF_8};

use super::TableError;
use super::compression::Compression;

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
    // `replacement` (the label of hz-gb-2312, iso-2022-kr, ...) decodes nothing, and
    // `x-user-defined` turns bytes into private-use characters: neither reads a table.
    Encoding::for_label(label.trim().as_bytes()).filter(|encoding| {
        *encoding != encoding_rs::REPLACEMENT && *encoding != encoding_rs::X_USER_DEFINED
    })
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
/// When the file cannot be opened or its start cannot be read (not gzip when named `.gz`, ..., or
/// invalid in the named encoding).
pub fn open_text(path: &Path, named: Option<&'static Encoding>) -> Result<OpenedText, TableError> {
    open_text_digesting(path, named, None)
}

/// [`open_text`], the file's bytes hashed into `digest` (when given) as they are read.
///
/// # Errors
/// As [`open_text`].
pub fn open_text_digesting(
    path: &Path,
    named: Option<&'static Encoding>,
    digest: Option<super::ReadDigest>,
) -> Result<OpenedText, TableError> {
    let file = File::open(path)
        .map_err(|error| TableError::new(path, None, format!("cannot open the file: {error}")))?;
    let file: Box<dyn Read + Send> = match digest {
        Some(digest) => Box::new(super::read_digest::DigestingReader::new(file, digest)),
        None => Box::new(file),
    };
    let compression = Compression::of_path(path);
    let not_compressed_as_named = |error: std::io::Error| {
        let hint = match (compression.name(), path.extension()) {
            (Some(name), Some(extension)) => format!(
                "; a `.{}` input must be {name}-compressed",
                extension.to_string_lossy()
            ),
            _ => String::new(),
        };
        TableError::new(path, None, format!("cannot read the file: {error}{hint}"))
    };
    let mut raw = compression
        .decompressed(file)
        .map_err(not_compressed_as_named)?;
    let sample = read_up_to(&mut raw, SAMPLE_BYTES).map_err(not_compressed_as_named)?;
    let encoding =
        choose_encoding(&sample, named).map_err(|problem| TableError::new(path, None, problem))?;
    if encoding.encoding == UTF_8 {
        // UTF-8 is read as it is (the readers check it and name a bad byte's row and column),
        // so the sample already is the decoded start.
        let stream: Box<dyn Read + Send> = Box::new(Cursor::new(sample.clone()).chain(raw));
        return Ok(OpenedText {
            stream,
            encoding,
            sample,
        });
    }
    let whole = Cursor::new(sample).chain(raw);
    let mut decoded = StrictDecoder::new(whole, encoding.encoding);
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

/// The encoding of a file that starts with `sample`: its byte-order mark (which wins even over a
/// named encoding, as the WHATWG decoding algorithm says), else the named one, else UTF-16 when
/// every other byte is NUL, else UTF-8 when the sample is valid UTF-8 (a sequence cut at the
/// sample's end allowed), else `chardetng`'s guess when it is GB18030, or another CJK encoding the
/// bytes cannot be GB18030 in; a guess that reads as GB18030 too (short Chinese text often passes
/// for EUC-KR or EUC-JP) is refused rather than taken.
///
/// # Errors
/// When the guess is not certain enough to bet the text on; the message says what to name.
fn choose_encoding(
    sample: &[u8],
    named: Option<&'static Encoding>,
) -> Result<TextEncoding, String> {
    let found = |encoding, found| Ok(TextEncoding { encoding, found });
    if let Some((encoding, _)) = Encoding::for_bom(sample) {
        return found(encoding, EncodingFound::ByteOrderMark);
    }
    if let Some(encoding) = named {
        return found(encoding, EncodingFound::Named);
    }
    if let Some(encoding) = utf16_by_its_nul_bytes(sample) {
        return found(encoding, EncodingFound::Guessed);
    }
    // Text in UTF-8 or any encoding guessed below holds no NUL byte. UTF-16 without a
    // byte-order mark whose text is mostly Chinese (too few NULs for the guess above) would
    // otherwise be read as UTF-8 or guessed GB18030, and its text would be garbage.
    if let Some(position) = memchr::memchr(0, sample) {
        return Err(format!(
            "byte {position} of the file is a NUL byte, which text never holds: the file may be UTF-16 without a byte-order mark; name its encoding with `[input] encoding` (\"utf-16le\" or \"utf-16be\"), or save it as UTF-8"
        ));
    }
    let valid_utf8 = match std::str::from_utf8(sample) {
        Ok(_) => true,
        // Only a sequence cut off by the end of the sample.
        Err(error) => error.error_len().is_none(),
    };
    if valid_utf8 {
        return found(UTF_8, EncodingFound::ValidUtf8);
    }
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(sample, sample.len() < SAMPLE_BYTES);
    let guess = detector.guess(None, false);
    if guess == encoding_rs::GBK || guess == encoding_rs::GB18030 {
        // GBK files are read as GB18030, its superset (WHATWG decodes both the same way).
        return found(encoding_rs::GB18030, EncodingFound::Guessed);
    }
    let other_cjk = [
        encoding_rs::BIG5,
        encoding_rs::SHIFT_JIS,
        encoding_rs::EUC_JP,
        encoding_rs::EUC_KR,
        encoding_rs::ISO_2022_JP,
    ];
    if other_cjk.contains(&guess) {
        if reads_as_gb18030(sample) {
            return Err(format!(
                "cannot tell the file's encoding for certain: its start reads as {} and as GB18030 alike; name it with `[input] encoding` (\"gb18030\" for Chinese text from Windows or Excel, or \"{}\")",
                guess.name(),
                guess.name().to_ascii_lowercase()
            ));
        }
        return found(guess, EncodingFound::Guessed);
    }
    found(UTF_8, EncodingFound::AssumedUtf8)
}

/// UTF-16 without a byte-order mark, told by its NUL bytes: text that is mostly ASCII has a NUL
/// in every other byte (odd bytes for little-endian, even for big-endian).
fn utf16_by_its_nul_bytes(sample: &[u8]) -> Option<&'static Encoding> {
    let pairs = sample.len() / 2;
    if pairs < 2 {
        return None;
    }
    let nul_at = |parity: usize| {
        sample
            .iter()
            .skip(parity)
            .step_by(2)
            .filter(|byte| **byte == 0)
            .count()
    };
    let (even, odd) = (nul_at(0), nul_at(1));
    if odd * 10 >= pairs * 4 && even * 20 < pairs {
        Some(encoding_rs::UTF_16LE)
    } else if even * 10 >= pairs * 4 && odd * 20 < pairs {
        Some(encoding_rs::UTF_16BE)
    } else {
        None
    }
}

/// Whether `sample` decodes as GB18030 without a malformed sequence (one cut by the end of the
/// sample allowed).
fn reads_as_gb18030(sample: &[u8]) -> bool {
    let mut decoder = encoding_rs::GB18030.new_decoder_without_bom_handling();
    let mut output = vec![0; sample.len() * 3 + 16];
    let (result, _, _) = decoder.decode_to_utf8_without_replacement(sample, &mut output, false);
    !matches!(result, DecoderResult::Malformed(..))
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

/// The field delimiter of a CSV whose decoded start is `sample`: the first of `,` tab `;` `|`
/// that splits every whole record of the sample (at most 50, quotes respected) into the same
/// number of fields, more than one; `,` when none does. Preferring the first keeps a
/// comma-separated file whose text holds semicolons (`红;绿;蓝`) comma-separated. Fields are
/// quoted by `quote` (`None`: never), which is never taken for the delimiter.
#[must_use]
pub fn sniff_delimiter(sample: &[u8], quote: Option<u8>) -> u8 {
    const CANDIDATES: [u8; 4] = [b',', b'\t', b';', b'|'];
    let cut = sample.len() >= SAMPLE_BYTES;
    let usable = CANDIDATES
        .into_iter()
        .filter(|candidate| Some(*candidate) != quote);
    let fallback = usable.clone().next().unwrap_or(b',');
    usable
        .into_iter()
        .find(|candidate| {
            let counts = delimiters_per_record(sample, *candidate, quote, 50, cut);
            counts
                .first()
                .is_some_and(|first| *first > 0 && counts.iter().all(|count| count == first))
        })
        .unwrap_or(fallback)
}

/// How many times `delimiter` separates fields in each of the first `records` records, quotes
/// read as CSV reads them (a quote opens a field only at its start; `""` inside is a quote). A
/// last record without its line break is left out when the sample was `cut` from a longer file.
fn delimiters_per_record(
    text: &[u8],
    delimiter: u8,
    quote: Option<u8>,
    records: usize,
    cut: bool,
) -> Vec<usize> {
    let mut counts = Vec::new();
    let mut count = 0;
    let mut in_quotes = false;
    let mut at_field_start = true;
    let mut record_has_content = false;
    let mut bytes = text.iter().peekable();
    while let Some(&byte) = bytes.next() {
        if in_quotes {
            if Some(byte) == quote {
                if bytes.peek().copied().copied() == quote {
                    bytes.next();
                } else {
                    in_quotes = false;
                }
            }
            continue;
        }
        match byte {
            byte if at_field_start && Some(byte) == quote => {
                in_quotes = true;
                at_field_start = false;
                record_has_content = true;
            }
            b'\n' => {
                if record_has_content {
                    counts.push(count);
                    if counts.len() == records {
                        return counts;
                    }
                }
                count = 0;
                at_field_start = true;
                record_has_content = false;
            }
            b'\r' => {}
            byte if byte == delimiter => {
                count += 1;
                at_field_start = true;
                record_has_content = true;
            }
            _ => {
                at_field_start = false;
                record_has_content = true;
            }
        }
    }
    if record_has_content && !cut && !in_quotes {
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
    fn utf16_too_chinese_to_be_told_by_its_nuls_is_refused_at_its_first_nul() {
        let text = format!(
            "编号,评论\n{}",
            "1,这本书很好看，推荐给大家阅读。\n".repeat(40)
        );
        let little: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let big: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        for bytes in [little, big] {
            assert_eq!(utf16_by_its_nul_bytes(&bytes), None, "too few NULs to tell");
            let problem = choose_encoding(&bytes, None).err().unwrap();
            assert!(
                problem.contains("NUL byte") && problem.contains("utf-16le"),
                "{problem}"
            );
        }
        // Named, it is read as named.
        let named = choose_encoding(b"a\0b", Some(encoding_rs::UTF_16LE)).unwrap();
        assert_eq!(named.found, EncodingFound::Named);
    }

    #[test]
    fn encodings_are_found_by_mark_validity_and_guess() {
        let chinese = "编号,评论\n1,质量很好，物流很快\n2,包装破损，不太满意\n".repeat(20);
        let (gbk, _, _) = encoding_rs::GBK.encode(&chinese);
        assert_eq!(
            choose_encoding(chinese.as_bytes(), None).unwrap().found,
            EncodingFound::ValidUtf8
        );
        let guessed = choose_encoding(&gbk, None).unwrap();
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
        let marked = choose_encoding(&utf16, None).unwrap();
        assert_eq!(marked.encoding, encoding_rs::UTF_16LE);
        assert_eq!(
            decode_all(&utf16, encoding_rs::UTF_16LE).unwrap(),
            "id,text\n"
        );
        assert_eq!(
            choose_encoding(b"abc", encoding_for_label("GB18030"))
                .unwrap()
                .encoding,
            encoding_rs::GB18030
        );
        assert!(encoding_for_label("no-such-encoding").is_none());
        assert!(encoding_for_label("hz-gb-2312").is_none());
        assert!(encoding_for_label("x-user-defined").is_none());
        // Damaged UTF-8 is not taken for a single-byte encoding.
        let damaged = b"id,text\n1,caf\xc3\xa9 ok\n2,bad \xff byte\n";
        assert_eq!(
            choose_encoding(damaged, None).unwrap().found,
            EncodingFound::AssumedUtf8
        );
        // A byte-order mark wins over a named encoding.
        let marked_utf8 = "\u{feff}编号,评论\n1,好\n";
        assert_eq!(
            choose_encoding(marked_utf8.as_bytes(), encoding_for_label("gbk"))
                .unwrap()
                .encoding,
            UTF_8
        );
        // UTF-16 without a mark is told by its NUL bytes.
        let mut bare_utf16 = Vec::new();
        for unit in "id,text\n1,hello\n".encode_utf16() {
            bare_utf16.extend_from_slice(&unit.to_le_bytes());
        }
        assert_eq!(
            choose_encoding(&bare_utf16, None).unwrap().encoding,
            encoding_rs::UTF_16LE
        );
        // Short GBK text that chardetng may take for Korean or Japanese is never read so.
        for text in ["编号,城市\n1,陈晨\n2,陈晨\n", "1,李四\n2,厦门\n3,济南\n"] {
            let (short_gbk, _, _) = encoding_rs::GBK.encode(text);
            match choose_encoding(&short_gbk, None) {
                Ok(encoding) => assert_eq!(encoding.encoding, encoding_rs::GB18030, "{text}"),
                Err(problem) => assert!(problem.contains("`[input] encoding`"), "{problem}"),
            }
        }
        // A multi-byte sequence cut by the end of the sample is still UTF-8.
        let cut = &"好".as_bytes()[..2];
        assert_eq!(
            choose_encoding(cut, None).unwrap().found,
            EncodingFound::ValidUtf8
        );
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
        assert_eq!(sniff_delimiter(b"a,b,c\n1,2,3\n", Some(b'"')), b',');
        assert_eq!(sniff_delimiter(b"a;b;c\n1;2,5;3\n", Some(b'"')), b';');
        assert_eq!(sniff_delimiter(b"a\tb\n1\t\"x,y\"\n", Some(b'"')), b'\t');
        assert_eq!(sniff_delimiter(b"a|b\n1|2\n", Some(b'"')), b'|');
        assert_eq!(sniff_delimiter(b"text\nhello, world\n", Some(b'"')), b',');
        assert_eq!(sniff_delimiter(b"a;b\n\"x;y\";z\n", Some(b'"')), b';');
        assert_eq!(sniff_delimiter(b"", Some(b'"')), b',');
        // Commas win when they split every line the same way, whatever else the text holds.
        assert_eq!(
            sniff_delimiter("1,红;绿;蓝\n2,大;中;小\n".as_bytes(), Some(b'"')),
            b','
        );
        // A stray inch mark inside a field opens no quote.
        assert_eq!(
            sniff_delimiter(
                b"id;product;price\n1;Monitor 27\" Dell;1999\n2;Cable;5\n",
                Some(b'"')
            ),
            b';'
        );
        // A record cut by the end of a full sample does not count.
        let mut long = b"id;text;label\n".to_vec();
        while long.len() < SAMPLE_BYTES - 100 {
            long.extend_from_slice(b"1;\"a long; quoted\ntext\";x\n");
        }
        long.extend_from_slice(b"2;\"cut off, here");
        long.resize(SAMPLE_BYTES, b'z');
        assert_eq!(sniff_delimiter(&long, Some(b'"')), b';');
    }
}
