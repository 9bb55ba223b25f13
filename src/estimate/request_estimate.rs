//! `RequestEstimator`: the tokens and cost of one rendered request line, expected and at worst (every answer as long as it may be), priced at the tier its prompt falls in.

use serde_json::Value;

use super::cost_at_both_prices::CostAtBothPrices;
use crate::pricing::{ModelPrice, Money, PriceMode, Usage};
use crate::tokens::{ChatMessageText, TokenCounter};

/// Prompt tokens an upper bound adds to every request for what the provider may put around the
/// messages on its side (a default system message, formatting). Not documented by DashScope; a
/// live answer in the reference (§5.1) shows a prompt count a few tokens above the chat format's.
pub const PROVIDER_PROMPT_ALLOWANCE_TOKENS: u64 = 16;

/// The percentage of a request's output bound an answer is expected to use, when the job gives no
/// `[estimate] expected_output_tokens`.
pub const DEFAULT_EXPECTED_OUTPUT_PERCENT: u64 = 50;

/// Why a request line could not be estimated (the line is dashbatch's own rendering, so this means
/// a damaged shard file).
#[derive(Debug, thiserror::Error)]
#[error("not a request line dashbatch can estimate: {0}")]
pub struct RequestLineError(String);

/// The estimate of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestEstimate {
    /// Prompt tokens: exact with the Qwen tokenizer, estimated with the heuristic.
    pub prompt_tokens: u64,
    /// Prompt tokens the request cannot exceed: the count with the heuristic's margin, the
    /// provider allowance and the response schema.
    pub prompt_tokens_upper_bound: u64,
    /// Output tokens an answer is expected to use; `None` when nothing bounds or predicts it.
    pub expected_output_tokens: Option<u64>,
    /// The most output tokens (thinking included) the answer can have; `None` when unbounded.
    pub max_output_tokens: Option<u64>,
    /// Whether the output is priced as thinking output.
    pub thinking: bool,
    /// Images in the request, and the prompt tokens they cost (in `prompt_tokens`).
    pub images: u64,
    pub image_tokens: u64,
    pub expected_cost: Option<CostAtBothPrices>,
    pub upper_bound_cost: Option<CostAtBothPrices>,
}

/// Estimates request lines of one job: its model's price, a token counter, and what the job says
/// to expect of answers.
#[derive(Debug)]
pub struct RequestEstimator {
    counter: TokenCounter,
    price: ModelPrice,
    expected_output_tokens: Option<u64>,
}

impl RequestEstimator {
    #[must_use]
    pub fn new(
        counter: TokenCounter,
        price: ModelPrice,
        expected_output_tokens: Option<u64>,
    ) -> RequestEstimator {
        RequestEstimator {
            counter,
            price,
            expected_output_tokens,
        }
    }

    #[must_use]
    pub fn counter(&self) -> &TokenCounter {
        &self.counter
    }

    #[must_use]
    pub fn price(&self) -> &ModelPrice {
        &self.price
    }

    /// Estimates one line of a shard file (`{"custom_id", "method", "url", "body"}`); returns its custom_id too.
    ///
    /// # Errors
    /// When the line is not JSON with a `url` and an object `body`.
    pub fn estimate_line(
        &self,
        line: &[u8],
    ) -> Result<(String, RequestEstimate), RequestLineError> {
        let value: Value = serde_json::from_slice(line)
            .map_err(|error| RequestLineError(format!("not JSON ({error})")))?;
        let custom_id = value
            .get("custom_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let url = value
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| RequestLineError("no `url`".to_owned()))?;
        let body = value
            .get("body")
            .filter(|body| body.is_object())
            .ok_or_else(|| RequestLineError("no `body` object".to_owned()))?;
        Ok((custom_id, self.estimate_body(url, body)))
    }

    /// Estimates one request from its endpoint and body.
    #[must_use]
    pub fn estimate_body(&self, url: &str, body: &Value) -> RequestEstimate {
        let is_embeddings = url.ends_with("/embeddings");
        let (prompt, schema_tokens) = if is_embeddings {
            let mut expected = 0;
            let mut upper_bound = 0;
            for text in embedding_inputs(body) {
                let count = self.counter.count_text(text);
                expected += count.expected;
                upper_bound += count.upper_bound;
            }
            (
                crate::tokens::PromptTokenCount {
                    expected,
                    upper_bound,
                },
                0,
            )
        } else {
            let texts = chat_message_texts(body);
            let messages: Vec<ChatMessageText<'_>> = texts
                .iter()
                .map(|(role, content)| ChatMessageText {
                    role,
                    content: content.as_str(),
                })
                .collect();
            let schema_tokens = body
                .pointer("/response_format/json_schema")
                .map_or(0, |schema| {
                    self.counter.count_text(&schema.to_string()).upper_bound
                });
            (self.counter.count_chat_prompt(&messages), schema_tokens)
        };
        let (images, image_tokens) = if is_embeddings {
            (0, 0)
        } else {
            request_image_tokens(body)
        };
        let prompt = crate::tokens::PromptTokenCount {
            expected: prompt.expected.saturating_add(image_tokens),
            upper_bound: prompt.upper_bound.saturating_add(image_tokens),
        };
        let prompt_tokens_upper_bound = prompt
            .upper_bound
            .saturating_add(schema_tokens)
            .saturating_add(PROVIDER_PROMPT_ALLOWANCE_TOKENS);

        let thinking = !is_embeddings && request_thinks(body);
        let max_output_tokens = if is_embeddings {
            Some(0)
        } else {
            let answer = body
                .get("max_tokens")
                .and_then(Value::as_u64)
                .or(self.price.max_output_tokens());
            let thinking_tokens = if thinking {
                body.get("thinking_budget")
                    .and_then(Value::as_u64)
                    .or(self.price.max_thinking_tokens())
            } else {
                Some(0)
            };
            answer
                .zip(thinking_tokens)
                .map(|(answer, thinking)| answer.saturating_add(thinking))
        };
        let expected_output_tokens = if is_embeddings {
            Some(0)
        } else {
            match (self.expected_output_tokens, max_output_tokens) {
                (Some(expected), Some(bound)) => Some(expected.min(bound)),
                (Some(expected), None) => Some(expected),
                (None, Some(bound)) => {
                    Some((bound * DEFAULT_EXPECTED_OUTPUT_PERCENT).div_ceil(100))
                }
                (None, None) => None,
            }
        };

        let expected_cost = expected_output_tokens.map(|output| {
            let usage = Usage {
                prompt_tokens: prompt.expected,
                completion_tokens: output,
                reasoning_tokens: 0,
            };
            CostAtBothPrices {
                batch: self.price.cost(&usage, thinking, PriceMode::Batch),
                realtime: self.price.cost(&usage, thinking, PriceMode::Realtime),
            }
        });
        let upper_bound_cost = max_output_tokens.map(|output| CostAtBothPrices {
            batch: self.dearest_cost(
                prompt_tokens_upper_bound,
                output,
                thinking,
                PriceMode::Batch,
            ),
            realtime: self.dearest_cost(
                prompt_tokens_upper_bound,
                output,
                thinking,
                PriceMode::Realtime,
            ),
        });
        RequestEstimate {
            prompt_tokens: prompt.expected,
            prompt_tokens_upper_bound,
            expected_output_tokens,
            max_output_tokens,
            thinking,
            images,
            image_tokens,
            expected_cost,
            upper_bound_cost,
        }
    }

    /// The cost of `prompt_tokens` and `output_tokens` at the dearest tier a prompt of at most
    /// `prompt_tokens` can fall in. With the usual tiers (dearer for longer prompts) that is the
    /// tier of `prompt_tokens` itself; taking the maximum keeps the bound true for any price file.
    fn dearest_cost(
        &self,
        prompt_tokens: u64,
        output_tokens: u64,
        thinking: bool,
        mode: PriceMode,
    ) -> Money {
        let currency = self.price.currency();
        self.price
            .tiers()
            .iter()
            .filter(|tier| tier.from_input_tokens() <= prompt_tokens)
            .map(|tier| {
                let prices = tier.per_million(mode);
                let input = prices.input.cost_of_tokens(prompt_tokens);
                let output = prices.output_price(thinking).cost_of_tokens(output_tokens);
                // Both parts are far below i128's limit (see `PricePerMillionTokens::MAX_NANO_UNITS`).
                Money::from_femto_units(input.femto_units() + output.femto_units(), currency)
            })
            .max_by_key(Money::femto_units)
            .unwrap_or(Money::zero(currency))
    }
}

/// Whether a request's output is thinking output: `enable_thinking` when the body says, else
/// whether the model thinks unless told not to (qwen3.5 and later, QwQ, DeepSeek-R1).
fn request_thinks(body: &Value) -> bool {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // A model that always thinks bills thinking whatever the body says.
    if crate::model_facts::always_thinks(model) {
        return true;
    }
    if let Some(explicit) = body.get("enable_thinking").and_then(Value::as_bool) {
        return explicit;
    }
    crate::model_facts::thinks_by_default(model)
}

/// The images of a chat request and their tokens by the model's rule (see
/// [`crate::images::vision_tokens`]); an image whose size cannot be read counts at the most one
/// image can cost.
fn request_image_tokens(body: &Value) -> (u64, u64) {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (rule, _) = crate::images::vision_rule_of(model);
    let high_resolution = body
        .get("vl_high_resolution_images")
        .and_then(Value::as_bool)
        == Some(true);
    let mut images = 0u64;
    let mut tokens = 0u64;
    let parts = body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|message| message.get("content").and_then(Value::as_array))
        .flatten();
    for part in parts {
        if part.get("type").and_then(Value::as_str) != Some("image_url") {
            continue;
        }
        let url = part
            .pointer("/image_url/url")
            .or_else(|| part.get("image_url"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        images += 1;
        tokens += rule
            .image_url_tokens(url, high_resolution)
            .unwrap_or_else(|_| rule.most_image_tokens(high_resolution));
    }
    (images, tokens)
}

/// The role and text of every message; content given as parts contributes its text parts.
fn chat_message_texts(body: &Value) -> Vec<(String, String)> {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return Vec::new();
    };
    messages
        .iter()
        .map(|message| {
            let role = message
                .get("role")
                .and_then(Value::as_str)
                .unwrap_or("user")
                .to_owned();
            let content = match message.get("content") {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|part| part.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(""),
                _ => String::new(),
            };
            (role, content)
        })
        .collect()
}

/// The texts of an embeddings request's `input` (a string or a list of strings).
fn embedding_inputs(body: &Value) -> Vec<&str> {
    match body.get("input") {
        Some(Value::String(text)) => vec![text.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::PriceTable;
    use crate::tokens::HeuristicTokenCounter;
    use serde_json::json;

    fn table() -> PriceTable {
        PriceTable::for_provider(crate::provider::ProviderKind::Dashscope)
            .with_override_toml(
                "[models.sim-tiered]\ncurrency = \"CNY\"\n\
                 [[models.sim-tiered.tiers]]\nup_to_input_tokens = 100\ninput = 1\noutput = 10\nthinking_output = 20\n\
                 [[models.sim-tiered.tiers]]\ninput = 2\noutput = 20\nthinking_output = 40\n\
                 [models.sim-capped]\ncurrency = \"USD\"\ninput = 1\noutput = 2\nmax_output_tokens = 1000\nmax_thinking_tokens = 500\n",
                std::path::Path::new("test-prices.toml"),
            )
            .expect("valid prices")
    }

    fn estimator(model: &str, expected_output_tokens: Option<u64>) -> RequestEstimator {
        RequestEstimator::new(
            TokenCounter::Heuristic(
                HeuristicTokenCounter,
                crate::tokens::HeuristicReason::UnknownModel(model.to_owned()),
            ),
            table().lookup(model).expect("priced").clone(),
            expected_output_tokens,
        )
    }

    #[test]
    fn the_upper_bound_is_every_answer_at_max_tokens_plus_the_thinking_budget() {
        let estimate = estimator("sim-tiered", None).estimate_body(
            "/v1/chat/completions",
            &json!({"model": "sim-tiered", "max_tokens": 100, "enable_thinking": true, "thinking_budget": 300,
                    "messages": [{"role": "user", "content": "hello there"}]}),
        );
        assert_eq!(estimate.max_output_tokens, Some(400));
        assert_eq!(estimate.expected_output_tokens, Some(200));
        assert!(estimate.thinking);
        let upper = estimate.upper_bound_cost.expect("bounded");
        // Short prompt: first tier, thinking output at 20 per 1M, batch half.
        let expected_femto =
            i128::from(estimate.prompt_tokens_upper_bound) * 500_000_000 + 400 * 10_000_000_000;
        assert_eq!(upper.batch.femto_units(), expected_femto);
        assert_eq!(upper.realtime.femto_units(), 2 * expected_femto);
        assert!(estimate.prompt_tokens_upper_bound > estimate.prompt_tokens);
    }

    #[test]
    fn a_long_prompt_is_priced_at_the_dearer_tier() {
        let long_text = "word ".repeat(400);
        let estimate = estimator("sim-tiered", Some(10)).estimate_body(
            "/v1/chat/completions",
            &json!({"model": "sim-tiered", "max_tokens": 50, "messages": [{"role": "user", "content": long_text}]}),
        );
        assert!(estimate.prompt_tokens > 100);
        assert_eq!(estimate.expected_output_tokens, Some(10));
        let expected = estimate.expected_cost.expect("known");
        assert_eq!(
            expected.realtime.femto_units(),
            i128::from(estimate.prompt_tokens) * 2_000_000_000 + 10 * 20_000_000_000
        );
    }

    #[test]
    fn without_max_tokens_the_price_table_limit_applies_or_there_is_no_bound() {
        let capped = estimator("sim-capped", None).estimate_body(
            "/v1/chat/completions",
            &json!({"model": "sim-capped", "enable_thinking": true, "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(capped.max_output_tokens, Some(1500));
        assert_eq!(
            capped.upper_bound_cost.map(|cost| cost.batch.currency()),
            Some(crate::pricing::Currency::Usd)
        );
        let unbounded = estimator("sim-tiered", None).estimate_body(
            "/v1/chat/completions",
            &json!({"model": "sim-tiered", "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(unbounded.max_output_tokens, None);
        assert_eq!(unbounded.upper_bound_cost, None);
        assert_eq!(unbounded.expected_cost, None);
        let guessed = estimator("sim-tiered", Some(30)).estimate_body(
            "/v1/chat/completions",
            &json!({"model": "sim-tiered", "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(guessed.expected_output_tokens, Some(30));
        assert!(guessed.expected_cost.is_some());
        assert_eq!(guessed.upper_bound_cost, None);
    }

    #[test]
    fn embeddings_cost_input_only_and_a_json_schema_counts_toward_the_bound() {
        let embedding = estimator("sim-tiered", None).estimate_body(
            "/v1/embeddings",
            &json!({"model": "sim-tiered", "input": "some text to embed"}),
        );
        assert_eq!(embedding.max_output_tokens, Some(0));
        assert!(embedding.upper_bound_cost.is_some());
        let plain = json!({"model": "sim-tiered", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
        let mut with_schema = plain.clone();
        with_schema["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object", "properties": {"label": {"type": "string"}}}}});
        let estimator = estimator("sim-tiered", None);
        let without = estimator.estimate_body("/v1/chat/completions", &plain);
        let with = estimator.estimate_body("/v1/chat/completions", &with_schema);
        assert_eq!(with.prompt_tokens, without.prompt_tokens);
        assert!(with.prompt_tokens_upper_bound > without.prompt_tokens_upper_bound + 10);
    }
}
