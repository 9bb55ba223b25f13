//! The deterministic fake model: the response body and token usage a batch line gets.
//!
//! Answers depend only on the seed, the model and the request body, and say that they are
//! simulated. Free text starts with `[simulated <model>]` and echoes the first words of the user's
//! message; `response_format` JSON answers fit their schema; embeddings are unit vectors of the
//! asked dimension. Token usage is estimated from the rendered messages (see
//! [`super::token_estimate`]) and capped by `max_tokens`. Thinking (`enable_thinking`, on by
//! default for Qwen 3.5 and later, always on for `deepseek-r1`) adds
//! `usage.completion_tokens_details.reasoning_tokens`, counted in `completion_tokens` because
//! DashScope bills thinking as output; the reasoning text itself is not returned.

use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};
use serde_json::Value;

use super::config::{SimFlavour, TEST_MODEL};
use super::ids::{DeterministicRandom, number_of_parts};
use super::json_schema_answer::SchemaAnswerer;
use super::token_estimate::{
    TOKENS_PER_MESSAGE, TOKENS_PER_REQUEST, estimate_text_tokens, is_cjk, is_mostly_cjk,
};
use crate::model_facts::{always_thinks, thinks_by_default};
use crate::wire::{ApiError, ApiErrorBody};

/// What `batch-test-model` always answers.
pub(crate) const TEST_MODEL_ANSWER: &str = "This is a test result.";
/// Tokens an image, audio or video part of a message costs.
const TOKENS_PER_MEDIA_PART: u64 = 258;

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

/// Token usage of one answered line, as the ledger bills it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TokenUsage {
    pub(crate) prompt_tokens: u64,
    /// Includes `reasoning_tokens`.
    pub(crate) completion_tokens: u64,
    pub(crate) reasoning_tokens: u64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct SimulatedAnswer {
    pub(crate) body: AnswerBody,
    #[serde(skip)]
    pub(crate) usage: TokenUsage,
}

/// Why the (simulated) realtime endpoint would refuse a line's body with HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestRejection {
    pub(crate) message: String,
}

impl RequestRejection {
    pub(crate) const CODE: &'static str = "invalid_parameter_error";

    fn new(message: impl Into<String>) -> RequestRejection {
        RequestRejection {
            message: message.into(),
        }
    }

    /// The realtime-style error body of a refused line.
    pub(crate) fn error_body(&self) -> ApiErrorBody {
        error_body(Self::CODE, "invalid_request_error", &self.message)
    }
}

pub(crate) fn error_body(code: &str, kind: &str, message: &str) -> ApiErrorBody {
    ApiErrorBody {
        error: ApiError {
            message: Some(message.to_owned()),
            kind: Some(kind.to_owned()),
            code: Some(Value::String(code.to_owned())),
            param: None,
        },
    }
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

/// A chat completion body. Its fields follow the provider it imitates (see the `Serialize`
/// impls): live DashScope sends `created, usage, model, id, choices, object` (reference §5.1);
/// OpenAI sends `id, object, created, model, choices, usage, system_fingerprint` with
/// `"system_fingerprint": null` (§8.4).
#[derive(Debug, Clone)]
pub(crate) struct ChatCompletion {
    flavour: SimFlavour,
    created: i64,
    usage: ChatUsage,
    model: String,
    id: String,
    choices: Vec<ChatChoice>,
    object: &'static str,
}

#[derive(Debug, Clone)]
struct ChatUsage {
    completion_tokens: u64,
    prompt_tokens: u64,
    total_tokens: u64,
    completion_tokens_details: Option<CompletionTokensDetails>,
}

#[derive(Debug, Clone, Serialize)]
struct CompletionTokensDetails {
    reasoning_tokens: u64,
}

#[derive(Debug, Clone)]
struct ChatChoice {
    finish_reason: &'static str,
    index: u32,
    message: ChatMessage,
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
        let fields = if usage.completion_tokens_details.is_some() {
            4
        } else {
            3
        };
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
struct ChatMessage {
    role: &'static str,
    content: String,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct EmbeddingList {
    object: &'static str,
    data: Vec<EmbeddingItem>,
    model: String,
    usage: EmbeddingUsage,
}

#[derive(Debug, Clone, Serialize)]
struct EmbeddingItem {
    object: &'static str,
    index: u32,
    embedding: EmbeddingVector,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum EmbeddingVector {
    Floats(Vec<f32>),
    Base64(String),
}

#[derive(Debug, Clone, Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
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
        ParsedRequest::Embeddings(embeddings) => Ok(answer_embeddings(context.seed, embeddings)),
    }
}

enum ParsedRequest<'body> {
    Chat(ChatRequest<'body>),
    Embeddings(EmbeddingsRequest<'body>),
}

struct ChatRequest<'body> {
    model: &'body str,
    prompt_tokens: u64,
    user_text: String,
    answer_format: AnswerFormat<'body>,
    max_tokens: Option<u64>,
    thinking: bool,
    thinking_budget: Option<u64>,
}

enum AnswerFormat<'body> {
    FreeText,
    JsonObject,
    JsonSchema(Option<&'body Value>),
}

struct EmbeddingsRequest<'body> {
    model: &'body str,
    inputs: Vec<&'body str>,
    dimensions: usize,
    base64: bool,
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
                        Some(_) => media_parts += 1,
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
                AnswerFormat::JsonObject
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
    let thinking = always_thinks(model)
        || match object.get("enable_thinking") {
            Some(Value::Bool(enabled)) => *enabled,
            _ => thinks_by_default(model),
        };
    let thinking_budget = object.get("thinking_budget").and_then(Value::as_u64);
    Ok(ChatRequest {
        model,
        prompt_tokens,
        user_text,
        answer_format,
        max_tokens,
        thinking,
        thinking_budget,
    })
}

fn parse_embeddings<'body>(
    model: &'body str,
    object: &'body serde_json::Map<String, Value>,
) -> Result<EmbeddingsRequest<'body>, RequestRejection> {
    let inputs: Vec<&str> = match object.get("input") {
        Some(Value::String(text)) => vec![text.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .map(Value::as_str)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                RequestRejection::new("'input' must be a string or an array of strings.")
            })?,
        _ => {
            return Err(RequestRejection::new(
                "'input' must be a string or an array of strings.",
            ));
        }
    };
    if inputs.is_empty() || inputs.iter().any(|text| text.trim().is_empty()) {
        return Err(RequestRejection::new("'input' must not be empty."));
    }
    let allowed_dimensions = crate::model_facts::embedding_dimension_choices(model);
    let dimensions = match object.get("dimensions") {
        None | Some(Value::Null) => {
            crate::model_facts::default_embedding_dimensions(model) as usize
        }
        Some(value) => {
            let wanted = value
                .as_u64()
                .map(|wanted| wanted as usize)
                .filter(|wanted| (1..=4096).contains(wanted))
                .ok_or_else(|| RequestRejection::new("'dimensions' must be a positive integer."))?;
            if !allowed_dimensions.is_empty() && !allowed_dimensions.contains(&(wanted as u32)) {
                return Err(RequestRejection::new(format!(
                    "'dimensions' {wanted} is not supported by {model}; use one of {allowed_dimensions:?}."
                )));
            }
            wanted
        }
    };
    let base64 = match object.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(RequestRejection::new(format!(
                "'encoding_format' must be float or base64, got '{other}'."
            )));
        }
    };
    Ok(EmbeddingsRequest {
        model,
        inputs,
        dimensions,
        base64,
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
            AnswerFormat::JsonSchema(Some(schema)) => {
                let words = vocabulary_for(&request.user_text);
                let schema_random =
                    DeterministicRandom::from_parts(&[&random.next_number().to_le_bytes()]);
                SchemaAnswerer::new(schema, schema_random, words, user_salt)
                    .answer()
                    .to_string()
            }
        }
    };
    let (content, content_tokens, finish_reason) = match request.max_tokens {
        Some(limit) if estimate_text_tokens(&full_content) > limit => {
            (prefix_within_tokens(&full_content, limit), limit, "length")
        }
        _ => {
            let tokens = estimate_text_tokens(&full_content).max(1);
            (full_content, tokens, "stop")
        }
    };
    let reasoning_tokens = if request.thinking && request.model != TEST_MODEL {
        let wanted = random.between(120, 900) as u64;
        request
            .thinking_budget
            .map_or(wanted, |budget| wanted.min(budget))
    } else {
        0
    };
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

fn answer_embeddings(seed: u64, request: EmbeddingsRequest<'_>) -> SimulatedAnswer {
    let mut prompt_tokens = 0;
    let data = request
        .inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            prompt_tokens += estimate_text_tokens(text).max(1);
            let vector = unit_vector(seed, request.model, request.dimensions, text);
            let embedding = if request.base64 {
                EmbeddingVector::Base64(base64_of_floats(&vector))
            } else {
                EmbeddingVector::Floats(vector)
            };
            EmbeddingItem {
                object: "embedding",
                index: index as u32,
                embedding,
            }
        })
        .collect();
    SimulatedAnswer {
        body: AnswerBody::Embeddings(EmbeddingList {
            object: "list",
            data,
            model: request.model.to_owned(),
            usage: EmbeddingUsage {
                prompt_tokens,
                total_tokens: prompt_tokens,
            },
        }),
        usage: TokenUsage {
            prompt_tokens,
            completion_tokens: 0,
            reasoning_tokens: 0,
        },
    }
}

/// A deterministic vector of length 1 (Gaussian directions, so vectors of different texts are
/// nearly orthogonal, as real embeddings of unrelated texts tend to be).
fn unit_vector(seed: u64, model: &str, dimensions: usize, text: &str) -> Vec<f32> {
    let mut random = DeterministicRandom::from_parts(&[
        &seed.to_le_bytes(),
        model.as_bytes(),
        &(dimensions as u64).to_le_bytes(),
        text.as_bytes(),
    ]);
    let mut values: Vec<f64> = Vec::with_capacity(dimensions);
    while values.len() < dimensions {
        let radius = (-2.0 * (1.0 - random.fraction()).ln()).sqrt();
        let angle = std::f64::consts::TAU * random.fraction();
        values.push(radius * angle.cos());
        if values.len() < dimensions {
            values.push(radius * angle.sin());
        }
    }
    let norm = values
        .iter()
        .map(|value| value * value)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    values.iter().map(|value| (value / norm) as f32).collect()
}

/// Little-endian f32 bytes in standard base64, as `encoding_format: "base64"` returns them.
fn base64_of_floats(values: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = values
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect();
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let group = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for position in 0..4 {
            if position <= chunk.len() {
                text.push(char::from(
                    ALPHABET[((group >> (18 - 6 * position)) & 63) as usize],
                ));
            } else {
                text.push('=');
            }
        }
    }
    text
}

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

fn free_text_answer(model: &str, user_text: &str, random: &mut DeterministicRandom) -> String {
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
fn vocabulary_for(user_text: &str) -> Vec<String> {
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

/// The longest prefix of `text` whose estimated tokens stay within `limit`.
fn prefix_within_tokens(text: &str, limit: u64) -> String {
    let characters: Vec<char> = text.chars().collect();
    let (mut low, mut high) = (0usize, characters.len());
    while low < high {
        let middle = (low + high).div_ceil(2);
        let prefix: String = characters[..middle].iter().collect();
        if estimate_text_tokens(&prefix) <= limit {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    characters[..low].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::json_schema_answer::tests::fits_schema;
    use serde_json::json;

    fn context() -> AnswerContext<'static> {
        AnswerContext {
            seed: 7,
            completion_id: "chatcmpl-test",
            created: 1_700_000_000,
            flavour: SimFlavour::Dashscope,
        }
    }

    fn answer_value(endpoint: &str, body: Value) -> (Value, TokenUsage) {
        let answer = answer_request(context(), endpoint, &body).unwrap();
        (serde_json::to_value(&answer.body).unwrap(), answer.usage)
    }

    fn content_of(body: &Value) -> &str {
        body["choices"][0]["message"]["content"].as_str().unwrap()
    }

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

    #[test]
    fn max_tokens_caps_the_answer_and_reports_length() {
        let (body, usage) = answer_value(
            "/v1/chat/completions",
            json!({"model": "qwen-plus", "max_tokens": 5, "messages": [{"role": "user", "content": "Tell me a long story about the sea and its many moods"}]}),
        );
        assert_eq!(body["choices"][0]["finish_reason"], "length");
        assert_eq!(usage.completion_tokens, 5);
        assert!(estimate_text_tokens(content_of(&body)) <= 5);
    }

    #[test]
    fn thinking_adds_reasoning_tokens_within_the_budget() {
        let (body, usage) = answer_value(
            "/v1/chat/completions",
            json!({"model": "qwen3.5-plus", "enable_thinking": true, "thinking_budget": 50, "messages": [{"role": "user", "content": "请分析以下问题"}]}),
        );
        assert_eq!(usage.reasoning_tokens, 50);
        assert_eq!(
            body["usage"]["completion_tokens_details"]["reasoning_tokens"],
            50
        );
        assert!(usage.completion_tokens > 50);
        assert!(
            body["choices"][0]["message"]
                .get("reasoning_content")
                .is_none()
        );
        let (_, default_on) = answer_value(
            "/v1/chat/completions",
            json!({"model": "qwen3.7-max", "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert!(default_on.reasoning_tokens >= 120);
        let (_, switched_off) = answer_value(
            "/v1/chat/completions",
            json!({"model": "qwen3.7-max", "enable_thinking": false, "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(switched_off.reasoning_tokens, 0);
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
    fn json_schema_answers_fit_their_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
                "stars": {"type": "integer", "minimum": 1, "maximum": 5},
                "topics": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                "spam": {"type": "boolean"},
                "score": {"type": "number", "minimum": 0, "maximum": 1}
            },
            "required": ["sentiment", "stars", "topics", "spam", "score"],
            "additionalProperties": false
        });
        let mut sentiments = std::collections::BTreeSet::new();
        for review in [
            "Great phone, fast delivery",
            "Broke after a week",
            "It is a phone",
            "Love the colour",
            "Too expensive",
            "Works as described",
        ] {
            let (body, _) = answer_value(
                "/v1/chat/completions",
                json!({"model": "qwen-flash", "messages": [{"role": "user", "content": review}],
                       "response_format": {"type": "json_schema", "json_schema": {"name": "review", "schema": schema}}}),
            );
            let parsed: Value = serde_json::from_str(content_of(&body)).unwrap();
            fits_schema(&parsed, &schema, &schema).unwrap();
            sentiments.insert(parsed["sentiment"].as_str().unwrap().to_owned());
            // The same review gets the same label even when other parameters change.
            let (again, _) = answer_value(
                "/v1/chat/completions",
                json!({"model": "qwen-flash", "temperature": 0.2, "messages": [{"role": "user", "content": review}],
                       "response_format": {"type": "json_schema", "json_schema": {"name": "review", "schema": schema}}}),
            );
            let reparsed: Value = serde_json::from_str(content_of(&again)).unwrap();
            assert_eq!(reparsed["sentiment"], parsed["sentiment"]);
        }
        assert!(sentiments.len() >= 2);
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
    fn embeddings_are_unit_vectors_of_the_asked_dimension() {
        for (model, dimensions, expected) in [
            ("text-embedding-v4", Some(512), 512),
            ("text-embedding-v3", None, 1024),
            ("text-embedding-v2", None, 1536),
        ] {
            let mut body = json!({"model": model, "input": ["风急天高猿啸哀", "second text"], "encoding_format": "float"});
            if let Some(dimensions) = dimensions {
                body["dimensions"] = json!(dimensions);
            }
            let (answer, usage) = answer_value("/v1/embeddings", body);
            assert_eq!(answer["object"], "list");
            let data = answer["data"].as_array().unwrap();
            assert_eq!(data.len(), 2);
            assert_eq!(data[1]["index"], 1);
            let vector: Vec<f64> = data[0]["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|value| value.as_f64().unwrap())
                .collect();
            assert_eq!(vector.len(), expected);
            let norm: f64 = vector.iter().map(|value| value * value).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-3, "{norm}");
            assert_eq!(
                answer["usage"]["prompt_tokens"].as_u64(),
                Some(usage.prompt_tokens)
            );
            assert_eq!(
                answer["usage"]["total_tokens"].as_u64(),
                Some(usage.prompt_tokens)
            );
        }
        assert!(
            check_request(
                "/v1/embeddings",
                &json!({"model": "text-embedding-v3", "input": "x", "dimensions": 3000})
            )
            .is_err()
        );
        let (base64, _) = answer_value(
            "/v1/embeddings",
            json!({"model": "text-embedding-v3", "input": "x", "dimensions": 64, "encoding_format": "base64"}),
        );
        assert_eq!(
            base64["data"][0]["embedding"].as_str().unwrap().len(),
            (64 * 4usize).div_ceil(3) * 4
        );
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
}
