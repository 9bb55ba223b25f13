//! The chat completion body and its field order: each flavour's layout of the same answer.

use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};

use super::config::SimFlavour;

/// A chat completion body. Its fields follow the provider it imitates (see the `Serialize`
/// impls): live DashScope sends `created, usage, model, id, choices, object` (reference §5.1);
/// OpenAI sends `id, object, created, model, choices, usage, system_fingerprint` with
/// `"system_fingerprint": null` (§8.4).
#[derive(Debug, Clone)]
pub(crate) struct ChatCompletion {
    pub(crate) flavour: SimFlavour,
    pub(crate) created: i64,
    pub(crate) usage: ChatUsage,
    pub(crate) model: String,
    pub(crate) id: String,
    pub(crate) choices: Vec<ChatChoice>,
    pub(crate) object: &'static str,
}

#[derive(Debug, Clone)]
pub(crate) struct ChatUsage {
    pub(crate) completion_tokens: u64,
    pub(crate) prompt_tokens: u64,
    pub(crate) total_tokens: u64,
    pub(crate) completion_tokens_details: Option<CompletionTokensDetails>,
    /// Present when the request had images: how many of the prompt tokens they were.
    pub(crate) prompt_tokens_details: Option<PromptTokensDetails>,
}

/// The image part of the prompt tokens (DashScope's vision answers carry `image_tokens`; the
/// exact shape is unconfirmed, so clients read it liberally).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PromptTokensDetails {
    pub(crate) image_tokens: u64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct CompletionTokensDetails {
    pub(crate) reasoning_tokens: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct ChatChoice {
    pub(crate) finish_reason: &'static str,
    pub(crate) index: u32,
    pub(crate) message: ChatMessage,
}

/// A part of a chat completion, serialized in the field order of `.1`.
struct InFlavour<'part, T>(&'part T, SimFlavour);

impl Serialize for ChatCompletion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let usage = InFlavour(&self.usage, self.flavour);
        let choices: Vec<InFlavour<'_, ChatChoice>> = self
            .choices
            .iter()
            .map(|choice| InFlavour(choice, self.flavour))
            .collect();
        match self.flavour {
            SimFlavour::Dashscope => {
                let mut body = serializer.serialize_struct("ChatCompletion", 6)?;
                body.serialize_field("created", &self.created)?;
                body.serialize_field("usage", &usage)?;
                body.serialize_field("model", &self.model)?;
                body.serialize_field("id", &self.id)?;
                body.serialize_field("choices", &choices)?;
                body.serialize_field("object", self.object)?;
                body.end()
            }
            SimFlavour::Openai => {
                let mut body = serializer.serialize_struct("ChatCompletion", 7)?;
                body.serialize_field("id", &self.id)?;
                body.serialize_field("object", self.object)?;
                body.serialize_field("created", &self.created)?;
                body.serialize_field("model", &self.model)?;
                body.serialize_field("choices", &choices)?;
                body.serialize_field("usage", &usage)?;
                body.serialize_field("system_fingerprint", &None::<String>)?;
                body.end()
            }
        }
    }
}

impl Serialize for InFlavour<'_, ChatUsage> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let InFlavour(usage, flavour) = self;
        let fields = 3
            + usize::from(usage.completion_tokens_details.is_some())
            + usize::from(usage.prompt_tokens_details.is_some());
        let mut out = serializer.serialize_struct("ChatUsage", fields)?;
        match flavour {
            SimFlavour::Dashscope => {
                out.serialize_field("completion_tokens", &usage.completion_tokens)?;
                out.serialize_field("prompt_tokens", &usage.prompt_tokens)?;
            }
            SimFlavour::Openai => {
                out.serialize_field("prompt_tokens", &usage.prompt_tokens)?;
                out.serialize_field("completion_tokens", &usage.completion_tokens)?;
            }
        }
        out.serialize_field("total_tokens", &usage.total_tokens)?;
        if let Some(details) = &usage.completion_tokens_details {
            out.serialize_field("completion_tokens_details", details)?;
        }
        if let Some(details) = &usage.prompt_tokens_details {
            out.serialize_field("prompt_tokens_details", details)?;
        }
        out.end()
    }
}

impl Serialize for InFlavour<'_, ChatChoice> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let InFlavour(choice, flavour) = self;
        let mut out = serializer.serialize_struct("ChatChoice", 3)?;
        match flavour {
            SimFlavour::Dashscope => {
                out.serialize_field("finish_reason", choice.finish_reason)?;
                out.serialize_field("index", &choice.index)?;
                out.serialize_field("message", &choice.message)?;
            }
            SimFlavour::Openai => {
                out.serialize_field("index", &choice.index)?;
                out.serialize_field("message", &choice.message)?;
                out.serialize_field("finish_reason", choice.finish_reason)?;
            }
        }
        out.end()
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChatMessage {
    pub(crate) role: &'static str,
    pub(crate) content: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::SimFlavour;
    use super::super::responder::{AnswerContext, SimulatedAnswer, answer_request};
    use super::super::test_support::context;

    #[test]
    fn chat_bodies_follow_each_providers_layout() {
        let body =
            json!({"model": "qwen3.5-plus", "messages": [{"role": "user", "content": "hi"}]});
        // Field order shows only in the text (serde_json::Value sorts its keys).
        let dashscope = answer_request(context(), "/v1/chat/completions", &body).unwrap();
        let text = serde_json::to_string(&dashscope.body).unwrap();
        assert!(
            text.starts_with(r#"{"created":1700000000,"usage":{"completion_tokens":"#),
            "{text}"
        );
        assert!(text.contains(r#""choices":[{"finish_reason":"stop","index":0,"message":{"role":"assistant","content":"#), "{text}");
        assert!(text.ends_with(r#""object":"chat.completion"}"#), "{text}");
        assert!(!text.contains("system_fingerprint"), "{text}");

        let openai_context = AnswerContext {
            flavour: SimFlavour::Openai,
            ..context()
        };
        let openai = answer_request(openai_context, "/v1/chat/completions", &body).unwrap();
        let text = serde_json::to_string(&openai.body).unwrap();
        assert!(
            text.starts_with(
                r#"{"id":"chatcmpl-test","object":"chat.completion","created":1700000000,"model":"qwen3.5-plus","choices":[{"index":0,"message":{"role":"assistant","content":"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#""finish_reason":"stop"}],"usage":{"prompt_tokens":"#),
            "{text}"
        );
        assert!(
            text.contains(r#""completion_tokens_details":{"reasoning_tokens":"#),
            "{text}"
        );
        assert!(text.ends_with(r#"},"system_fingerprint":null}"#), "{text}");
        // The same answer either way, only laid out differently.
        let as_value = |answer: &SimulatedAnswer| serde_json::to_value(&answer.body).unwrap();
        let mut openai_value = as_value(&openai);
        openai_value
            .as_object_mut()
            .unwrap()
            .remove("system_fingerprint");
        assert_eq!(openai_value, as_value(&dashscope));
        assert_eq!(openai.usage, dashscope.usage);
    }
}
