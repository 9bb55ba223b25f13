//! One shard file being written: request lines appended with their hash and counts, then
//! flushed, synced to disk and made private. The planner and the retry planner both write their
//! shards through it. Lines are gathered into 1 MiB buffers that a thread of the file's own
//! hashes and writes, so the planning loop goes on meanwhile.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use crate::ledger::{ShardRecord, restrict_permissions};

/// Bytes gathered before they are handed to the writing thread.
const BUFFER_BYTES: usize = 1 << 20;
/// Buffers waiting for the writing thread at most.
const BUFFERS_IN_FLIGHT: usize = 4;

/// A shard file open for writing, and the record it will be.
pub(super) struct ShardFileWriter {
    record: ShardRecord,
    path: PathBuf,
    buffer: Vec<u8>,
    /// Buffers to the writing thread, which ends with the file written and its hash, or the
    /// first error.
    to_writer: Option<SyncSender<Vec<u8>>>,
    /// Buffers the writing thread is done with, to be filled again (fresh memory costs the
    /// kernel a page clearing per 4 KiB).
    written: Receiver<Vec<u8>>,
    writer: Option<JoinHandle<std::io::Result<(File, Sha256)>>>,
}

impl ShardFileWriter {
    /// Creates the file at `path` for `record`, whose line and byte counts start at zero.
    pub(super) fn create(path: PathBuf, record: ShardRecord) -> anyhow::Result<ShardFileWriter> {
        let mut file = File::create(&path).map_err(|error| shard_write_error(&path, error))?;
        let (to_writer, buffers) = sync_channel::<Vec<u8>>(BUFFERS_IN_FLIGHT);
        let (give_back, written) = channel::<Vec<u8>>();
        let writer = std::thread::Builder::new()
            .name("shard-writer".into())
            .spawn(move || {
                let mut hasher = Sha256::new();
                for mut buffer in buffers {
                    hasher.update(&buffer);
                    file.write_all(&buffer)?;
                    buffer.clear();
                    // The loop may have stopped taking them back; then the buffer is freed.
                    let _ = give_back.send(buffer);
                }
                Ok((file, hasher))
            })
            .map_err(|error| shard_write_error(&path, error))?;
        Ok(ShardFileWriter {
            record,
            path,
            buffer: Vec::with_capacity(BUFFER_BYTES),
            to_writer: Some(to_writer),
            written,
            writer: Some(writer),
        })
    }

    /// Hands the gathered lines to the writing thread; when it has stopped, its error.
    fn hand_over(&mut self) -> anyhow::Result<()> {
        let empty = self
            .written
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BUFFER_BYTES));
        let buffer = std::mem::replace(&mut self.buffer, empty);
        let sent = self
            .to_writer
            .as_ref()
            .is_some_and(|to_writer| to_writer.send(buffer).is_ok());
        if sent {
            return Ok(());
        }
        self.finish_writing().map(|_| ())
    }

    /// Waits for the writing thread to end: the file and its hash, or why it stopped.
    fn finish_writing(&mut self) -> anyhow::Result<(File, Sha256)> {
        self.to_writer = None;
        let outcome = match self.writer.take() {
            Some(writer) => writer
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the shard writing thread failed"))),
            None => Err(std::io::Error::other("the shard file was already closed")),
        };
        outcome.map_err(|error| shard_write_error(&self.path, error))
    }

    pub(super) fn record(&self) -> &ShardRecord {
        &self.record
    }

    /// Appends one request line and its newline.
    pub(super) fn write_line(&mut self, line: &[u8]) -> anyhow::Result<()> {
        self.buffer.extend_from_slice(line);
        self.buffer.push(b'\n');
        if self.buffer.len() >= BUFFER_BYTES {
            self.hand_over()?;
        }
        self.record.row_count += 1;
        self.record.byte_size += line.len() as u64 + 1;
        Ok(())
    }

    /// Flushes and syncs the file, makes it private, and returns its record with its SHA-256.
    pub(super) fn close(mut self) -> anyhow::Result<ShardRecord> {
        if !self.buffer.is_empty() {
            self.hand_over()?;
        }
        let (file, hasher) = self.finish_writing()?;
        file.sync_all()
            .map_err(|error| shard_write_error(&self.path, error))?;
        self.record.sha256 = hex::encode(hasher.finalize());
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
