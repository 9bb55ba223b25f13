//! The SHA-256 of a file taken from the bytes a reader reads from it, first to last: an input is
//! hashed in the pass that reads its rows, not in a second pass of its own.

use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

/// Where the digest of a file lands once its reader has read it to the end.
#[derive(Clone, Default)]
pub struct ReadDigest(Arc<Mutex<Option<String>>>);

impl ReadDigest {
    /// The file's SHA-256 in hex (as `file_sha256` gives it) once every byte of it was read;
    /// `None` until then, and for good when the reading stopped short of the end.
    pub fn of_whole_file(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A file read through, its bytes hashed as they pass; the digest is given when a read finds
/// the end.
pub struct DigestingReader<R> {
    inner: R,
    hasher: Sha256,
    digest: Option<ReadDigest>,
}

impl<R: Read> DigestingReader<R> {
    pub fn new(inner: R, digest: ReadDigest) -> DigestingReader<R> {
        DigestingReader {
            inner,
            hasher: Sha256::new(),
            digest: Some(digest),
        }
    }
}

impl<R: Read> Read for DigestingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        if read > 0 {
            self.hasher.update(&buffer[..read]);
        } else if !buffer.is_empty()
            && let Some(digest) = self.digest.take()
        {
            // Nothing more to read into room for it: the end of the file.
            let hex = hex::encode(std::mem::take(&mut self.hasher).finalize());
            *digest.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(hex);
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256_of(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn a_file_read_to_its_end_in_any_pieces_has_its_digest() {
        let bytes: Vec<u8> = (0..100_000u32).map(|number| number as u8).collect();
        for piece in [1, 7, 4096, 1 << 20] {
            let digest = ReadDigest::default();
            let mut reader = DigestingReader::new(&bytes[..], digest.clone());
            let mut buffer = vec![0; piece];
            let mut read_back = Vec::new();
            loop {
                assert_eq!(digest.of_whole_file(), None, "not before the end");
                // An empty read is not the end.
                assert_eq!(reader.read(&mut []).unwrap(), 0);
                let read = reader.read(&mut buffer).unwrap();
                if read == 0 {
                    break;
                }
                read_back.extend_from_slice(&buffer[..read]);
            }
            assert_eq!(read_back, bytes);
            assert_eq!(digest.of_whole_file(), Some(sha256_of(&bytes)));
        }
    }

    #[test]
    fn a_reading_stopped_short_gives_no_digest() {
        let digest = ReadDigest::default();
        let mut reader = DigestingReader::new(&b"id,text\n1,a\n"[..], digest.clone());
        let mut start = [0u8; 4];
        reader.read_exact(&mut start).unwrap();
        drop(reader);
        assert_eq!(digest.of_whole_file(), None);
        let empty = ReadDigest::default();
        std::io::copy(
            &mut DigestingReader::new(&b""[..], empty.clone()),
            &mut std::io::sink(),
        )
        .unwrap();
        assert_eq!(empty.of_whole_file(), Some(sha256_of(b"")));
    }
}
