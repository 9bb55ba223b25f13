//! The digest of a file taken from the bytes a reader reads from it, first to last: an input is
//! hashed in the pass that reads its rows, not in a second pass of its own. How a digest is
//! taken ([`DigestAlgorithm`]) is written with it.

use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};
use twox_hash::XxHash3_128;

/// How a run's input was hashed, told by how its digest is written.
///
/// A run checks that its input did not change between planning and joining: it guards against
/// an edited or replaced file, not against someone forging one, so a fast 128-bit checksum is
/// enough. XXH3-128 (`xxh3-128:` and 32 hex digits) hashes at memory speed; SHA-256 (64 hex
/// digits, no prefix) took a sixteenth of a 1M-row join's CPU and is what runs planned before
/// 2026-12 recorded, so their digests are still checked with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Sha256,
    Xxh3_128,
}

const XXH3_128_PREFIX: &str = "xxh3-128:";

impl DigestAlgorithm {
    /// What new runs hash their input with.
    pub const FOR_NEW_RUNS: DigestAlgorithm = DigestAlgorithm::Xxh3_128;

    /// The algorithm a written digest was taken with; `None` for text that no algorithm writes
    /// (a damaged run record), which must not be taken for a digest of another input.
    pub fn of_written(digest: &str) -> Option<DigestAlgorithm> {
        let is_lowercase_hex = |text: &str, length: usize| {
            text.len() == length
                && text
                    .bytes()
                    .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
        };
        match digest.strip_prefix(XXH3_128_PREFIX) {
            Some(hex) => is_lowercase_hex(hex, 32).then_some(DigestAlgorithm::Xxh3_128),
            None => is_lowercase_hex(digest, 64).then_some(DigestAlgorithm::Sha256),
        }
    }

    /// A hasher of this algorithm, empty.
    pub fn hasher(self) -> RunningDigest {
        match self {
            DigestAlgorithm::Sha256 => RunningDigest::Sha256(Sha256::new()),
            DigestAlgorithm::Xxh3_128 => RunningDigest::Xxh3_128(Box::new(XxHash3_128::new())),
        }
    }
}

/// A digest being taken, fed bytes as they come.
#[derive(Clone)]
pub enum RunningDigest {
    Sha256(Sha256),
    Xxh3_128(Box<XxHash3_128>),
}

impl RunningDigest {
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            RunningDigest::Sha256(hasher) => hasher.update(bytes),
            RunningDigest::Xxh3_128(hasher) => hasher.write(bytes),
        }
    }

    /// The digest of the bytes so far, written as [`DigestAlgorithm::of_written`] reads it.
    pub fn written(&self) -> String {
        match self {
            RunningDigest::Sha256(hasher) => hex::encode(hasher.clone().finalize()),
            RunningDigest::Xxh3_128(hasher) => {
                format!("{XXH3_128_PREFIX}{:032x}", hasher.finish_128())
            }
        }
    }
}

/// Where the digest of a file lands once its reader has read it to the end.
#[derive(Clone)]
pub struct ReadDigest {
    algorithm: DigestAlgorithm,
    slot: Arc<Mutex<Option<String>>>,
}

impl ReadDigest {
    pub fn new(algorithm: DigestAlgorithm) -> ReadDigest {
        ReadDigest {
            algorithm,
            slot: Arc::default(),
        }
    }

    /// The digest (written as `input_digest` writes it) of every byte read from the file, once
    /// a read found its end after the last of them; `None` until then, and for good when the
    /// reading stopped short of the end.
    pub fn of_whole_file(&self) -> Option<String> {
        self.slot().clone()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A file read through, its bytes hashed as they pass; the digest is given when a read finds
/// the end, and taken back if bytes come after it (a file read on past its first end, which a
/// file grown meanwhile gives): it is always that of every byte handed out.
pub struct DigestingReader<R> {
    inner: R,
    hasher: RunningDigest,
    digest: ReadDigest,
    /// The digest was given at an end, and no byte came since.
    given: bool,
}

impl<R: Read> DigestingReader<R> {
    pub fn new(inner: R, digest: ReadDigest) -> DigestingReader<R> {
        DigestingReader {
            inner,
            hasher: digest.algorithm.hasher(),
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
            *self.digest.slot() = Some(self.hasher.written());
            self.given = true;
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALGORITHMS: [DigestAlgorithm; 2] = [DigestAlgorithm::Sha256, DigestAlgorithm::Xxh3_128];

    fn digest_of(algorithm: DigestAlgorithm, bytes: &[u8]) -> String {
        let mut hasher = algorithm.hasher();
        hasher.update(bytes);
        hasher.written()
    }

    #[test]
    fn each_digest_is_written_so_that_its_algorithm_is_known_again() {
        // Known values: SHA-256 and XXH3-128 (seed 0) of no bytes and of `abc`.
        assert_eq!(
            digest_of(DigestAlgorithm::Sha256, b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            digest_of(DigestAlgorithm::Xxh3_128, b""),
            "xxh3-128:99aa06d3014798d86001c324468d497f"
        );
        for algorithm in ALGORITHMS {
            let written = digest_of(algorithm, b"id,text\n1,a\n");
            assert_eq!(
                DigestAlgorithm::of_written(&written),
                Some(algorithm),
                "{written}"
            );
            assert_ne!(written, digest_of(algorithm, b"id,text\n1,b\n"));
        }
    }

    #[test]
    fn text_no_algorithm_writes_is_no_digest() {
        let sha256 = digest_of(DigestAlgorithm::Sha256, b"abc");
        let xxh3 = digest_of(DigestAlgorithm::Xxh3_128, b"abc");
        for damaged in [
            String::new(),
            "cd".to_owned(),
            sha256[..63].to_owned(),
            format!("{sha256}0"),
            sha256.to_uppercase(),
            sha256.replacen('a', "g", 1),
            xxh3[..xxh3.len() - 1].to_owned(),
            format!("{xxh3}0"),
            XXH3_128_PREFIX.to_owned(),
            xxh3.replace("xxh3-128:", "xxh3-64:"),
            format!("{XXH3_128_PREFIX}{sha256}"),
        ] {
            assert_eq!(DigestAlgorithm::of_written(&damaged), None, "{damaged:?}");
        }
    }

    #[test]
    fn a_file_read_to_its_end_in_any_pieces_has_its_digest() {
        let bytes: Vec<u8> = (0..100_000u32).map(|number| number as u8).collect();
        for (piece, algorithm) in [1, 7, 4096, 1 << 20]
            .into_iter()
            .flat_map(|piece| ALGORITHMS.map(|algorithm| (piece, algorithm)))
        {
            let digest = ReadDigest::new(algorithm);
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
            assert_eq!(digest.of_whole_file(), Some(digest_of(algorithm, &bytes)));
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
        let digest = ReadDigest::new(DigestAlgorithm::Sha256);
        let mut reader = DigestingReader::new(
            Growing {
                parts: vec![b"id,text\n1,a\n", b"2,b\n"],
            },
            digest.clone(),
        );
        let mut buffer = [0u8; 64];
        assert_eq!(reader.read(&mut buffer).unwrap(), 12);
        assert_eq!(reader.read(&mut buffer).unwrap(), 0);
        assert_eq!(
            digest.of_whole_file(),
            Some(digest_of(DigestAlgorithm::Sha256, b"id,text\n1,a\n"))
        );
        // The file grew: what was given is taken back until the next end.
        assert_eq!(reader.read(&mut buffer).unwrap(), 4);
        assert_eq!(digest.of_whole_file(), None);
        assert_eq!(reader.read(&mut buffer).unwrap(), 0);
        assert_eq!(reader.read(&mut buffer).unwrap(), 0);
        assert_eq!(
            digest.of_whole_file(),
            Some(digest_of(DigestAlgorithm::Sha256, b"id,text\n1,a\n2,b\n"))
        );
    }

    #[test]
    fn a_reading_stopped_short_gives_no_digest() {
        let digest = ReadDigest::new(DigestAlgorithm::Sha256);
        let mut reader = DigestingReader::new(&b"id,text\n1,a\n"[..], digest.clone());
        let mut start = [0u8; 4];
        reader.read_exact(&mut start).unwrap();
        drop(reader);
        assert_eq!(digest.of_whole_file(), None);
        let empty = ReadDigest::new(DigestAlgorithm::Sha256);
        std::io::copy(
            &mut DigestingReader::new(&b""[..], empty.clone()),
            &mut std::io::sink(),
        )
        .unwrap();
        assert_eq!(
            empty.of_whole_file(),
            Some(digest_of(DigestAlgorithm::Sha256, b""))
        );
    }
}
