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

/// The answers' JSON shapes, against the provider answers recorded in `fixtures/api`.
#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    use super::super::SimFlavour;
    use super::super::test_support::{CHAT, chat_lines, frozen_sim};

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
}
