//! Helpers for the simulator's own tests: a simulator on 127.0.0.1:0 with a reqwest client, and
//! input files.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::responder::{AnswerContext, answer_request};
use super::token_usage::TokenUsage;
use super::{SimConfig, SimFlavour, SimHandle, spawn};
use crate::wire::{Batch, FileObject, ResultLine};

pub(crate) const KEY: &str = "sk-simulator-test";
pub(crate) const CHAT: &str = "/v1/chat/completions";

pub(crate) struct TestSim {
    pub(crate) handle: SimHandle,
    pub(crate) client: reqwest::Client,
}

/// A simulator with a frozen clock (tests move time explicitly).
pub(crate) async fn frozen_sim(flavour: SimFlavour) -> TestSim {
    start_sim(SimConfig {
        flavour,
        time_scale: 0.0,
        ..SimConfig::default()
    })
    .await
}

pub(crate) async fn start_sim(config: SimConfig) -> TestSim {
    // The main crate builds reqwest without a crypto provider, and even a plain-http client needs
    // one installed. A second install fails harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let handle = spawn("127.0.0.1:0", config)
        .await
        .expect("the simulator starts");
    TestSim {
        handle,
        client: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("a client"),
    }
}

/// `count` chat lines for `model`, custom ids `row-0`, `row-1`, ...
pub(crate) fn chat_lines(count: usize, model: &str) -> String {
    (0..count)
        .map(|index| {
            json!({"custom_id": format!("row-{index}"), "method": "POST", "url": CHAT,
                   "body": {"model": model, "messages": [{"role": "user", "content": format!("Question number {index}: what is {index} plus {index}?")}]}})
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

impl TestSim {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.base_url())
    }

    pub(crate) fn admin_url(&self, path: &str) -> String {
        format!("{}/_sim{path}", self.handle.root_url())
    }

    pub(crate) async fn try_upload(
        &self,
        filename: &str,
        content: &str,
    ) -> reqwest::Result<reqwest::Response> {
        let form = reqwest::multipart::Form::new()
            .text("purpose", "batch")
            .part(
                "file",
                reqwest::multipart::Part::bytes(content.as_bytes().to_vec())
                    .file_name(filename.to_owned()),
            );
        self.client
            .post(self.url("/files"))
            .bearer_auth(KEY)
            .multipart(form)
            .send()
            .await
    }

    pub(crate) async fn upload(&self, content: &str) -> FileObject {
        let response = self
            .try_upload("input.jsonl", content)
            .await
            .expect("upload sent");
        assert_eq!(response.status(), 200, "upload");
        response.json().await.expect("a file object")
    }

    pub(crate) async fn try_create(&self, body: Value) -> reqwest::Result<reqwest::Response> {
        self.client
            .post(self.url("/batches"))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
    }

    pub(crate) async fn create(&self, input_file_id: &str, endpoint: &str) -> Batch {
        let response = self
            .try_create(json!({"input_file_id": input_file_id, "endpoint": endpoint, "completion_window": "24h"}))
            .await
            .expect("create sent");
        assert_eq!(response.status(), 200, "create");
        response.json().await.expect("a batch")
    }

    /// Uploads `content` and creates a chat batch on it.
    pub(crate) async fn submit(&self, content: &str) -> Batch {
        let file = self.upload(content).await;
        self.create(&file.id, CHAT).await
    }

    pub(crate) async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("sent");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json"))
    }

    pub(crate) async fn batch(&self, id: &str) -> Batch {
        let (status, value) = self.get_json(&format!("/batches/{id}")).await;
        assert_eq!(status, 200, "{value}");
        serde_json::from_value(value).expect("a batch")
    }

    /// Moves the frozen clock far enough for anything to end, then reads the batch.
    pub(crate) async fn finish(&self, id: &str) -> Batch {
        self.handle.advance_clock(10_000_000.0);
        self.batch(id).await
    }

    pub(crate) async fn cancel(&self, id: &str) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/batches/{id}/cancel")))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("cancel sent")
    }

    pub(crate) async fn download(&self, file_id: &str) -> String {
        let response = self
            .client
            .get(self.url(&format!("/files/{file_id}/content")))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("download sent");
        assert_eq!(response.status(), 200, "download of {file_id}");
        response.text().await.expect("content")
    }

    /// The raw JSON lines of a result file.
    pub(crate) async fn raw_lines(&self, file_id: &str) -> Vec<Value> {
        self.download(file_id)
            .await
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }

    /// The lines of a result file, decoded with the shared wire types.
    pub(crate) async fn result_lines(&self, file_id: &str) -> Vec<ResultLine> {
        self.download(file_id)
            .await
            .lines()
            .map(|line| serde_json::from_str(line).expect("a result line"))
            .collect()
    }

    pub(crate) async fn put_faults(&self, plan: Value) -> reqwest::Response {
        self.client
            .put(self.admin_url("/faults"))
            .json(&plan)
            .send()
            .await
            .expect("sent")
    }

    pub(crate) async fn admin_json(&self, path: &str) -> Value {
        self.client
            .get(self.admin_url(path))
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json")
    }
}

pub(crate) fn is_lower_hex(text: &str) -> bool {
    text.chars()
        .all(|character| character.is_ascii_digit() || ('a'..='f').contains(&character))
}

pub(crate) fn scratch_directory(name: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("dashbatch-sim-state-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    path
}

pub(crate) fn persistent_config(state_dir: &std::path::Path) -> SimConfig {
    SimConfig {
        time_scale: 0.0,
        seed: 5,
        state_dir: Some(state_dir.to_path_buf()),
        ..SimConfig::default()
    }
}

pub(crate) fn context() -> AnswerContext<'static> {
    AnswerContext {
        seed: 7,
        completion_id: "chatcmpl-test",
        created: 1_700_000_000,
        flavour: SimFlavour::Dashscope,
    }
}

pub(crate) fn answer_value(endpoint: &str, body: Value) -> (Value, TokenUsage) {
    let answer = answer_request(context(), endpoint, &body).unwrap();
    (serde_json::to_value(&answer.body).unwrap(), answer.usage)
}

pub(crate) fn content_of(body: &Value) -> &str {
    body["choices"][0]["message"]["content"].as_str().unwrap()
}
