//! [`ApiClient`]: the Files and Batches routes over HTTP, with retries for idempotent calls only.
//!
//! Creating a batch or uploading a file is never retried blindly: when the outcome of such a call
//! is unknown the caller reconciles against the provider's lists first (see `engine::submit`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;

use super::{ApiKey, ClientError, RetryPolicy};
use crate::wire::{ApiErrorBody, Batch, CreateBatchRequest, FileDeleted, FileObject, ListPage};

/// Filters of `GET /batches`. `input_file_ids`, `ds_name` and `status` are DashScope extensions;
/// other providers ignore them, so callers must still check what comes back.
#[derive(Debug, Clone, Default)]
pub struct BatchListQuery {
    pub after: Option<String>,
    pub limit: Option<u32>,
    pub input_file_ids: Vec<String>,
    pub ds_name: Option<String>,
    pub statuses: Vec<String>,
}

#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base_url: String,
    api_key: ApiKey,
    retry_policy: RetryPolicy,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ApiClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    pub fn new(
        base_url: &str,
        api_key: ApiKey,
        retry_policy: RetryPolicy,
    ) -> Result<ApiClient, ClientError> {
        // reqwest is built without a bundled crypto provider; ring is ours.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(20))
            .timeout(Duration::from_secs(600))
            .user_agent(concat!("dashbatch/", env!("CARGO_PKG_VERSION")))
            // Only the chosen provider's host is ever contacted: redirects are not followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| ClientError::Local {
                operation: "set up the HTTP client".into(),
                message: error.to_string(),
            })?;
        Ok(ApiClient {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            retry_policy,
        })
    }

    /// The back-off this client uses, for callers that repeat a call themselves.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry_policy
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
            .header(
                reqwest::header::AUTHORIZATION,
                self.api_key.bearer_header_value(),
            )
    }

    /// Sends once and turns non-2xx answers into [`ClientError::Status`].
    async fn send_once(
        &self,
        operation: &str,
        builder: RequestBuilder,
    ) -> Result<Response, ClientError> {
        let response = builder
            .send()
            .await
            .map_err(|error| transport_error(operation, &error))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(status_error(operation, response).await)
    }

    async fn decode<T: DeserializeOwned>(
        operation: &str,
        response: Response,
    ) -> Result<T, ClientError> {
        let bytes = response
            .bytes()
            .await
            .map_err(|error| transport_error(operation, &error))?;
        serde_json::from_slice(&bytes).map_err(|error| ClientError::Decode {
            operation: operation.to_owned(),
            message: format!(
                "{error} (answer began: {})",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ),
        })
    }

    /// Runs an idempotent call, retrying transient failures within the policy.
    async fn idempotent<T, F, Fut>(&self, operation: &str, call: F) -> Result<T, ClientError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(error) if error.is_transient() && attempt < self.retry_policy.max_attempts => {
                    let delay = self.retry_policy.delay_after(attempt, error.retry_after());
                    eprintln_debug(&format!("{operation}: {error}; retrying in {delay:?}"));
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// `POST /files` with `purpose=batch`, streaming the file from disk. Not retried.
    pub async fn upload_file(
        &self,
        path: &Path,
        file_name: &str,
    ) -> Result<FileObject, ClientError> {
        let operation = format!("upload `{file_name}`");
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|error| ClientError::Local {
                operation: operation.clone(),
                message: format!("cannot open `{}`: {error}", path.display()),
            })?;
        let length = file
            .metadata()
            .await
            .map_err(|error| ClientError::Local {
                operation: operation.clone(),
                message: error.to_string(),
            })?
            .len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let part = reqwest::multipart::Part::stream_with_length(body, length)
            .file_name(file_name.to_owned())
            .mime_str("application/jsonl")
            .expect("static mime type parses");
        let form = reqwest::multipart::Form::new()
            .text("purpose", "batch")
            .part("file", part);
        let response = self
            .send_once(
                &operation,
                self.request(Method::POST, "/files").multipart(form),
            )
            .await?;
        Self::decode(&operation, response).await
    }

    /// `POST /batches`. Not retried: the caller reconciles when the outcome is unknown.
    pub async fn create_batch(&self, request: &CreateBatchRequest) -> Result<Batch, ClientError> {
        let operation = format!("create a batch for file `{}`", request.input_file_id);
        let response = self
            .send_once(
                &operation,
                self.request(Method::POST, "/batches").json(request),
            )
            .await?;
        Self::decode(&operation, response).await
    }

    /// `GET path?query`, its JSON answer decoded; retried on transient failures (a GET changes
    /// nothing).
    async fn get_json<T: DeserializeOwned>(
        &self,
        operation: &str,
        path: &str,
        query: &(impl serde::Serialize + ?Sized),
    ) -> Result<T, ClientError> {
        self.idempotent(operation, || async {
            let response = self
                .send_once(operation, self.request(Method::GET, path).query(query))
                .await?;
            Self::decode(operation, response).await
        })
        .await
    }

    pub async fn get_batch(&self, batch_id: &str) -> Result<Batch, ClientError> {
        let operation = format!("get batch `{batch_id}`");
        self.get_json(
            &operation,
            &format!("/batches/{batch_id}"),
            &[] as &[(&str, &str)],
        )
        .await
    }

    pub async fn list_batches(
        &self,
        query: &BatchListQuery,
    ) -> Result<ListPage<Batch>, ClientError> {
        let operation = "list batches".to_owned();
        let mut parameters: BTreeMap<&str, String> = BTreeMap::new();
        if let Some(after) = &query.after {
            parameters.insert("after", after.clone());
        }
        if let Some(limit) = query.limit {
            parameters.insert("limit", limit.to_string());
        }
        if !query.input_file_ids.is_empty() {
            parameters.insert("input_file_ids", query.input_file_ids.join(","));
        }
        if let Some(ds_name) = &query.ds_name {
            parameters.insert("ds_name", ds_name.clone());
        }
        if !query.statuses.is_empty() {
            parameters.insert("status", query.statuses.join(","));
        }
        self.get_json(&operation, "/batches", &parameters).await
    }

    pub async fn list_files(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<ListPage<FileObject>, ClientError> {
        let operation = "list files".to_owned();
        let mut parameters: Vec<(&str, String)> =
            vec![("limit", limit.to_string()), ("purpose", "batch".into())];
        if let Some(after) = after {
            parameters.push(("after", after.to_owned()));
        }
        self.get_json(&operation, "/files", &parameters).await
    }

    /// `GET /files/{id}`: the file's name, size and purpose.
    pub async fn get_file(&self, file_id: &str) -> Result<FileObject, ClientError> {
        let operation = format!("retrieve file `{file_id}`");
        self.get_json(
            &operation,
            &format!("/files/{file_id}"),
            &[] as &[(&str, &str)],
        )
        .await
    }

    /// `POST /batches/{id}/cancel`. Cancelling twice is harmless, so transient failures retry.
    pub async fn cancel_batch(&self, batch_id: &str) -> Result<Batch, ClientError> {
        let operation = format!("cancel batch `{batch_id}`");
        self.idempotent(&operation, || async {
            let response = self
                .send_once(
                    &operation,
                    self.request(Method::POST, &format!("/batches/{batch_id}/cancel"))
                        .json(&serde_json::json!({})),
                )
                .await?;
            Self::decode(&operation, response).await
        })
        .await
    }

    /// `DELETE /files/{id}`; a 404 counts as already deleted.
    pub async fn delete_file(&self, file_id: &str) -> Result<(), ClientError> {
        let operation = format!("delete file `{file_id}`");
        self.idempotent(&operation, || async {
            match self
                .send_once(
                    &operation,
                    self.request(Method::DELETE, &format!("/files/{file_id}")),
                )
                .await
            {
                Ok(response) => {
                    let _: FileDeleted = Self::decode(&operation, response).await?;
                    Ok(())
                }
                Err(error) if error.status() == Some(404) => Ok(()),
                Err(error) => Err(error),
            }
        })
        .await
    }

    /// `GET /files/{id}/content`, streamed to `destination` (written to a temporary file, synced,
    /// then renamed). Returns the byte count. Retried from scratch on transient failures,
    /// including a body cut short.
    pub async fn download_file(
        &self,
        file_id: &str,
        destination: &Path,
    ) -> Result<u64, ClientError> {
        let operation = format!("download file `{file_id}`");
        self.idempotent(&operation, || async {
            let response = self
                .send_once(
                    &operation,
                    self.request(Method::GET, &format!("/files/{file_id}/content")),
                )
                .await?;
            let expected_length = response.content_length();
            let partial = destination.with_extension("partial");
            let local = |error: std::io::Error| ClientError::Local {
                operation: operation.clone(),
                message: format!("cannot write `{}`: {error}", partial.display()),
            };
            let mut file = tokio::fs::File::create(&partial).await.map_err(local)?;
            let mut stream = response.bytes_stream();
            let mut written: u64 = 0;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|error| transport_error(&operation, &error))?;
                file.write_all(&chunk).await.map_err(local)?;
                written += chunk.len() as u64;
            }
            if let Some(expected) = expected_length
                && expected != written
            {
                return Err(ClientError::Transport {
                    operation: operation.clone(),
                    message: format!("the download stopped after {written} of {expected} bytes"),
                    may_have_reached_server: true,
                });
            }
            file.sync_all().await.map_err(local)?;
            drop(file);
            tokio::fs::rename(&partial, destination)
                .await
                .map_err(local)?;
            Ok(written)
        })
        .await
    }
}

fn transport_error(operation: &str, error: &reqwest::Error) -> ClientError {
    // Only a failure to connect proves the request never reached the server.
    let may_have_reached_server = !error.is_connect();
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    ClientError::Transport {
        operation: operation.to_owned(),
        message,
        may_have_reached_server,
    }
}

async fn status_error(operation: &str, response: Response) -> ClientError {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = response.text().await.unwrap_or_default();
    let (code, message) = match serde_json::from_str::<ApiErrorBody>(&text) {
        Ok(body) => (
            body.error.code.map(|code| match code {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            }),
            body.error.message.unwrap_or_default(),
        ),
        Err(_) => (None, text.chars().take(300).collect()),
    };
    ClientError::Status {
        operation: operation.to_owned(),
        status,
        code,
        message,
        retry_after,
    }
}

/// Retry chatter goes to stderr only when `DASHBATCH_LOG` asks for it.
fn eprintln_debug(message: &str) {
    if std::env::var_os(crate::env::DASHBATCH_LOG).is_some() {
        crate::console::say(&format!("dashbatch: {message}"));
    }
}
