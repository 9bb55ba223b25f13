//! Claimed request keys spilled to disk as sorted runs of fixed-size records, each run with its
//! own Bloom filter and a sparse index in memory (the first 8 bytes of the first key of every
//! block), so a key is found with one read per run that may hold it (two in the rare case of a
//! block starting with the same 8 bytes). Runs of equal size are merged sixteen at a time (like
//! a base-16 counter), so tens of millions of keys make a few dozen runs and each key is
//! rewritten twice at most (below about 470 million keys, with runs of about 115,000 keys
//! written from memory). A merge runs on its own thread, one at a time, while its runs are
//! still searched, so the caller goes on claiming keys meanwhile. Memory stays near 0.35 bytes
//! per key (1.1 for the newest keys, in runs written from memory): only a merge of a few
//! million keys keeps its runs' filters while it builds the merged run's; a larger one frees
//! them first. The files are anonymous temporary files, gone
//! when the process ends, however it ends.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use super::bloom_filter::{BloomFilter, FilterHashes};
use crate::ledger::{FirstRowOfKey, KeyOrigin};
use crate::request_key::RequestKey;

/// A record on disk: the key, the first row (little-endian), the origin's code.
const RECORD_BYTES: usize = 32 + 8 + 1;
/// Records per block; one block is read to find a key (4,100 bytes: about a page).
const RECORDS_PER_BLOCK: usize = 100;
/// Runs of one size merged into one run of the next size. Sixteen rather than eight: at
/// 10,000,000 keys (87 runs written from memory) eight made 10 merges of 917,504 keys and one of
/// 7,340,032, which held the planning loop for about a second while the rendering thread
/// waited; sixteen make 5 merges of 1,835,008 and leave 12 runs to search instead of 10.
/// `validate` at 10M rows: 0.94× wall, 0.97× CPU (`farm-bench -n 3`; BENCHMARKS.md).
const RUNS_PER_MERGE: usize = 16;
/// Bits of the Bloom filter of a run written from memory, per key: about 1 in 40 keys a run
/// does not hold passes it. Only keys the claims' own filter already let through are checked
/// against a run's (repeats, and about 1 in 300 new keys), so a false pass costs one read of a
/// page seldom.
const RUN_FILTER_BITS_PER_KEY: usize = 8;
/// Bits per key of a merged run's filter, and bits set per key: about 2 keys in 5 it does not
/// hold pass. Merged runs hold nearly all keys (at 10 million, 9.2 million in five runs), so
/// their filters were most of planning's growth with the rows: 9.2 MB at 8 bits a key, which
/// put a 10M run's planning at 1.18× a 1M run's peak (BENCHMARKS.md, eighteenth round); 2.3 MB
/// now. A key looked for reads a page of two merged runs in five that do not hold it:
/// `validate` of 10M rows with 5M repeats of keys spilled long before took 1.02× the time at
/// 4 bits and 3 hashes, and 1.05× that at 2 and 1.
const MERGED_RUN_FILTER_BITS_PER_KEY: usize = 2;
const MERGED_RUN_FILTER_BITS_SET: u32 = 1;
/// The most keys a merge makes while its runs keep their filters (then at most 4 MiB of
/// filters are held twice). A larger merge, made from 29 million keys on, frees its runs'
/// filters before it starts, so its runs are read for any key the claims' filter lets through
/// while it runs.
const MOST_KEYS_MERGED_WITH_FILTERS: u64 = 1 << 22;

/// A key with its first row, as held in memory and on disk.
pub type ClaimedKey = (RequestKey, FirstRowOfKey);

/// The runs of keys spilled so far.
pub struct SortedKeyRuns {
    directory: PathBuf,
    /// Runs not being merged, in the order they were made (higher tiers first). A merge in
    /// the background took its runs from `runs[merging.at..]`; the runs after that place were
    /// after them then, or were made since.
    runs: Vec<SortedRun>,
    merging: Option<MergeInBackground>,
}

/// A merge running on its own thread.
struct MergeInBackground {
    /// Where in `runs` the merged run goes (where its runs were).
    at: usize,
    /// The runs being merged, still searched until the merged run replaces them.
    runs: Arc<Vec<SortedRun>>,
    /// Set when the runs are let go while the merge runs: it stops at its next check.
    stop: Arc<AtomicBool>,
    thread: JoinHandle<io::Result<SortedRun>>,
}

/// Keys a merge writes between two looks at its `stop`.
const KEYS_BETWEEN_STOP_CHECKS: u64 = 1 << 16;

impl Drop for SortedKeyRuns {
    /// A merge still running is stopped and waited for, so it writes nothing once the plan
    /// that spilled its keys has ended (a plan that keeps no keys in the ledger never waits
    /// for it otherwise).
    fn drop(&mut self) {
        if let Some(merge) = self.merging.take() {
            merge.stop.store(true, Ordering::Relaxed);
            let _ = merge.thread.join();
        }
    }
}

/// One run: records in key order in an anonymous file.
struct SortedRun {
    file: File,
    records: u64,
    /// How many merges made it (0 for a run written from memory).
    tier: u32,
    /// `None` once a merge gave it up: the run may then hold any key.
    filter: Option<BloomFilter>,
    /// The first 8 bytes of the first key of each block, in order.
    block_first_prefixes: Vec<u64>,
}

/// Where a key was found: its first row, and the record's place in its run.
struct FoundKey<'runs> {
    first: FirstRowOfKey,
    run: &'runs SortedRun,
    record: u64,
}

impl SortedKeyRuns {
    /// No runs yet; their files will be made in `directory`.
    pub fn new(directory: &Path) -> SortedKeyRuns {
        SortedKeyRuns {
            directory: directory.to_owned(),
            runs: Vec::new(),
            merging: None,
        }
    }

    /// Keys in all runs.
    #[cfg(test)]
    fn len(&self) -> u64 {
        self.searched_runs().map(|run| run.records).sum()
    }

    /// Whether no key was spilled yet.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.merging.is_none()
    }

    /// Writes `keys` (in key order, none already in a run) as a new run, then merges runs of
    /// equal size, [`RUNS_PER_MERGE`] at a time, in the background. Runs are only replaced once
    /// their merge is written, so a failure loses no key already held.
    ///
    /// # Errors
    /// When the run cannot be written, or a merge failed.
    pub fn add_run(&mut self, keys: &[ClaimedKey]) -> io::Result<()> {
        debug_assert!(keys.windows(2).all(|pair| pair[0].0.0 < pair[1].0.0));
        if keys.is_empty() {
            return Ok(());
        }
        let mut writer = RunWriter::create(&self.directory, keys.len(), 0)?;
        for key in keys {
            writer.push(key)?;
        }
        self.runs.push(writer.finish()?);
        if self
            .merging
            .as_ref()
            .is_some_and(|merge| merge.thread.is_finished())
        {
            self.finish_merge()?;
        }
        while let Some(first_merged) = self.first_run_of_a_due_merge() {
            if self.merging.is_some() {
                // One merge at a time: the one running may make another due (a carry).
                self.finish_merge()?;
                continue;
            }
            self.start_merge(first_merged)?;
        }
        Ok(())
    }

    /// Where the first [`RUNS_PER_MERGE`] runs of one tier start, when there are that many.
    /// Tiers never rise along `runs`, so the highest tier due is merged first.
    fn first_run_of_a_due_merge(&self) -> Option<usize> {
        let mut first_of_tier = 0;
        for (index, run) in self.runs.iter().enumerate() {
            if run.tier != self.runs[first_of_tier].tier {
                first_of_tier = index;
            }
            if index + 1 - first_of_tier == RUNS_PER_MERGE {
                return Some(first_of_tier);
            }
        }
        None
    }

    /// Starts merging `runs[first_merged..first_merged + RUNS_PER_MERGE]` on its own thread.
    fn start_merge(&mut self, first_merged: usize) -> io::Result<()> {
        let mut merging: Vec<SortedRun> = self
            .runs
            .drain(first_merged..first_merged + RUNS_PER_MERGE)
            .collect();
        let records = merging.iter().map(|run| run.records).sum::<u64>();
        let tier = merging[0].tier + 1;
        if records > MOST_KEYS_MERGED_WITH_FILTERS {
            // The merged run's filter replaces theirs: free them first. Should the merge fail,
            // the runs stay, searched without a filter.
            for run in &mut merging {
                run.filter = None;
            }
        }
        let merging = Arc::new(merging);
        let stop = Arc::new(AtomicBool::new(false));
        let mut writer = match RunWriter::create(&self.directory, records as usize, tier) {
            Ok(writer) => writer,
            Err(error) => {
                self.put_back(first_merged, merging);
                return Err(error);
            }
        };
        let runs = Arc::clone(&merging);
        let stopped = Arc::clone(&stop);
        let spawned = std::thread::Builder::new()
            .name("key-run-merge".to_owned())
            .spawn(move || {
                merge_in_key_order(&runs, &[], |key| {
                    if writer.records.is_multiple_of(KEYS_BETWEEN_STOP_CHECKS)
                        && stopped.load(Ordering::Relaxed)
                    {
                        return Err(io::Error::other("the merge was stopped"));
                    }
                    writer.push(key)
                })?;
                writer.finish()
            });
        match spawned {
            Ok(thread) => {
                self.merging = Some(MergeInBackground {
                    at: first_merged,
                    runs: merging,
                    stop,
                    thread,
                });
                Ok(())
            }
            Err(error) => {
                self.put_back(first_merged, merging);
                Err(error)
            }
        }
    }

    /// Waits for the merge in the background, if one runs, and puts its run in place of the
    /// runs it merged (or, when it failed, puts those back and gives its error).
    fn finish_merge(&mut self) -> io::Result<()> {
        let Some(merge) = self.merging.take() else {
            return Ok(());
        };
        let merged = merge.thread.join().unwrap_or_else(|_| {
            Err(io::Error::other(
                "merging spilled request keys stopped unexpectedly",
            ))
        });
        match merged {
            Ok(run) => {
                self.runs.insert(merge.at, run);
                Ok(())
            }
            Err(error) => {
                self.put_back(merge.at, merge.runs);
                Err(error)
            }
        }
    }

    /// Puts the runs of a merge that did not happen back at `at`, where they were taken from.
    /// Called only once no thread holds them (the merge's never started, or has ended).
    fn put_back(&mut self, at: usize, runs: Arc<Vec<SortedRun>>) {
        let runs = Arc::into_inner(runs).expect("no merge's thread holds the runs");
        self.runs.splice(at..at, runs);
    }

    /// The first row of `key`, when a run holds it.
    ///
    /// # Errors
    /// When a run cannot be read, or holds a record dashbatch never writes.
    pub fn find(&self, key: &RequestKey) -> io::Result<Option<FirstRowOfKey>> {
        Ok(self.locate(key)?.map(|found| found.first))
    }

    /// Says where the answer of `key` comes from; false when no run holds it.
    ///
    /// # Errors
    /// When the run cannot be read or written.
    /// (A merge in the background is waited for first, lest the run written to be one it
    /// has already read.)
    pub fn set_origin(&mut self, key: &RequestKey, origin: KeyOrigin) -> io::Result<bool> {
        self.finish_merge()?;
        let Some(found) = self.locate(key)? else {
            return Ok(false);
        };
        let at = found.record * RECORD_BYTES as u64 + (RECORD_BYTES - 1) as u64;
        found.run.file.write_all_at(&[origin.code() as u8], at)?;
        Ok(true)
    }

    /// Every key of the runs and of `pending` (in key order, none in a run), in key order.
    ///
    /// # Errors
    /// When a run cannot be read, or `each` fails.
    pub fn for_each_in_key_order<E: From<io::Error>>(
        &mut self,
        pending: &[ClaimedKey],
        each: impl FnMut(&ClaimedKey) -> Result<(), E>,
    ) -> Result<(), E> {
        self.finish_merge()?;
        merge_in_key_order(&self.runs, pending, each)
    }

    /// Every run that may hold a key: those not being merged, the newest first, then those
    /// being merged (keys are in one run only, so the order is only a guess at the likeliest).
    fn searched_runs(&self) -> impl Iterator<Item = &SortedRun> {
        let merging = self.merging.iter().flat_map(|merge| merge.runs.iter());
        self.runs.iter().rev().chain(merging)
    }

    fn locate(&self, key: &RequestKey) -> io::Result<Option<FoundKey<'_>>> {
        let hashes = run_filter_hashes(key);
        let mut block = [0_u8; RECORD_BYTES * RECORDS_PER_BLOCK];
        let prefix = key_prefix(&key.0);
        for run in self.searched_runs() {
            if run
                .filter
                .as_ref()
                .is_some_and(|filter| !filter.may_contain(hashes))
            {
                continue;
            }
            // The key's block is the last one starting at or below it: the last one whose
            // prefix is below the key's, or one of those whose prefix equals it.
            let below = run
                .block_first_prefixes
                .partition_point(|first| *first < prefix);
            let through = run
                .block_first_prefixes
                .partition_point(|first| *first <= prefix);
            // Keys are unique in a run, so one block holds it: the last candidate most often.
            for block_index in (below.saturating_sub(1)..through).rev() {
                let first_record = (block_index * RECORDS_PER_BLOCK) as u64;
                let in_block = (run.records - first_record).min(RECORDS_PER_BLOCK as u64) as usize;
                let bytes = &mut block[..in_block * RECORD_BYTES];
                run.file
                    .read_exact_at(bytes, first_record * RECORD_BYTES as u64)?;
                if let Some(position) = position_in_block(bytes, key) {
                    let (_, first) =
                        decode_record(&bytes[position * RECORD_BYTES..][..RECORD_BYTES])?;
                    return Ok(Some(FoundKey {
                        first,
                        run,
                        record: first_record + position as u64,
                    }));
                }
            }
        }
        Ok(None)
    }
}

/// The first 8 bytes of a key as a number that orders as the key does.
fn key_prefix(key: &[u8; 32]) -> u64 {
    u64::from_be_bytes(key[..8].try_into().expect("8 of 32 bytes"))
}

/// Where `key` is among a block's records (in key order), when it is there.
fn position_in_block(records: &[u8], key: &RequestKey) -> Option<usize> {
    let (mut low, mut high) = (0, records.len() / RECORD_BYTES);
    while low < high {
        let middle = low + (high - low) / 2;
        match records[middle * RECORD_BYTES..][..32].cmp(&key.0[..]) {
            std::cmp::Ordering::Less => low = middle + 1,
            std::cmp::Ordering::Greater => high = middle,
            std::cmp::Ordering::Equal => return Some(middle),
        }
    }
    None
}

/// Writes a run's records, its filter and its sparse index.
struct RunWriter {
    writer: BufWriter<File>,
    records: u64,
    tier: u32,
    filter: BloomFilter,
    block_first_prefixes: Vec<u64>,
}

impl RunWriter {
    fn create(directory: &Path, expected_records: usize, tier: u32) -> io::Result<RunWriter> {
        let file = tempfile::tempfile_in(directory)?;
        Ok(RunWriter {
            writer: BufWriter::with_capacity(1 << 16, file),
            records: 0,
            tier,
            filter: if tier == 0 {
                BloomFilter::for_values(expected_records, RUN_FILTER_BITS_PER_KEY)
            } else {
                BloomFilter::for_values_setting(
                    expected_records,
                    MERGED_RUN_FILTER_BITS_PER_KEY,
                    MERGED_RUN_FILTER_BITS_SET,
                )
            },
            block_first_prefixes: Vec::with_capacity(expected_records.div_ceil(RECORDS_PER_BLOCK)),
        })
    }

    fn push(&mut self, (key, first): &ClaimedKey) -> io::Result<()> {
        if self.records.is_multiple_of(RECORDS_PER_BLOCK as u64) {
            self.block_first_prefixes.push(key_prefix(&key.0));
        }
        self.filter.insert(run_filter_hashes(key));
        let mut record = [0_u8; RECORD_BYTES];
        record[..32].copy_from_slice(&key.0);
        record[32..40].copy_from_slice(&first.row_number.to_le_bytes());
        record[40] = first.origin.code() as u8;
        self.writer.write_all(&record)?;
        self.records += 1;
        Ok(())
    }

    fn finish(self) -> io::Result<SortedRun> {
        let file = self
            .writer
            .into_inner()
            .map_err(|error| error.into_error())?;
        Ok(SortedRun {
            file,
            records: self.records,
            tier: self.tier,
            filter: Some(self.filter),
            block_first_prefixes: self.block_first_prefixes,
        })
    }
}

/// Calls `each` with every record of `runs` and of `pending`, in key order.
fn merge_in_key_order<E: From<io::Error>>(
    runs: &[SortedRun],
    pending: &[ClaimedKey],
    mut each: impl FnMut(&ClaimedKey) -> Result<(), E>,
) -> Result<(), E> {
    let mut sources = Vec::with_capacity(runs.len() + 1);
    for run in runs {
        let mut file = run.file.try_clone()?;
        file.rewind()?;
        sources.push(KeySource::Run {
            reader: BufReader::with_capacity(1 << 16, file),
            left: run.records,
        });
    }
    sources.push(KeySource::Memory(pending.iter()));
    let mut heads = BinaryHeap::new();
    for (index, source) in sources.iter_mut().enumerate() {
        if let Some(key) = source.next_key()? {
            heads.push(Reverse((
                key.0.0,
                index,
                key.1.row_number,
                key.1.origin.code(),
            )));
        }
    }
    while let Some(Reverse((key, index, row_number, code))) = heads.pop() {
        let origin = KeyOrigin::from_code(code).expect("a code made from an origin");
        each(&(RequestKey(key), FirstRowOfKey { row_number, origin }))?;
        if let Some(next) = sources[index].next_key()? {
            heads.push(Reverse((
                next.0.0,
                index,
                next.1.row_number,
                next.1.origin.code(),
            )));
        }
    }
    Ok(())
}

/// One sorted sequence being merged.
enum KeySource<'a> {
    Run { reader: BufReader<File>, left: u64 },
    Memory(std::slice::Iter<'a, ClaimedKey>),
}

impl KeySource<'_> {
    fn next_key(&mut self) -> io::Result<Option<ClaimedKey>> {
        match self {
            KeySource::Run { reader, left } => {
                if *left == 0 {
                    return Ok(None);
                }
                *left -= 1;
                let mut record = [0_u8; RECORD_BYTES];
                reader.read_exact(&mut record)?;
                decode_record(&record).map(Some)
            }
            KeySource::Memory(keys) => Ok(keys.next().copied()),
        }
    }
}

fn decode_record(record: &[u8]) -> io::Result<ClaimedKey> {
    let key = RequestKey(record[..32].try_into().expect("32 bytes"));
    let row_number = u64::from_le_bytes(record[32..40].try_into().expect("8 bytes"));
    let origin = KeyOrigin::from_code(i64::from(record[40])).ok_or_else(|| {
        io::Error::other(format!(
            "a spilled request key has origin {}, which dashbatch never writes",
            record[40]
        ))
    })?;
    Ok((key, FirstRowOfKey { row_number, origin }))
}

/// Hashes for the runs' filters. The block is chosen by the key's first 8 bytes in key order,
/// so a run's filter, given its keys in key order, is filled front to back in one sweep (a merge
/// of millions of keys would otherwise miss the cache at every key). The bits within the block
/// come from its last 8 bytes. The claims' filter in front uses none of these bytes of the key
/// (itself a SHA-256), so a false "maybe" there is not one here too.
fn run_filter_hashes(key: &RequestKey) -> FilterHashes {
    FilterHashes {
        first: key_prefix(&key.0),
        step: u64::from_le_bytes(key.0[24..32].try_into().expect("8 of 32 bytes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl SortedKeyRuns {
        /// Makes every merge due and waits for each, so a test sees the same runs whatever
        /// the threads' timing (a merge that ends before the next run is added carries at
        /// once; one still running carries at a later run).
        fn finish_every_due_merge(&mut self) {
            self.finish_merge().unwrap();
            while let Some(first_merged) = self.first_run_of_a_due_merge() {
                self.start_merge(first_merged).unwrap();
                self.finish_merge().unwrap();
            }
        }
    }

    /// Runs made from `runs` runs of `keys_per_run` consecutive seeds each, in a new directory
    /// (kept alive by the first value).
    fn runs_of(runs: u64, keys_per_run: u64) -> (tempfile::TempDir, SortedKeyRuns) {
        let directory = tempfile::tempdir().unwrap();
        let mut made = SortedKeyRuns::new(directory.path());
        for run in 0..runs {
            made.add_run(&sorted_run(run * keys_per_run..(run + 1) * keys_per_run))
                .unwrap();
        }
        (directory, made)
    }

    fn key(seed: u64) -> RequestKey {
        use sha2::{Digest, Sha256};
        RequestKey(Sha256::digest(seed.to_le_bytes()).into())
    }

    fn sorted_run(seeds: std::ops::Range<u64>) -> Vec<ClaimedKey> {
        let mut keys: Vec<ClaimedKey> = seeds
            .map(|seed| {
                (
                    key(seed),
                    FirstRowOfKey {
                        row_number: seed + 1,
                        origin: KeyOrigin::Batch,
                    },
                )
            })
            .collect();
        keys.sort_unstable_by_key(|(key, _)| key.0);
        keys
    }

    #[test]
    fn every_spilled_key_is_found_through_merges_and_no_other() {
        // 260 runs of 250 keys: merges into tier 1, and 16 × 16 = 256 runs become one tier-2 run.
        let (_directory, mut runs) = runs_of(260, 250);
        assert_eq!(runs.len(), 260 * 250);
        runs.finish_every_due_merge();
        assert_eq!(runs.runs[0].tier, 2);
        assert_eq!(
            runs.runs.len(),
            5,
            "one tier-2 run and four written from memory"
        );
        assert!(
            runs.runs.iter().all(|run| run.filter.is_some()),
            "a merged run has a filter again"
        );
        for seed in (0..260 * 250).step_by(7) {
            assert_eq!(
                runs.find(&key(seed)).unwrap(),
                Some(FirstRowOfKey {
                    row_number: seed + 1,
                    origin: KeyOrigin::Batch
                }),
                "seed {seed}"
            );
        }
        assert!(
            (260 * 250..270 * 250).all(|seed| runs.find(&key(seed)).unwrap().is_none()),
            "a key never added is never found"
        );
    }

    #[test]
    fn keys_are_found_when_blocks_start_with_the_same_eight_bytes_and_without_filters() {
        // 350 keys whose first 8 bytes are equal from the 90th to the 260th (in key order), so
        // blocks 1 and 2 start with the prefix of keys in blocks 0 to 2.
        let mut keys: Vec<ClaimedKey> = (0..350_u64)
            .map(|seed| {
                let mut bytes = key(seed).0;
                if (90..260).contains(&seed) {
                    bytes[..8].copy_from_slice(&[0x7f; 8]);
                } else if seed >= 260 {
                    bytes[0] = 0xf0 | (bytes[0] & 0x0f);
                } else {
                    bytes[0] &= 0x3f;
                }
                let first = FirstRowOfKey {
                    row_number: seed + 1,
                    origin: KeyOrigin::Batch,
                };
                (RequestKey(bytes), first)
            })
            .collect();
        keys.sort_unstable_by_key(|(key, _)| key.0);
        let directory = tempfile::tempdir().unwrap();
        let mut runs = SortedKeyRuns::new(directory.path());
        runs.add_run(&keys).unwrap();
        assert_eq!(
            runs.runs[0].block_first_prefixes[1..3],
            [u64::from_be_bytes([0x7f; 8]); 2]
        );
        let mut absent = keys[150].0;
        absent.0[31] ^= 0xff;
        for with_filter in [true, false] {
            if !with_filter {
                runs.runs[0].filter = None;
            }
            for (key, first) in &keys {
                assert_eq!(runs.find(key).unwrap(), Some(*first), "{with_filter}");
            }
            assert_eq!(runs.find(&absent).unwrap(), None);
        }
    }

    #[test]
    fn an_origin_set_on_disk_is_read_back_and_survives_a_merge() {
        let directory = tempfile::tempdir().unwrap();
        let mut runs = SortedKeyRuns::new(directory.path());
        runs.add_run(&sorted_run(0..1_000)).unwrap();
        assert!(runs.set_origin(&key(5), KeyOrigin::Store).unwrap());
        assert!(!runs.set_origin(&key(5_000), KeyOrigin::Store).unwrap());
        for run in 1..RUNS_PER_MERGE as u64 {
            runs.add_run(&sorted_run(run * 1_000..(run + 1) * 1_000))
                .unwrap();
        }
        runs.finish_every_due_merge();
        assert_eq!(runs.runs.len(), 1, "sixteen runs of one size are merged");
        assert_eq!(
            runs.find(&key(5)).unwrap().map(|first| first.origin),
            Some(KeyOrigin::Store)
        );
    }

    #[test]
    fn keys_are_found_while_their_runs_are_merged_and_an_origin_set_then_is_kept() {
        let (_directory, mut runs) = runs_of(RUNS_PER_MERGE as u64, 100);
        // The merge stays in the background until a later call needs it settled.
        assert!(runs.merging.is_some() && runs.runs.is_empty());
        assert!(!runs.is_empty());
        assert_eq!(runs.len(), 1_600);
        for seed in 0..1_600 {
            assert_eq!(
                runs.find(&key(seed)).unwrap().map(|first| first.row_number),
                Some(seed + 1),
                "seed {seed}"
            );
        }
        assert!(runs.find(&key(1_600)).unwrap().is_none());
        // A run made while the merge runs goes after the merged run.
        runs.add_run(&sorted_run(1_600..1_700)).unwrap();
        assert!(runs.set_origin(&key(7), KeyOrigin::Adopted).unwrap());
        assert!(runs.merging.is_none());
        assert_eq!(
            runs.runs.iter().map(|run| run.tier).collect::<Vec<_>>(),
            [1, 0]
        );
        assert_eq!(
            runs.find(&key(7)).unwrap().map(|first| first.origin),
            Some(KeyOrigin::Adopted)
        );
        assert_eq!(runs.len(), 1_700);
    }

    #[test]
    fn runs_let_go_while_they_are_merged_stop_the_merge_and_wait_for_it() {
        let (_directory, runs) = runs_of(RUNS_PER_MERGE as u64, 20_000);
        let merge = runs.merging.as_ref().unwrap();
        let (stop, merged_runs) = (Arc::clone(&merge.stop), Arc::clone(&merge.runs));
        drop(runs);
        assert!(stop.load(Ordering::Relaxed));
        assert_eq!(
            Arc::strong_count(&merged_runs),
            1,
            "the merge's thread has ended"
        );
    }

    #[test]
    fn a_failed_merge_gives_its_runs_back_in_place_and_says_why() {
        let (_directory, mut runs) = runs_of(3, 100);
        let taken: Vec<SortedRun> = runs.runs.drain(..2).collect();
        runs.merging = Some(MergeInBackground {
            at: 0,
            runs: Arc::new(taken),
            stop: Arc::new(AtomicBool::new(false)),
            thread: std::thread::spawn(|| Err(io::Error::other("the disk is full"))),
        });
        let error = runs.finish_merge().unwrap_err();
        assert_eq!(error.to_string(), "the disk is full");
        assert!(runs.merging.is_none());
        runs.add_run(&sorted_run(300..400)).unwrap();
        assert_eq!(
            runs.runs.len(),
            4,
            "the two runs are back, before the newer two"
        );
        let firsts: Vec<u64> = runs
            .runs
            .iter()
            .map(|run| {
                let mut seen = Vec::new();
                merge_in_key_order(std::slice::from_ref(run), &[], |claimed| {
                    seen.push(claimed.1.row_number);
                    Ok::<(), io::Error>(())
                })
                .unwrap();
                seen.into_iter().min().unwrap()
            })
            .collect();
        assert_eq!(firsts, [1, 101, 201, 301]);
        for seed in 0..400 {
            assert!(runs.find(&key(seed)).unwrap().is_some(), "seed {seed}");
        }
    }

    #[test]
    fn runs_and_pending_keys_are_given_back_in_key_order() {
        let directory = tempfile::tempdir().unwrap();
        let mut runs = SortedKeyRuns::new(directory.path());
        runs.add_run(&sorted_run(0..300)).unwrap();
        runs.add_run(&sorted_run(300..350)).unwrap();
        let pending = sorted_run(350..400);
        let mut seen = Vec::new();
        runs.for_each_in_key_order(&pending, |claimed| {
            seen.push(*claimed);
            Ok::<(), std::io::Error>(())
        })
        .unwrap();
        assert_eq!(seen, sorted_run(0..400));
    }
}
