//! The HTTP surface: the Files and Batches API under both `/compatible-mode/v1` and `/v1`, the
//! admin routes under `/_sim`, and a JSON 404 for everything else.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use super::admin::admin_router;
use super::api_error::ApiFailure;
use super::call_gate::guard_api_call;
use super::config::SimFlavour;
use super::expiry;
use super::listing::{parse_batch_list_query, parse_file_list_query};
use super::persist::ReceivedUpload;
use super::state::SharedSimState;
use crate::wire::{Batch, CreateBatchRequest, FileDeleted, FileObject};

/// The whole simulator as an axum router (testable in-process).
pub fn router(state: SharedSimState) -> Router {
    let api = Router::new()
        .route(
            "/files",
            post(upload_file)
                .layer(DefaultBodyLimit::disable())
                .get(list_files),
        )
        .route("/files/{file_id}", get(get_file).delete(delete_file))
        .route("/files/{file_id}/content", get(file_content))
        .route("/batches", post(create_batch).get(list_batches))
        .route("/batches/{batch_id}", get(get_batch))
        .route("/batches/{batch_id}/cancel", post(cancel_batch))
        .route_layer(from_fn_with_state(state.clone(), guard_api_call))
        .with_state(state.clone());
    Router::new()
        .nest("/compatible-mode/v1", api.clone())
        .nest("/v1", api)
        .nest("/_sim", admin_router(state))
        .fallback(unknown_route)
}

async fn unknown_route() -> ApiFailure {
    ApiFailure::not_found(
        "Unknown route: this simulator serves /compatible-mode/v1/... and /v1/... (files, batches) and /_sim/...",
    )
}

type ApiResult<T> = Result<Json<T>, ApiFailure>;

fn query_parameters(
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<HashMap<String, String>, ApiFailure> {
    query
        .map(|Query(parameters)| parameters)
        .map_err(|rejection| ApiFailure::bad_request("invalid_parameter", rejection.body_text()))
}

async fn upload_file(
    State(state): State<SharedSimState>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<FileObject> {
    let mut multipart = multipart
        .map_err(|rejection| ApiFailure::bad_request("invalid_request", rejection.body_text()))?;
    let bad_form = |error: axum::extract::multipart::MultipartError| {
        ApiFailure::bad_request(
            "invalid_request",
            format!("Malformed multipart form: {}", error.body_text()),
        )
    };
    let mut purpose: Option<String> = None;
    let mut expiry_anchor: Option<String> = None;
    let mut expiry_seconds: Option<String> = None;
    let mut received: Option<(ReceivedUpload, String)> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(bad_form)? {
        match field.name() {
            Some("purpose") => purpose = Some(field.text().await.map_err(bad_form)?),
            // OpenAI's `expires_after`, as its SDKs encode a nested form field.
            Some("expires_after[anchor]") => {
                expiry_anchor = Some(field.text().await.map_err(bad_form)?);
            }
            Some("expires_after[seconds]") => {
                expiry_seconds = Some(field.text().await.map_err(bad_form)?);
            }
            Some("file") => {
                let filename = field
                    .file_name()
                    .filter(|name| !name.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        ApiFailure::bad_request(
                            "invalid_request",
                            "The 'file' part needs a filename.",
                        )
                        .with_param("file")
                    })?;
                let upload = receive_file(&state, field).await?;
                received = Some((upload, filename));
            }
            _ => while field.chunk().await.map_err(bad_form)?.is_some() {},
        }
    }
    match purpose.as_deref() {
        Some("batch") => {}
        Some(other) => {
            return Err(ApiFailure::bad_request(
                "invalid_value",
                format!("Invalid value for 'purpose': '{other}'. This simulator stores batch input files only ('batch')."),
            )
            .with_param("purpose"));
        }
        None => {
            return Err(ApiFailure::bad_request(
                "missing_required_parameter",
                "Missing required parameter: 'purpose'.",
            )
            .with_param("purpose"));
        }
    }
    let (upload, filename) = received.ok_or_else(|| {
        ApiFailure::bad_request(
            "missing_required_parameter",
            "Missing required parameter: 'file'.",
        )
        .with_param("file")
    })?;
    let expires_after = match state.flavour() {
        SimFlavour::Openai => {
            expiry::upload_policy(expiry_anchor.as_deref(), expiry_seconds.as_deref())?
        }
        // Not documented by DashScope, whose files never expire (reference §2.1).
        SimFlavour::Dashscope => None,
    };
    state
        .run(move |step| step.commit_upload(upload, filename, expires_after))
        .await
        .map(Json)
}

/// Streams the file part to the store, refusing it past the flavour's size cap.
async fn receive_file(
    state: &SharedSimState,
    mut field: Field<'_>,
) -> Result<ReceivedUpload, ApiFailure> {
    let limit = state.flavour().max_upload_bytes();
    let mut sink = state.store.begin_upload().await?;
    loop {
        let chunk = match field.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(error) => {
                sink.discard().await;
                return Err(ApiFailure::bad_request(
                    "invalid_request",
                    format!("Malformed multipart form: {}", error.body_text()),
                ));
            }
        };
        if sink.written() + chunk.len() as u64 > limit {
            sink.discard().await;
            return Err(ApiFailure::payload_too_large(format!(
                "The file is larger than the {} MB this provider accepts.",
                limit / (1024 * 1024)
            )));
        }
        if let Err(error) = sink.write_chunk(&chunk).await {
            sink.discard().await;
            return Err(error.into());
        }
    }
    Ok(sink.finish().await?)
}

async fn list_files(
    State(state): State<SharedSimState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Value> {
    let query = parse_file_list_query(&query_parameters(query)?, state.flavour())?;
    Ok(Json(state.run(move |step| step.list_files(&query)).await))
}

async fn get_file(
    State(state): State<SharedSimState>,
    Path(file_id): Path<String>,
) -> ApiResult<FileObject> {
    state
        .run(move |step| step.get_file(&file_id))
        .await
        .map(Json)
}

async fn delete_file(
    State(state): State<SharedSimState>,
    Path(file_id): Path<String>,
) -> ApiResult<FileDeleted> {
    state
        .run(move |step| step.delete_file(&file_id))
        .await
        .map(Json)
}

async fn file_content(
    State(state): State<SharedSimState>,
    Path(file_id): Path<String>,
) -> Result<Response, ApiFailure> {
    let checked_id = file_id.clone();
    state
        .run(move |step| step.check_download(&checked_id))
        .await?;
    let (length, body) = state.store.content_body(&file_id).await.map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            ApiFailure::not_found(format!("No such File object: {file_id}"))
        } else {
            error.into()
        }
    })?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        body,
    )
        .into_response())
}

async fn create_batch(State(state): State<SharedSimState>, body: Bytes) -> ApiResult<Batch> {
    let (request, output_expires_after) = parse_create_batch_request(&body, state.flavour())?;
    state
        .run(move |step| step.create_batch(request, output_expires_after))
        .await
        .map(Json)
}

/// Reads the create body field by field, so each problem names its parameter. Returns the
/// request and OpenAI's `output_expires_after.seconds` (DashScope has no such field, §9 #5).
fn parse_create_batch_request(
    body: &[u8],
    flavour: SimFlavour,
) -> Result<(CreateBatchRequest, Option<i64>), ApiFailure> {
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        ApiFailure::bad_request(
            "invalid_request",
            format!("The request body is not valid JSON: {error}."),
        )
    })?;
    let object = value.as_object().ok_or_else(|| {
        ApiFailure::bad_request("invalid_request", "The request body must be a JSON object.")
    })?;
    let required = |name: &str| -> Result<String, ApiFailure> {
        object
            .get(name)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiFailure::bad_request(
                    "missing_required_parameter",
                    format!("Missing required parameter: '{name}'."),
                )
                .with_param(name)
            })
    };
    let metadata = match object.get("metadata") {
        None | Some(Value::Null) => None,
        Some(metadata) => Some(serde_json::from_value(metadata.clone()).map_err(|_| {
            ApiFailure::bad_request(
                "invalid_value",
                "'metadata' must be an object of string values.",
            )
            .with_param("metadata")
        })?),
    };
    let request = CreateBatchRequest {
        input_file_id: required("input_file_id")?,
        endpoint: required("endpoint")?,
        completion_window: required("completion_window")?,
        metadata,
    };
    let output_expires_after = match flavour {
        SimFlavour::Openai => expiry::output_policy(object.get("output_expires_after"))?,
        SimFlavour::Dashscope => None,
    };
    Ok((request, output_expires_after))
}

async fn get_batch(
    State(state): State<SharedSimState>,
    Path(batch_id): Path<String>,
) -> ApiResult<Batch> {
    state
        .run(move |step| step.get_batch(&batch_id))
        .await
        .map(Json)
}

async fn list_batches(
    State(state): State<SharedSimState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Value> {
    let query = parse_batch_list_query(&query_parameters(query)?, state.flavour())?;
    Ok(Json(state.run(move |step| step.list_batches(&query)).await))
}

async fn cancel_batch(
    State(state): State<SharedSimState>,
    Path(batch_id): Path<String>,
) -> ApiResult<Batch> {
    state
        .run(move |step| step.cancel_batch(&batch_id))
        .await
        .map(Json)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::{Duration, Instant};

    use serde_json::{Value, json};

    use super::super::test_support::{CHAT, KEY, TestSim, chat_lines, frozen_sim, start_sim};
    use super::super::{
        CANCELLING_SECONDS, FINALIZING_SECONDS, SECONDS_PER_LINE, SimConfig, SimFlavour,
        VALIDATION_SECONDS, simulated_seconds_to_complete,
    };
    use crate::wire::{Batch, BatchStatus, FileObject, ListPage, RequestCounts};

    fn is_lower_hex(text: &str) -> bool {
        text.chars()
            .all(|character| character.is_ascii_digit() || ('a'..='f').contains(&character))
    }

    #[tokio::test]
    async fn files_round_trip_through_upload_list_get_content_and_delete() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let content = chat_lines(3, "qwen-flash");
        let response = sim.try_upload("shard-1.jsonl", &content).await.unwrap();
        assert_eq!(response.status(), 200);
        let raw: Value = response.json().await.unwrap();
        assert!(raw.get("status_details").is_none(), "{raw}");
        let file: FileObject = serde_json::from_value(raw.clone()).unwrap();
        let suffix = file.id.strip_prefix("file-batch-").unwrap();
        assert!(suffix.len() == 24 && is_lower_hex(suffix), "{}", file.id);
        assert_eq!(file.bytes, content.len() as u64);
        assert_eq!(
            (file.filename.as_str(), file.purpose.as_str()),
            ("shard-1.jsonl", "batch")
        );
        assert_eq!(file.status.as_deref(), Some("processed"));

        let (status, fetched) = sim.get_json(&format!("/files/{}", file.id)).await;
        assert_eq!((status, &fetched), (200, &raw));
        let (_, list) = sim.get_json("/files").await;
        assert_eq!(list["object"], "list");
        assert_eq!(list["data"].as_array().unwrap().len(), 1);
        assert_eq!(list["has_more"], false);
        assert!(
            list.get("first_id").is_none() && list.get("last_id").is_none(),
            "{list}"
        );

        // DashScope only lets batch results be downloaded.
        let (status, refusal) = sim.get_json(&format!("/files/{}/content", file.id)).await;
        assert_eq!(status, 403);
        assert!(
            refusal["error"]["message"]
                .as_str()
                .unwrap()
                .contains("file-batch_output")
        );

        let batch = sim.create(&file.id, CHAT).await;
        let done = sim.finish(&batch.id).await;
        let output_id = done.output_file_id.unwrap();
        assert!(output_id.starts_with("file-batch_output-"));
        let (_, outputs) = sim.get_json("/files?purpose=batch_output").await;
        let listed: Vec<&str> = outputs["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|file| file["id"].as_str().unwrap())
            .collect();
        assert_eq!(listed, vec![output_id.as_str()]);
        assert_eq!(outputs["data"][0]["purpose"], "batch_output");
        let text = sim.download(&output_id).await;
        assert_eq!(text.lines().count(), 3);
        // The same API answers under /v1 too.
        let through_v1 = sim
            .client
            .get(format!(
                "{}/v1/files/{output_id}/content",
                sim.handle.root_url()
            ))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(through_v1.text().await.unwrap(), text);

        let deleted: Value = sim
            .client
            .delete(sim.url(&format!("/files/{}", file.id)))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            deleted,
            json!({"id": file.id, "object": "file", "deleted": true})
        );
        let (status, missing) = sim.get_json(&format!("/files/{}", file.id)).await;
        assert_eq!(status, 404);
        assert!(missing["error"]["message"].is_string());
        let again = sim
            .client
            .delete(sim.url(&format!("/files/{}", file.id)))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 404);
        let (_, list) = sim.get_json("/files").await;
        assert_eq!(list["data"].as_array().unwrap().len(), 1);
        assert_eq!(sim.handle.ledger().await.files_deleted, 1);
    }

    #[tokio::test]
    async fn a_batch_lives_through_validating_in_progress_finalizing_and_completed() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let file = sim.upload(&chat_lines(40, "qwen-flash")).await;
        let created: Value = sim
            .try_create(
                json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h",
                               "metadata": {"ds_name": "测试任务", "ds_description": "任务描述"}}),
            )
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(created["status"], "validating");
        assert_eq!(
            created["request_counts"],
            json!({"total": 0, "completed": 0, "failed": 0})
        );
        for field in [
            "in_progress_at",
            "expires_at",
            "finalizing_at",
            "completed_at",
            "failed_at",
            "expired_at",
            "cancelling_at",
            "cancelled_at",
            "output_file_id",
            "error_file_id",
            "errors",
        ] {
            assert_eq!(created.get(field), Some(&Value::Null), "{field}");
        }
        assert!(created.get("model").is_none() && created.get("usage").is_none());
        assert_eq!(
            created["metadata"],
            json!({"ds_name": "测试任务", "ds_description": "任务描述"})
        );
        let id = created["id"].as_str().unwrap().to_owned();
        assert!(
            id.starts_with("batch_") && id.len() == "batch_".len() + 36,
            "{id}"
        );
        let created_at = created["created_at"].as_i64().unwrap();

        // 40 lines run about 1.6 at a time.
        let between_lines =
            (simulated_seconds_to_complete(40) - VALIDATION_SECONDS - FINALIZING_SECONDS) / 40.0;
        assert!(between_lines < SECONDS_PER_LINE);
        sim.handle
            .advance_clock(VALIDATION_SECONDS + 10.5 * between_lines);
        let running = sim.batch(&id).await;
        assert_eq!(running.status, BatchStatus::InProgress);
        assert_eq!(running.in_progress_at, Some(created_at));
        assert_eq!(
            running.request_counts,
            Some(RequestCounts {
                total: 40,
                completed: 10,
                failed: 0
            })
        );

        sim.handle.advance_clock(29.6 * between_lines);
        let finalizing = sim.batch(&id).await;
        assert_eq!(finalizing.status, BatchStatus::Finalizing);
        assert_eq!(finalizing.finalizing_at, None);
        assert_eq!(finalizing.output_file_id, None);

        sim.handle.advance_clock(FINALIZING_SECONDS);
        let completed = sim.batch(&id).await;
        assert_eq!(completed.status, BatchStatus::Completed);
        assert!(completed.completed_at.is_some());
        assert_eq!(completed.finalizing_at, completed.completed_at);
        assert_eq!(
            completed.request_counts,
            Some(RequestCounts {
                total: 40,
                completed: 40,
                failed: 0
            })
        );
        assert_eq!(completed.error_file_id, None);

        let output_id = completed.output_file_id.unwrap();
        let raw_text = sim.download(&output_id).await;
        assert!(raw_text.starts_with("{\"id\":\""), "{raw_text}");
        let first_line = raw_text.lines().next().unwrap();
        let order: Vec<&str> = [
            "\"custom_id\"",
            "\"response\"",
            "\"status_code\":200",
            "\"request_id\"",
            "\"body\"",
            "\"created\"",
            "\"usage\"",
            "\"completion_tokens\"",
            "\"prompt_tokens\"",
            "\"total_tokens\"",
            "\"model\"",
            "\"chatcmpl-",
            "\"choices\"",
            "\"finish_reason\":\"stop\"",
            "\"index\":0",
            "\"role\":\"assistant\"",
            "\"content\"",
            "\"object\":\"chat.completion\"",
            "\"error\":null",
        ]
        .to_vec();
        let mut from = 0;
        for fragment in order {
            let found = first_line[from..]
                .find(fragment)
                .unwrap_or_else(|| panic!("{fragment} out of order in {first_line}"));
            from += found;
        }
        let lines = sim.result_lines(&output_id).await;
        assert_eq!(lines.len(), 40);
        let custom_ids: Vec<String> = lines.iter().map(|line| line.custom_id.clone()).collect();
        let input_order: Vec<String> = (0..40).map(|index| format!("row-{index}")).collect();
        assert_ne!(
            custom_ids, input_order,
            "results must not come back in input order"
        );
        assert_eq!(
            custom_ids.iter().collect::<BTreeSet<_>>(),
            input_order.iter().collect::<BTreeSet<_>>()
        );
        for line in &lines {
            let response = line.response.as_ref().unwrap();
            assert_eq!(response.status_code, 200);
            assert_eq!(response.request_id, line.id);
            let body = response.body.as_ref().unwrap();
            assert_eq!(
                body["id"].as_str().unwrap(),
                format!("chatcmpl-{}", line.id.as_ref().unwrap())
            );
            assert!(
                body["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .starts_with("[simulated qwen-flash] ")
            );
            assert!(line.error.is_none());
        }
        let ledger = sim.handle.ledger().await;
        assert_eq!(ledger.billed_requests.len(), 40);
        assert!(ledger.custom_ids_billed_twice().is_empty());
        assert_eq!(ledger.batches[0].status, "completed");
    }

    #[tokio::test]
    async fn the_default_time_scale_finishes_a_few_hundred_lines_within_seconds() {
        let sim = start_sim(SimConfig::default()).await;
        let batch = sim.submit(&chat_lines(300, "qwen-flash")).await;
        let started = Instant::now();
        let finished = loop {
            let batch = sim.batch(&batch.id).await;
            if batch.status.is_terminal() {
                break batch;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "still {:?}",
                batch.status
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(finished.status, BatchStatus::Completed);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_slower_clock_lets_a_poller_watch_progress() {
        let sim = start_sim(SimConfig {
            time_scale: 100.0,
            ..SimConfig::default()
        })
        .await;
        let batch = sim.submit(&chat_lines(20, "qwen-flash")).await;
        let started = Instant::now();
        let mut progress_seen = BTreeSet::new();
        loop {
            let batch = sim.batch(&batch.id).await;
            if batch.status == BatchStatus::InProgress {
                progress_seen.insert(batch.request_counts.unwrap().completed);
            }
            if batch.status.is_terminal() {
                assert_eq!(batch.status, BatchStatus::Completed);
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(3));
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        assert!(
            progress_seen
                .iter()
                .filter(|completed| (1..20).contains(*completed))
                .count()
                >= 2,
            "{progress_seen:?}"
        );
    }

    #[tokio::test]
    async fn a_file_with_a_bad_line_fails_validation_without_files_or_bills() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let content = chat_lines(1, "qwen-flash")
            + &json!({"custom_id": "b", "method": "POST", "url": "/v1/chat/completion",
                      "body": {"model": "qwen-flash", "messages": [{"role": "user", "content": "x"}]}}).to_string();
        let batch = sim.submit(&content).await;
        let failed = sim.finish(&batch.id).await;
        assert_eq!(failed.status, BatchStatus::Failed);
        let errors = failed.error_list();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].code.as_deref(), Some("url_not_found"));
        assert_eq!(errors[0].line, Some(2));
        assert_eq!(errors[0].param.as_deref(), Some("url"));
        assert_eq!(failed.errors.as_ref().unwrap().object, "list");
        assert_eq!(
            (
                failed.output_file_id.as_ref(),
                failed.error_file_id.as_ref()
            ),
            (None, None)
        );
        assert!(failed.failed_at.is_some() && failed.in_progress_at.is_none());
        assert_eq!(failed.request_counts, Some(RequestCounts::default()));
        assert!(sim.handle.ledger().await.billed_requests.is_empty());
    }

    #[tokio::test]
    async fn create_refuses_bad_endpoints_windows_and_unknown_files() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let file = sim.upload(&chat_lines(1, "qwen-flash")).await;
        let cases = [
            (
                json!({"input_file_id": file.id, "endpoint": "/v1/completions", "completion_window": "24h"}),
                400,
                Some("endpoint"),
            ),
            (
                json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "23h"}),
                400,
                Some("completion_window"),
            ),
            (
                json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "15d"}),
                400,
                Some("completion_window"),
            ),
            (
                json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "1.5d"}),
                400,
                Some("completion_window"),
            ),
            (
                json!({"endpoint": CHAT, "completion_window": "24h"}),
                400,
                Some("input_file_id"),
            ),
            (
                json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h", "metadata": {"ds_name": "x".repeat(101)}}),
                400,
                Some("metadata"),
            ),
            (
                json!({"input_file_id": "file-batch-000000000000000000000000", "endpoint": CHAT, "completion_window": "24h"}),
                404,
                None,
            ),
        ];
        for (body, status, param) in cases {
            let response = sim.try_create(body.clone()).await.unwrap();
            assert_eq!(response.status().as_u16(), status, "{body}");
            let error: Value = response.json().await.unwrap();
            for field in ["message", "type", "code", "param"] {
                assert!(error["error"].get(field).is_some(), "{error}");
            }
            assert_eq!(error["error"]["param"].as_str(), param, "{body}");
        }
        let not_json = sim
            .client
            .post(sim.url("/batches"))
            .bearer_auth(KEY)
            .body("{")
            .send()
            .await
            .unwrap();
        assert_eq!(not_json.status(), 400);
        for window in ["14d", "72h", "336h"] {
            let response = sim
                .try_create(json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": window}))
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{window}");
        }
        assert_eq!(sim.handle.ledger().await.batches.len(), 3);
    }

    #[tokio::test]
    async fn cancel_keeps_the_finished_lines_and_fails_the_rest() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        // Up to 16 lines run one at a time.
        let batch = sim.submit(&chat_lines(15, "qwen-flash")).await;
        sim.handle
            .advance_clock(VALIDATION_SECONDS + 5.5 * SECONDS_PER_LINE);
        let answer = sim.cancel(&batch.id).await;
        assert_eq!(answer.status(), 200);
        let cancelling: Batch = answer.json().await.unwrap();
        assert_eq!(cancelling.status, BatchStatus::Cancelling);
        assert_eq!(cancelling.cancelling_at, None);
        assert_eq!(cancelling.request_counts.unwrap().completed, 5);
        assert_eq!(sim.cancel(&batch.id).await.status(), 200);

        sim.handle.advance_clock(CANCELLING_SECONDS);
        let cancelled = sim.batch(&batch.id).await;
        assert_eq!(cancelled.status, BatchStatus::Cancelled);
        assert!(cancelled.cancelled_at.is_some());
        assert_eq!(cancelled.cancelling_at, cancelled.cancelled_at);
        assert_eq!(
            cancelled.request_counts,
            Some(RequestCounts {
                total: 15,
                completed: 5,
                failed: 10
            })
        );
        let output = sim
            .result_lines(cancelled.output_file_id.as_ref().unwrap())
            .await;
        let errors = sim
            .result_lines(cancelled.error_file_id.as_ref().unwrap())
            .await;
        assert!(
            cancelled
                .error_file_id
                .as_ref()
                .unwrap()
                .starts_with("file-batch_output-")
        );
        assert_eq!((output.len(), errors.len()), (5, 10));
        assert!(errors.iter().all(|line| line.response.is_none()
            && line.error.as_ref().unwrap().code() == Some("batch_cancelled")));
        let every_id: BTreeSet<String> = output
            .iter()
            .chain(&errors)
            .map(|line| line.custom_id.clone())
            .collect();
        assert_eq!(every_id.len(), 15);
        assert_eq!(sim.handle.ledger().await.billed_requests.len(), 5);

        let refused = sim.cancel(&batch.id).await;
        assert_eq!(refused.status(), 409);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_state");
    }

    #[tokio::test]
    async fn a_batch_cancelled_while_validating_returns_every_line_as_failed() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let batch = sim.submit(&chat_lines(3, "qwen-flash")).await;
        assert_eq!(sim.cancel(&batch.id).await.status(), 200);
        let cancelled = sim.finish(&batch.id).await;
        assert_eq!(cancelled.status, BatchStatus::Cancelled);
        assert_eq!(cancelled.output_file_id, None);
        assert_eq!(cancelled.in_progress_at, None);
        assert_eq!(
            cancelled.request_counts,
            Some(RequestCounts {
                total: 3,
                completed: 0,
                failed: 3
            })
        );
        assert_eq!(
            sim.result_lines(cancelled.error_file_id.as_ref().unwrap())
                .await
                .len(),
            3
        );
    }

    #[tokio::test]
    async fn empty_lists_have_null_data_on_dashscope_and_empty_arrays_on_openai() {
        let dashscope = frozen_sim(SimFlavour::Dashscope).await;
        let (_, files) = dashscope.get_json("/files").await;
        assert_eq!(
            files,
            json!({"object": "list", "data": null, "has_more": false})
        );
        let (_, batches) = dashscope.get_json("/batches").await;
        assert_eq!(
            batches,
            json!({"object": "list", "data": null, "first_id": null, "last_id": null, "has_more": false})
        );
        let page: ListPage<Batch> = serde_json::from_value(batches).unwrap();
        assert!(page.into_items().is_empty());

        let openai = frozen_sim(SimFlavour::Openai).await;
        let (_, files) = openai.get_json("/files").await;
        assert_eq!(
            files,
            json!({"object": "list", "data": [], "first_id": null, "last_id": null, "has_more": false})
        );
        let (_, batches) = openai.get_json("/batches").await;
        assert_eq!(batches["data"], json!([]));
    }

    #[tokio::test]
    async fn batch_lists_are_newest_first_and_filter_like_dashscope() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let first_file = sim.upload(&chat_lines(2, "qwen-flash")).await;
        let second_file = sim.upload(&chat_lines(3, "qwen-flash")).await;
        let mut ids = Vec::new();
        for (file, name) in [
            (&first_file, "Nightly Eval A"),
            (&second_file, "nightly eval B"),
            (&first_file, "Other"),
        ] {
            let batch: Batch = sim
                .try_create(json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h", "metadata": {"ds_name": name}}))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            ids.push(batch.id);
        }
        let listed = |value: &Value| -> Vec<String> {
            value["data"].as_array().map_or_else(Vec::new, |data| {
                data.iter()
                    .map(|batch| batch["id"].as_str().unwrap().to_owned())
                    .collect()
            })
        };
        let (_, all) = sim.get_json("/batches").await;
        assert_eq!(
            listed(&all),
            vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]
        );
        assert_eq!(all["first_id"], json!(ids[2]));
        assert_eq!(all["last_id"], json!(ids[0]));
        let (_, first_page) = sim.get_json("/batches?limit=2").await;
        assert_eq!(
            (listed(&first_page).len(), &first_page["has_more"]),
            (2, &json!(true))
        );
        let (_, second_page) = sim
            .get_json(&format!("/batches?limit=2&after={}", ids[1]))
            .await;
        assert_eq!(
            (listed(&second_page), &second_page["has_more"]),
            (vec![ids[0].clone()], &json!(false))
        );
        let (_, by_name) = sim.get_json("/batches?ds_name=NIGHTLY").await;
        assert_eq!(listed(&by_name), vec![ids[1].clone(), ids[0].clone()]);
        let (_, by_file) = sim
            .get_json(&format!(
                "/batches?input_file_ids={},file-batch-nothing",
                first_file.id
            ))
            .await;
        assert_eq!(listed(&by_file), vec![ids[2].clone(), ids[0].clone()]);
        let (_, completed) = sim.get_json("/batches?status=completed,expired").await;
        assert_eq!(completed["data"], Value::Null);
        sim.handle.advance_clock(1_000_000.0);
        let (_, completed) = sim.get_json("/batches?status=completed,expired").await;
        assert_eq!(listed(&completed).len(), 3);
        let (_, future) = sim.get_json("/batches?create_after=29991231").await;
        assert_eq!(future["data"], Value::Null);
        let (status, _) = sim.get_json("/batches?limit=101").await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn requests_without_a_bearer_key_are_refused() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        for authorization in [None, Some("Bearer "), Some("Basic abc")] {
            let mut request = sim.client.get(sim.url("/batches"));
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{authorization:?}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "invalid_api_key");
        }
        let (status, _) = sim.get_json("/batches").await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn the_openai_flavour_differs_where_openai_does() {
        let sim = frozen_sim(SimFlavour::Openai).await;
        assert!(
            sim.handle
                .base_url()
                .ends_with(&format!("{}/v1", sim.handle.addr.port()))
        );
        let good = chat_lines(3, "gpt-4o-mini");
        let refused = json!({"custom_id": "bad", "method": "POST", "url": CHAT, "body": {"model": "gpt-4o-mini", "messages": []}}).to_string();
        let file = sim.upload(&(good + &refused)).await;
        let suffix = file.id.strip_prefix("file-").unwrap();
        assert!(
            suffix.len() == 22
                && suffix
                    .chars()
                    .all(|character| character.is_ascii_alphanumeric()),
            "{}",
            file.id
        );
        assert_eq!(file.expires_at, Some(file.created_at + 30 * 86_400));
        // Input files can be read back on OpenAI.
        assert!(sim.download(&file.id).await.contains("row-0"));

        let sim_ref = &sim;
        let refuse =
            |body: Value| async move { sim_ref.try_create(body).await.unwrap().status().as_u16() };
        assert_eq!(
            refuse(json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "48h"}))
                .await,
            400
        );
        let many: serde_json::Map<String, Value> = (0..17)
            .map(|index| (format!("k{index}"), json!("v")))
            .collect();
        assert_eq!(refuse(json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h", "metadata": many})).await, 400);
        assert_eq!(refuse(json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h", "metadata": {"k".repeat(65): "v"}})).await, 400);
        assert_eq!(refuse(json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h", "metadata": {"k": "v".repeat(513)}})).await, 400);

        let created: Value = sim
            .try_create(json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h", "metadata": {"job": "nightly"}}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap();
        let hex = id.strip_prefix("batch_").unwrap();
        assert!(hex.len() == 32 && is_lower_hex(hex), "{id}");
        assert_eq!(created["model"], "gpt-4o-mini");
        assert_eq!(created["usage"]["input_tokens"], 0);
        assert_eq!(
            created["expires_at"].as_i64(),
            Some(created["created_at"].as_i64().unwrap() + 86_400)
        );
        assert_eq!(created["in_progress_at"], Value::Null);

        let done = sim.finish(id).await;
        assert_eq!(done.status, BatchStatus::Completed);
        assert_eq!(
            done.in_progress_at,
            Some(done.created_at + VALIDATION_SECONDS as i64)
        );
        assert!(done.finalizing_at.unwrap() < done.completed_at.unwrap());
        assert_eq!(
            done.request_counts,
            Some(RequestCounts {
                total: 4,
                completed: 3,
                failed: 1
            })
        );
        let usage = done.usage.as_ref().unwrap();
        assert!(usage["input_tokens"].as_u64().unwrap() > 0);
        assert_eq!(usage["input_tokens_details"]["cached_tokens"], 0);
        assert_eq!(
            usage["total_tokens"].as_u64(),
            Some(
                usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
            )
        );
        let output = sim
            .result_lines(done.output_file_id.as_ref().unwrap())
            .await;
        assert_eq!(output.len(), 3);
        let line_id = output[0].id.as_deref().unwrap();
        assert!(
            line_id.starts_with("batch_req_") && line_id.len() == "batch_req_".len() + 32,
            "{line_id}"
        );
        let errors = sim.result_lines(done.error_file_id.as_ref().unwrap()).await;
        assert_eq!(errors.len(), 1);
        let response = errors[0].response.as_ref().unwrap();
        assert_eq!(response.status_code, 400);
        assert!(response.body.as_ref().unwrap()["error"]["message"].is_string());
        let (_, files) = sim.get_json("/files").await;
        assert_eq!(files["first_id"], files["data"][0]["id"]);
    }

    #[tokio::test]
    async fn openai_file_objects_say_status_details_null_and_dashscope_ones_omit_it() {
        let openai = frozen_sim(SimFlavour::Openai).await;
        let uploaded: Value = openai
            .try_upload("in.jsonl", &chat_lines(1, "gpt-4o-mini"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            uploaded.get("status_details"),
            Some(&Value::Null),
            "{uploaded}"
        );
        let id = uploaded["id"].as_str().unwrap();
        let (_, fetched) = openai.get_json(&format!("/files/{id}")).await;
        assert_eq!(fetched, uploaded);
        let done = openai.finish(&openai.create(id, CHAT).await.id).await;
        let (_, listed) = openai.get_json("/files").await;
        for file in listed["data"].as_array().unwrap() {
            assert_eq!(file.get("status_details"), Some(&Value::Null), "{file}");
        }
        assert_eq!(listed["data"].as_array().unwrap().len(), 2);
        assert!(done.output_file_id.is_some());

        let dashscope = frozen_sim(SimFlavour::Dashscope).await;
        let file = dashscope.upload(&chat_lines(1, "qwen-flash")).await;
        let (_, fetched) = dashscope.get_json(&format!("/files/{}", file.id)).await;
        assert!(fetched.get("status_details").is_none(), "{fetched}");
    }

    async fn upload_with_expiry(sim: &TestSim, anchor: &str, seconds: &str) -> reqwest::Response {
        // As the OpenAI SDKs encode `expires_after={"anchor": ..., "seconds": ...}`.
        let form = reqwest::multipart::Form::new()
            .text("purpose", "batch")
            .text("expires_after[anchor]", anchor.to_owned())
            .text("expires_after[seconds]", seconds.to_owned())
            .part(
                "file",
                reqwest::multipart::Part::bytes(chat_lines(2, "gpt-4o-mini").into_bytes())
                    .file_name("in.jsonl"),
            );
        sim.client
            .post(sim.url("/files"))
            .bearer_auth(KEY)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn openai_uploads_and_result_files_follow_their_expiration_policies() {
        let sim = frozen_sim(SimFlavour::Openai).await;
        let response = upload_with_expiry(&sim, "created_at", "3600").await;
        assert_eq!(response.status(), 200);
        let file: FileObject = response.json().await.unwrap();
        assert_eq!(file.expires_at, Some(file.created_at + 3600));
        for (anchor, seconds) in [
            ("created_at", "60"),
            ("created_at", "2592001"),
            ("now", "3600"),
        ] {
            let refused = upload_with_expiry(&sim, anchor, seconds).await;
            assert_eq!(refused.status(), 400, "{anchor} {seconds}");
            let body: Value = refused.json().await.unwrap();
            assert!(
                body["error"]["param"]
                    .as_str()
                    .unwrap()
                    .starts_with("expires_after."),
                "{body}"
            );
        }

        let refused = sim
            .try_create(
                json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h",
                               "output_expires_after": {"anchor": "created_at", "seconds": 10}}),
            )
            .await
            .unwrap();
        assert_eq!(refused.status(), 400);
        let created = sim
            .try_create(
                json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h",
                               "output_expires_after": {"anchor": "created_at", "seconds": 7200}}),
            )
            .await
            .unwrap();
        assert_eq!(created.status(), 200);
        let batch: Batch = created.json().await.unwrap();
        let done = sim.finish(&batch.id).await;
        let (_, output) = sim
            .get_json(&format!("/files/{}", done.output_file_id.unwrap()))
            .await;
        // The anchor is the output file's creation, not the batch's.
        assert_eq!(
            output["expires_at"].as_i64(),
            Some(output["created_at"].as_i64().unwrap() + 7200)
        );
        // Without a policy, batch files live 30 days.
        let plain = sim.submit(&chat_lines(1, "gpt-4o-mini")).await;
        let done = sim.finish(&plain.id).await;
        let (_, output) = sim
            .get_json(&format!("/files/{}", done.output_file_id.unwrap()))
            .await;
        assert_eq!(
            output["expires_at"].as_i64(),
            Some(output["created_at"].as_i64().unwrap() + 30 * 86_400)
        );
    }

    #[tokio::test]
    async fn dashscope_ignores_the_openai_expiration_policies() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let response = upload_with_expiry(&sim, "created_at", "60").await;
        assert_eq!(response.status(), 200);
        let file: Value = response.json().await.unwrap();
        assert!(file.get("expires_at").is_none(), "{file}");
        let created = sim
            .try_create(
                json!({"input_file_id": file["id"], "endpoint": CHAT, "completion_window": "24h",
                               "output_expires_after": {"anchor": "created_at", "seconds": 10}}),
            )
            .await
            .unwrap();
        assert_eq!(created.status(), 200);
    }

    #[tokio::test]
    async fn openai_answers_carry_an_x_request_id_and_dashscope_ones_do_not() {
        let sim = frozen_sim(SimFlavour::Openai).await;
        let mut seen = BTreeSet::new();
        for path in ["/batches", "/files", "/batches/batch_missing"] {
            let response = sim
                .client
                .get(sim.url(path))
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap();
            let id = response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned();
            let hex = id.strip_prefix("req_").unwrap();
            assert!(hex.len() == 32 && is_lower_hex(hex), "{id}");
            seen.insert(id);
        }
        assert_eq!(seen.len(), 3);
        let unauthorized = sim.client.get(sim.url("/batches")).send().await.unwrap();
        assert_eq!(unauthorized.status(), 401);
        assert!(unauthorized.headers().contains_key("x-request-id"));

        let dashscope = frozen_sim(SimFlavour::Dashscope).await;
        let response = dashscope
            .client
            .get(dashscope.url("/batches"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert!(!response.headers().contains_key("x-request-id"));
    }

    /// The keys of a JSON object, and of the objects inside it, as dotted paths (arrays: their
    /// first item).
    fn key_paths(value: &Value, prefix: &str, paths: &mut BTreeSet<String>) {
        match value {
            Value::Object(fields) => {
                for (key, inner) in fields {
                    let path = format!("{prefix}{key}");
                    paths.insert(path.clone());
                    key_paths(inner, &format!("{path}."), paths);
                }
            }
            Value::Array(items) => {
                if let Some(first) = items.first() {
                    key_paths(first, &format!("{prefix}[]."), paths);
                }
            }
            _ => {}
        }
    }

    fn keys_of(value: &Value) -> BTreeSet<String> {
        let mut paths = BTreeSet::new();
        key_paths(value, "", &mut paths);
        paths
    }

    /// A provider answer recorded in `fixtures/api` (the first line of a `.jsonl` file).
    fn recorded(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/api")
            .join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let json = if name.ends_with(".jsonl") {
            text.lines().next().unwrap()
        } else {
            text.as_str()
        };
        serde_json::from_str(json).unwrap()
    }

    #[tokio::test]
    async fn dashscope_answers_have_the_shape_of_the_recorded_ones() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let metadata = json!({"ds_name": "测试任务", "ds_description": "任务描述", "ds_batch_finish_callback": "https://www.cnblogs.com"});
        let file = sim.upload(&chat_lines(2, "qwen-flash")).await;
        let (_, file_value) = sim.get_json(&format!("/files/{}", file.id)).await;
        assert_eq!(keys_of(&file_value), keys_of(&recorded("file_object.json")));
        let (_, files) = sim.get_json("/files").await;
        assert_eq!(keys_of(&files), keys_of(&recorded("file_list.json")));

        let sim_ref = &sim;
        let create =
            |body: Value| async move { sim_json(sim_ref.try_create(body).await.unwrap()).await };
        let created = create(json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h", "metadata": metadata})).await;
        assert_eq!(keys_of(&created), keys_of(&recorded("batch_created.json")));
        let done = sim.finish(created["id"].as_str().unwrap()).await;
        let (_, completed) = sim.get_json(&format!("/batches/{}", done.id)).await;
        assert_eq!(
            keys_of(&completed),
            keys_of(&recorded("batch_completed.json"))
        );
        let (_, list) = sim.get_json("/batches").await;
        assert_eq!(keys_of(&list), keys_of(&recorded("batch_list.json")));
        let (_, empty) = sim.get_json("/batches?status=cancelled").await;
        assert_eq!(empty, recorded("batch_list_empty.json"));

        let output = sim.raw_lines(done.output_file_id.as_ref().unwrap()).await;
        assert_eq!(
            keys_of(&output[0]),
            keys_of(&recorded("output_lines.jsonl"))
        );

        let to_cancel = create(json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h", "metadata": metadata})).await;
        let id = to_cancel["id"].as_str().unwrap();
        let cancelling = sim_json(sim.cancel(id).await).await;
        assert_eq!(
            keys_of(&cancelling),
            keys_of(&recorded("batch_cancelling.json"))
        );
        sim.finish(id).await;
        let (_, cancelled) = sim.get_json(&format!("/batches/{id}")).await;
        assert_eq!(
            keys_of(&cancelled),
            keys_of(&recorded("batch_cancelled.json"))
        );

        let bad = sim
            .upload(&chat_lines(1, "qwen-flash").replace(CHAT, "/v1/chat/completion"))
            .await;
        let failing = create(json!({"input_file_id": bad.id, "endpoint": CHAT, "completion_window": "24h", "metadata": metadata})).await;
        let id = failing["id"].as_str().unwrap();
        sim.finish(id).await;
        let (_, failed) = sim.get_json(&format!("/batches/{id}")).await;
        assert_eq!(
            keys_of(&failed),
            keys_of(&recorded("batch_failed_validation.json"))
        );
        assert_eq!(failed["errors"]["data"][0]["code"], "url_not_found");
    }

    #[tokio::test]
    async fn openai_answers_have_the_shape_of_the_recorded_ones() {
        let sim = frozen_sim(SimFlavour::Openai).await;
        let file = sim.upload(&chat_lines(2, "gpt-4o-mini")).await;
        let recorded_batch = recorded("openai_batch_completed.json");
        let created = sim_json(
            sim.try_create(
                json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h",
                                  "metadata": recorded_batch["metadata"]}),
            )
            .await
            .unwrap(),
        )
        .await;
        let done = sim.finish(created["id"].as_str().unwrap()).await;
        let (_, completed) = sim.get_json(&format!("/batches/{}", done.id)).await;
        assert_eq!(keys_of(&completed), keys_of(&recorded_batch));
        let output = sim.raw_lines(done.output_file_id.as_ref().unwrap()).await;
        assert_eq!(
            keys_of(&output[0]),
            keys_of(&recorded("openai_output_lines.jsonl"))
        );
    }

    async fn sim_json(response: reqwest::Response) -> Value {
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
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
