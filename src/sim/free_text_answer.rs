//! The fake text: a few sentences of filler in the user's script, after `[simulated <model>]`
//! and the first words of the user's message, and the words strings in schema answers are made
//! of.

use super::ids::DeterministicRandom;
use super::token_estimate::{is_cjk, is_mostly_cjk};

const ENGLISH_WORDS: [&str; 48] = [
    "the",
    "result",
    "depends",
    "on",
    "context",
    "and",
    "a",
    "careful",
    "reading",
    "suggests",
    "several",
    "points",
    "worth",
    "noting",
    "first",
    "it",
    "is",
    "clear",
    "that",
    "this",
    "question",
    "touches",
    "data",
    "quality",
    "while",
    "another",
    "view",
    "favours",
    "simple",
    "answers",
    "overall",
    "evidence",
    "points",
    "toward",
    "balanced",
    "outcome",
    "with",
    "some",
    "uncertainty",
    "remaining",
    "in",
    "practice",
    "teams",
    "often",
    "choose",
    "steady",
    "progress",
    "here",
];

const CHINESE_PHRASES: [&str; 16] = [
    "综合来看",
    "这个问题",
    "需要结合具体情况",
    "可以从几个方面理解",
    "首先",
    "其次",
    "数据表明",
    "结果较为稳定",
    "仍有一定不确定性",
    "建议进一步核实",
    "整体而言",
    "答案偏向肯定",
    "值得注意的是",
    "在实际应用中",
    "通常可以接受",
    "简要说明如下",
];

/// A free-text answer of `model` to `user_text`.
pub(crate) fn free_text_answer(
    model: &str,
    user_text: &str,
    random: &mut DeterministicRandom,
) -> String {
    let chinese = is_mostly_cjk(user_text);
    let sentence_count = random.between(1, 4);
    let sentences: Vec<String> = (0..sentence_count)
        .map(|_| {
            if chinese {
                let phrase_count = random.between(2, 5);
                let phrases: Vec<&str> = (0..phrase_count)
                    .map(|_| *random.pick(&CHINESE_PHRASES))
                    .collect();
                format!("{}。", phrases.join("，"))
            } else {
                let word_count = random.between(6, 14);
                let words: Vec<&str> = (0..word_count)
                    .map(|_| *random.pick(&ENGLISH_WORDS))
                    .collect();
                let mut sentence = words.join(" ");
                if let Some(first) = sentence.get(..1) {
                    sentence.replace_range(..1, &first.to_uppercase());
                }
                sentence.push('.');
                sentence
            }
        })
        .collect();
    let body = sentences.join(if chinese { "" } else { " " });
    match excerpt_of(user_text) {
        Some(excerpt) => format!("[simulated {model}] On \"{excerpt}\": {body}"),
        None => format!("[simulated {model}] {body}"),
    }
}

/// The first words of the user's message (or first characters of CJK text), marked when cut.
fn excerpt_of(user_text: &str) -> Option<String> {
    let trimmed = user_text.trim();
    if trimmed.is_empty() {
        return None;
    }
    let cjk_heavy = trimmed
        .chars()
        .filter(|character| is_cjk(*character))
        .count()
        * 2
        >= trimmed
            .chars()
            .filter(|character| !character.is_whitespace())
            .count();
    let (excerpt, was_cut) = if cjk_heavy {
        let excerpt: String = trimmed
            .chars()
            .filter(|character| *character != '\n')
            .take(12)
            .collect();
        let was_cut = trimmed.chars().count() > excerpt.chars().count();
        (excerpt, was_cut)
    } else {
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        (
            words.iter().take(8).copied().collect::<Vec<_>>().join(" "),
            words.len() > 8,
        )
    };
    Some(if was_cut {
        format!("{excerpt}…")
    } else {
        excerpt
    })
}

/// Words that strings in schema answers are made of: the user's words, then filler.
pub(crate) fn vocabulary_for(user_text: &str) -> Vec<String> {
    let mut words: Vec<String> = user_text
        .split(|character: char| !character.is_alphanumeric())
        .filter(|word| word.chars().count() >= 3 && !word.chars().any(is_cjk))
        .take(24)
        .map(str::to_lowercase)
        .collect();
    words.extend(
        ENGLISH_WORDS
            .iter()
            .filter(|word| word.len() >= 4)
            .map(|word| (*word).to_owned()),
    );
    words
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::{answer_value, content_of};

    #[test]
    fn free_text_says_it_is_simulated_and_echoes_the_user() {
        let (body, usage) = answer_value(
            "/v1/chat/completions",
            json!({"model": "qwen-flash", "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Summarise the quarterly sales report for the northern region please"}]}),
        );
        let content = content_of(&body);
        assert!(content.starts_with("[simulated qwen-flash] On \"Summarise the quarterly sales report for the northern\u{2026}\""), "{content}");
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            body["usage"]["total_tokens"].as_u64().unwrap(),
            usage.prompt_tokens + usage.completion_tokens
        );
        assert!(body["usage"].get("completion_tokens_details").is_none());
        assert!((15..=40).contains(&usage.prompt_tokens), "{usage:?}");
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 6);
    }
}
