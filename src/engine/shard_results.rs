//! One shard's downloaded result files (output and error lines) read into a map from custom_id
//! to the row's result. Used by the join, the retry planner, the budget and `status`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use indexmap::IndexMap;
use rustc_hash::FxBuildHasher;

use super::RunDirectory;
use crate::ledger::ShardRecord;
use crate::row_result::{RowResult, RowStatus, classify_result_text};
use crate::wire::BatchStatus;

/// A shard's results by custom_id, kept in the order of the result files. Providers write the
/// results of a shard mostly in the order of its lines, so the join, asking for them in that
/// order, finds each one by comparing the id at its cursor and only searches the index when the
/// order breaks. The ids are the run's own, checked unique at plan time, so a fast hash that is
/// not flood-resistant is enough.
#[derive(Default)]
pub(super) struct ResultsById {
    by_id: IndexMap<String, Option<RowResult>, FxBuildHasher>,
    /// Where the next result asked for is looked for first: after the last one taken.
    cursor: usize,
}

impl ResultsById {
    /// An empty map with room for `rows` results.
    pub(super) fn with_capacity(rows: usize) -> ResultsById {
        ResultsById {
            by_id: IndexMap::with_capacity_and_hasher(rows, FxBuildHasher),
            cursor: 0,
        }
    }

    /// Keeps `result` for `custom_id`. A line reported twice keeps its success, never a failure
    /// over it; it keeps the place of its first report.
    fn keep(&mut self, custom_id: String, result: RowResult) {
        match self.by_id.entry(custom_id) {
            indexmap::map::Entry::Vacant(place) => {
                place.insert(Some(result));
            }
            indexmap::map::Entry::Occupied(mut place) => {
                let kept_success = place
                    .get()
                    .as_ref()
                    .is_some_and(|existing| existing.status() == RowStatus::Ok);
                if !kept_success {
                    place.insert(Some(result));
                }
            }
        }
    }

    /// The result for `custom_id`, unless it was taken.
    pub(super) fn get(&self, custom_id: &str) -> Option<&RowResult> {
        self.by_id.get(custom_id).and_then(Option::as_ref)
    }

    /// Starts loading the id and texts of the result at the cursor (the next one asked for,
    /// most often), which the thread that read them left out of this one's caches.
    pub(super) fn prefetch_next(&self) {
        if let Some((id, Some(result))) = self.by_id.get_index(self.cursor) {
            crate::prefetch::prefetch_address(id.as_ptr());
            if let Some(content) = &result.content {
                crate::prefetch::prefetch_address(content.as_ptr());
            }
            if let Some(request_id) = &result.request_id {
                crate::prefetch::prefetch_address(request_id.as_ptr());
            }
        }
    }

    /// Takes the result for `custom_id` out: asked again, it is gone.
    pub(super) fn take(&mut self, custom_id: &str) -> Option<RowResult> {
        if let Some((id, result)) = self.by_id.get_index_mut(self.cursor)
            && id == custom_id
        {
            self.cursor += 1;
            return result.take();
        }
        let (index, _, result) = self.by_id.get_full_mut(custom_id)?;
        self.cursor = index + 1;
        result.take()
    }

    /// The results not taken, in the order of the files.
    pub(super) fn values(&self) -> impl Iterator<Item = &RowResult> {
        self.by_id.values().filter_map(Option::as_ref)
    }
}

/// Reads one shard's result files into a map from custom_id to result.
pub(super) fn load_shard_results(
    run_directory: &RunDirectory,
    shard: &ShardRecord,
    batch_status: BatchStatus,
) -> anyhow::Result<ResultsById> {
    let mut results = ResultsById::with_capacity(shard.row_count as usize);
    for_each_result_line(
        run_directory,
        shard,
        batch_status,
        |custom_id, _, result| results.keep(custom_id, result),
    )?;
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
    for_each_result_line(
        run_directory,
        shard,
        batch_status,
        |custom_id, line, result| {
            if result.status() == RowStatus::Ok {
                results
                    .entry(custom_id)
                    .or_insert((line.to_owned(), result));
            }
        },
    )?;
    Ok(results)
}

/// Calls `each` with (custom_id, the line, its result) for every line of a shard's output and
/// error files, in that order.
fn for_each_result_line(
    run_directory: &RunDirectory,
    shard: &ShardRecord,
    batch_status: BatchStatus,
    mut each: impl FnMut(String, &str, RowResult),
) -> anyhow::Result<()> {
    for path in [
        run_directory.output_results_path(shard.shard_index),
        run_directory.error_results_path(shard.shard_index),
    ] {
        if !path.exists() {
            continue;
        }
        let mut lines = ResultFileLines::open(&path)?;
        while let Some((line_number, line)) = lines.next_line()? {
            let line = line.map_err(|error| {
                anyhow::anyhow!(
                    "{}, line {line_number}: not a result line: it is not UTF-8 ({error})",
                    path.display(),
                )
            })?;
            let (custom_id, result) =
                classify_result_text(line, batch_status).map_err(|error| {
                    anyhow::anyhow!(
                        "{}, line {line_number}: not a result line: {error}",
                        path.display(),
                    )
                })?;
            each(custom_id, line, result);
        }
    }
    Ok(())
}

/// The lines of one result file, read into one reused buffer and checked as UTF-8 by SIMD (no
/// allocation per line); blank lines are skipped, and each comes without its line ending. The
/// join, the retry planner and the check of a download all read result files through it.
pub(super) struct ResultFileLines {
    reader: BufReader<File>,
    bytes: Vec<u8>,
    /// The number (from 1) of the line read last, blank ones counted.
    line_number: u64,
}

impl ResultFileLines {
    pub(super) fn open(path: &Path) -> std::io::Result<ResultFileLines> {
        Ok(ResultFileLines {
            reader: BufReader::with_capacity(1 << 16, File::open(path)?),
            bytes: Vec::new(),
            line_number: 0,
        })
    }

    /// The number (from 1) of the line read last, or being read when reading failed.
    pub(super) fn line_number(&self) -> u64 {
        self.line_number
    }

    /// The next line that is not blank, with its number, or why its bytes are not UTF-8;
    /// `None` at the end of the file.
    ///
    /// # Errors
    /// When the file cannot be read.
    pub(super) fn next_line(
        &mut self,
    ) -> std::io::Result<Option<(u64, Result<&str, std::str::Utf8Error>)>> {
        let length = loop {
            self.bytes.clear();
            self.line_number += 1;
            if self.reader.read_until(b'\n', &mut self.bytes)? == 0 {
                return Ok(None);
            }
            match crate::utf8_check::checked_utf8(&self.bytes) {
                Err(error) => return Ok(Some((self.line_number, Err(error)))),
                Ok(line) => {
                    let line = line.strip_suffix('\n').unwrap_or(line);
                    let line = line.strip_suffix('\r').unwrap_or(line);
                    if !line.trim().is_empty() {
                        break line.len();
                    }
                }
            }
        };
        // The line without its ending: text checked just above, cut before an ASCII `\r` or
        // `\n`, so this check passes (it is SIMD, and the loop's borrow has ended).
        let line = crate::utf8_check::checked_utf8(&self.bytes[..length]);
        Ok(Some((self.line_number, line)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn results_are_taken_once_each_whether_asked_in_file_order_or_not() {
        let mut results = ResultsById::with_capacity(4);
        for id in ["a", "b", "c", "d"] {
            results.keep(id.to_owned(), answered(id));
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
    fn a_line_reported_twice_keeps_its_success_and_its_first_place() {
        let mut results = ResultsById::with_capacity(3);
        results.keep("a".to_owned(), failed());
        results.keep("b".to_owned(), answered("first"));
        results.keep("a".to_owned(), answered("retried"));
        results.keep("b".to_owned(), failed());
        results.keep("c".to_owned(), failed());
        assert_eq!(
            results.get("a").unwrap().content.as_deref(),
            Some("retried")
        );
        assert_eq!(results.get("b").unwrap().content.as_deref(), Some("first"));
        assert_eq!(results.get("c").unwrap().status(), RowStatus::Expired);
        let order: Vec<_> = results.values().map(RowResult::status).collect();
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
}
