//! Plausible token counts without a tokenizer.
//!
//! Qwen-style tokenizers spend about one token per 1 to 1.5 CJK characters and about one token per
//! four characters of English; chat formatting adds a few tokens per message. These estimates
//! only have to be stable and of the right size, so cost tests see realistic figures.

/// Tokens of chat formatting around each message (role markers and separators).
pub(crate) const TOKENS_PER_MESSAGE: u64 = 4;
/// Tokens that prime the assistant's answer once per request.
pub(crate) const TOKENS_PER_REQUEST: u64 = 3;
/// Tokens an image, audio or video part of a message costs.
pub(crate) const TOKENS_PER_MEDIA_PART: u64 = 258;

/// Estimated tokens of a text: CJK characters count three quarters of a token each (one token per
/// 1.33 characters), everything else a quarter.
pub(crate) fn estimate_text_tokens(text: &str) -> u64 {
    let mut cjk_characters = 0u64;
    let mut other_characters = 0u64;
    for character in text.chars() {
        if is_cjk(character) {
            cjk_characters += 1;
        } else {
            other_characters += 1;
        }
    }
    (cjk_characters * 3).div_ceil(4) + other_characters.div_ceil(4)
}

/// Whether a character is Chinese, Japanese or Korean script or CJK punctuation.
pub(crate) fn is_cjk(character: char) -> bool {
    matches!(u32::from(character),
        0x3000..=0x303F      // CJK symbols and punctuation
        | 0x3040..=0x30FF    // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0xFF00..=0xFFEF    // Full-width forms
        | 0x20000..=0x2FA1F  // CJK extensions B and later
    )
}

/// Whether most letters of a text are CJK (used to answer in the same script).
pub(crate) fn is_mostly_cjk(text: &str) -> bool {
    let mut cjk_characters = 0usize;
    let mut letters = 0usize;
    for character in text.chars().filter(|character| character.is_alphanumeric()) {
        letters += 1;
        if is_cjk(character) {
            cjk_characters += 1;
        }
    }
    letters > 0 && cjk_characters * 2 >= letters
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use super::super::test_support::answer_value;

    #[test]
    fn cjk_text_costs_more_tokens_per_character_than_english() {
        let english = "The quick brown fox jumps over the lazy dog again";
        let chinese = "风急天高猿啸哀渚清沙白鸟飞回";
        let english_per_character =
            estimate_text_tokens(english) as f64 / english.chars().count() as f64;
        let chinese_per_character =
            estimate_text_tokens(chinese) as f64 / chinese.chars().count() as f64;
        assert!((0.2..=0.3).contains(&english_per_character));
        assert!((0.66..=1.0).contains(&chinese_per_character));
        assert_eq!(estimate_text_tokens(""), 0);
        assert!(is_mostly_cjk(chinese));
        assert!(!is_mostly_cjk(english));
    }

    #[test]
    fn cjk_prompts_cost_more_tokens_per_character() {
        let (_, chinese) = answer_value(
            "/v1/chat/completions",
            json!({"model": "qwen-plus", "messages": [{"role": "user", "content": "请用一句话总结这篇关于城市交通拥堵治理的长篇报告的主要观点和建议"}]}),
        );
        let (_, english) = answer_value(
            "/v1/chat/completions",
            json!({"model": "qwen-plus", "messages": [{"role": "user", "content": "Please summarise, in one sentence, the main points of this report on city traffic."}]}),
        );
        // 31 CJK characters against 83 English characters.
        assert!(
            chinese.prompt_tokens > english.prompt_tokens,
            "{chinese:?} {english:?}"
        );
    }
}
