//! How a text input is compressed, told by its last extension (`.gz`, `.zst`, `.bz2`, `.xz`), and a stream of its decompressed bytes; every format's concatenated members or frames are read, as its own command-line tool does.

use std::io::{BufReader, Read};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

impl Compression {
    /// The compression `path` is named with (its last extension, any case).
    #[must_use]
    pub fn of_path(path: &Path) -> Compression {
        let Some(extension) = path.extension() else {
            return Compression::None;
        };
        match extension.to_string_lossy().to_ascii_lowercase().as_str() {
            "gz" | "gzip" => Compression::Gzip,
            "zst" | "zstd" => Compression::Zstd,
            "bz2" => Compression::Bzip2,
            "xz" => Compression::Xz,
            _ => Compression::None,
        }
    }

    /// The format's name in messages (`gzip`), or `None` for an uncompressed file.
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
            Compression::Bzip2 => Some("bzip2"),
            Compression::Xz => Some("xz"),
        }
    }

    /// The decompressed bytes of `file`.
    ///
    /// # Errors
    /// When the decompressor cannot be set up (xz's decoder allocates its state up front).
    pub fn decompressed(
        self,
        file: impl Read + Send + 'static,
    ) -> std::io::Result<Box<dyn Read + Send>> {
        let buffered = BufReader::with_capacity(1 << 16, file);
        Ok(match self {
            Compression::None => Box::new(buffered),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
            Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(buffered)),
            Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(buffered)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;

    const TEXT: &str = "id,text\n1,你好\n2,世界\n";

    fn compressed(compression: Compression, text: &[u8]) -> Vec<u8> {
        match compression {
            Compression::None => text.to_vec(),
            Compression::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                encoder.write_all(text).unwrap();
                encoder.finish().unwrap()
            }
            Compression::Zstd => zstd::stream::encode_all(text, 3).unwrap(),
            Compression::Bzip2 => {
                let mut encoder =
                    bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
                encoder.write_all(text).unwrap();
                encoder.finish().unwrap()
            }
            Compression::Xz => {
                let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 6);
                encoder.write_all(text).unwrap();
                encoder.finish().unwrap()
            }
        }
    }

    #[test]
    fn compressions_come_from_the_last_extension() {
        assert_eq!(
            Compression::of_path(Path::new("a.csv.GZ")),
            Compression::Gzip
        );
        assert_eq!(
            Compression::of_path(Path::new("a.jsonl.zst")),
            Compression::Zstd
        );
        assert_eq!(
            Compression::of_path(Path::new("a.tsv.bz2")),
            Compression::Bzip2
        );
        assert_eq!(Compression::of_path(Path::new("a.csv.xz")), Compression::Xz);
        assert_eq!(Compression::of_path(Path::new("a.csv")), Compression::None);
        assert_eq!(Compression::of_path(Path::new("gz")), Compression::None);
    }

    /// Two compressed copies one after the other read as the text twice (`cat a.gz b.gz`,
    /// `zstd` and `pbzip2`/`xz -T` writing several frames, blocks or streams).
    #[test]
    fn every_format_reads_back_concatenated_members() {
        let directory = tempfile::tempdir().unwrap();
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Zstd,
            Compression::Bzip2,
            Compression::Xz,
        ] {
            let path = directory.path().join(format!("{compression:?}"));
            let mut bytes = compressed(compression, TEXT.as_bytes());
            bytes.extend(compressed(compression, TEXT.as_bytes()));
            std::fs::write(&path, bytes).unwrap();
            let mut text = String::new();
            compression
                .decompressed(File::open(&path).unwrap())
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            assert_eq!(text, TEXT.repeat(2), "{compression:?}");
        }
    }

    #[test]
    fn a_file_that_is_not_compressed_as_named_fails_to_read() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("plain");
        std::fs::write(&path, TEXT).unwrap();
        for compression in [
            Compression::Gzip,
            Compression::Zstd,
            Compression::Bzip2,
            Compression::Xz,
        ] {
            let mut text = String::new();
            let result = compression
                .decompressed(File::open(&path).unwrap())
                .unwrap()
                .read_to_string(&mut text);
            assert!(result.is_err(), "{compression:?}");
        }
    }
}
