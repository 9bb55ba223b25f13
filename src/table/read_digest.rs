//! The SHA-256 of a file taken from the bytes a reader reads from it, first to last: an input is
//! hashed in the pass that reads its rows, not in a second pass of its own.

use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

/// Where the digest of a file lands once its reader has read it to the end.
#[derive(Clone, Default)]
pub struct ReadDigest(Arc<Mutex<Option<String>>>);

impl ReadDigest {
    /// The SHA-256 in hex (as `file_sha256` gives it) of every byte read from the file, once
    /// a read found its end after the last of them; `None` until then, and for good when the
    /// reading stopped short of the end.
    pub fn of_whole_file(&self) -> Option<String> {
        self.slot().clone()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A file read through, its bytes hashed as they pass; the digest is given when a read finds
/// the end, and taken back if bytes come after it (a file read on past its first end, which a
/// file grown meanwhile gives): it is always that of every byte handed out.
pub struct DigestingReader<R> {
    inner: R,
    hasher: Sha256,
    digest: ReadDigest,
    /// The digest was given at an end, and no byte came since.
    given: bool,
}

impl<R: Read> DigestingReader<R> {
    pub fn new(inner: R, digest: ReadDigest) -> DigestingReader<R> {
        DigestingReader {
            inner,
            hasher: Sha256::new(),
            digest,
            given: false,
        }
    }
}

impl<R: Read> Read for DigestingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        if read > 0 {
            self.hasher.update(&buffer[..read]);
            if std::mem::take(&mut self.given) {
                *self.digest.slot() = None;
            }
        } else if !buffer.is_empty() && !self.given {
            // Nothing more to read into room for it: the end of the file, for now.
            *self.digest.slot() = Some(hex::encode(self.hasher.clone().finalize()));
            self.given = true;
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

    /// A file that grows after a read found its end: the bytes read past it are hashed too.
    struct Growing {
        parts: Vec<&'static [u8]>,
    }

    impl Read for Growing {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            // Each part, then an end of the file, then the next part.
            match self.parts.first_mut() {
                None => Ok(0),
                Some([]) => {
                    self.parts.remove(0);
                    Ok(0)
                }
                Some(part) => {
                    let count = part.len().min(buffer.len());
                    buffer[..count].copy_from_slice(&part[..count]);
                    *part = &part[count..];
                    Ok(count)
                }
            }
        }
    }

    #[test]
    fn bytes_read_past_an_end_are_in_the_digest() {
        let digest = ReadDigest::default();
        let mut reader = DigestingReader::new(
            Growing {
                parts: vec![b"id,text\n1,a\n", b"2,b\n"],
            },
            digest.clone(),
        );
        let mut buffer = [0u8; 64];
        assert_eq!(reader.read(&mut buffer).unwrap(), 12);
        assert_eq!(reader.read(&mut buffer).unwrap(), 0);
        assert_eq!(digest.of_whole_file(), Some(sha256_of(b"id,text\n1,a\n")));
        // The file grew: what was given is taken back until the next end.
        assert_eq!(reader.read(&mut buffer).unwrap(), 4);
        assert_eq!(digest.of_whole_file(), None);
        assert_eq!(reader.read(&mut buffer).unwrap(), 0);
        assert_eq!(reader.read(&mut buffer).unwrap(), 0);
        assert_eq!(
            digest.of_whole_file(),
            Some(sha256_of(b"id,text\n1,a\n2,b\n"))
        );
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
