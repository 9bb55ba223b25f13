//! The assumptions behind an estimate, written out for the user: how tokens were counted, what the expected and the upper-bound answers are, and how prices apply.

use super::request_estimate::{
    DEFAULT_EXPECTED_OUTPUT_PERCENT, PROVIDER_PROMPT_ALLOWANCE_TOKENS, RequestEstimator,
};
use crate::job::Job;
use crate::provider::ProviderKind;
use crate::tokens::{
    CHAT_FORMAT_TOKENS_PER_MESSAGE, CHAT_FORMAT_TOKENS_PER_REQUEST,
    HEURISTIC_UPPER_BOUND_EXTRA_TOKENS, HEURISTIC_UPPER_BOUND_FACTOR_PERCENT,
    OPENAI_TOKENS_PER_MESSAGE, OPENAI_TOKENS_PER_REQUEST, SYMBOL_CODE_POINT_UPPER_BOUND_TOKENS,
    TokenCounter,
};

/// One sentence per assumption, in the order a reader needs them.
#[must_use]
pub fn estimate_assumptions(
    job: &Job,
    estimator: &RequestEstimator,
    provider: ProviderKind,
    thinking_requests: u64,
) -> Vec<String> {
    let request = &job.spec.request;
    let price = estimator.price();
    let mut lines = Vec::new();

    if job.is_embeddings() {
        lines.push(format!(
            "Input tokens: every rendered text, counted with {}. Embeddings have no output tokens.",
            estimator.counter().description()
        ));
    } else if matches!(estimator.counter(), TokenCounter::Openai(_)) {
        lines.push(format!(
            "Input tokens: every rendered request in OpenAI's chat format ({OPENAI_TOKENS_PER_MESSAGE} tokens around \
             each message, {OPENAI_TOKENS_PER_REQUEST} to open the answer), counted with {}.",
            estimator.counter().description()
        ));
    } else {
        lines.push(format!(
            "Input tokens: every rendered request in Qwen's chat format (ChatML: {} tokens around each message, \
             {} to open the answer), counted with {}.",
            CHAT_FORMAT_TOKENS_PER_MESSAGE,
            CHAT_FORMAT_TOKENS_PER_REQUEST,
            estimator.counter().description()
        ));
    }
    if !estimator.counter().is_exact() {
        lines.push(format!(
            "Heuristic counts are estimates (measured error in BENCHMARKS.md, \"Token estimator\"); the upper bound \
             takes {HEURISTIC_UPPER_BOUND_FACTOR_PERCENT}% of each text's count plus {HEURISTIC_UPPER_BOUND_EXTRA_TOKENS} tokens, and \
             {SYMBOL_CODE_POINT_UPPER_BOUND_TOKENS} more per emoji or other symbol."
        ));
    }
    if !request.images.is_empty() {
        let (rule, source) = crate::images::vision_rule_of(&request.model);
        let high_resolution = request.vl_high_resolution_images == Some(true);
        let how = match rule {
            crate::images::VisionTokenRule::QwenPatches { patch, .. } => format!(
                "each side rounded to a multiple of {patch}, scaled down past {} pixels, one token per {patch}×{patch} patch plus 2",
                crate::readable_number::with_thousands(rule.max_pixels(high_resolution))
            ),
            crate::images::VisionTokenRule::OpenaiTiles { base, per_tile } => format!(
                "fitted within 2048×2048, shortest side down to 768, {base} tokens plus {per_tile} per 512-pixel tile"
            ),
        };
        lines.push(format!(
            "Image tokens: each embedded image by its own size with {} ({how}){}; an image given as a URL is \
             counted at the most one image can cost ({} tokens), since its size is known only once the provider fetches it.",
            match source {
                crate::images::RuleSource::Documented => format!("`{}`'s documented rule", request.model),
                crate::images::RuleSource::Assumed => format!(
                    "Qwen3-VL's rule (dashbatch knows no rule of `{}`'s own)",
                    request.model
                ),
            },
            if high_resolution { ", `vl_high_resolution_images` on" } else { "" },
            rule.most_image_tokens(high_resolution)
        ));
    }
    lines.push(format!(
        "Upper-bound input adds {PROVIDER_PROMPT_ALLOWANCE_TOKENS} tokens per request for what the provider may add \
         around the {} (undocumented){}.",
        if job.is_embeddings() { "input" } else { "messages" },
        if job.spec.output.fields.is_empty() {
            ""
        } else {
            ", and the tokens of any JSON schema sent in `response_format`, as if the provider put it in the prompt"
        }
    ));

    if !job.is_embeddings() {
        let answer_bound = match (request.max_tokens, price.max_output_tokens()) {
            (Some(max_tokens), _) => Some(format!("`max_tokens` ({max_tokens}) tokens")),
            (None, Some(limit)) => Some(format!(
                "the model's `max_output_tokens` from the price table ({limit}) tokens, since the job sets no `max_tokens`"
            )),
            (None, None) => None,
        };
        let thinking_bound = if thinking_requests == 0 {
            Some(String::new())
        } else {
            match (request.thinking_budget, price.max_thinking_tokens()) {
                (Some(budget), _) => Some(format!(
                    ", plus `thinking_budget` ({budget}) thinking tokens"
                )),
                (None, Some(limit)) => Some(format!(
                    ", plus the model's `max_thinking_tokens` from the price table ({limit}) thinking tokens"
                )),
                (None, None) => None,
            }
        };
        match (answer_bound, thinking_bound) {
            (Some(answer), Some(thinking)) => lines.push(format!(
                "Upper-bound output: every answer is as long as it may be: {answer}{thinking}."
            )),
            (answer, thinking) => {
                let mut missing = Vec::new();
                if answer.is_none() {
                    missing.push(format!(
                        "the job sets no `request.max_tokens` and the price table gives no `max_output_tokens` for `{}`",
                        price.name()
                    ));
                }
                if thinking.is_none() {
                    missing.push(format!(
                        "thinking is on but the job sets no `request.thinking_budget` and the price table gives no \
                         `max_thinking_tokens` for `{}`",
                        price.name()
                    ));
                }
                lines.push(format!(
                    "No upper bound: {}. Set `request.max_tokens`{} in the job (or the model's limits in a price \
                     file) to get one; `run` cannot enforce `max_cost` without it.",
                    missing.join("; and "),
                    if thinking.is_none() {
                        " and `request.thinking_budget`"
                    } else {
                        ""
                    }
                ));
            }
        }
        match job.spec.estimate.expected_output_tokens {
            Some(expected) => lines.push(format!(
                "Expected output: {expected} tokens per answer (`[estimate] expected_output_tokens`), at most the upper bound."
            )),
            None => lines.push(format!(
                "Expected output: {DEFAULT_EXPECTED_OUTPUT_PERCENT}% of each request's upper-bound output (a guess, not a \
                 measurement); set `[estimate] expected_output_tokens` to your own figure, for example from a small \
                 trial run's report."
            )),
        }
        if thinking_requests > 0 {
            lines.push(format!(
                "Thinking is on for {thinking_requests} request(s): their output (thinking included) is priced at the \
                 thinking output price."
            ));
        }
    }
    if price.is_tiered() {
        lines.push(
            "Tiered prices: each request is priced at the tier its own prompt length falls in (the upper bound at the \
             dearest tier its upper-bound prompt can reach)."
                .to_owned(),
        );
    }
    lines.push(format!(
        "Batch price: the realtime price less {}% (the price table's `batch_discount_percent`). Failed requests are \
         not billed, so retries do not add to the bound.",
        price.batch_discount_percent()
    ));
    let mut provenance = format!(
        "Prices of `{}` from {}{}",
        price.name(),
        price.origin(),
        price
            .as_of()
            .map(|date| format!(", as of {date}"))
            .unwrap_or_default()
    );
    if let Some(source) = price.source() {
        provenance.push_str(&format!("; source: {source}"));
    }
    if let Some(evidence) = price.evidence() {
        provenance.push_str(&format!(
            "; evidence: {evidence}{}",
            match evidence {
                "3P" => " (third party, unconfirmed: check the provider's price page)",
                "INF" => " (worked out from an official page, not quoted by it: check the provider's price page)",
                _ => "",
            }
        ));
    }
    provenance.push('.');
    lines.push(provenance);
    if price.batch_listed() == Some(false) {
        lines.push(format!(
            "Warning: the provider's batch page does not list `{}` for {}; DashScope accepts an unlisted model's \
             batch and then fails every line with `model_not_found` (failed lines are not billed). Try a small \
             run first, or choose a listed model (`dashbatch prices --provider {provider}`).",
            price.name(),
            price.region().unwrap_or("this region")
        ));
    }
    lines
}
