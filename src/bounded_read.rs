//! Reading a small file the user named (a price file, a tokenizer vocabulary) without trusting it: only a regular file (never a FIFO that blocks or a device that never ends), and never more than a stated size.

use std::io::Read;
use std::path::Path;

/// Whether [`read_regular_file_at_most`] could read `path`, found without reading it: a regular
/// file of at most `max_bytes` that opens.
#[must_use]
pub fn is_readable_regular_file_at_most(path: &Path, max_bytes: u64) -> bool {
    std::fs::metadata(path).is_ok_and(|metadata| metadata.is_file() && metadata.len() <= max_bytes)
        && std::fs::File::open(path).is_ok()
}

/// The whole file at `path`, refused when it is not a regular file or is larger than `max_bytes`.
///
/// # Errors
/// When the file cannot be opened or read, is a directory, FIFO, socket or device, or is larger
/// than `max_bytes`; the message says which, for the caller to put after the path.
pub fn read_regular_file_at_most(path: &Path, max_bytes: u64) -> std::io::Result<Vec<u8>> {
    // The type is checked before opening: opening a FIFO for reading waits for a writer.
    let metadata = std::fs::metadata(path)?;
    if !metadata.is_file() {
        return Err(std::io::Error::other(if metadata.is_dir() {
            "it is a directory, not a file"
        } else {
            "it is not a regular file (a pipe, socket or device)"
        }));
    }
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(std::io::Error::other(format!(
            "it is larger than {} MiB, more than such a file ever is",
            max_bytes / 1024 / 1024
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_size_are_read() {
        let directory = tempfile::tempdir().unwrap();
        let small = directory.path().join("small");
        std::fs::write(&small, b"abc").unwrap();
        assert_eq!(read_regular_file_at_most(&small, 3).unwrap(), b"abc");
        assert!(is_readable_regular_file_at_most(&small, 3));
        assert!(!is_readable_regular_file_at_most(&small, 2));
        assert!(!is_readable_regular_file_at_most(directory.path(), 10));
        assert!(!is_readable_regular_file_at_most(
            Path::new("/dev/zero"),
            10
        ));
        let too_big = read_regular_file_at_most(&small, 2)
            .unwrap_err()
            .to_string();
        assert!(too_big.contains("larger than"), "{too_big}");
        let folder = read_regular_file_at_most(directory.path(), 10)
            .unwrap_err()
            .to_string();
        assert!(folder.contains("directory"), "{folder}");
        let device = read_regular_file_at_most(Path::new("/dev/zero"), 10)
            .unwrap_err()
            .to_string();
        assert!(device.contains("not a regular file"), "{device}");
        let fifo = directory.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|status| status.success()) {
            let error = read_regular_file_at_most(&fifo, 10)
                .unwrap_err()
                .to_string();
            assert!(error.contains("not a regular file"), "{error}");
        }
    }
}
