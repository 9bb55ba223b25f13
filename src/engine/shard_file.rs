//! One shard file being written: request lines appended with their hash and counts, then
//! flushed, synced to disk and made private (or, for `validate`, only counted: see
//! [`ShardDurability`]). The planner and the retry planner both write their shards through it.
//! Lines are gathered into 1 MiB buffers (from the plan's [`ShardBuffers`]) that a thread of the
//! file's own hashes, writes and at the end syncs, so the planning loop goes on meanwhile; the
//! planner waits for a few shards' syncs at most ([`ShardsClosing`]), and for all of them before it
//! returns the shards' records.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use super::shard_buffers::{BUFFER_BYTES, ShardBuffer, ShardBuffers};
use crate::ledger::{ShardRecord, restrict_permissions};

/// Buffers waiting for the writing thread at most.
const BUFFERS_IN_FLIGHT: usize = 4;
/// Shards whose writing thread may still be writing or syncing while the planner goes on (a
/// sync takes about as long as filling a shard of 50,000 lines).
const SHARDS_CLOSING_AT_MOST: usize = 2;

/// Whether shard files are written, and synced to disk when closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardDurability {
    /// A run's shards: on disk before the ledger records them.
    Synced,
    /// Scratch shards that are removed once read (`estimate`'s): never uploaded, so
    /// not hashed (their records' `sha256` is empty), and never synced, so
    /// checking a job does not write its whole size to the disk.
    Scratch,
    /// Shards only counted, never written (`validate`, which reads none back): their lines and
    /// bytes are counted and their boundaries fall where a run's would, and checking a job needs
    /// no room for its request lines (7.4 GB at 10 million rows of the benchmark's job).
    CountedOnly,
}

/// A shard file open for writing, and the record it will be.
pub(super) struct ShardFileWriter {
    record: ShardRecord,
    path: PathBuf,
    durability: ShardDurability,
    /// The lines gathered since the last hand-over (none yet after it).
    buffer: Option<ShardBuffer>,
    buffers: ShardBuffers,
    /// Buffers to the writing thread, which ends with the file written and its hash (none for
    /// a scratch shard), or the first error. It gives each buffer back to `buffers` once
    /// written.
    to_writer: Option<SyncSender<ShardBuffer>>,
    writer: Option<JoinHandle<std::io::Result<Option<Sha256>>>>,
}

impl ShardFileWriter {
    /// Creates the file at `path` for `record`, whose line and byte counts start at zero (no
    /// file, and no thread, for a [`ShardDurability::CountedOnly`] shard). Its lines are
    /// gathered in `buffers`' buffers.
    pub(super) fn create(
        path: PathBuf,
        record: ShardRecord,
        durability: ShardDurability,
        buffers: &ShardBuffers,
    ) -> anyhow::Result<ShardFileWriter> {
        if durability == ShardDurability::CountedOnly {
            return Ok(ShardFileWriter {
                record,
                path,
                durability,
                buffer: None,
                buffers: buffers.clone(),
                to_writer: None,
                writer: None,
            });
        }
        let mut file = File::create(&path).map_err(|error| shard_write_error(&path, error))?;
        let (to_writer, filled) = sync_channel::<ShardBuffer>(BUFFERS_IN_FLIGHT);
        let writer = std::thread::Builder::new()
            .name("shard-writer".into())
            .spawn(move || {
                // A scratch shard is never uploaded, so nothing checks its hash: it is not
                // counted (a tenth of `validate`'s CPU).
                let mut hasher = (durability == ShardDurability::Synced).then(Sha256::new);
                // Each buffer goes back to the pool once written (dropped), or when this thread
                // stops on an error (the channel's buffers dropped with it).
                for buffer in filled {
                    if let Some(hasher) = hasher.as_mut() {
                        hasher.update(&buffer.bytes);
                    }
                    file.write_all(&buffer.bytes)?;
                }
                // Every buffer is written once the planner has closed the file: on disk before
                // the ledger records the shard.
                if durability == ShardDurability::Synced {
                    file.sync_all()?;
                }
                Ok(hasher)
            })
            .map_err(|error| shard_write_error(&path, error))?;
        Ok(ShardFileWriter {
            record,
            path,
            durability,
            buffer: None,
            buffers: buffers.clone(),
            to_writer: Some(to_writer),
            writer: Some(writer),
        })
    }

    /// Hands the gathered lines to the writing thread; when it has stopped, its error.
    fn hand_over(&mut self) -> anyhow::Result<()> {
        let Some(buffer) = self.buffer.take() else {
            return Ok(());
        };
        let sent = self
            .to_writer
            .as_ref()
            .is_some_and(|to_writer| to_writer.send(buffer).is_ok());
        if sent {
            return Ok(());
        }
        self.finish_writing().map(|_| ())
    }

    /// Waits for the writing thread to end: the file's hash once it is written and synced
    /// (none for a scratch shard), or why it stopped.
    fn finish_writing(&mut self) -> anyhow::Result<Option<Sha256>> {
        self.to_writer = None;
        join_writing_thread(&self.path, self.writer.take())
    }

    pub(super) fn record(&self) -> &ShardRecord {
        &self.record
    }

    /// Appends one request line and its newline. The lines gathered are handed over first
    /// when this one would not fit, so a buffer keeps its size (only a line longer than a
    /// whole buffer grows one, alone in it).
    pub(super) fn write_line(&mut self, line: &[u8]) -> anyhow::Result<()> {
        if self.durability != ShardDurability::CountedOnly {
            let full = self.buffer.as_ref().is_some_and(|buffer| {
                !buffer.bytes.is_empty() && buffer.bytes.len() + line.len() + 1 > BUFFER_BYTES
            });
            if full {
                self.hand_over()?;
            }
            let buffer = &mut self.buffer.get_or_insert_with(|| self.buffers.take()).bytes;
            buffer.extend_from_slice(line);
            buffer.push(b'\n');
        }
        self.record.row_count += 1;
        self.record.byte_size += line.len() as u64 + 1;
        Ok(())
    }

    /// Flushes and syncs the file, makes it private, and returns its record with its SHA-256.
    pub(super) fn close(self) -> anyhow::Result<ShardRecord> {
        self.close_in_background()?.finish()
    }

    /// Hands the last lines to the writing thread, which writes and syncs them while the
    /// caller goes on; [`ClosingShard::finish`] waits for it.
    pub(super) fn close_in_background(mut self) -> anyhow::Result<ClosingShard> {
        self.hand_over()?;
        // Dropping the rest ends the channel to the thread (which ends once it has written and
        // synced what it has).
        Ok(ClosingShard {
            record: self.record,
            path: self.path,
            durability: self.durability,
            writer: self.writer,
        })
    }
}

/// Waits for a shard's writing thread to end: the file's hash once it is written and synced
/// (none for a scratch shard), or why it stopped.
fn join_writing_thread(
    path: &Path,
    writer: Option<JoinHandle<std::io::Result<Option<Sha256>>>>,
) -> anyhow::Result<Option<Sha256>> {
    let outcome = match writer {
        Some(writer) => writer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the shard writing thread failed"))),
        None => Err(std::io::Error::other("the shard file was already closed")),
    };
    outcome.map_err(|error| shard_write_error(path, error))
}

/// A shard file whose last lines are being written and synced by its own thread.
pub(super) struct ClosingShard {
    record: ShardRecord,
    path: PathBuf,
    durability: ShardDurability,
    writer: Option<JoinHandle<std::io::Result<Option<Sha256>>>>,
}

impl ClosingShard {
    /// Waits for the file to be written and synced, makes it private, and returns its record
    /// with its SHA-256 (empty for a scratch shard, which is not hashed).
    pub(super) fn finish(self) -> anyhow::Result<ShardRecord> {
        if self.durability == ShardDurability::CountedOnly {
            return Ok(self.record);
        }
        let hasher = join_writing_thread(&self.path, self.writer)?;
        let mut record = self.record;
        record.sha256 = hasher
            .map(|hasher| hex::encode(hasher.finalize()))
            .unwrap_or_default();
        restrict_permissions(&self.path);
        Ok(record)
    }
}

/// The planner's shards in order: the last few still being written and synced by their own
/// threads, the rest done.
#[derive(Default)]
pub(super) struct ShardsClosing {
    closing: VecDeque<ClosingShard>,
    closed: Vec<ShardRecord>,
}

impl ShardsClosing {
    /// Closes `shard` in the background; waits for the oldest closing shard first when
    /// [`SHARDS_CLOSING_AT_MOST`] are.
    pub(super) fn close(&mut self, shard: ShardFileWriter) -> anyhow::Result<()> {
        if self.closing.len() >= SHARDS_CLOSING_AT_MOST
            && let Some(oldest) = self.closing.pop_front()
        {
            self.closed.push(oldest.finish()?);
        }
        self.closing.push_back(shard.close_in_background()?);
        Ok(())
    }

    /// Every shard's record, in the order they were closed, once all are written and synced.
    /// The first shard that could not be written is the error.
    pub(super) fn finish(mut self) -> anyhow::Result<Vec<ShardRecord>> {
        while let Some(closing) = self.closing.pop_front() {
            self.closed.push(closing.finish()?);
        }
        Ok(std::mem::take(&mut self.closed))
    }
}

impl Drop for ShardsClosing {
    /// A plan that stops early (an error, a signal) still waits for the shards closing, so no
    /// thread of it writes on after it has returned; what they wrote is not used.
    fn drop(&mut self) {
        for closing in self.closing.drain(..) {
            let _ = closing.finish();
        }
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
        let mut shard = ShardFileWriter::create(
            path.clone(),
            record,
            ShardDurability::Synced,
            &ShardBuffers::default(),
        )
        .unwrap();
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
        let error = ShardFileWriter::create(
            path,
            record,
            ShardDurability::Synced,
            &ShardBuffers::default(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            error.contains("cannot write the shard file") && error.contains("missing"),
            "{error}"
        );
    }

    #[test]
    fn shards_closed_in_the_background_come_back_in_order_hashed_when_synced_unwritten_when_counted_only()
     {
        for durability in [
            ShardDurability::Synced,
            ShardDurability::Scratch,
            ShardDurability::CountedOnly,
        ] {
            shards_come_back_in_order(durability);
        }
    }

    fn shards_come_back_in_order(durability: ShardDurability) {
        let directory = tempfile::tempdir().unwrap();
        let mut shards = ShardsClosing::default();
        let buffers = ShardBuffers::default();
        for index in 0..(SHARDS_CLOSING_AT_MOST as u64 * 2 + 1) {
            let name = format!("shard-{index:05}.jsonl");
            let record = ShardRecord::planned(index, index * 10 + 1, name.clone(), "m".into(), 1);
            let mut shard =
                ShardFileWriter::create(directory.path().join(&name), record, durability, &buffers)
                    .unwrap();
            // Large enough that some lines go to the thread before the shard is closed.
            for line in 0..(index + 1) * 20_000 {
                shard
                    .write_line(format!("{{\"shard\":{index},\"line\":{line}}}").as_bytes())
                    .unwrap();
            }
            shards.close(shard).unwrap();
        }
        let records = shards.finish().unwrap();
        assert_eq!(records.len(), SHARDS_CLOSING_AT_MOST * 2 + 1);
        for (index, record) in records.iter().enumerate() {
            assert_eq!(record.shard_index, index as u64);
            assert_eq!(record.row_count, (index as u64 + 1) * 20_000);
            let path = directory.path().join(&record.file_name);
            if durability == ShardDurability::CountedOnly {
                assert!(!path.exists(), "a counted-only shard is never written");
                let line_bytes: u64 = (0..record.row_count)
                    .map(|line| format!("{{\"shard\":{index},\"line\":{line}}}\n").len() as u64)
                    .sum();
                assert_eq!(record.byte_size, line_bytes);
                assert_eq!(record.sha256, "");
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(record.byte_size, bytes.len() as u64);
            let expected = match durability {
                ShardDurability::Synced => hex::encode(Sha256::digest(&bytes)),
                _ => String::new(),
            };
            assert_eq!(record.sha256, expected);
        }
    }

    #[test]
    fn a_shard_that_cannot_be_written_is_the_error_when_the_shards_are_finished() {
        let full_disk = Path::new("/dev/full");
        if !full_disk.exists() {
            return;
        }
        let directory = tempfile::tempdir().unwrap();
        let mut shards = ShardsClosing::default();
        let buffers = ShardBuffers::default();
        let planned = |index: u64| {
            ShardRecord::planned(index, 1, format!("shard-{index:05}.jsonl"), "m".into(), 1)
        };
        let mut written = ShardFileWriter::create(
            directory.path().join("a"),
            planned(0),
            ShardDurability::Synced,
            &buffers,
        )
        .unwrap();
        written.write_line(b"{}").unwrap();
        shards.close(written).unwrap();
        let mut unwritable = ShardFileWriter::create(
            full_disk.to_owned(),
            planned(1),
            ShardDurability::Synced,
            &buffers,
        )
        .unwrap();
        unwritable.write_line(b"{}").unwrap();
        shards.close(unwritable).unwrap();
        let error = shards.finish().unwrap_err().to_string();
        assert!(
            error.contains("cannot write the shard file `/dev/full`"),
            "{error}"
        );
        // The buffers of the shard that could not be written came back too.
        assert!(buffers.all_given_back());
    }
}
