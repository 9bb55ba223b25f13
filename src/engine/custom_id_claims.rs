//! Finding custom_ids used by more than one row, with little memory (16 MiB for every ten
//! million ids) and little work per row.
//!
//! Every id goes into a [`BloomFilter`] (another one past every ten million ids) and, with its
//! row, onto the end of a scratch file. An id the filters have surely not seen is new (nearly
//! every id of a good input); one they may have seen is a candidate, checked exactly later by
//! one pass over the file, which finds the first row of every candidate. The pass runs at the
//! end of planning, or as soon as many candidates wait (an input whose ids repeat throughout),
//! so the candidates held stay bounded either way.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};

use rustc_hash::FxHashSet;

use super::bloom_filter::{FilterHashes, GrowingBloomFilter};

/// Candidates held before they are checked.
const CANDIDATE_LIMIT: usize = 100_000;

/// A row whose id an earlier row has: the row (with its line and part, for the message), its
/// id, and the earlier row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepeatedId {
    pub row: ClaimingRow,
    pub custom_id: String,
    pub first_row: u64,
}

/// A row that claims an id, and where it is in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimingRow {
    pub row_number: u64,
    pub line: Option<u64>,
    pub part: Option<std::path::PathBuf>,
}

/// The plan's custom_ids so far.
pub struct CustomIdClaims {
    /// Every claimed id is in it.
    filter: GrowingBloomFilter,
    /// Every claimed id with its row: row (8 bytes), the id's first filter hash (8 bytes), id
    /// length (4 bytes), id. The pass over it compares the hashes first, so it reads (and
    /// hashes again) only the ids whose hash a candidate has: at 10 million rows it took
    /// 0.45 s at the end of planning when it hashed every id again.
    log: BufWriter<File>,
    /// Ids the filter may have seen, with the rows that claimed them.
    candidates: HashMap<String, Vec<ClaimingRow>>,
    candidate_rows: usize,
}

impl CustomIdClaims {
    /// Claims kept in a scratch file in `directory` (deleted when this is dropped).
    ///
    /// # Errors
    /// When the file cannot be made.
    pub fn new(directory: &std::path::Path) -> std::io::Result<CustomIdClaims> {
        // As many filters as the ids need: a filter given more ids than it is sized for lets
        // many new ids through, and each costs a pass over the scratch file.
        Self::with_filter(directory, GrowingBloomFilter::growing_for_claims())
    }

    /// Claims whose ids go into `filter`.
    fn with_filter(
        directory: &std::path::Path,
        filter: GrowingBloomFilter,
    ) -> std::io::Result<CustomIdClaims> {
        Ok(CustomIdClaims {
            filter,
            log: BufWriter::with_capacity(1 << 16, tempfile::tempfile_in(directory)?),
            candidates: HashMap::new(),
            candidate_rows: 0,
        })
    }

    /// Claims `custom_id` for row `row_number` (rows claim in increasing order). Returns the
    /// repeats found so far when a check had to run early; the rest come from [`Self::finish`].
    ///
    /// # Errors
    /// When the scratch file cannot be written or read.
    pub fn claim(
        &mut self,
        custom_id: &str,
        row: impl FnOnce() -> ClaimingRow,
        row_number: u64,
    ) -> std::io::Result<Vec<RepeatedId>> {
        self.claim_hashed(custom_id, Self::hashes(custom_id), row, row_number)
    }

    /// Claims `custom_id`, whose filter hashes ([`Self::hashes`]) were made ahead (to
    /// [`Self::prefetch`] them), as [`Self::claim`] does.
    ///
    /// # Errors
    /// When the scratch file cannot be written or read.
    pub fn claim_hashed(
        &mut self,
        custom_id: &str,
        hashes: FilterHashes,
        row: impl FnOnce() -> ClaimingRow,
        row_number: u64,
    ) -> std::io::Result<Vec<RepeatedId>> {
        debug_assert_eq!(hashes.first, Self::hashes(custom_id).first);
        if self.filter.may_contain(hashes) {
            // Room for one row: nearly every candidate is a new id the filter let through
            // (10,006 at 10 million rows), where a default vector's first push makes room for
            // four (1.4 MB more).
            self.candidates
                .entry(custom_id.to_owned())
                .or_insert_with(|| Vec::with_capacity(1))
                .push(row());
            self.candidate_rows += 1;
        } else {
            self.filter.insert(hashes);
        }
        self.log.write_all(&row_number.to_le_bytes())?;
        self.log.write_all(&hashes.first.to_le_bytes())?;
        self.log.write_all(
            &u32::try_from(custom_id.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        )?;
        self.log.write_all(custom_id.as_bytes())?;
        if self.candidate_rows >= CANDIDATE_LIMIT {
            return self.check_candidates();
        }
        Ok(Vec::new())
    }

    /// The rows whose id an earlier row has, among those not yet reported, in row order.
    ///
    /// # Errors
    /// When the scratch file cannot be read.
    pub fn finish(mut self) -> std::io::Result<Vec<RepeatedId>> {
        self.check_candidates()
    }

    /// One pass over the claims so far: each candidate's first row; the candidate rows after it
    /// are repeats. Candidates that were new (the filter's false "maybe") are forgotten.
    fn check_candidates(&mut self) -> std::io::Result<Vec<RepeatedId>> {
        if self.candidates.is_empty() {
            return Ok(Vec::new());
        }
        self.log.flush()?;
        let file = self.log.get_mut();
        file.rewind()?;
        let mut first_rows: HashMap<&str, u64> = HashMap::with_capacity(self.candidates.len());
        let candidate_hashes: FxHashSet<u64> = self
            .candidates
            .keys()
            .map(|custom_id| Self::hashes(custom_id).first)
            .collect();
        let mut reader = BufReader::with_capacity(1 << 16, &*file);
        let mut header = [0u8; 20];
        let mut id = Vec::new();
        loop {
            match reader.read_exact(&mut header) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(error) => return Err(error),
            }
            let row = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
            let hash = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
            let length = u32::from_le_bytes(header[16..].try_into().expect("4 bytes")) as usize;
            if !candidate_hashes.contains(&hash) {
                reader.seek_relative(length as i64)?;
                continue;
            }
            id.resize(length, 0);
            reader.read_exact(&mut id)?;
            if let Ok(text) = std::str::from_utf8(&id)
                && let Some((candidate, _)) = self.candidates.get_key_value(text)
            {
                first_rows.entry(candidate.as_str()).or_insert(row);
            }
        }
        drop(reader);
        file.seek(std::io::SeekFrom::End(0))?;
        let mut repeats: Vec<RepeatedId> = Vec::new();
        for (custom_id, rows) in &self.candidates {
            let first_row = first_rows[custom_id.as_str()];
            repeats.extend(
                rows.iter()
                    .filter(|row| row.row_number != first_row)
                    .map(|row| RepeatedId {
                        row: row.clone(),
                        custom_id: custom_id.clone(),
                        first_row,
                    }),
            );
        }
        self.candidates.clear();
        self.candidate_rows = 0;
        repeats.sort_by_key(|repeat| repeat.row.row_number);
        Ok(repeats)
    }

    /// Starts loading what claiming an id of these hashes will look at, for a claim a row later.
    pub fn prefetch(&self, hashes: FilterHashes) {
        self.filter.prefetch(hashes);
    }

    /// The filter hashes of `custom_id`: the id's XXH3-64 (SipHash before: this and the
    /// sorting of held request keys together made `validate` 0.91× as long at 10 million rows;
    /// nothing outside the plan sees these hashes), and that value mixed again
    /// (SplitMix64's finaliser, a bijection): one pass over the id, not two.
    pub fn hashes(custom_id: &str) -> FilterHashes {
        let first = twox_hash::XxHash3_64::oneshot(custom_id.as_bytes());
        let mut step = first ^ (first >> 30);
        step = step.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        step ^= step >> 27;
        step = step.wrapping_mul(0x94D0_49BB_1331_11EB);
        step ^= step >> 31;
        FilterHashes { first, step }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::bloom_filter::CLAIMS_BITS_PER_VALUE;

    fn at(row_number: u64) -> impl FnOnce() -> ClaimingRow {
        move || ClaimingRow {
            row_number,
            line: Some(row_number + 1),
            part: None,
        }
    }

    /// Claims `id-1` to `id-{distinct}` in rows 1 to `distinct`, shows the claims to
    /// `before_repeats`, then claims each `(row, id)` of `repeats`; the repeats found, none of
    /// them early.
    fn distinct_ids_then(
        mut claims: CustomIdClaims,
        distinct: u64,
        before_repeats: impl FnOnce(&CustomIdClaims),
        repeats: &[(u64, &str)],
    ) -> Vec<RepeatedId> {
        let mut early = Vec::new();
        for row in 1..=distinct {
            early.extend(claims.claim(&format!("id-{row}"), at(row), row).unwrap());
        }
        before_repeats(&claims);
        for (row, id) in repeats {
            early.extend(claims.claim(id, at(*row), *row).unwrap());
        }
        assert!(early.is_empty());
        claims.finish().unwrap()
    }

    fn repeated(row_number: u64, custom_id: &str, first_row: u64) -> RepeatedId {
        RepeatedId {
            row: at(row_number)(),
            custom_id: custom_id.to_owned(),
            first_row,
        }
    }

    #[test]
    fn every_repeat_names_the_first_row_and_new_ids_are_never_reported() {
        let directory = tempfile::tempdir().unwrap();
        let claims = CustomIdClaims::new(directory.path()).unwrap();
        let repeats = [(200_001, "id-7"), (200_002, "id-200000"), (200_003, "id-7")];
        assert_eq!(
            distinct_ids_then(claims, 200_000, |_| {}, &repeats),
            vec![
                repeated(200_001, "id-7", 7),
                repeated(200_002, "id-200000", 200_000),
                repeated(200_003, "id-7", 7),
            ]
        );
    }

    #[test]
    fn past_one_filters_ids_another_takes_them_and_new_ids_stay_seldom_candidates() {
        let directory = tempfile::tempdir().unwrap();
        let filter = GrowingBloomFilter::new(1_000, CLAIMS_BITS_PER_VALUE, usize::MAX);
        let claims = CustomIdClaims::with_filter(directory.path(), filter).unwrap();
        let filled = |claims: &CustomIdClaims| {
            assert_eq!(claims.filter.filter_count(), 20);
            // About 1 in 300 per full filter, so about 3% of new ids over the 20 (697 here): a
            // single filter given 20 times its ids would let nearly every one through.
            assert!(
                claims.candidate_rows < 20_000 / 20,
                "{} candidates",
                claims.candidate_rows
            );
        };
        // Repeats of ids in the first, a middle and the newest filter.
        let repeats = [(20_001, "id-3"), (20_002, "id-10500"), (20_003, "id-20000")];
        assert_eq!(
            distinct_ids_then(claims, 20_000, filled, &repeats),
            vec![
                repeated(20_001, "id-3", 3),
                repeated(20_002, "id-10500", 10_500),
                repeated(20_003, "id-20000", 20_000),
            ]
        );
    }

    #[test]
    fn ids_that_repeat_throughout_are_checked_early_within_the_candidate_limit() {
        let directory = tempfile::tempdir().unwrap();
        let mut claims = CustomIdClaims::new(directory.path()).unwrap();
        let mut repeats = Vec::new();
        let rows = CANDIDATE_LIMIT as u64 + 10;
        for row in 1..=rows {
            repeats.extend(claims.claim("same", at(row), row).unwrap());
        }
        assert_eq!(
            repeats.len(),
            CANDIDATE_LIMIT,
            "the early check reported what it found"
        );
        repeats.extend(claims.finish().unwrap());
        assert_eq!(repeats.len() as u64, rows - 1);
        assert!(repeats.iter().all(|repeat| repeat.first_row == 1));
    }
}
