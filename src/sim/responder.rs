//! The deterministic fake model: the response body and token usage a batch line gets.
//!
//! Answers depend only on the seed, the model and the request body, and say that they are
//! simulated. This module reads a line's body and answers it; each kind of answer has its own
//! module: free text ([`super::free_text_answer`]), `response_format` JSON answers that fit their
//! schema ([`super::json_schema_answer`]), embeddings ([`super::embedding_answer`]), token usage
//! and thinking ([`super::token_usage`]), and the chat body's layout per flavour
//! ([`super::chat_completion_body`]). Prompt tokens are estimated from the rendered messages (see
//! [`super::token_estimate`]).

use serde::Serialize;
use serde_json::Value;

use super::chat_completion_body::{
    ChatChoice, ChatCompletion, ChatMessage, ChatUsage, CompletionTokensDetails,
    PromptTokensDetails,
};
use super::config::{SimFlavour, TEST_MODEL};
use super::embedding_answer::{
    EmbeddingList, EmbeddingsRequest, answer_embeddings, parse_embeddings,
};
use super::free_text_answer::{free_text_answer, vocabulary_for};
use super::ids::{DeterministicRandom, number_of_parts};
use super::json_schema_answer::SchemaAnswerer;
use super::request_rejection::RequestRejection;
use super::token_estimate::{
    TOKENS_PER_MEDIA_PART, TOKENS_PER_MESSAGE, TOKENS_PER_REQUEST, estimate_text_tokens,
};
use super::token_usage::{TokenUsage, reasoning_tokens, thinks, within_max_tokens};
use crate::wire::ApiErrorBody;

/// What `batch-test-model` always answers.
pub(crate) const TEST_MODEL_ANSWER: &str = "This is a test result.";

/// Values that are not part of the answer's content but appear in its body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AnswerContext<'context> {
    pub(crate) seed: u64,
    /// `id` of a chat completion body.
    pub(crate) completion_id: &'context str,
    /// `created` of a chat completion body (when the line finished, simulated).
    pub(crate) created: i64,
    /// Whose body layout to follow.
    pub(crate) flavour: SimFlavour,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct SimulatedAnswer {
    pub(crate) body: AnswerBody,
    #[serde(skip)]
    pub(crate) usage: TokenUsage,
}

/// A response body, serialized with its fields in the order the providers send them.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(crate) enum AnswerBody {
    Chat(ChatCompletion),
    Embeddings(EmbeddingList),
    Error(ApiErrorBody),
    /// A body reshaped by a fault behaviour, kept as plain JSON.
    Value(serde_json::Value),
    /// A body sent as a JSON string (llama-stack's shape), by a fault behaviour.
    Text(String),
}

/// Checks a line's body the way the realtime endpoint would, without answering it.
pub(crate) fn check_request(endpoint: &str, body: &Value) -> Result<(), RequestRejection> {
    parse_request(endpoint, body).map(|_| ())
}

/// Answers a line's body, or refuses it.
pub(crate) fn answer_request(
    context: AnswerContext<'_>,
    endpoint: &str,
    body: &Value,
) -> Result<SimulatedAnswer, RequestRejection> {
    let canonical_body = body.to_string();
    match parse_request(endpoint, body)? {
        ParsedRequest::Chat(chat) => Ok(answer_chat(context, &canonical_body, chat)),
        ParsedRequest::Embeddings(embeddings) => {
            let (list, usage) = answer_embeddings(context.seed, embeddings);
            Ok(SimulatedAnswer {
                body: AnswerBody::Embeddings(list),
                usage,
            })
        }
    }
}

enum ParsedRequest<'body> {
    Chat(ChatRequest<'body>),
    Embeddings(EmbeddingsRequest<'body>),
}

struct ChatRequest<'body> {
    model: &'body str,
    prompt_tokens: u64,
    /// The prompt tokens of the request's images (in `prompt_tokens`); `None` without images.
    image_tokens: Option<u64>,
    user_text: String,
    answer_format: AnswerFormat<'body>,
    max_tokens: Option<u64>,
    thinking: bool,
    thinking_budget: Option<u64>,
}

enum AnswerFormat<'body> {
    FreeText,
    JsonObject,
    /// `json_object` with a JSON schema written in the prompt (as dashbatch does for models
    /// without JSON Schema mode): the model follows the prompt's schema.
    JsonObjectWithPromptSchema(Value),
    JsonSchema(Option<&'body Value>),
}

fn parse_request<'body>(
    endpoint: &str,
    body: &'body Value,
) -> Result<ParsedRequest<'body>, RequestRejection> {
    let object = body
        .as_object()
        .ok_or_else(|| RequestRejection::new("The request body must be a JSON object."))?;
    let model = object
        .get("model")
        .and_then(Value::as_str)
        .filter(|model| !model.is_empty())
        .ok_or_else(|| RequestRejection::new("Missing required parameter: 'model'."))?;
    if endpoint == "/v1/embeddings" {
        if crate::model_facts::accepts_images(model) == Some(true) {
            return Err(RequestRejection::new(format!(
                "The model `{model}` does not support the embeddings endpoint; it answers chat requests."
            )));
        }
        parse_embeddings(model, object).map(ParsedRequest::Embeddings)
    } else {
        parse_chat(model, object).map(ParsedRequest::Chat)
    }
}

fn parse_chat<'body>(
    model: &'body str,
    object: &'body serde_json::Map<String, Value>,
) -> Result<ChatRequest<'body>, RequestRejection> {
    let messages = object
        .get("messages")
        .and_then(Value::as_array)
        .filter(|messages| !messages.is_empty())
        .ok_or_else(|| RequestRejection::new("'messages' must be a non-empty array."))?;
    let mut prompt_tokens = TOKENS_PER_REQUEST;
    let mut image_tokens: Option<u64> = None;
    let mut media_kinds: Vec<&str> = Vec::new();
    let high_resolution = object
        .get("vl_high_resolution_images")
        .and_then(Value::as_bool)
        == Some(true);
    let mut user_text = String::new();
    let mut all_text = String::new();
    for (position, message) in messages.iter().enumerate() {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| RequestRejection::new(format!("messages[{position}] has no 'role'.")))?;
        if !["system", "user", "assistant", "tool", "developer"].contains(&role) {
            return Err(RequestRejection::new(format!(
                "messages[{position}].role '{role}' is not one of system, user, assistant, tool."
            )));
        }
        let (text, media_parts) = match message.get("content") {
            Some(Value::String(text)) => (text.clone(), 0),
            Some(Value::Array(parts)) => {
                let mut text = String::new();
                let mut media_parts = 0;
                for part in parts {
                    match part.get("type").and_then(Value::as_str) {
                        Some("text") => {
                            text.push_str(part.get("text").and_then(Value::as_str).unwrap_or(""));
                            text.push('\n');
                        }
                        Some("image_url") => {
                            let tokens = image_part_tokens(model, part, high_resolution)?;
                            *image_tokens.get_or_insert(0) += tokens;
                            prompt_tokens += tokens;
                            if !media_kinds.contains(&"image") {
                                media_kinds.push("image");
                            }
                        }
                        Some(kind) => {
                            media_parts += 1;
                            if !media_kinds.contains(&kind) {
                                media_kinds.push(kind);
                            }
                        }
                        None => {
                            return Err(RequestRejection::new(format!(
                                "messages[{position}].content parts need a 'type'."
                            )));
                        }
                    }
                }
                (text, media_parts)
            }
            None | Some(Value::Null) if role == "assistant" => (String::new(), 0),
            _ => {
                return Err(RequestRejection::new(format!(
                    "messages[{position}].content must be a string or an array of parts."
                )));
            }
        };
        prompt_tokens +=
            TOKENS_PER_MESSAGE + estimate_text_tokens(&text) + media_parts * TOKENS_PER_MEDIA_PART;
        if let Some(tool_calls) = message.get("tool_calls") {
            prompt_tokens += estimate_text_tokens(&tool_calls.to_string());
        }
        if role == "user" {
            user_text = text.clone();
        }
        all_text.push_str(&text);
        all_text.push('\n');
    }
    if media_kinds.len() > 1 {
        return Err(RequestRejection::new(format!(
            "A request may carry one kind of media; this one has {}.",
            media_kinds.join(", ")
        )));
    }
    if let Some(tools) = object.get("tools") {
        prompt_tokens += estimate_text_tokens(&tools.to_string());
    }
    let max_tokens =
        match object
            .get("max_tokens")
            .or(object.get("max_completion_tokens"))
        {
            None | Some(Value::Null) => None,
            Some(value) => Some(value.as_u64().filter(|limit| *limit >= 1).ok_or_else(|| {
                RequestRejection::new("'max_tokens' must be a positive integer.")
            })?),
        };
    let answer_format = match object.get("response_format") {
        None | Some(Value::Null) => AnswerFormat::FreeText,
        Some(format) => match format.get("type").and_then(Value::as_str) {
            Some("text") => AnswerFormat::FreeText,
            Some("json_object") => {
                if !all_text.to_lowercase().contains("json") {
                    return Err(RequestRejection::new(
                        "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
                    ));
                }
                match schema_in_prompt(&all_text) {
                    Some(schema) => AnswerFormat::JsonObjectWithPromptSchema(schema),
                    None => AnswerFormat::JsonObject,
                }
            }
            Some("json_schema") => {
                let schema = format
                    .get("json_schema")
                    .and_then(|json_schema| json_schema.get("schema"));
                if schema.is_some_and(|schema| !schema.is_object() && !schema.is_boolean()) {
                    return Err(RequestRejection::new(
                        "'response_format.json_schema.schema' must be a JSON Schema object.",
                    ));
                }
                AnswerFormat::JsonSchema(schema)
            }
            _ => {
                return Err(RequestRejection::new(
                    "'response_format.type' must be one of text, json_object, json_schema.",
                ));
            }
        },
    };
    let thinking = thinks(model, object);
    let thinking_budget = object.get("thinking_budget").and_then(Value::as_u64);
    Ok(ChatRequest {
        model,
        prompt_tokens,
        image_tokens,
        user_text,
        answer_format,
        max_tokens,
        thinking,
        thinking_budget,
    })
}

/// An answer that fits `schema`, in words of the prompt's language.
fn schema_answer(
    schema: &Value,
    user_text: &str,
    user_salt: u64,
    random: &mut DeterministicRandom,
) -> String {
    let words = vocabulary_for(user_text);
    let schema_random = DeterministicRandom::from_parts(&[&random.next_number().to_le_bytes()]);
    SchemaAnswerer::new(schema, schema_random, words, user_salt)
        .answer()
        .to_string()
}

/// The JSON schema a prompt states after [`crate::output_fields::SCHEMA_INSTRUCTION_LEAD`], if
/// one does.
fn schema_in_prompt(prompt: &str) -> Option<Value> {
    let (_, after) = prompt.split_once(crate::output_fields::SCHEMA_INSTRUCTION_LEAD)?;
    let mut stream = serde_json::Deserializer::from_str(after.trim_start()).into_iter::<Value>();
    stream.next()?.ok().filter(Value::is_object)
}

/// The tokens of one `image_url` part, counted as dashbatch's estimate counts them (the model's
/// rule, [`crate::images::vision_tokens`]), or the line's failure the way the provider fails it:
/// an image for a text-only model, a data URL that is no image, a URL it cannot fetch.
fn image_part_tokens(
    model: &str,
    part: &Value,
    high_resolution: bool,
) -> Result<u64, RequestRejection> {
    if crate::model_facts::accepts_images(model) == Some(false) {
        return Err(RequestRejection::new(format!(
            "The model `{model}` does not support image input."
        )));
    }
    let url = part
        .pointer("/image_url/url")
        .or_else(|| part.get("image_url"))
        .and_then(Value::as_str)
        .ok_or_else(|| RequestRejection::new("An 'image_url' part needs an 'image_url.url'."))?;
    if !crate::images::data_url::is_data_url(url) {
        crate::images::image_reference::check_public_url(url).map_err(|_| {
            RequestRejection::new(format!("Download multimodal file timed out: {url}"))
        })?;
    }
    let (rule, _) = crate::images::vision_rule_of(model);
    rule.image_url_tokens(url, high_resolution).map_err(|why| {
        RequestRejection::new(format!("The image is invalid and cannot be read ({why})."))
    })
}

fn answer_chat(
    context: AnswerContext<'_>,
    canonical_body: &str,
    request: ChatRequest<'_>,
) -> SimulatedAnswer {
    let mut random = DeterministicRandom::from_parts(&[
        &context.seed.to_le_bytes(),
        request.model.as_bytes(),
        canonical_body.as_bytes(),
    ]);
    let user_salt = number_of_parts(&[&context.seed.to_le_bytes(), request.user_text.as_bytes()]);
    let full_content = if request.model == TEST_MODEL {
        TEST_MODEL_ANSWER.to_owned()
    } else {
        match request.answer_format {
            AnswerFormat::FreeText => {
                free_text_answer(request.model, &request.user_text, &mut random)
            }
            AnswerFormat::JsonObject => {
                let sentence = free_text_answer(request.model, &request.user_text, &mut random);
                serde_json::json!({ "answer": sentence }).to_string()
            }
            AnswerFormat::JsonSchema(None) => {
                let sentence = free_text_answer(request.model, &request.user_text, &mut random);
                serde_json::json!({ "answer": sentence }).to_string()
            }
            AnswerFormat::JsonObjectWithPromptSchema(ref schema) => {
                schema_answer(schema, &request.user_text, user_salt, &mut random)
            }
            AnswerFormat::JsonSchema(Some(schema)) => {
                schema_answer(schema, &request.user_text, user_salt, &mut random)
            }
        }
    };
    let (content, content_tokens, finish_reason) =
        within_max_tokens(full_content, request.max_tokens);
    let reasoning_tokens = reasoning_tokens(
        request.thinking,
        request.model,
        request.thinking_budget,
        &mut random,
    );
    let usage = TokenUsage {
        prompt_tokens: request.prompt_tokens,
        completion_tokens: content_tokens + reasoning_tokens,
        reasoning_tokens,
    };
    let completion = ChatCompletion {
        flavour: context.flavour,
        created: context.created,
        usage: ChatUsage {
            completion_tokens: usage.completion_tokens,
            prompt_tokens: usage.prompt_tokens,
            total_tokens: usage.prompt_tokens + usage.completion_tokens,
            completion_tokens_details: request
                .thinking
                .then_some(CompletionTokensDetails { reasoning_tokens }),
            prompt_tokens_details: request
                .image_tokens
                .map(|image_tokens| PromptTokensDetails { image_tokens }),
        },
        model: request.model.to_owned(),
        id: context.completion_id.to_owned(),
        choices: vec![ChatChoice {
            finish_reason,
            index: 0,
            message: ChatMessage {
                role: "assistant",
                content,
            },
        }],
        object: "chat.completion",
    };
    SimulatedAnswer {
        body: AnswerBody::Chat(completion),
        usage,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sim::test_support::{answer_value, content_of, context, frozen_sim};

    #[test]
    fn answers_are_deterministic_and_depend_on_the_body() {
        let body =
            json!({"model": "qwen-plus", "messages": [{"role": "user", "content": "hello there"}]});
        let (first, _) = answer_value("/v1/chat/completions", body.clone());
        let (second, _) = answer_value("/v1/chat/completions", body);
        assert_eq!(first, second);
        let (other, _) = answer_value(
            "/v1/chat/completions",
            json!({"model": "qwen-plus", "messages": [{"role": "user", "content": "hello there!"}]}),
        );
        assert_ne!(content_of(&first), content_of(&other));
    }

    #[test]
    fn the_test_model_answers_its_fixed_sentence() {
        let (body, _) = answer_value(
            "/v1/chat/ds-test",
            json!({"model": "batch-test-model", "messages": [{"role": "user", "content": "What is 2+2?"}]}),
        );
        assert_eq!(content_of(&body), TEST_MODEL_ANSWER);
    }

    #[test]
    fn json_object_needs_the_word_json_and_answers_an_object() {
        let (body, _) = answer_value(
            "/v1/chat/completions",
            json!({"model": "qwen-plus", "response_format": {"type": "json_object"},
                   "messages": [{"role": "user", "content": "Reply in JSON: what is the capital of France?"}]}),
        );
        let parsed: Value = serde_json::from_str(content_of(&body)).unwrap();
        assert!(parsed["answer"].is_string());
        let refused = answer_request(
            context(),
            "/v1/chat/completions",
            &json!({"model": "qwen-plus", "response_format": {"type": "json_object"}, "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert!(refused.is_err());
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for body in [
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            json!({"model": "qwen-plus", "messages": []}),
            json!({"model": "qwen-plus", "messages": [{"role": "robot", "content": "hi"}]}),
            json!({"model": "qwen-plus", "max_tokens": 0, "messages": [{"role": "user", "content": "hi"}]}),
            json!({"model": "qwen-plus", "response_format": {"type": "xml"}, "messages": [{"role": "user", "content": "hi"}]}),
        ] {
            assert!(
                check_request("/v1/chat/completions", &body).is_err(),
                "{body}"
            );
        }
        assert!(
            check_request(
                "/v1/embeddings",
                &json!({"model": "text-embedding-v3", "input": ""})
            )
            .is_err()
        );
    }

    #[tokio::test]
    async fn the_test_model_answers_its_fixed_sentence_for_free() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let content = (0..2)
            .map(|index| {
                json!({"custom_id": index.to_string(), "method": "POST", "url": "/v1/chat/ds-test",
                       "body": {"model": "batch-test-model", "messages": [{"role": "user", "content": "What is 2+2?"}]}})
                .to_string()
            })
            .collect::<Vec<_>>()
            .join("\n");
        let file = sim.upload(&content).await;
        let batch = sim.create(&file.id, "/v1/chat/ds-test").await;
        let done = sim.finish(&batch.id).await;
        for line in sim.raw_lines(done.output_file_id.as_ref().unwrap()).await {
            assert_eq!(
                line["response"]["body"]["choices"][0]["message"]["content"],
                "This is a test result."
            );
        }
        let ledger = sim.handle.ledger().await;
        assert!(ledger.billed_requests.iter().all(|bill| bill.free));
        assert_eq!(
            ledger.total_prompt_tokens + ledger.total_completion_tokens,
            0
        );
    }
}
