//! Embedding answers: reading an embeddings request (`input`, `dimensions`, `encoding_format`)
//! and answering deterministic unit vectors of the asked dimension, as floats or base64.

use serde::Serialize;
use serde_json::Value;

use super::ids::DeterministicRandom;
use super::request_rejection::RequestRejection;
use super::token_estimate::estimate_text_tokens;
use super::token_usage::TokenUsage;

/// An embeddings request as read from a line's body.
pub(crate) struct EmbeddingsRequest<'body> {
    model: &'body str,
    inputs: Vec<&'body str>,
    dimensions: usize,
    base64: bool,
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

/// Reads an embeddings body, or refuses it.
pub(crate) fn parse_embeddings<'body>(
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

/// The answer to an embeddings request, and its usage.
pub(crate) fn answer_embeddings(
    seed: u64,
    request: EmbeddingsRequest<'_>,
) -> (EmbeddingList, TokenUsage) {
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
    (
        EmbeddingList {
            object: "list",
            data,
            model: request.model.to_owned(),
            usage: EmbeddingUsage {
                prompt_tokens,
                total_tokens: prompt_tokens,
            },
        },
        TokenUsage {
            prompt_tokens,
            completion_tokens: 0,
            reasoning_tokens: 0,
        },
    )
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::SimFlavour;
    use super::super::responder::check_request;
    use super::super::test_support::{answer_value, frozen_sim};
    use crate::wire::BatchStatus;

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

    #[tokio::test]
    async fn embedding_batches_return_vectors_of_the_asked_dimension() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let content = [("e-1", "风急天高猿啸哀"), ("e-2", "The quick brown fox")]
            .iter()
            .map(|(custom_id, text)| {
                json!({"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings",
                       "body": {"model": "text-embedding-v4", "input": text, "dimensions": 256, "encoding_format": "float"}})
                .to_string()
            })
            .collect::<Vec<_>>()
            .join("\n");
        let file = sim.upload(&content).await;
        let batch = sim.create(&file.id, "/v1/embeddings").await;
        let done = sim.finish(&batch.id).await;
        assert_eq!(done.status, BatchStatus::Completed);
        for line in sim.raw_lines(done.output_file_id.as_ref().unwrap()).await {
            let body = &line["response"]["body"];
            assert_eq!(body["object"], "list");
            assert_eq!(body["model"], "text-embedding-v4");
            assert_eq!(body["data"][0]["embedding"].as_array().unwrap().len(), 256);
            assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
        }
    }
}
