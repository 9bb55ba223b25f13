//! Finding custom_ids used by more than one row, with flat memory and little work per row.
//!
//! Every id goes into a [`BloomFilter`] and, with its row, onto the end of a scratch file. An id
//! the filter has surely not seen is new (nearly every id of a good input); one it may have seen
//! is a candidate, checked exactly later by one pass over the file, which finds the first row
//! of every candidate. The pass runs at the end of planning, or as soon as many candidates wait
//! (an input whose ids repeat throughout), so memory stays bounded either way.

use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufReader, BufWriter, Read, Seek, Write};

use super::bloom_filter::{BloomFilter, FilterHashes};

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
    filter: BloomFilter,
    /// Every claimed id with its row: row (8 bytes), id length (4 bytes), id.
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
        Ok(CustomIdClaims {
            filter: BloomFilter::default(),
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
            self.candidates
                .entry(custom_id.to_owned())
                .or_default()
                .push(row());
            self.candidate_rows += 1;
        } else {
            self.filter.insert(hashes);
        }
        self.log.write_all(&row_number.to_le_bytes())?;
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
        let mut reader = BufReader::with_capacity(1 << 16, &*file);
        let mut header = [0u8; 12];
        let mut id = Vec::new();
        loop {
            match reader.read_exact(&mut header) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(error) => return Err(error),
            }
            let row = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
            let length = u32::from_le_bytes(header[8..].try_into().expect("4 bytes")) as usize;
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

    /// The filter hashes of `custom_id`: two SipHash values of the id under different fixed
    /// keys.
    pub fn hashes(custom_id: &str) -> FilterHashes {
        let hash = |seed: u64| {
            let mut hasher =
                std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default().build_hasher();
            hasher.write_u64(seed);
            hasher.write(custom_id.as_bytes());
            hasher.finish()
        };
        FilterHashes {
            first: hash(1),
            step: hash(2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(row_number: u64) -> impl FnOnce() -> ClaimingRow {
        move || ClaimingRow {
            row_number,
            line: Some(row_number + 1),
            part: None,
        }
    }

    #[test]
    fn every_repeat_names_the_first_row_and_new_ids_are_never_reported() {
        let directory = tempfile::tempdir().unwrap();
        let mut claims = CustomIdClaims::new(directory.path()).unwrap();
        let mut early = Vec::new();
        for row in 1..=200_000u64 {
            early.extend(claims.claim(&format!("id-{row}"), at(row), row).unwrap());
        }
        for (row, id) in [(200_001, "id-7"), (200_002, "id-200000"), (200_003, "id-7")] {
            early.extend(claims.claim(id, at(row), row).unwrap());
        }
        assert!(early.is_empty());
        let repeats = claims.finish().unwrap();
        let expected = |row_number, custom_id: &str, first_row| RepeatedId {
            row: at(row_number)(),
            custom_id: custom_id.to_owned(),
            first_row,
        };
        assert_eq!(
            repeats,
            vec![
                expected(200_001, "id-7", 7),
                expected(200_002, "id-200000", 200_000),
                expected(200_003, "id-7", 7),
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
