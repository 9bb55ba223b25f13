//! One shard's downloaded result files (output and error lines) read into a map from custom_id
//! to the row's result. Used by the join, the retry planner, the budget and `status`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use std::hash::BuildHasher;

use super::RunDirectory;
use super::result_digest::{
    DigestAlongside, DigestReading, DigestRecord, pack_count, read_line_at, read_result_digest,
};
use super::text_blocks::{TextBlocks, TextPlace};
use crate::chat_line_shape::ChatLineReader;
use crate::ledger::ShardRecord;
use crate::row_result::{
    ChatSuccessLine, ChatUsage, RowResult, RowStatus, classify_result_text,
    classify_result_text_in_full,
};
use crate::wire::BatchStatus;

/// A chat answer's token counts in 16 bytes (an `Option<u64>` each takes 64): `u32::MAX`
/// stands for a count the line does not give. An answer with a count that large is kept whole.
#[derive(Debug, Clone, Copy)]
struct KeptCounts([u32; 4]);

impl KeptCounts {
    fn pack(usage: ChatUsage) -> Option<KeptCounts> {
        Some(KeptCounts([
            pack_count(usage.prompt_tokens)?,
            pack_count(usage.completion_tokens)?,
            pack_count(usage.total_tokens)?,
            pack_count(usage.reasoning_tokens)?,
        ]))
    }

    fn unpack(self) -> ChatUsage {
        let [prompt, completion, total, reasoning] = self
            .0
            .map(|count| (count != u32::MAX).then_some(u64::from(count)));
        ChatUsage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: total,
            reasoning_tokens: reasoning,
        }
    }
}

/// One kept result. A chat answer (nearly every line of a chat job) keeps its texts in the
/// shard's text store and its counts inline: no allocation per line on the reading thread, and
/// 48 bytes (40 of fields, then the tag) where a whole result takes over 200. Any other result
/// is kept whole.
#[derive(Debug)]
enum KeptResult {
    ChatSuccess(KeptChatAnswer),
    Other(Box<RowResult>),
}

/// Where a chat answer's texts are in its shard's text store, once it is taken
/// ([`ResultsById::take_leaving_texts`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct StoredAnswerTexts {
    request_id: TextPlace,
    content: TextPlace,
    finish_reason: TextPlace,
}

/// A row's answer texts as the join writes them: from its shard's text store, or from its
/// result ([`AnswerTexts::of`]).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct AnswerTexts<'a> {
    pub request_id: Option<&'a str>,
    pub content: Option<&'a str>,
    pub finish_reason: Option<&'a str>,
}

impl AnswerTexts<'_> {
    /// The texts `result` holds itself.
    pub(super) fn of(result: &RowResult) -> AnswerTexts<'_> {
        AnswerTexts {
            request_id: result.request_id.as_deref(),
            content: result.content.as_deref(),
            finish_reason: result.finish_reason.as_deref(),
        }
    }

    /// `result` holding these texts as its own, to be written whole somewhere else.
    pub(super) fn put_into(self, mut result: RowResult) -> RowResult {
        result.request_id = self.request_id.map(str::to_owned);
        result.content = self.content.map(str::to_owned);
        result.finish_reason = self.finish_reason.map(str::to_owned);
        result
    }
}

/// A chat answer: where its texts are in the text store, and its counts.
#[derive(Debug)]
struct KeptChatAnswer {
    request_id: TextPlace,
    content: TextPlace,
    finish_reason: TextPlace,
    counts: KeptCounts,
}

impl KeptResult {
    fn status(&self) -> RowStatus {
        match self {
            KeptResult::ChatSuccess(_) => RowStatus::Ok,
            KeptResult::Other(result) => result.status(),
        }
    }
}

/// A shard's results by custom_id, kept in the order of the result files. Providers write the
/// results of a shard mostly in the order of its lines, so the join, asking for them in that
/// order, finds each one by comparing the id at its cursor and only searches the index when the
/// order breaks. The ids are the run's own, checked unique at plan time, so a fast hash that is
/// not flood-resistant is enough. The ids lie one after another in a store of their own
/// ([`TextBlocks`], as the answers' texts): no allocation per result on the thread that reads
/// them, and none to free on the join's; and the join hands a shard's map back to be filled
/// again with a later shard's ([`Self::recycled`]), so its buffers are made once, not once a
/// shard, and never regrown.
#[derive(Default)]
pub(super) struct ResultsById {
    /// The results in the order of the files; `None` once taken.
    entries: Vec<KeptEntry>,
    /// Positions in `entries`, found by the hash of their id.
    index: HashTable<usize>,
    /// The custom_ids, one after another.
    ids: TextBlocks,
    /// The texts of the chat answers kept, one after another.
    texts: TextBlocks,
    /// Where the next result asked for is looked for first: after the last one taken.
    cursor: usize,
    /// Reads the chat answers by the shape of the lines before, kept from shard to shard.
    line_reader: ChatLineReader,
}

/// A shard's results hold more custom_ids than its store takes (4 GiB).
#[derive(Debug)]
struct IdStoreFull;

impl From<IdStoreFull> for serde_json::Error {
    fn from(_: IdStoreFull) -> serde_json::Error {
        serde::de::Error::custom(
            "this shard's result files hold over 4 GiB of custom_ids, which no request file of the run has: they are not the run's results",
        )
    }
}

struct KeptEntry {
    /// Where its custom_id is in `ids`.
    id: TextPlace,
    result: Option<KeptResult>,
}

/// The custom_id of `entry`, in `ids` (a free function, for when the index is borrowed too).
fn id_of<'a>(ids: &'a TextBlocks, entry: &KeptEntry) -> &'a str {
    ids.get(entry.id).unwrap_or_default()
}

/// The hash of a custom_id in a shard's index.
fn id_hash(custom_id: &str) -> u64 {
    FxBuildHasher.hash_one(custom_id)
}

impl ResultsById {
    /// An empty map with room for `rows` results.
    pub(super) fn with_capacity(rows: usize) -> ResultsById {
        ResultsById {
            entries: Vec::with_capacity(rows),
            index: HashTable::with_capacity(rows),
            ids: TextBlocks::default(),
            texts: TextBlocks::default(),
            cursor: 0,
            line_reader: ChatLineReader::default(),
        }
    }

    /// `spent` emptied, its buffers kept, with room for `rows` results; a new map without one.
    pub(super) fn recycled(spent: Option<ResultsById>, rows: usize) -> ResultsById {
        let Some(mut results) = spent else {
            return ResultsById::with_capacity(rows);
        };
        results.entries.clear();
        results.index.clear();
        results.ids.clear();
        results.texts.clear();
        results.cursor = 0;
        results.entries.reserve(rows);
        results
            .index
            .reserve(rows, |_| unreachable!("the index is empty"));
        results
    }

    fn id(&self, entry: &KeptEntry) -> &str {
        id_of(&self.ids, entry)
    }

    /// Where the result for `custom_id` is in `entries`.
    fn position_of(&self, custom_id: &str) -> Option<usize> {
        self.index
            .find(id_hash(custom_id), |&position| {
                self.id(&self.entries[position]) == custom_id
            })
            .copied()
    }

    /// Keeps the result of one result line's text, from a batch that ended in `batch_status`.
    ///
    /// # Errors
    /// When the text is not a result line.
    fn keep_line(&mut self, text: &str, batch_status: BatchStatus) -> serde_json::Result<()> {
        self.keep_line_telling(text, batch_status, |_| {})
    }

    /// As [`Self::keep_line`], telling `read_as` the chat answer the line was read as, or
    /// `None` for a line of another kind (once it is classified).
    fn keep_line_telling(
        &mut self,
        text: &str,
        batch_status: BatchStatus,
        read_as: impl FnOnce(Option<&ChatSuccessLine<'_>>),
    ) -> serde_json::Result<()> {
        if let Some(line) = self.line_reader.read(text) {
            read_as(Some(&line));
            let texts =
                [&line.request_id, &line.content, &line.finish_reason].map(|text| text.as_deref());
            let stored = KeptCounts::pack(line.usage)
                .and_then(|counts| self.store_chat_success(texts, counts));
            match stored {
                Some(kept) => self.keep(&line.custom_id, kept)?,
                None => {
                    let (custom_id, result) = line.into_owned_result();
                    self.keep_result(&custom_id, result)?;
                }
            }
            return Ok(());
        }
        let (custom_id, result) = classify_result_text_in_full(text, batch_status)?;
        read_as(None);
        self.keep_result(&custom_id, result)?;
        Ok(())
    }

    /// Keeps the results of `shard` from the digests of its result files (see
    /// [`super::result_digest`]). `false` when a file has no digest, or one that is not whole or
    /// not of the file as it is: what was kept is then to be thrown away and the files read.
    fn keep_digested_results(
        &mut self,
        run_directory: &RunDirectory,
        shard: &ShardRecord,
        batch_status: BatchStatus,
    ) -> bool {
        let mut line = Vec::new();
        for path in run_directory.results_paths(shard.shard_index) {
            let source = match File::open(&path) {
                // A shard that has no such file (no errors, say) has nothing to read in it.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(_) => return false,
                Ok(source) => source,
            };
            let Ok(source_length) = source.metadata().map(|metadata| metadata.len()) else {
                return false;
            };
            let reading = read_result_digest(&path, &source, |record| {
                self.keep_digested(record, batch_status, (&source, source_length), &mut line)
            });
            if reading != Ok(DigestReading::Whole) {
                return false;
            }
        }
        true
    }

    /// Keeps the result of one record of a digest: a chat answer as it was read from its
    /// line, or a line of another kind read again where the record says in `source` (the
    /// result file, and its length) and classified. `Err` when that line is not within the file (or
    /// longer than a result line), cannot be read there, or is no result line: the digest is
    /// damaged or not of this file.
    fn keep_digested(
        &mut self,
        record: DigestRecord<'_>,
        batch_status: BatchStatus,
        (source, source_length): (&File, u64),
        line: &mut Vec<u8>,
    ) -> Result<(), ()> {
        match record {
            DigestRecord::ChatAnswer {
                custom_id,
                request_id,
                content,
                finish_reason,
                counts,
            } => {
                let counts = KeptCounts(counts);
                let texts = [request_id, content, finish_reason];
                match self.store_chat_success(texts, counts) {
                    Some(kept) => self.keep(custom_id, kept),
                    None => {
                        let result = counts.unpack().into_result(
                            request_id.map(str::to_owned),
                            content.map(str::to_owned),
                            finish_reason.map(str::to_owned),
                        );
                        self.keep_result(custom_id, result)
                    }
                }
                .map_err(|_| ())
            }
            DigestRecord::OtherLine { offset, length, .. } => {
                let within = offset
                    .checked_add(u64::from(length))
                    .is_some_and(|end| end <= source_length);
                if !within || u64::from(length) > LONGEST_RESULT_LINE {
                    return Err(());
                }
                read_line_at(source, offset, length, line).map_err(|_| ())?;
                let text = crate::utf8_check::checked_utf8(line).map_err(|_| ())?;
                self.keep_line(text, batch_status).map_err(|_| ())
            }
        }
    }

    /// A chat answer (its request id, answer and finish reason, and counts) with its texts put
    /// in the text store; `None` when the store is full (4 GiB of short texts in one shard), and
    /// the answer is then kept whole.
    fn store_chat_success(
        &mut self,
        texts: [Option<&str>; 3],
        counts: KeptCounts,
    ) -> Option<KeptResult> {
        let mut store = |text: Option<&str>| match text {
            None => Some(TextPlace::NONE),
            Some(text) => self.texts.push(text),
        };
        let [request_id, content, finish_reason] = texts;
        let (request_id, content, finish_reason) =
            (store(request_id)?, store(content)?, store(finish_reason)?);
        Some(KeptResult::ChatSuccess(KeptChatAnswer {
            request_id,
            content,
            finish_reason,
            counts,
        }))
    }

    /// Keeps `result` for `custom_id`, whole.
    fn keep_result(&mut self, custom_id: &str, result: RowResult) -> Result<(), IdStoreFull> {
        self.keep(custom_id, KeptResult::Other(Box::new(result)))
    }

    /// Keeps `result` for `custom_id`. A line reported twice keeps its success, never a failure
    /// over it; it keeps the place of its first report.
    ///
    /// # Errors
    /// When the shard's custom_ids take 4 GiB, which its own request file never does.
    fn keep(&mut self, custom_id: &str, result: KeptResult) -> Result<(), IdStoreFull> {
        let (entries, ids) = (&self.entries, &self.ids);
        let id_at = |position: usize| id_of(ids, &entries[position]);
        // One hash and one probe, whether the id is new (nearly always) or not.
        let new_position = entries.len();
        match self.index.entry(
            id_hash(custom_id),
            |&position| id_at(position) == custom_id,
            |&position| id_hash(id_at(position)),
        ) {
            hashbrown::hash_table::Entry::Occupied(occupied) => {
                let place = &mut self.entries[*occupied.get()].result;
                let kept_success = place
                    .as_ref()
                    .is_some_and(|existing| existing.status() == RowStatus::Ok);
                if !kept_success {
                    *place = Some(result);
                }
            }
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                let Some(id) = self.ids.push(custom_id) else {
                    return Err(IdStoreFull);
                };
                vacant.insert(new_position);
                self.entries.push(KeptEntry {
                    id,
                    result: Some(result),
                });
            }
        }
        Ok(())
    }

    fn text(&self, place: TextPlace) -> Option<&str> {
        self.texts.get(place)
    }

    /// A kept result as a whole result; its answer (text or embedding), request id and finish
    /// reason only `with_texts`.
    fn made_whole(&self, kept: &KeptResult, with_texts: bool) -> RowResult {
        match kept {
            KeptResult::ChatSuccess(answer) => {
                let text = |span| self.text(span).filter(|_| with_texts).map(str::to_owned);
                answer.counts.unpack().into_result(
                    text(answer.request_id),
                    text(answer.content),
                    text(answer.finish_reason),
                )
            }
            KeptResult::Other(result) if with_texts => result.as_ref().clone(),
            // Status, error and counts: an embedding's vector is not copied either.
            KeptResult::Other(result) => RowResult {
                status: result.status,
                prompt_tokens: result.prompt_tokens,
                completion_tokens: result.completion_tokens,
                reasoning_tokens: result.reasoning_tokens,
                total_tokens: result.total_tokens,
                error_code: result.error_code.clone(),
                error_message: result.error_message.clone(),
                ..RowResult::default()
            },
        }
    }

    /// The result for `custom_id` without a chat answer's texts (request id, answer, finish
    /// reason), unless it was taken: its status, error and counts, all that pricing a row and
    /// judging a retry read, without copying the answer.
    pub(super) fn get_without_answer_texts(&self, custom_id: &str) -> Option<RowResult> {
        let kept = self.entries[self.position_of(custom_id)?].result.as_ref()?;
        Some(self.made_whole(kept, false))
    }

    /// The results not taken, in the order of the files, as
    /// [`Self::get_without_answer_texts`] gives them.
    pub(super) fn values_without_answer_texts(&self) -> impl Iterator<Item = RowResult> + '_ {
        self.entries
            .iter()
            .filter_map(|entry| entry.result.as_ref())
            .map(|kept| self.made_whole(kept, false))
    }

    /// Starts loading the id and texts of the result at the cursor (the next one asked for,
    /// most often), which the thread that read them left out of this one's caches.
    pub(super) fn prefetch_next(&self) {
        if let Some(entry) = self.entries.get(self.cursor)
            && let Some(kept) = &entry.result
        {
            crate::prefetch::prefetch_address(self.id(entry).as_ptr());
            if let KeptResult::ChatSuccess(KeptChatAnswer { request_id, .. }) = kept
                && let Some(text) = self.text(*request_id)
            {
                // The request id, then the answer and finish reason, were stored one after
                // another: most often on one or two cache lines.
                crate::prefetch::prefetch_address(text.as_ptr());
                crate::prefetch::prefetch_address(text.as_ptr().wrapping_add(64));
            }
        }
    }

    /// Takes the kept result for `custom_id` out, looking first at the cursor.
    fn take_kept(&mut self, custom_id: &str) -> Option<KeptResult> {
        let position = match self.entries.get(self.cursor) {
            Some(entry) if self.id(entry) == custom_id => self.cursor,
            _ => self.position_of(custom_id)?,
        };
        self.cursor = position + 1;
        self.entries[position].result.take()
    }

    /// As [`Self::take`], into `into`, but a chat answer's texts (request id, answer, finish
    /// reason) stay in the text store: `into` gets its status and counts, and the join writes
    /// the texts from where the returned [`StoredAnswerTexts`] says ([`Self::answer_texts`]),
    /// with no string made or copied for them per row. `Some(None)` for a result put whole
    /// into `into`; `None`, and `into` untouched, when there is none.
    pub(super) fn take_leaving_texts(
        &mut self,
        custom_id: &str,
        into: &mut RowResult,
    ) -> Option<Option<StoredAnswerTexts>> {
        Some(match self.take_kept(custom_id)? {
            KeptResult::Other(result) => {
                *into = *result;
                None
            }
            KeptResult::ChatSuccess(answer) => {
                *into = answer.counts.unpack().into_result(None, None, None);
                Some(StoredAnswerTexts {
                    request_id: answer.request_id,
                    content: answer.content,
                    finish_reason: answer.finish_reason,
                })
            }
        })
    }

    /// The texts of a chat answer taken with [`Self::take_leaving_texts`].
    pub(super) fn answer_texts(&self, stored: StoredAnswerTexts) -> AnswerTexts<'_> {
        AnswerTexts {
            request_id: self.text(stored.request_id),
            content: self.text(stored.content),
            finish_reason: self.text(stored.finish_reason),
        }
    }

    /// Takes the result for `custom_id` out: asked again, it is gone.
    pub(super) fn take(&mut self, custom_id: &str) -> Option<RowResult> {
        Some(match self.take_kept(custom_id)? {
            KeptResult::Other(result) => *result,
            chat_success => self.made_whole(&chat_success, true),
        })
    }

    /// Whether any result not taken and not `ok` is one that `matches` (the chat answers,
    /// all `ok`, are passed over without being made whole).
    pub(super) fn any_not_ok(&self, matches: impl Fn(&RowResult) -> bool) -> bool {
        self.entries
            .iter()
            .filter_map(|entry| entry.result.as_ref())
            .any(|kept| match kept {
                KeptResult::ChatSuccess(_) => false,
                KeptResult::Other(result) => result.status() != RowStatus::Ok && matches(result),
            })
    }
}

/// Reads one shard's result files into a map from custom_id to result, writing the digest of
/// a file read line by line for want of a usable one (a process holding the run's lock).
pub(super) fn load_shard_results(
    run_directory: &RunDirectory,
    shard: &ShardRecord,
    batch_status: BatchStatus,
) -> anyhow::Result<ResultsById> {
    load_shard_results_into(run_directory, shard, batch_status, None, Digesting::Yes)
}

/// As [`load_shard_results`], into the buffers of `spent` (a map done with) when given,
/// writing digests as `digesting` says: [`Digesting::No`] for a command that only looks
/// (`status`, which takes no lock and may be run by another user).
pub(super) fn load_shard_results_into(
    run_directory: &RunDirectory,
    shard: &ShardRecord,
    batch_status: BatchStatus,
    spent: Option<ResultsById>,
    digesting: Digesting,
) -> anyhow::Result<ResultsById> {
    let rows = shard.row_count as usize;
    let mut results = ResultsById::recycled(spent, rows);
    if !results.keep_digested_results(run_directory, shard, batch_status) {
        results = ResultsById::recycled(Some(results), rows);
        for_each_result_line(run_directory, shard, digesting, |line, mut being_read| {
            results.keep_line_telling(line, batch_status, |answer| being_read.read_as(answer))
        })?;
    }
    Ok(results)
}

/// One shard's `ok` results with the result lines as the provider wrote them, by custom_id
/// (what the answer store keeps).
pub(super) fn load_ok_result_lines(
    run_directory: &RunDirectory,
    shard: &ShardRecord,
    batch_status: BatchStatus,
) -> anyhow::Result<HashMap<String, (String, RowResult)>> {
    let mut results: HashMap<String, (String, RowResult)> = HashMap::new();
    for_each_result_line(run_directory, shard, Digesting::No, |line, _| {
        let (custom_id, result) = classify_result_text(line, batch_status)?;
        if result.status() == RowStatus::Ok {
            results
                .entry(custom_id)
                .or_insert((line.to_owned(), result));
        }
        Ok(())
    })?;
    Ok(results)
}

/// Whether reading a shard's result files writes their digests as it goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Digesting {
    Yes,
    No,
}

/// The line [`for_each_result_line`] gives, for telling the file's digest (when one is
/// written) what the line was read as.
struct LineBeingRead<'a> {
    digest: Option<&'a mut DigestAlongside>,
    number: u64,
    offset: u64,
    length: usize,
}

impl LineBeingRead<'_> {
    /// Adds the line to the digest: `answer` when it was read as a chat answer, else as a
    /// line of another kind.
    fn read_as(&mut self, answer: Option<&ChatSuccessLine<'_>>) {
        if let Some(digest) = &mut self.digest {
            digest.add(answer, self.number, self.offset, self.length);
        }
    }
}

/// Calls `each` with every line of a shard's output and error files, in that order, writing
/// each file's digest as it goes when `digesting` (what `each` tells it through the
/// [`LineBeingRead`]), so that the next reading takes the lines from there; an error `each`
/// returns (the line is not a result line) is told with the file and line.
fn for_each_result_line(
    run_directory: &RunDirectory,
    shard: &ShardRecord,
    digesting: Digesting,
    mut each: impl FnMut(&str, LineBeingRead<'_>) -> serde_json::Result<()>,
) -> anyhow::Result<()> {
    for path in run_directory.results_paths(shard.shard_index) {
        // A shard that has no such file (no errors, say) has nothing to read in it.
        let mut lines = match ResultFileLines::open(&path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            opened => opened
                .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?,
        };
        let mut digest =
            (digesting == Digesting::Yes).then(|| DigestAlongside::start(&path, lines.file()));
        while let Some(placed) = lines.next_line()? {
            let (line_number, line) = (placed.number, placed.text);
            let line = line.map_err(|error| {
                anyhow::anyhow!(
                    "{}, line {line_number}: not a result line: it is not UTF-8 ({error})",
                    path.display(),
                )
            })?;
            let being_read = LineBeingRead {
                digest: digest.as_mut(),
                number: line_number,
                offset: placed.offset,
                length: line.len(),
            };
            each(line, being_read).map_err(|error| {
                anyhow::anyhow!(
                    "{}, line {line_number}: not a result line: {error}",
                    path.display(),
                )
            })?;
        }
        if let Some(digest) = digest {
            digest.finish();
        }
    }
    Ok(())
}

/// The lines of one result file, each lent straight from the reader's buffer (one that crosses
/// its end is gathered into a reused one) and checked as UTF-8 by SIMD: no copy and no allocation
/// per line. Blank lines are skipped, and each comes without its line ending. The join, the
/// retry planner and the check of a download all read result files through it.
///
/// The whole lines a read brings into the buffer are checked as UTF-8 at once, which for
/// lines of a few hundred bytes takes a fraction of checking them one by one; only when that
/// check fails are those lines checked one by one, for the line and place to report.
pub(super) struct ResultFileLines {
    reader: BufReader<File>,
    /// A line that crossed the end of the reader's buffer.
    gathered: Vec<u8>,
    /// The bytes of the reader's buffer the line lent last takes (with its ending), consumed when
    /// the next is asked for.
    lent: usize,
    /// The number (from 1) of the line read last, blank ones counted.
    line_number: u64,
    /// How many bytes at the start of the reader's buffer are whole lines checked as UTF-8.
    checked: usize,
    /// How many bytes at the start of the reader's buffer are whole lines among which one is not
    /// UTF-8: each of them is checked on its own.
    checked_one_by_one: usize,
    /// The longest line read, in bytes without its ending ([`LONGEST_RESULT_LINE`]).
    longest_line: u64,
    /// How many bytes of the file were consumed: where the reader's buffer starts in it.
    consumed: u64,
    /// Where in the file the line lent last starts.
    line_offset: u64,
}

/// The longest result line read: 64 MiB, ten times the longest request line DashScope takes
/// (6 MB, reference §3) and far past any answer. A file with a longer line (a download that is
/// no result file, bytes without line endings) is refused instead of gathered into memory.
pub(super) const LONGEST_RESULT_LINE: u64 = 64 * 1024 * 1024;

/// A line of a result file as [`ResultFileLines::next_line`] gives it.
#[derive(Debug)]
pub(super) struct PlacedLine<'a> {
    /// Its number, from 1, blank lines counted.
    pub number: u64,
    /// Where in the file it starts.
    pub offset: u64,
    /// Its text without its ending, or why its bytes are not UTF-8.
    pub text: Result<&'a str, std::str::Utf8Error>,
}

/// Where a line lies: at the start of the reader's buffer, or gathered; its length without its
/// ending.
enum LinePlace {
    InBuffer(usize),
    Gathered(usize),
}

impl ResultFileLines {
    pub(super) fn open(path: &Path) -> std::io::Result<ResultFileLines> {
        Ok(ResultFileLines {
            reader: BufReader::with_capacity(1 << 17, File::open(path)?),
            gathered: Vec::new(),
            lent: 0,
            line_number: 0,
            checked: 0,
            checked_one_by_one: 0,
            longest_line: LONGEST_RESULT_LINE,
            consumed: 0,
            line_offset: 0,
        })
    }

    /// As [`Self::open`], with another longest line (for tests).
    #[cfg(test)]
    fn with_longest_line(mut self, bytes: u64) -> ResultFileLines {
        self.longest_line = bytes;
        self
    }

    /// Consumes `length` bytes of the reader's buffer, and of what was checked of it.
    fn consume(&mut self, length: usize) {
        self.reader.consume(length);
        self.consumed += length as u64;
        self.checked = self.checked.saturating_sub(length);
        self.checked_one_by_one = self.checked_one_by_one.saturating_sub(length);
    }

    /// Checks the whole lines at the start of `available` (the reader's buffer, none of it
    /// checked yet) as UTF-8 at once: `checked` when they are, `checked_one_by_one` when not.
    fn check_whole_lines(&mut self, available_length: usize) {
        let available = &self.reader.buffer()[..available_length];
        let Some(last_ending) = memchr::memrchr(b'\n', available) else {
            return;
        };
        let whole_lines = last_ending + 1;
        if simdutf8::basic::from_utf8(&available[..whole_lines]).is_ok() {
            self.checked = whole_lines;
        } else {
            self.checked_one_by_one = whole_lines;
        }
    }

    /// The line at `place`, as it was found.
    fn line_at(&self, place: &LinePlace) -> &[u8] {
        match *place {
            LinePlace::InBuffer(length) => &self.reader.buffer()[..length],
            LinePlace::Gathered(length) => &self.gathered[..length],
        }
    }

    /// The file the lines are read from.
    pub(super) fn file(&self) -> &File {
        self.reader.get_ref()
    }

    /// The number (from 1) of the line read last, or being read when reading failed.
    pub(super) fn line_number(&self) -> u64 {
        self.line_number
    }

    /// The next line that is not blank, with its number and where in the file it starts (its
    /// bytes as given, a `\r` before its ending left out, run on from there), or why its bytes
    /// are not UTF-8; `None` at the end of the file.
    ///
    /// # Errors
    /// When the file cannot be read.
    pub(super) fn next_line(&mut self) -> std::io::Result<Option<PlacedLine<'_>>> {
        let Some((number, place)) = self.next_place()? else {
            return Ok(None);
        };
        let offset = self.line_offset;
        Ok(Some(PlacedLine {
            number,
            offset,
            text: place.map(|place| {
                let bytes = self.line_at(&place);
                // SAFETY: these bytes were checked as UTF-8 in `next_place`, cut only before
                // an ASCII `\r`, which is a character boundary.
                unsafe { std::str::from_utf8_unchecked(bytes) }
            }),
        }))
    }

    /// Where the next line that is not blank lies, with its number, or why its bytes are not
    /// UTF-8; `None` at the end of the file.
    fn next_place(
        &mut self,
    ) -> std::io::Result<Option<(u64, Result<LinePlace, std::str::Utf8Error>)>> {
        let place = loop {
            let lent = std::mem::take(&mut self.lent);
            self.consume(lent);
            self.line_number += 1;
            let available_length = loop {
                match self.reader.fill_buf() {
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                    read => break read?.len(),
                }
            };
            if available_length == 0 {
                return Ok(None);
            }
            if self.checked == 0 && self.checked_one_by_one == 0 {
                self.check_whole_lines(available_length);
            }
            let available = &self.reader.buffer()[..available_length];
            self.line_offset = self.consumed;
            let place = match memchr::memchr(b'\n', available) {
                Some(end) => {
                    self.lent = end + 1;
                    LinePlace::InBuffer(end)
                }
                None => {
                    // No line ending in the buffer, so none of it was checked as whole lines:
                    // `read_until` may consume it without `consume`'s bookkeeping.
                    debug_assert!(self.checked == 0 && self.checked_one_by_one == 0);
                    self.gathered.clear();
                    let most = self.longest_line + 1;
                    std::io::Read::take(&mut self.reader, most)
                        .read_until(b'\n', &mut self.gathered)?;
                    self.consumed += self.gathered.len() as u64;
                    let ends_with_newline = self.gathered.last() == Some(&b'\n');
                    if self.gathered.len() as u64 == most && !ends_with_newline {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!(
                                "the line runs on past {} bytes, longer than any result line a provider writes: this is no result file",
                                self.longest_line
                            ),
                        ));
                    }
                    LinePlace::Gathered(self.gathered.len() - usize::from(ends_with_newline))
                }
            };
            let line = self.line_at(&place);
            let checked = match place {
                LinePlace::InBuffer(end) if end < self.checked => {
                    // SAFETY: the line lies within the bytes checked as UTF-8 in
                    // `check_whole_lines`, and ends before a `\n` (a character boundary).
                    Ok(unsafe { std::str::from_utf8_unchecked(line) })
                }
                _ => crate::utf8_check::checked_utf8(line),
            };
            match checked {
                Err(error) => return Ok(Some((self.line_number, Err(error)))),
                Ok(line) => {
                    let line = line.strip_suffix('\r').unwrap_or(line);
                    if !line.trim().is_empty() {
                        break match place {
                            LinePlace::InBuffer(_) => LinePlace::InBuffer(line.len()),
                            LinePlace::Gathered(_) => LinePlace::Gathered(line.len()),
                        };
                    }
                }
            }
        };
        Ok(Some((self.line_number, Ok(place))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl ResultsById {
        /// The result for `custom_id`, unless it was taken, whole.
        fn get(&self, custom_id: &str) -> Option<RowResult> {
            let kept = self.entries[self.position_of(custom_id)?].result.as_ref()?;
            Some(self.made_whole(kept, true))
        }

        /// The results not taken, in the order of the files, whole.
        fn values(&self) -> impl Iterator<Item = RowResult> + '_ {
            self.entries
                .iter()
                .filter_map(|entry| entry.result.as_ref())
                .map(|kept| self.made_whole(kept, true))
        }
    }

    fn answered(content: &str) -> RowResult {
        RowResult {
            status: Some(RowStatus::Ok),
            content: Some(content.to_owned()),
            ..RowResult::default()
        }
    }

    fn failed() -> RowResult {
        RowResult::unanswered(Some(BatchStatus::Expired))
    }

    #[test]
    fn a_kept_line_gives_back_what_classifying_it_gives() {
        let line = |id: &str, usage: &str, message: &str| {
            format!(
                r#"{{"id":"L{id}","custom_id":"{id}","response":{{"status_code":200,"request_id":"R{id}","body":{{"usage":{usage},"choices":[{{"finish_reason":"stop","message":{message}}}]}}}},"error":null}}"#
            )
        };
        let lines = [
            line("1", r#"{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}"#, r#"{"content":"{\"a\":\"中\"}"}"#),
            line("2", "null", r#"{"content":"no usage"}"#),
            line("3", r#"{"prompt_tokens":4294967295,"completion_tokens":1}"#, r#"{"content":"a count too large to pack"}"#),
            line("4", r#"{"prompt_tokens":18446744073709551615,"completion_tokens_details":{"reasoning_tokens":3}}"#, r#"{"content":""}"#),
            line("5", r#"{"prompt_tokens":0,"completion_tokens":4294967294}"#, r#"{"content":null}"#),
            line("6", r#"{"prompt_tokens":1}"#, "{}"),
            r#"{"custom_id":"7","response":{"status_code":200,"body":{"choices":[{"message":{"content":"no ids"}}]}}}"#.to_owned(),
            r#"{"custom_id":"8","response":null,"error":{"code":"rate_limit_exceeded","message":"slow down"}}"#.to_owned(),
        ];
        let mut results = ResultsById::with_capacity(lines.len());
        for text in &lines {
            results
                .keep_line(text, BatchStatus::Completed)
                .unwrap_or_else(|error| panic!("{text}: {error}"));
        }
        let whole: Vec<RowResult> = results.values().collect();
        for (index, text) in lines.iter().enumerate() {
            let (custom_id, expected) = classify_result_text(text, BatchStatus::Completed).unwrap();
            assert_eq!(whole[index], expected, "{text}");
            assert_eq!(results.get(&custom_id).as_ref(), Some(&expected), "{text}");
            let without_texts = results.get_without_answer_texts(&custom_id).unwrap();
            assert_eq!(without_texts.status(), expected.status(), "{text}");
            assert_eq!(without_texts.error_code, expected.error_code, "{text}");
            assert_eq!(
                (without_texts.prompt_tokens, without_texts.completion_tokens),
                (expected.prompt_tokens, expected.completion_tokens),
                "{text}"
            );
            assert_eq!(
                (without_texts.total_tokens, without_texts.reasoning_tokens),
                (expected.total_tokens, expected.reasoning_tokens),
                "{text}"
            );
            assert_eq!(results.take(&custom_id), Some(expected), "{text}");
        }
        assert!(
            results
                .keep_line("{\"custom_id\":5}", BatchStatus::Completed)
                .is_err()
        );
    }

    #[test]
    fn results_are_taken_once_each_whether_asked_in_file_order_or_not() {
        let mut results = ResultsById::with_capacity(4);
        for id in ["a", "b", "c", "d"] {
            results.keep_result(id, answered(id)).unwrap();
        }
        // In order, then out of order (the cursor follows the last one found), then again.
        assert_eq!(results.take("a").unwrap().content.as_deref(), Some("a"));
        assert_eq!(results.take("c").unwrap().content.as_deref(), Some("c"));
        assert_eq!(results.take("d").unwrap().content.as_deref(), Some("d"));
        assert_eq!(results.take("b").unwrap().content.as_deref(), Some("b"));
        for id in ["a", "b", "c", "d", "e"] {
            assert!(
                results.take(id).is_none(),
                "{id} was taken already or never kept"
            );
            assert!(results.get(id).is_none());
        }
        assert_eq!(results.values().count(), 0);
    }

    #[test]
    fn a_recycled_map_holds_only_the_next_shards_results() {
        let line = |id: &str, content: &str| {
            format!(
                r#"{{"custom_id":"{id}","response":{{"status_code":200,"body":{{"usage":{{"prompt_tokens":3,"completion_tokens":1}},"choices":[{{"message":{{"content":"{content}"}}}}]}}}},"error":null}}"#
            )
        };
        let mut first = ResultsById::with_capacity(3);
        for (id, content) in [("a", "one"), ("b", "two"), ("c", "three")] {
            first
                .keep_line(&line(id, content), BatchStatus::Completed)
                .unwrap();
        }
        first.take("a").unwrap();
        let mut second = ResultsById::recycled(Some(first), 2);
        assert_eq!(second.values().count(), 0);
        for (id, content) in [("c", "again"), ("d", "four")] {
            second
                .keep_line(&line(id, content), BatchStatus::Completed)
                .unwrap();
        }
        for gone in ["a", "b"] {
            assert!(second.get(gone).is_none(), "{gone}");
        }
        // The cursor starts over, and the texts are the second shard's.
        assert_eq!(second.take("c").unwrap().content.as_deref(), Some("again"));
        assert_eq!(second.take("d").unwrap().content.as_deref(), Some("four"));
        assert_eq!(second.values().count(), 0);
    }

    #[test]
    fn answers_longer_than_a_text_block_and_thousands_of_short_ones_come_back_whole_after_recycling()
     {
        let line = |id: &str, content: &str| {
            format!(
                r#"{{"custom_id":"{id}","response":{{"status_code":200,"request_id":"req-{id}","body":{{"usage":{{"prompt_tokens":3,"completion_tokens":1}},"choices":[{{"finish_reason":"stop","message":{{"content":"{content}"}}}}]}}}},"error":null}}"#
            )
        };
        let long = "长答".repeat(super::super::text_blocks::BLOCK_BYTES / 5);
        let content_of = |number: usize| {
            if number.is_multiple_of(997) {
                format!("{long}{number}")
            } else {
                format!("answer {number}")
            }
        };
        let mut results = ResultsById::with_capacity(8);
        for round in 0..3 {
            results = ResultsById::recycled(Some(results), 5_000);
            for number in 0..5_000 {
                let id = format!("row-{round}-{number}");
                results
                    .keep_line(&line(&id, &content_of(number)), BatchStatus::Completed)
                    .unwrap();
            }
            for number in (0..5_000).rev() {
                let id = format!("row-{round}-{number}");
                let result = results.take(&id).unwrap();
                assert_eq!(result.content.unwrap(), content_of(number), "{id}");
                assert_eq!(result.request_id.unwrap(), format!("req-{id}"));
                assert_eq!(result.finish_reason.as_deref(), Some("stop"));
            }
        }
    }

    #[test]
    fn a_line_reported_twice_keeps_its_success_and_its_first_place() {
        let mut results = ResultsById::with_capacity(3);
        results.keep_result("a", failed()).unwrap();
        results.keep_result("b", answered("first")).unwrap();
        results.keep_result("a", answered("retried")).unwrap();
        results.keep_result("b", failed()).unwrap();
        results.keep_result("c", failed()).unwrap();
        assert_eq!(
            results.get("a").unwrap().content.as_deref(),
            Some("retried")
        );
        assert_eq!(results.get("b").unwrap().content.as_deref(), Some("first"));
        assert_eq!(results.get("c").unwrap().status(), RowStatus::Expired);
        let order: Vec<_> = results.values().map(|result| result.status()).collect();
        assert_eq!(order, [RowStatus::Ok, RowStatus::Ok, RowStatus::Expired]);
        assert_eq!(
            results.take("a").unwrap().content.as_deref(),
            Some("retried")
        );
        assert_eq!(
            results.values().count(),
            2,
            "a taken result is no longer listed"
        );
    }

    /// The results of a shard's files read line by line, with no digest.
    fn read_line_by_line(
        run_directory: &RunDirectory,
        shard: &ShardRecord,
        batch_status: BatchStatus,
    ) -> Vec<RowResult> {
        let mut results = ResultsById::with_capacity(8);
        for_each_result_line(run_directory, shard, Digesting::No, |line, _| {
            results.keep_line(line, batch_status)
        })
        .unwrap();
        results.values().collect()
    }

    #[test]
    fn results_kept_from_digests_are_those_kept_from_reading_the_lines() {
        let directory = tempfile::tempdir().unwrap();
        let run_directory = RunDirectory::new(directory.path().to_owned());
        run_directory.create().unwrap();
        let answer = |id: &str, content: &str, prompt: &str| {
            format!(
                r#"{{"id":"r-{id}","custom_id":"{id}","response":{{"status_code":200,"request_id":"q-{id}","body":{{"choices":[{{"finish_reason":"stop","message":{{"content":{content}}}}}],"usage":{{"prompt_tokens":{prompt},"completion_tokens":2,"total_tokens":7}}}}}},"error":null}}"#
            )
        };
        let failure = |id: &str| {
            format!(
                r#"{{"id":"r-{id}","custom_id":"{id}","response":null,"error":{{"code":"InternalError","message":"try later"}}}}"#
            )
        };
        let output = [
            answer("a", r#""plain""#, "5"),
            answer("b", r#""esc\"aped \u4e2d""#, "5"),
            String::new(),
            answer("c", r#""counts too large""#, "4294967296"),
            answer("d", "null", "5"),
            r#"{"id":"r-e","custom_id":"e","response":{"status_code":200,"body":{"data":[{"embedding":[0.5,1.0]}],"usage":{"prompt_tokens":3,"total_tokens":3}}},"error":null}"#.to_owned(),
            r#"{"id":"r-f","custom_id":"f","response":{"status_code":400,"body":{"error":{"code":"invalid","message":"no"}}},"error":null}"#.to_owned(),
            answer("中文", r#""答""#, "5"),
        ]
        .join("\r\n");
        let errors = [failure("g"), failure("a"), answer("g", r#""retried""#, "5")].join("\n");
        let [output_path, errors_path] = run_directory.results_paths(0);
        std::fs::write(&output_path, output).unwrap();
        std::fs::write(&errors_path, errors).unwrap();
        for path in [&output_path, &errors_path] {
            crate::engine::download::verify_result_file(path).unwrap();
            assert!(
                super::super::result_digest::digest_path_of(path)
                    .unwrap()
                    .is_file()
            );
        }
        let shard = ShardRecord::planned(0, 1, "shard-00000.jsonl".into(), "qwen-plus".into(), 9);
        for status in [
            BatchStatus::Completed,
            BatchStatus::Expired,
            BatchStatus::Failed,
            BatchStatus::Cancelled,
        ] {
            let mut from_digests = ResultsById::with_capacity(8);
            assert!(
                from_digests.keep_digested_results(&run_directory, &shard, status),
                "both digests are whole and of their files"
            );
            assert!(
                from_digests
                    .entries
                    .iter()
                    .any(|entry| matches!(entry.result, Some(KeptResult::ChatSuccess(_)))),
                "chat answers are kept in the text store"
            );
            let kept: Vec<RowResult> = from_digests.values().collect();
            assert_eq!(kept.len(), 8);
            assert_eq!(
                kept,
                read_line_by_line(&run_directory, &shard, status),
                "{status:?}"
            );
            assert_eq!(
                from_digests.take("中文").unwrap().content.as_deref(),
                Some("答")
            );
        }

        // A result file written again after its digest: the digest is passed over.
        let [output_path, _] = run_directory.results_paths(0);
        let changed = std::fs::read_to_string(&output_path)
            .unwrap()
            .replace("plain", "PLAIN");
        std::fs::write(&output_path, changed).unwrap();
        assert!(!ResultsById::with_capacity(8).keep_digested_results(
            &run_directory,
            &shard,
            BatchStatus::Completed
        ));
        let mut results =
            load_shard_results(&run_directory, &shard, BatchStatus::Completed).unwrap();
        assert_eq!(results.take("a").unwrap().content.as_deref(), Some("PLAIN"));
        // Reading the file line by line wrote its digest again, and the next reading takes it.
        let mut again = ResultsById::with_capacity(8);
        assert!(again.keep_digested_results(&run_directory, &shard, BatchStatus::Completed));
        assert_eq!(again.take("a").unwrap().content.as_deref(), Some("PLAIN"));
    }

    #[test]
    fn a_digest_record_pointing_past_its_file_is_refused_before_room_is_made_for_it() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("results.jsonl");
        std::fs::write(&path, "{}\n").unwrap();
        let source = File::open(&path).unwrap();
        let mut results = ResultsById::with_capacity(1);
        let mut line = Vec::new();
        for (offset, length) in [(0, u32::MAX - 15), (2, 2), (u64::MAX, 1)] {
            let record = DigestRecord::OtherLine {
                line_number: 1,
                offset,
                length,
            };
            assert_eq!(
                results.keep_digested(record, BatchStatus::Completed, (&source, 3), &mut line),
                Err(())
            );
        }
        assert_eq!(line.capacity(), 0, "no room was made for a line");
    }

    /// Every line `ResultFileLines` reads from a file of these bytes, with its number, or
    /// where it stops being UTF-8.
    fn lines_read_back(file: &[u8]) -> Vec<(u64, Result<String, usize>)> {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("results.jsonl");
        std::fs::write(&path, file).unwrap();
        let mut lines = ResultFileLines::open(&path).unwrap();
        let mut read = Vec::new();
        while let Some(PlacedLine {
            number, text: line, ..
        }) = lines.next_line().unwrap()
        {
            read.push((
                number,
                line.map(str::to_owned).map_err(|error| error.valid_up_to()),
            ));
        }
        read
    }

    #[test]
    fn a_result_line_longer_than_the_longest_is_refused_not_gathered() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("results.jsonl");
        let longest = 300_000;
        // A line of exactly the longest length passes, with or without its ending.
        for ending in ["\n", ""] {
            std::fs::write(&path, format!("{}{ending}", "x".repeat(longest))).unwrap();
            let mut lines = ResultFileLines::open(&path)
                .unwrap()
                .with_longest_line(longest as u64);
            let line = lines.next_line().unwrap().unwrap().text;
            assert_eq!(line.unwrap().len(), longest);
            assert!(lines.next_line().unwrap().is_none());
        }
        // One byte more is refused, after a short line that is read.
        std::fs::write(&path, format!("{{}}\n{}\n", "x".repeat(longest + 1))).unwrap();
        let mut lines = ResultFileLines::open(&path)
            .unwrap()
            .with_longest_line(longest as u64);
        assert_eq!(lines.next_line().unwrap().unwrap().text.unwrap(), "{}");
        let error = lines.next_line().unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("no result file"), "{error}");
        assert_eq!(lines.line_number(), 2);
    }

    #[test]
    fn result_file_lines_come_whole_across_the_buffer_without_endings_or_blank_lines() {
        // Lines of every length around the reader's buffer size, so some cross its end, with
        // CRLF and LF endings, blank lines, a line that is not UTF-8, and no final newline.
        let mut file = Vec::new();
        let mut expected: Vec<(u64, Option<String>)> = Vec::new();
        let mut line_number = 0;
        for (index, length) in (0..40)
            .map(|index| (index, 1 + index * 9_001))
            .chain([(40, 300_000)])
        {
            let text = format!("{{\"n\":{index},\"t\":\"{}\"}}", "好".repeat(length / 3));
            file.extend_from_slice(text.as_bytes());
            file.extend_from_slice(if index % 2 == 0 { b"\r\n" } else { b"\n" });
            line_number += 1;
            expected.push((line_number, Some(text)));
            if index % 7 == 0 {
                file.extend_from_slice(b"  \r\n\n");
                line_number += 2;
            }
            if index == 20 {
                file.extend_from_slice(b"{\"bad\":\"\xff\"}\n");
                line_number += 1;
                expected.push((line_number, None));
            }
        }
        file.extend_from_slice(b"{\"last\":true}");
        expected.push((line_number + 1, Some("{\"last\":true}".to_owned())));
        let read: Vec<(u64, Option<String>)> = lines_read_back(&file)
            .into_iter()
            .map(|(number, line)| (number, line.ok()))
            .collect();
        assert_eq!(read.len(), expected.len());
        for (read, expected) in read.iter().zip(&expected) {
            assert_eq!(read, expected);
        }
    }

    #[test]
    fn short_lines_checked_a_buffer_at_a_time_are_told_apart_as_one_by_one() {
        // Thousands of short lines in each buffer, a few not UTF-8 (a stray byte, a character
        // cut short, one cut at the line's end), read on past each: every line comes as the
        // standard library reads it on its own, with where it stops being UTF-8.
        let mut file = Vec::new();
        let mut expected: Vec<(u64, Result<String, usize>)> = Vec::new();
        for index in 0..60_000u64 {
            let mut line =
                format!("{{\"custom_id\":\"row-{index}\",\"t\":\"好评{index}\"}}").into_bytes();
            match index % 9_973 {
                17 => line.insert(5, 0xff),
                // A character cut short inside the line, then one cut at its end.
                4_000 => {
                    line.splice(20..20, "好".as_bytes()[..1].iter().copied());
                }
                9_000 => line.extend_from_slice(&"好".as_bytes()[..2]),
                _ => {}
            }
            expected.push((
                index + 1,
                std::str::from_utf8(&line)
                    .map(str::to_owned)
                    .map_err(|error| error.valid_up_to()),
            ));
            file.extend_from_slice(&line);
            file.push(b'\n');
        }
        assert!(expected.iter().filter(|(_, line)| line.is_err()).count() >= 12);
        assert_eq!(lines_read_back(&file), expected);
    }
}
