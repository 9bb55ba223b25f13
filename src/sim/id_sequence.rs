//! Deterministic ids: the counter behind every generated file and batch id (saved with the
//! world, so ids continue across restarts), and OpenAI's `x-request-id` values.

use serde::{Deserialize, Serialize};

use super::config::SimFlavour;
use super::ids::{base62_text, digest_of_parts, hex_text, uuid_text};

/// Counter behind every generated id.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct IdSequence {
    next_number: u64,
}

impl IdSequence {
    fn next_digest(&mut self, seed: u64, kind: &str) -> [u8; 32] {
        self.next_number += 1;
        digest_of_parts(&[
            &seed.to_le_bytes(),
            kind.as_bytes(),
            &self.next_number.to_le_bytes(),
        ])
    }

    pub(crate) fn input_file_id(&mut self, seed: u64, flavour: SimFlavour) -> String {
        let digest = self.next_digest(seed, "file");
        match flavour {
            SimFlavour::Dashscope => format!("file-batch-{}", hex_text(&digest, 24)),
            SimFlavour::Openai => format!("file-{}", base62_text(&digest, 22)),
        }
    }

    pub(crate) fn result_file_id(&mut self, seed: u64, flavour: SimFlavour) -> String {
        let digest = self.next_digest(seed, "result-file");
        match flavour {
            // DashScope's error files use this prefix too.
            SimFlavour::Dashscope => format!("file-batch_output-{}", hex_text(&digest, 24)),
            SimFlavour::Openai => format!("file-{}", base62_text(&digest, 22)),
        }
    }

    pub(crate) fn batch_id(&mut self, seed: u64, flavour: SimFlavour) -> String {
        let digest = self.next_digest(seed, "batch");
        match flavour {
            SimFlavour::Dashscope => format!("batch_{}", uuid_text(&digest)),
            SimFlavour::Openai => format!("batch_{}", hex_text(&digest, 32)),
        }
    }
}

/// The `x-request-id` of an API answer on OpenAI: `req_` and 32 hex digits, a function of the
/// seed, of when the process started and of the answer's 1-based order.
pub(crate) fn http_request_id(seed: u64, started_at: f64, number: u64) -> String {
    let digest = digest_of_parts(&[
        &seed.to_le_bytes(),
        b"http-request",
        &started_at.to_le_bytes(),
        &number.to_le_bytes(),
    ]);
    format!("req_{}", hex_text(&digest, 32))
}

#[cfg(test)]
mod tests {
    use super::super::SimConfig;
    use super::super::test_support::{CHAT, chat_lines, start_sim};

    async fn run_once(seed: u64) -> (String, String, Vec<(String, String)>) {
        let sim = start_sim(SimConfig {
            seed,
            time_scale: 0.0,
            ..SimConfig::default()
        })
        .await;
        let file = sim.upload(&chat_lines(12, "qwen-plus")).await;
        let batch = sim.create(&file.id, CHAT).await;
        let done = sim.finish(&batch.id).await;
        let mut answers: Vec<(String, String)> = sim
            .raw_lines(done.output_file_id.as_ref().unwrap())
            .await
            .iter()
            .map(|line| {
                (
                    line["custom_id"].as_str().unwrap().to_owned(),
                    format!(
                        "{}{}",
                        line["id"], line["response"]["body"]["choices"][0]["message"]["content"]
                    ),
                )
            })
            .collect();
        answers.sort();
        (file.id, batch.id, answers)
    }

    #[tokio::test]
    async fn the_same_seed_and_calls_give_the_same_ids_and_answers() {
        let first = run_once(42).await;
        assert_eq!(first, run_once(42).await);
        let other = run_once(43).await;
        assert_ne!(first.0, other.0);
        assert_ne!(first.2, other.2);
    }
}
