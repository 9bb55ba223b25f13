//! Where file bytes and the simulator's state live: in memory, or in a state directory that
//! survives restarts.
//!
//! State directory layout:
//!
//! ```text
//! world.json     files, batches (with their bills' totals), id sequence: rewritten on every change
//! control.json   fault plan, call counters, latest simulated time: rewritten on every call
//! files/<id>     the bytes of each stored file, and of each batch's bills (`bills-<batch id>`)
//! tmp/           uploads and results being written; emptied at start
//! ```
//!
//! Every JSON document and every file is written to `tmp/` first and renamed into place, so a
//! crash (of the simulator or of anything else) leaves either the old or the new version, never a
//! torn one. File bytes are renamed into `files/` before `world.json` refers to them, and removed
//! only after `world.json` stopped referring to them; bytes nobody refers to after a crash are
//! removed at the next start.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::input_lines::LineSource;

pub(crate) const WORLD_DOCUMENT: &str = "world.json";
pub(crate) const CONTROL_DOCUMENT: &str = "control.json";
const DOWNLOAD_CHUNK_BYTES: usize = 64 * 1024;

/// Unique names for temporary files within this process (the directory is emptied at start).
static TEMPORARY_NAME_COUNTER: AtomicU64 = AtomicU64::new(0);

fn temporary_path(directory: &Path, stem: &str) -> PathBuf {
    let number = TEMPORARY_NAME_COUNTER.fetch_add(1, Ordering::Relaxed);
    directory.join(format!("{stem}.{}.{number}.tmp", std::process::id()))
}

/// The state directory of a persistent simulator.
#[derive(Debug, Clone)]
pub(crate) struct StateDirectory {
    root: PathBuf,
}

impl StateDirectory {
    /// Creates the layout if needed and empties `tmp/`.
    pub(crate) fn open(root: &Path) -> io::Result<StateDirectory> {
        fs::create_dir_all(root.join("files"))?;
        let temporary = root.join("tmp");
        if temporary.exists() {
            fs::remove_dir_all(&temporary)?;
        }
        fs::create_dir_all(&temporary)?;
        Ok(StateDirectory {
            root: root.to_path_buf(),
        })
    }

    pub(crate) fn files_directory(&self) -> PathBuf {
        self.root.join("files")
    }

    pub(crate) fn temporary_directory(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn load<T: DeserializeOwned>(&self, document: &str) -> io::Result<Option<T>> {
        let path = self.root.join(document);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("cannot read `{}`: {error}", path.display()),
                )
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Writes a JSON document atomically; `durable` also syncs it to the disk before the rename.
    pub(crate) fn save<T: Serialize>(
        &self,
        document: &str,
        value: &T,
        durable: bool,
    ) -> io::Result<()> {
        let temporary = temporary_path(&self.temporary_directory(), document);
        {
            let mut writer = BufWriter::new(File::create(&temporary)?);
            serde_json::to_writer(&mut writer, value)?;
            writer.flush()?;
            if durable {
                writer.get_ref().sync_all()?;
            }
        }
        fs::rename(&temporary, self.root.join(document))
    }
}

/// The bytes of every stored file.
#[derive(Debug)]
pub(crate) enum FileStore {
    Memory(Mutex<HashMap<String, Bytes>>),
    Directory { files: PathBuf, temporary: PathBuf },
}

/// A file being written by the simulator itself (batch results).
pub(crate) struct FileSink {
    target: SinkTarget,
    written: u64,
    hasher: Sha256,
}

enum SinkTarget {
    Memory(Vec<u8>),
    Disk {
        writer: BufWriter<File>,
        path: PathBuf,
    },
}

/// A file being received from a client (an upload), written as its chunks arrive.
pub(crate) struct UploadSink {
    target: UploadTarget,
    written: u64,
    hasher: Sha256,
}

enum UploadTarget {
    Memory(Vec<u8>),
    Disk {
        file: tokio::fs::File,
        path: PathBuf,
    },
}

/// A completely received upload, not yet given an id.
pub(crate) struct ReceivedUpload {
    content: ReceivedContent,
    pub(crate) bytes: u64,
    pub(crate) sha256: String,
}

enum ReceivedContent {
    Memory(Bytes),
    Disk(PathBuf),
}

impl Drop for ReceivedUpload {
    fn drop(&mut self) {
        // After a commit the temporary file has been renamed away and this does nothing.
        if let ReceivedContent::Disk(path) = &self.content {
            let _ = fs::remove_file(path);
        }
    }
}

/// What a committed file looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommittedFile {
    pub(crate) bytes: u64,
    pub(crate) sha256: String,
}

impl FileStore {
    pub(crate) fn in_memory() -> FileStore {
        FileStore::Memory(Mutex::new(HashMap::new()))
    }

    pub(crate) fn in_directory(state_directory: &StateDirectory) -> FileStore {
        FileStore::Directory {
            files: state_directory.files_directory(),
            temporary: state_directory.temporary_directory(),
        }
    }

    fn path_of(files: &Path, id: &str) -> PathBuf {
        files.join(id)
    }

    /// The bytes of a stored file, readable line by line and seekable.
    pub(crate) fn open_source(&self, id: &str) -> io::Result<Box<dyn LineSource>> {
        match self {
            FileStore::Memory(files) => {
                let bytes = files
                    .lock()
                    .expect("file store lock")
                    .get(id)
                    .cloned()
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, format!("no bytes for `{id}`"))
                    })?;
                Ok(Box::new(Cursor::new(bytes)))
            }
            FileStore::Directory { files, .. } => Ok(Box::new(BufReader::with_capacity(
                DOWNLOAD_CHUNK_BYTES,
                File::open(Self::path_of(files, id))?,
            ))),
        }
    }

    /// Forgets a file's bytes; a file that is already gone is fine.
    pub(crate) fn remove(&self, id: &str) -> io::Result<()> {
        match self {
            FileStore::Memory(files) => {
                files.lock().expect("file store lock").remove(id);
                Ok(())
            }
            FileStore::Directory { files, .. } => match fs::remove_file(Self::path_of(files, id)) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
                _ => Ok(()),
            },
        }
    }

    /// Ids whose bytes are stored (for removing orphans after a crash).
    pub(crate) fn stored_ids(&self) -> io::Result<Vec<String>> {
        match self {
            FileStore::Memory(files) => Ok(files
                .lock()
                .expect("file store lock")
                .keys()
                .cloned()
                .collect()),
            FileStore::Directory { files, .. } => {
                let mut ids = Vec::new();
                for entry in fs::read_dir(files)? {
                    ids.push(entry?.file_name().to_string_lossy().into_owned());
                }
                Ok(ids)
            }
        }
    }

    pub(crate) fn new_sink(&self) -> io::Result<FileSink> {
        let target = match self {
            FileStore::Memory(_) => SinkTarget::Memory(Vec::new()),
            FileStore::Directory { temporary, .. } => {
                let path = temporary_path(temporary, "result");
                SinkTarget::Disk {
                    writer: BufWriter::new(File::create(&path)?),
                    path,
                }
            }
        };
        Ok(FileSink {
            target,
            written: 0,
            hasher: Sha256::new(),
        })
    }

    /// Stores a finished sink under `id`.
    pub(crate) fn commit_sink(&self, sink: FileSink, id: &str) -> io::Result<CommittedFile> {
        let committed = CommittedFile {
            bytes: sink.written,
            sha256: hex::encode(sink.hasher.finalize()),
        };
        match (self, sink.target) {
            (FileStore::Memory(files), SinkTarget::Memory(bytes)) => {
                files
                    .lock()
                    .expect("file store lock")
                    .insert(id.to_owned(), Bytes::from(bytes));
            }
            (FileStore::Directory { files, .. }, SinkTarget::Disk { writer, path }) => {
                let file = writer.into_inner().map_err(|error| error.into_error())?;
                file.sync_all()?;
                fs::rename(&path, Self::path_of(files, id))?;
            }
            _ => unreachable!("a sink always comes from the store that commits it"),
        }
        Ok(committed)
    }

    pub(crate) async fn begin_upload(&self) -> io::Result<UploadSink> {
        let target = match self {
            FileStore::Memory(_) => UploadTarget::Memory(Vec::new()),
            FileStore::Directory { temporary, .. } => {
                let path = temporary_path(temporary, "upload");
                UploadTarget::Disk {
                    file: tokio::fs::File::create(&path).await?,
                    path,
                }
            }
        };
        Ok(UploadSink {
            target,
            written: 0,
            hasher: Sha256::new(),
        })
    }

    /// Stores a received upload under `id` (blocking: call it off the async runtime).
    pub(crate) fn commit_upload(
        &self,
        mut upload: ReceivedUpload,
        id: &str,
    ) -> io::Result<CommittedFile> {
        let committed = CommittedFile {
            bytes: upload.bytes,
            sha256: upload.sha256.clone(),
        };
        let content = std::mem::replace(&mut upload.content, ReceivedContent::Memory(Bytes::new()));
        match (self, content) {
            (FileStore::Memory(files), ReceivedContent::Memory(bytes)) => {
                files
                    .lock()
                    .expect("file store lock")
                    .insert(id.to_owned(), bytes);
            }
            (FileStore::Directory { files, .. }, ReceivedContent::Disk(path)) => {
                if let Err(error) = fs::rename(&path, Self::path_of(files, id)) {
                    let _ = fs::remove_file(&path);
                    return Err(error);
                }
            }
            _ => unreachable!("an upload always comes from the store that commits it"),
        }
        Ok(committed)
    }

    /// The bytes of a file as a streamed body, with their length.
    pub(crate) async fn content_body(&self, id: &str) -> io::Result<(u64, Body)> {
        match self {
            FileStore::Memory(files) => {
                let bytes = files
                    .lock()
                    .expect("file store lock")
                    .get(id)
                    .cloned()
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, format!("no bytes for `{id}`"))
                    })?;
                Ok((bytes.len() as u64, Body::from(bytes)))
            }
            FileStore::Directory { files, .. } => {
                let file = tokio::fs::File::open(Self::path_of(files, id)).await?;
                let length = file.metadata().await?.len();
                let chunks = futures::stream::unfold(Some(file), |file| async move {
                    let mut file = file?;
                    let mut buffer = vec![0u8; DOWNLOAD_CHUNK_BYTES];
                    match file.read(&mut buffer).await {
                        Ok(0) => None,
                        Ok(read) => {
                            buffer.truncate(read);
                            Some((Ok::<Bytes, io::Error>(Bytes::from(buffer)), Some(file)))
                        }
                        Err(error) => Some((Err(error), None)),
                    }
                });
                Ok((length, Body::from_stream(chunks)))
            }
        }
    }
}

impl Write for FileSink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = match &mut self.target {
            SinkTarget::Memory(buffer) => {
                buffer.extend_from_slice(bytes);
                bytes.len()
            }
            SinkTarget::Disk { writer, .. } => writer.write(bytes)?,
        };
        self.hasher.update(&bytes[..written]);
        self.written += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.target {
            SinkTarget::Memory(_) => Ok(()),
            SinkTarget::Disk { writer, .. } => writer.flush(),
        }
    }
}

impl UploadSink {
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    pub(crate) async fn write_chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        match &mut self.target {
            UploadTarget::Memory(buffer) => buffer.extend_from_slice(chunk),
            UploadTarget::Disk { file, .. } => file.write_all(chunk).await?,
        }
        self.hasher.update(chunk);
        self.written += chunk.len() as u64;
        Ok(())
    }

    pub(crate) async fn finish(self) -> io::Result<ReceivedUpload> {
        let content = match self.target {
            UploadTarget::Memory(buffer) => ReceivedContent::Memory(Bytes::from(buffer)),
            UploadTarget::Disk { mut file, path } => {
                file.flush().await?;
                file.sync_all().await?;
                ReceivedContent::Disk(path)
            }
        };
        Ok(ReceivedUpload {
            content,
            bytes: self.written,
            sha256: hex::encode(self.hasher.finalize()),
        })
    }

    /// Drops a partial upload.
    pub(crate) async fn discard(self) {
        if let UploadTarget::Disk { file, path } = self.target {
            drop(file);
            let _ = tokio::fs::remove_file(path).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn scratch_directory(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "dashbatch-sim-persist-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&path);
        path
    }

    #[test]
    fn documents_are_written_atomically_and_read_back() {
        let root = scratch_directory("documents");
        let directory = StateDirectory::open(&root).unwrap();
        assert_eq!(directory.load::<Vec<u32>>(WORLD_DOCUMENT).unwrap(), None);
        directory
            .save(WORLD_DOCUMENT, &vec![1, 2, 3], true)
            .unwrap();
        assert_eq!(
            directory.load::<Vec<u32>>(WORLD_DOCUMENT).unwrap(),
            Some(vec![1, 2, 3])
        );
        assert_eq!(
            fs::read_dir(directory.temporary_directory())
                .unwrap()
                .count(),
            0
        );
        fs::write(root.join("tmp/leftover"), b"x").unwrap();
        let reopened = StateDirectory::open(&root).unwrap();
        assert_eq!(
            fs::read_dir(reopened.temporary_directory())
                .unwrap()
                .count(),
            0
        );
        fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test]
    async fn both_stores_keep_uploads_and_sinks() {
        let root = scratch_directory("stores");
        let directory = StateDirectory::open(&root).unwrap();
        for store in [FileStore::in_memory(), FileStore::in_directory(&directory)] {
            let mut upload = store.begin_upload().await.unwrap();
            upload.write_chunk(b"line one\n").await.unwrap();
            upload.write_chunk(b"line two\n").await.unwrap();
            let received = upload.finish().await.unwrap();
            let committed = store.commit_upload(received, "file-a").unwrap();
            assert_eq!(committed.bytes, 18);
            let mut text = String::new();
            store
                .open_source("file-a")
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            assert_eq!(text, "line one\nline two\n");

            let mut sink = store.new_sink().unwrap();
            sink.write_all(b"result\n").unwrap();
            store.commit_sink(sink, "file-b").unwrap();
            let (length, _) = store.content_body("file-b").await.unwrap();
            assert_eq!(length, 7);
            let mut ids = store.stored_ids().unwrap();
            ids.sort();
            assert_eq!(ids, vec!["file-a", "file-b"]);
            store.remove("file-a").unwrap();
            store.remove("file-a").unwrap();
            assert!(store.open_source("file-a").is_err());
        }
        fs::remove_dir_all(root).unwrap();
    }
}
