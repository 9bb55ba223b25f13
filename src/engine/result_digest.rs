//! A downloaded result file's lines as the join keeps them, written by the download's check
//! (which reads every line anyway) so that the join, `status` and the retry planner take them
//! back without reading the JSON again. A result file read line by line for want of a usable
//! digest (a run directory copied, a digest damaged) gets one written as it is read.
//!
//! A digest lies in the run's `digests/` directory, named after its result file. It is used
//! only while it is whole (its own checksum) and its result file is the one it was made from
//! (the same length, modification time and status change time, which any write, `touch` or
//! copy changes and no user can set, and the same first and last 64 KiB); any other
//! digest is passed over and the result file read line by line, as without one. It is written
//! to a temporary name and renamed into place, so a crash leaves a whole digest or none.
//!
//! Layout (integers little-endian): the header ([`MAGIC`], the result file's length, its
//! modification and status change times in seconds and nanoseconds, the hash of its first and
//! last 64 KiB); the records, each its length (`u32`) and then its body; the end (`u32::MAX`,
//! the number of records as `u64`, and the XXH3-128 of every byte before it).
//!
//! A record's body: `0`, then a chat answer's four token counts (`u32`, `u32::MAX` for a
//! count the line does not give), the lengths of its custom_id, request id, answer and finish
//! reason (`u32`, `u32::MAX` for none), and their bytes one after another (checked as UTF-8 at
//! once); or `1`, then where a line of any other kind is in the result file (its number `u64`,
//! its offset `u64`, its length `u32`), to be read there and classified with the batch's
//! status, which can change how it is classified.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use twox_hash::XxHash3_128;

use crate::chat_success_line::ChatSuccessLine;

/// What a digest starts with: the format and its version.
const MAGIC: &[u8; 16] = b"dashbatch-rd-v2\n";

/// How much of the start and of the end of a result file is hashed into its digest's header.
const SAMPLE_BYTES: u64 = 64 * 1024;

/// The length that marks the end of the records.
const END_OF_RECORDS: u32 = u32::MAX;

/// A length that stands for no text.
const NO_TEXT: u32 = u32::MAX;

/// The bytes of the XXH3-128 checksum that ends a digest.
const CHECKSUM_BYTES: u64 = 16;

/// The longest record a reader takes: a longer one is no record of a digest this writes (a
/// line is at most [`super::shard_results::LONGEST_RESULT_LINE`]).
const LONGEST_RECORD: u32 = 80 * 1024 * 1024;

const CHAT_ANSWER: u8 = 0;
const OTHER_LINE: u8 = 1;

/// Where the digest of the result file at `result_path` (in a run's `results/`) lies: in the
/// run's `digests/`, named after it.
pub(super) fn digest_path_of(result_path: &Path) -> Option<PathBuf> {
    let name = result_path.file_name()?.to_str()?;
    let run_root = result_path.parent()?.parent()?;
    Some(run_root.join("digests").join(format!("{name}.digest")))
}

/// What ties a digest to its result file.
#[derive(Debug, PartialEq, Eq)]
struct SourceFacts {
    length: u64,
    modified_seconds: i64,
    modified_nanoseconds: u32,
    /// When the file's inode last changed (`ctime`): set by the system on any write, `touch`,
    /// permission change or copy, so an edit that keeps the length and puts the modification
    /// time back still tells.
    changed_seconds: i64,
    changed_nanoseconds: u32,
    sample_hash: u128,
}

impl SourceFacts {
    const BYTES: usize = 8 + 8 + 4 + 8 + 4 + 16;

    /// The facts of the open result file `file`: taken from the handle the lines are read
    /// through, never by its path, so that a file put in its place by a rename (an editor,
    /// `rsync`) while it is read cannot lend its facts to the old file's lines. Its samples are
    /// read at their places without moving the handle's position.
    fn of(file: &File) -> std::io::Result<SourceFacts> {
        let metadata = file.metadata()?;
        let modified = metadata
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| std::io::Error::other("modified before 1970"))?;
        let length = metadata.len();
        let mut hasher = XxHash3_128::new();
        let mut sample = vec![0; SAMPLE_BYTES.min(length) as usize];
        file.read_exact_at(&mut sample, 0)?;
        hasher.write(&sample);
        if length > SAMPLE_BYTES {
            let tail = SAMPLE_BYTES.min(length - SAMPLE_BYTES);
            sample.resize(tail as usize, 0);
            file.read_exact_at(&mut sample, length - tail)?;
            hasher.write(&sample);
        }
        let (changed_seconds, changed_nanoseconds) =
            (metadata.ctime(), metadata.ctime_nsec() as u32);
        Ok(SourceFacts {
            length,
            modified_seconds: i64::try_from(modified.as_secs()).unwrap_or(i64::MAX),
            modified_nanoseconds: modified.subsec_nanos(),
            changed_seconds,
            changed_nanoseconds,
            sample_hash: hasher.finish_128(),
        })
    }

    fn to_bytes(&self) -> [u8; SourceFacts::BYTES] {
        let mut bytes = [0; SourceFacts::BYTES];
        bytes[..8].copy_from_slice(&self.length.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.modified_seconds.to_le_bytes());
        bytes[16..20].copy_from_slice(&self.modified_nanoseconds.to_le_bytes());
        bytes[20..28].copy_from_slice(&self.changed_seconds.to_le_bytes());
        bytes[28..32].copy_from_slice(&self.changed_nanoseconds.to_le_bytes());
        bytes[32..].copy_from_slice(&self.sample_hash.to_le_bytes());
        bytes
    }
}

/// A digest's file, hashing the bytes that pass through it, below its buffer: the hash takes
/// them a buffer at a time, not a field at a time.
struct HashingFile {
    file: File,
    hasher: XxHash3_128,
    /// Where the reading is in the file.
    position: u64,
    /// Bytes read from here on are not hashed: the checksum itself (for reading; never
    /// reached when writing).
    unhashed_from: u64,
}

impl HashingFile {
    fn new(file: File, unhashed_from: u64) -> HashingFile {
        HashingFile {
            file,
            hasher: XxHash3_128::new(),
            position: 0,
            unhashed_from,
        }
    }
}

impl Write for HashingFile {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.file.write(bytes)?;
        self.hasher.write(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Read for HashingFile {
    fn read(&mut self, bytes: &mut [u8]) -> std::io::Result<usize> {
        let read = self.file.read(bytes)?;
        let hashed = self
            .unhashed_from
            .saturating_sub(self.position)
            .min(read as u64);
        self.hasher.write(&bytes[..hashed as usize]);
        self.position += read as u64;
        Ok(read)
    }
}

/// A digest being written, line by line, as a result file is checked. Its temporary file is
/// removed when it is dropped unless [`Self::finish`] put it in place.
pub(super) struct ResultDigestWriter {
    writer: BufWriter<HashingFile>,
    /// The result file being read, and its facts when the digest was started: the digest is
    /// put in place only if they are the same at its end.
    source: File,
    facts: SourceFacts,
    temporary_path: PathBuf,
    final_path: PathBuf,
    records: u64,
    body: Vec<u8>,
}

impl ResultDigestWriter {
    /// Starts the digest of the result file at `result_path`, whose lines are read through
    /// `source` (opened there).
    ///
    /// # Errors
    /// When the result file cannot be read or the digest cannot be made.
    pub(super) fn start(result_path: &Path, source: &File) -> std::io::Result<ResultDigestWriter> {
        let final_path = digest_path_of(result_path)
            .ok_or_else(|| std::io::Error::other("a result file outside a run's results"))?;
        let facts = SourceFacts::of(source)?;
        // Another handle on the same open file, for its facts at the end (its position, shared
        // with the reader's, is never moved here).
        let source = source.try_clone()?;
        if let Some(directory) = final_path.parent() {
            std::fs::create_dir_all(directory)?;
            remove_partial_digests(directory, &final_path);
        }
        // A name of this process's own: two processes checking the same download (copies of
        // a run) never write into one file.
        let temporary_path =
            final_path.with_extension(format!("digest.{}.partial", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        options.mode(0o600);
        let file = options.open(&temporary_path)?;
        let mut writer = BufWriter::with_capacity(1 << 16, HashingFile::new(file, u64::MAX));
        writer.write_all(MAGIC)?;
        writer.write_all(&facts.to_bytes())?;
        Ok(ResultDigestWriter {
            writer,
            source,
            facts,
            temporary_path,
            final_path,
            records: 0,
            body: Vec::new(),
        })
    }

    fn write_record(&mut self) -> std::io::Result<()> {
        let length = u32::try_from(self.body.len())
            .ok()
            .filter(|length| *length <= LONGEST_RECORD)
            .ok_or_else(|| std::io::Error::other("a record too long for a digest"))?;
        self.writer.write_all(&length.to_le_bytes())?;
        self.writer.write_all(&self.body)?;
        self.records += 1;
        Ok(())
    }

    /// Adds a chat answer, read from its line, with its token counts packed as
    /// [`pack_count`] packs them; a line whose counts do not pack is added as another line.
    pub(super) fn chat_answer(
        &mut self,
        line: &ChatSuccessLine<'_>,
        line_number: u64,
        offset: u64,
        length: usize,
    ) -> std::io::Result<()> {
        let usage = line.usage;
        let counts = [
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens,
            usage.reasoning_tokens,
        ]
        .map(pack_count);
        let [Some(prompt), Some(completion), Some(total), Some(reasoning)] = counts else {
            return self.other_line(line_number, offset, length);
        };
        let texts = [
            Some(&*line.custom_id),
            line.request_id.as_deref(),
            line.content.as_deref(),
            line.finish_reason.as_deref(),
        ];
        let mut lengths = [NO_TEXT; 4];
        for (text, kept_length) in texts.iter().zip(&mut lengths) {
            if let Some(text) = text {
                match u32::try_from(text.len()) {
                    Ok(text_length) if text_length != NO_TEXT => *kept_length = text_length,
                    _ => return self.other_line(line_number, offset, length),
                }
            }
        }
        self.body.clear();
        self.body.push(CHAT_ANSWER);
        for number in [prompt, completion, total, reasoning]
            .iter()
            .chain(&lengths)
        {
            self.body.extend_from_slice(&number.to_le_bytes());
        }
        for text in texts.into_iter().flatten() {
            self.body.extend_from_slice(text.as_bytes());
        }
        self.write_record()
    }

    /// Adds a line of any other kind, by where it is in the result file.
    pub(super) fn other_line(
        &mut self,
        line_number: u64,
        offset: u64,
        length: usize,
    ) -> std::io::Result<()> {
        let length = u32::try_from(length)
            .map_err(|_| std::io::Error::other("a line too long for a digest"))?;
        self.body.clear();
        self.body.push(OTHER_LINE);
        self.body.extend_from_slice(&line_number.to_le_bytes());
        self.body.extend_from_slice(&offset.to_le_bytes());
        self.body.extend_from_slice(&length.to_le_bytes());
        self.write_record()
    }

    /// Ends the digest and puts it in place, unless the result file changed while it was
    /// read (its facts are not those it had at the start); the temporary file is removed
    /// whatever goes wrong.
    ///
    /// # Errors
    /// When it cannot be written, or the result file changed.
    pub(super) fn finish(mut self) -> std::io::Result<()> {
        self.end()?;
        std::fs::rename(&self.temporary_path, &self.final_path)
    }

    /// Writes the end of the records and the checksum, once the result file is found as it
    /// was at the start.
    fn end(&mut self) -> std::io::Result<()> {
        if SourceFacts::of(&self.source)? != self.facts {
            return Err(std::io::Error::other(
                "the result file changed while it was read",
            ));
        }
        self.writer.write_all(&END_OF_RECORDS.to_le_bytes())?;
        self.writer.write_all(&self.records.to_le_bytes())?;
        self.writer.flush()?;
        let file = self.writer.get_mut();
        let checksum = file.hasher.finish_128().to_le_bytes();
        file.file.write_all(&checksum)
    }
}

impl Drop for ResultDigestWriter {
    fn drop(&mut self) {
        // Nothing there once `finish` renamed it into place.
        let _ = std::fs::remove_file(&self.temporary_path);
    }
}

/// A digest written while a result file is read line by line, as long as it can be: at the
/// first failure to write it, it is given up (its temporary file removed) and the reading goes
/// on without it. Dropped without [`Self::finish`] (the reading failed), it is given up too.
pub(super) struct DigestAlongside {
    writer: Option<ResultDigestWriter>,
}

impl DigestAlongside {
    /// Starts the digest of the result file at `result_path`, read through `source`; without
    /// one when it cannot be made (the run's directory cannot take it, say).
    pub(super) fn start(result_path: &Path, source: &File) -> DigestAlongside {
        DigestAlongside {
            writer: ResultDigestWriter::start(result_path, source).ok(),
        }
    }

    /// Adds the next line: `chat_answer` when it was read as one, else a line of another kind,
    /// kept by where it is (line `number`, at `offset`, `length` bytes).
    pub(super) fn add(
        &mut self,
        chat_answer: Option<&ChatSuccessLine<'_>>,
        number: u64,
        offset: u64,
        length: usize,
    ) {
        let Some(writer) = &mut self.writer else {
            return;
        };
        let added = match chat_answer {
            Some(answer) => writer.chat_answer(answer, number, offset, length),
            None => writer.other_line(number, offset, length),
        };
        if added.is_err() {
            self.writer = None;
        }
    }

    /// Puts the digest in place, every line of the file added (none is put there when it
    /// cannot be finished: a digest already there stays, used only if it is of the file).
    pub(super) fn finish(mut self) {
        if let Some(writer) = self.writer.take() {
            let _ = writer.finish();
        }
    }
}

/// Removes what processes stopped while writing the digest at `final_path` left in
/// `directory`: its temporary files named by a process that no longer runs (another still
/// writing keeps its own).
fn remove_partial_digests(directory: &Path, final_path: &Path) {
    let Some(name) = final_path.file_name().and_then(|name| name.to_str()) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        let entry_name = entry.file_name();
        let writer = entry_name.to_str().and_then(|entry_name| {
            entry_name
                .strip_prefix(name)?
                .strip_prefix('.')?
                .strip_suffix(".partial")?
                .parse::<u32>()
                .ok()
        });
        let left_behind = writer.is_some_and(|pid| pid == std::process::id() || !process_runs(pid));
        if left_behind {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether a process with this id runs on this machine (where that cannot be told, it is
/// taken to run, and its temporary file is left).
fn process_runs(pid: u32) -> bool {
    let proc_directory = Path::new("/proc");
    if !proc_directory.join("self").exists() {
        return true;
    }
    proc_directory.join(pid.to_string()).exists()
}

/// Removes the digest of the result file at `result_path`, if there is one.
pub(super) fn remove_digest_of(result_path: &Path) {
    if let Some(path) = digest_path_of(result_path) {
        let _ = std::fs::remove_file(path);
    }
}

/// A token count as a digest and a shard's kept results hold it: `u32::MAX` for none; `None`
/// for one that does not fit.
pub(super) fn pack_count(count: Option<u64>) -> Option<u32> {
    match count {
        None => Some(u32::MAX),
        Some(count) => u32::try_from(count).ok().filter(|count| *count != u32::MAX),
    }
}

/// One record of a digest.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum DigestRecord<'a> {
    ChatAnswer {
        custom_id: &'a str,
        request_id: Option<&'a str>,
        content: Option<&'a str>,
        finish_reason: Option<&'a str>,
        /// Prompt, completion, total and reasoning tokens, as [`pack_count`] packs them.
        counts: [u32; 4],
    },
    OtherLine {
        line_number: u64,
        offset: u64,
        length: u32,
    },
}

/// The next `u32` of `reader`.
fn read_u32(reader: &mut impl Read) -> Option<u32> {
    let mut bytes = [0; 4];
    reader.read_exact(&mut bytes).ok()?;
    Some(u32::from_le_bytes(bytes))
}

/// Reads the bytes of a record's body in turn.
struct BodyCursor<'a> {
    bytes: &'a [u8],
}

impl<'a> BodyCursor<'a> {
    fn take(&mut self, length: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.bytes.split_at_checked(length)?;
        self.bytes = rest;
        Some(taken)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// A chat answer's four texts, of these `lengths` (`NO_TEXT` for none), cut one after another
/// from `texts`, which they must fill; `None` when they do not, or the bytes are not UTF-8 or
/// not cut between characters.
fn texts_of(texts: &[u8], lengths: [u32; 4]) -> Option<[Option<&str>; 4]> {
    let texts = crate::utf8_check::checked_utf8(texts).ok()?;
    let mut start = 0;
    let mut cut = [None; 4];
    for (text, length) in cut.iter_mut().zip(lengths) {
        if length != NO_TEXT {
            let end = start + length as usize;
            *text = Some(texts.get(start..end)?);
            start = end;
        }
    }
    (start == texts.len()).then_some(cut)
}

/// The record in `body`, or `None` when it is no record.
fn record_of(body: &[u8]) -> Option<DigestRecord<'_>> {
    let (&kind, rest) = body.split_first()?;
    let mut cursor = BodyCursor { bytes: rest };
    let record = match kind {
        CHAT_ANSWER => {
            let counts = [cursor.u32()?, cursor.u32()?, cursor.u32()?, cursor.u32()?];
            let lengths = [cursor.u32()?, cursor.u32()?, cursor.u32()?, cursor.u32()?];
            let [custom_id, request_id, content, finish_reason] =
                texts_of(std::mem::take(&mut cursor.bytes), lengths)?;
            DigestRecord::ChatAnswer {
                custom_id: custom_id?,
                request_id,
                content,
                finish_reason,
                counts,
            }
        }
        OTHER_LINE => DigestRecord::OtherLine {
            line_number: cursor.u64()?,
            offset: cursor.u64()?,
            length: cursor.u32()?,
        },
        _ => return None,
    };
    cursor.bytes.is_empty().then_some(record)
}

/// How reading a digest ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum DigestReading {
    /// Every record was given, and the digest is whole.
    Whole,
    /// There is no digest of the file, or it is not one of the file as it is now, or it is
    /// damaged: what was given of it must be thrown away, and the file read line by line.
    Unusable,
}

/// Gives `each` every record of the digest of the result file at `result_path`, in the order
/// of the file's lines, and says whether the digest was whole. An error `each` returns ends the
/// reading and is returned.
///
/// # Errors
/// What `each` returns.
pub(super) fn read_result_digest<E>(
    result_path: &Path,
    source: &File,
    mut each: impl FnMut(DigestRecord<'_>) -> Result<(), E>,
) -> Result<DigestReading, E> {
    let Some(digest_path) = digest_path_of(result_path) else {
        return Ok(DigestReading::Unusable);
    };
    // Only a regular file: opening a FIFO put in its place would wait for a writer.
    if !std::fs::metadata(&digest_path).is_ok_and(|metadata| metadata.is_file()) {
        return Ok(DigestReading::Unusable);
    }
    let Ok(file) = File::open(&digest_path) else {
        return Ok(DigestReading::Unusable);
    };
    let Ok(digest_length) = file.metadata().map(|metadata| metadata.len()) else {
        return Ok(DigestReading::Unusable);
    };
    let Ok(facts) = SourceFacts::of(source) else {
        return Ok(DigestReading::Unusable);
    };
    let mut reader = BufReader::with_capacity(
        1 << 17,
        HashingFile::new(file, digest_length.saturating_sub(CHECKSUM_BYTES)),
    );
    let mut header = [0; MAGIC.len() + SourceFacts::BYTES];
    if reader.read_exact(&mut header).is_err()
        || &header[..MAGIC.len()] != MAGIC
        || header[MAGIC.len()..] != facts.to_bytes()
    {
        return Ok(DigestReading::Unusable);
    }
    let mut body = Vec::new();
    let mut records = 0u64;
    // Where the reading is in the digest: a record's length is believed (and room made for it)
    // only when the digest holds that many bytes more.
    let mut position = header.len() as u64;
    loop {
        let Some(length) = read_u32(&mut reader) else {
            return Ok(DigestReading::Unusable);
        };
        position += 4;
        if length == END_OF_RECORDS {
            break;
        }
        if length > LONGEST_RECORD || u64::from(length) > digest_length.saturating_sub(position) {
            return Ok(DigestReading::Unusable);
        }
        position += u64::from(length);
        body.resize(length as usize, 0);
        if reader.read_exact(&mut body).is_err() {
            return Ok(DigestReading::Unusable);
        }
        let Some(record) = record_of(&body) else {
            return Ok(DigestReading::Unusable);
        };
        each(record)?;
        records += 1;
    }
    let mut count = [0; 8];
    if reader.read_exact(&mut count).is_err() || u64::from_le_bytes(count) != records {
        return Ok(DigestReading::Unusable);
    }
    let mut checksum = [0; CHECKSUM_BYTES as usize];
    let mut after = [0; 1];
    // The checksum is the digest's last bytes: the hash below the buffer stopped before them.
    let whole = reader.read_exact(&mut checksum).is_ok()
        && matches!(reader.read(&mut after), Ok(0))
        && u128::from_le_bytes(checksum) == reader.get_ref().hasher.finish_128();
    Ok(if whole {
        DigestReading::Whole
    } else {
        DigestReading::Unusable
    })
}

/// The bytes of the line a digest's [`DigestRecord::OtherLine`] points at, read into `line`.
///
/// # Errors
/// When the result file cannot be read there.
pub(super) fn read_line_at(
    file: &File,
    offset: u64,
    length: u32,
    line: &mut Vec<u8>,
) -> std::io::Result<()> {
    line.resize(length as usize, 0);
    file.read_exact_at(line, offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat_line_shape::ChatLineReader;
    use crate::engine::shard_results::ResultFileLines;

    /// The records of the digest that checking `text` as a run's result file writes.
    fn digested(text: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let directory = tempfile::tempdir().unwrap();
        let results = directory.path().join("results");
        std::fs::create_dir_all(&results).unwrap();
        let path = results.join("shard-00000.output.jsonl");
        std::fs::write(&path, text).unwrap();
        digest_file(&path);
        (directory, path)
    }

    /// Writes the digest of the result file at `path` as the download's check does.
    fn digest_file(path: &Path) {
        let mut lines = ResultFileLines::open(path).unwrap();
        let mut writer = ResultDigestWriter::start(path, lines.file()).unwrap();
        let mut reader = ChatLineReader::default();
        while let Some(placed) = lines.next_line().unwrap() {
            let (number, offset, line) = (placed.number, placed.offset, placed.text.unwrap());
            match reader.read(line) {
                Some(chat) => writer.chat_answer(&chat, number, offset, line.len()),
                None => writer.other_line(number, offset, line.len()),
            }
            .unwrap();
        }
        writer.finish().unwrap();
    }

    fn records(path: &Path) -> (DigestReading, Vec<String>) {
        let mut seen = Vec::new();
        let source = File::open(path).unwrap();
        let reading = read_result_digest::<()>(path, &source, |record| {
            seen.push(format!("{record:?}"));
            Ok(())
        })
        .unwrap();
        (reading, seen)
    }

    const ANSWER: &str = r#"{"id":"r1","custom_id":"a","response":{"status_code":200,"request_id":"q1","body":{"choices":[{"finish_reason":"stop","message":{"content":"h\"i"}}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}},"error":null}"#;
    const FAILURE: &str = r#"{"id":"r2","custom_id":"b","response":null,"error":{"code":"InternalError","message":"later"}}"#;

    #[test]
    fn a_digest_gives_back_each_line_as_an_answer_or_where_the_line_is() {
        let text = format!("{ANSWER}\r\n\n{FAILURE}\n");
        let (_directory, path) = digested(text.as_bytes());
        let (reading, seen) = records(&path);
        assert_eq!(reading, DigestReading::Whole);
        assert_eq!(
            seen,
            vec![
                format!(
                    "{:?}",
                    DigestRecord::ChatAnswer {
                        custom_id: "a",
                        request_id: Some("q1"),
                        content: Some("h\"i"),
                        finish_reason: Some("stop"),
                        counts: [3, 2, 5, u32::MAX],
                    }
                ),
                format!(
                    "{:?}",
                    DigestRecord::OtherLine {
                        line_number: 3,
                        offset: (ANSWER.len() + 3) as u64,
                        length: FAILURE.len() as u32,
                    }
                ),
            ]
        );
        let file = File::open(&path).unwrap();
        let mut line = Vec::new();
        read_line_at(
            &file,
            (ANSWER.len() + 3) as u64,
            FAILURE.len() as u32,
            &mut line,
        )
        .unwrap();
        assert_eq!(line, FAILURE.as_bytes());
    }

    #[test]
    fn a_digest_of_another_version_of_its_file_or_a_damaged_one_is_not_used() {
        let text = format!("{ANSWER}\n{FAILURE}\n");
        let (_directory, path) = digested(text.as_bytes());
        let digest = digest_path_of(&path).unwrap();

        // The result file written again with other bytes of the same length.
        let changed = text.replace("h\\\"i", "h\\\"o");
        assert_eq!(changed.len(), text.len());
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        let set_modified = |time: std::time::SystemTime| {
            let file = File::options().write(true).open(&path).unwrap();
            file.set_modified(time).unwrap();
        };
        std::fs::write(&path, &changed).unwrap();
        set_modified(modified);
        assert_eq!(records(&path).0, DigestReading::Unusable, "other bytes");
        std::fs::write(&path, &text).unwrap();
        set_modified(modified + std::time::Duration::from_secs(1));
        assert_eq!(records(&path).0, DigestReading::Unusable, "another time");
        set_modified(modified);
        assert_eq!(
            records(&path).0,
            DigestReading::Unusable,
            "the same bytes and time again: the status change time tells"
        );

        digest_file(&path);
        assert_eq!(records(&path).0, DigestReading::Whole);
        let whole = std::fs::read(&digest).unwrap();

        for cut in [0, 10, whole.len() / 2, whole.len() - 1] {
            std::fs::write(&digest, &whole[..cut]).unwrap();
            assert_eq!(records(&path).0, DigestReading::Unusable, "cut at {cut}");
        }
        for flipped in [MAGIC.len() + 40, whole.len() / 2, whole.len() - 3] {
            let mut damaged = whole.clone();
            damaged[flipped] ^= 0x20;
            std::fs::write(&digest, &damaged).unwrap();
            assert_eq!(
                records(&path).0,
                DigestReading::Unusable,
                "byte {flipped} changed"
            );
        }
        let mut longer = whole.clone();
        longer.push(b'\n');
        std::fs::write(&digest, &longer).unwrap();
        assert_eq!(records(&path).0, DigestReading::Unusable, "bytes after");
        std::fs::remove_file(&digest).unwrap();
        assert_eq!(records(&path).0, DigestReading::Unusable, "none");
    }

    #[test]
    fn a_digest_left_half_written_by_a_stopped_process_is_cleared_by_the_next() {
        let directory = tempfile::tempdir().unwrap();
        let results = directory.path().join("results");
        std::fs::create_dir_all(&results).unwrap();
        let path = results.join("shard-00000.output.jsonl");
        std::fs::write(&path, format!("{ANSWER}\n")).unwrap();
        let digests = directory.path().join("digests");
        std::fs::create_dir_all(&digests).unwrap();
        let stale = digests.join("shard-00000.output.jsonl.digest.999999.partial");
        let other_shards = digests.join("shard-00001.output.jsonl.digest.999999.partial");
        std::fs::write(&stale, b"half").unwrap();
        std::fs::write(&other_shards, b"half").unwrap();
        let source = File::open(&path).unwrap();
        drop(ResultDigestWriter::start(&path, &source).unwrap());
        assert!(!stale.exists());
        assert!(other_shards.exists(), "another file's is left to its own");
        assert_eq!(std::fs::read_dir(&digests).unwrap().count(), 1);
    }

    #[test]
    fn an_edit_inside_a_large_file_with_its_length_and_modification_time_kept_still_tells() {
        let lines: String = (0..1_000).map(|_| format!("{ANSWER}\n")).collect();
        assert!(
            lines.len() as u64 > 3 * SAMPLE_BYTES,
            "the edit is in no sample"
        );
        let (_directory, path) = digested(lines.as_bytes());
        assert_eq!(records(&path).0, DigestReading::Whole);
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        // Past the clock tick the file's times were taken in.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let middle = lines.len() / 2;
        let edited = lines[..middle].to_owned() + &lines[middle..].replacen("h\\\"i", "h\\\"o", 1);
        assert_eq!(edited.len(), lines.len());
        assert_ne!(edited, lines);
        std::fs::write(&path, &edited).unwrap();
        let file = File::options().write(true).open(&path).unwrap();
        file.set_modified(modified).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            modified
        );
        assert_eq!(records(&path).0, DigestReading::Unusable);
    }

    #[test]
    fn a_record_longer_than_what_is_left_of_the_digest_is_not_read() {
        let (_directory, path) = digested(format!("{ANSWER}\n").as_bytes());
        let digest = digest_path_of(&path).unwrap();
        let whole = std::fs::read(&digest).unwrap();
        let header = MAGIC.len() + SourceFacts::BYTES;
        let mut claiming = whole[..header].to_vec();
        claiming.extend_from_slice(&(LONGEST_RECORD - 1).to_le_bytes());
        claiming.extend_from_slice(&[0; 64]);
        std::fs::write(&digest, &claiming).unwrap();
        let mut given = 0;
        let source = File::open(&path).unwrap();
        let reading = read_result_digest::<()>(&path, &source, |_| {
            given += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!((reading, given), (DigestReading::Unusable, 0));
    }

    #[test]
    fn a_file_renamed_over_the_one_being_read_gets_no_digest_of_the_other_s_lines() {
        let (directory, path) = digested(format!("{ANSWER}\n").as_bytes());
        let digest = digest_path_of(&path).unwrap();
        std::fs::remove_file(&digest).unwrap();
        let mut lines = ResultFileLines::open(&path).unwrap();
        // An editor or `rsync` puts another file of the same length in its place.
        let other = directory.path().join("other.jsonl");
        std::fs::write(&other, format!("{}\n", ANSWER.replace("h\\\"i", "h\\\"o"))).unwrap();
        std::fs::rename(&other, &path).unwrap();
        let mut writer = DigestAlongside::start(&path, lines.file());
        let mut reader = ChatLineReader::default();
        while let Some(placed) = lines.next_line().unwrap() {
            let line = placed.text.unwrap();
            let answer = reader.read(line);
            writer.add(answer.as_ref(), placed.number, placed.offset, line.len());
        }
        writer.finish();
        assert_eq!(
            records(&path).0,
            DigestReading::Unusable,
            "the digest of the old file's lines is not taken for the new file"
        );
    }

    #[test]
    fn a_file_changed_while_it_is_read_or_a_digest_that_cannot_be_placed_leaves_nothing() {
        let (_directory, path) = digested(format!("{ANSWER}\n{FAILURE}\n").as_bytes());
        let digest = digest_path_of(&path).unwrap();
        let digests = digest.parent().unwrap().to_owned();
        std::fs::remove_file(&digest).unwrap();

        let source = File::open(&path).unwrap();
        let writer = ResultDigestWriter::start(&path, &source).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"\n")
            .unwrap();
        assert!(
            writer.finish().is_err(),
            "the file changed while it was read"
        );
        assert_eq!(std::fs::read_dir(&digests).unwrap().count(), 0);

        std::fs::create_dir(&digest).unwrap();
        let writer = ResultDigestWriter::start(&path, &source).unwrap();
        assert!(
            writer.finish().is_err(),
            "a directory where the digest goes"
        );
        let left: Vec<_> = std::fs::read_dir(&digests)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "only the directory: {left:?}");
    }

    #[test]
    fn counts_too_large_to_pack_leave_the_line_to_be_read_in_full() {
        let large = ANSWER.replace(r#""prompt_tokens":3"#, r#""prompt_tokens":4294967295"#);
        let (_directory, path) = digested(format!("{large}\n").as_bytes());
        let (reading, seen) = records(&path);
        assert_eq!(reading, DigestReading::Whole);
        assert_eq!(
            seen,
            vec![format!(
                "{:?}",
                DigestRecord::OtherLine {
                    line_number: 1,
                    offset: 0,
                    length: large.len() as u32,
                }
            )]
        );
    }
}
