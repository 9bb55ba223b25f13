//! One shard file being written: request lines appended with their hash and counts, then
//! flushed, synced to disk and made private. The planner and the retry planner both write their
//! shards through it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::ledger::{ShardRecord, restrict_permissions};

/// A shard file open for writing, and the record it will be.
pub(super) struct ShardFileWriter {
    record: ShardRecord,
    path: PathBuf,
    writer: BufWriter<File>,
    hasher: Sha256,
}

impl ShardFileWriter {
    /// Creates the file at `path` for `record`, whose line and byte counts start at zero.
    pub(super) fn create(path: PathBuf, record: ShardRecord) -> anyhow::Result<ShardFileWriter> {
        let file = File::create(&path).map_err(|error| shard_write_error(&path, error))?;
        Ok(ShardFileWriter {
            record,
            path,
            writer: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
        })
    }

    pub(super) fn record(&self) -> &ShardRecord {
        &self.record
    }

    /// Appends one request line and its newline.
    pub(super) fn write_line(&mut self, line: &[u8]) -> anyhow::Result<()> {
        self.writer
            .write_all(line)
            .and_then(|()| self.writer.write_all(b"\n"))
            .map_err(|error| shard_write_error(&self.path, error))?;
        self.hasher.update(line);
        self.hasher.update(b"\n");
        self.record.row_count += 1;
        self.record.byte_size += line.len() as u64 + 1;
        Ok(())
    }

    /// Flushes and syncs the file, makes it private, and returns its record with its SHA-256.
    pub(super) fn close(mut self) -> anyhow::Result<ShardRecord> {
        let path = self.path.clone();
        let cannot_write = move |error: std::io::Error| shard_write_error(&path, error);
        self.writer.flush().map_err(&cannot_write)?;
        let file = self
            .writer
            .into_inner()
            .map_err(|error| cannot_write(error.into_error()))?;
        file.sync_all().map_err(&cannot_write)?;
        self.record.sha256 = hex::encode(self.hasher.finalize());
        restrict_permissions(&self.path);
        Ok(self.record)
    }
}

/// A shard file that could not be written, named (a full disk or a file-size limit says only
/// "File too large" or "No space left on device" on its own).
fn shard_write_error(path: &Path, error: std::io::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot write the shard file `{}`: {error}. Free space on that disk (or raise the file-size limit) and run again",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_file_counts_hashes_and_holds_its_lines() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("shard-00000.jsonl");
        let record = ShardRecord::planned(0, 1, "shard-00000.jsonl".to_owned(), "m".to_owned(), 1);
        let mut shard = ShardFileWriter::create(path.clone(), record).unwrap();
        shard.write_line(b"{\"a\":1}").unwrap();
        shard.write_line(b"{\"b\":2}").unwrap();
        assert_eq!(shard.record().row_count, 2);
        let record = shard.close().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes, b"{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(record.byte_size, bytes.len() as u64);
        assert_eq!(record.sha256, hex::encode(Sha256::digest(&bytes)));
    }

    #[test]
    fn a_shard_file_that_cannot_be_created_is_named() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("missing").join("shard-00000.jsonl");
        let record = ShardRecord::planned(0, 1, "shard-00000.jsonl".to_owned(), "m".to_owned(), 1);
        let error = ShardFileWriter::create(path, record)
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("cannot write the shard file") && error.contains("missing"),
            "{error}"
        );
    }
}
