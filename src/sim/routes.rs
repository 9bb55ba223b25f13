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
    ApiFailure::not_found("Unknown route: this simulator serves /compatible-mode/v1/... and /v1/... (files, batches) and /_sim/...")
}

type ApiResult<T> = Result<Json<T>, ApiFailure>;

fn query_parameters(query: Result<Query<HashMap<String, String>>, QueryRejection>) -> Result<HashMap<String, String>, ApiFailure> {
    query
        .map(|Query(parameters)| parameters)
        .map_err(|rejection| ApiFailure::bad_request("invalid_parameter", rejection.body_text()))
}

async fn upload_file(State(state): State<SharedSimState>, multipart: Result<Multipart, MultipartRejection>) -> ApiResult<FileObject> {
    let mut multipart =
        multipart.map_err(|rejection| ApiFailure::bad_request("invalid_request", rejection.body_text()))?;
    let bad_form = |error: axum::extract::multipart::MultipartError| {
        ApiFailure::bad_request("invalid_request", format!("Malformed multipart form: {}", error.body_text()))
    };
    let mut purpose: Option<String> = None;
    let mut received: Option<(ReceivedUpload, String)> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(bad_form)? {
        match field.name() {
            Some("purpose") => purpose = Some(field.text().await.map_err(bad_form)?),
            Some("file") => {
                let filename = field
                    .file_name()
                    .filter(|name| !name.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        ApiFailure::bad_request("invalid_request", "The 'file' part needs a filename.").with_param("file")
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
            return Err(ApiFailure::bad_request("missing_required_parameter", "Missing required parameter: 'purpose'.")
                .with_param("purpose"));
        }
    }
    let (upload, filename) = received.ok_or_else(|| {
        ApiFailure::bad_request("missing_required_parameter", "Missing required parameter: 'file'.").with_param("file")
    })?;
    state.run(move |step| step.commit_upload(upload, filename)).await.map(Json)
}

/// Streams the file part to the store, refusing it past the flavour's size cap.
async fn receive_file(state: &SharedSimState, mut field: Field<'_>) -> Result<ReceivedUpload, ApiFailure> {
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

async fn get_file(State(state): State<SharedSimState>, Path(file_id): Path<String>) -> ApiResult<FileObject> {
    state.run(move |step| step.get_file(&file_id)).await.map(Json)
}

async fn delete_file(State(state): State<SharedSimState>, Path(file_id): Path<String>) -> ApiResult<FileDeleted> {
    state.run(move |step| step.delete_file(&file_id)).await.map(Json)
}

async fn file_content(State(state): State<SharedSimState>, Path(file_id): Path<String>) -> Result<Response, ApiFailure> {
    let checked_id = file_id.clone();
    state.run(move |step| step.check_download(&checked_id)).await?;
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
    let request = parse_create_batch_request(&body)?;
    state.run(move |step| step.create_batch(request)).await.map(Json)
}

/// Reads the create body field by field, so each problem names its parameter.
fn parse_create_batch_request(body: &[u8]) -> Result<CreateBatchRequest, ApiFailure> {
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        ApiFailure::bad_request("invalid_request", format!("The request body is not valid JSON: {error}."))
    })?;
    let object = value
        .as_object()
        .ok_or_else(|| ApiFailure::bad_request("invalid_request", "The request body must be a JSON object."))?;
    let required = |name: &str| -> Result<String, ApiFailure> {
        object
            .get(name)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiFailure::bad_request("missing_required_parameter", format!("Missing required parameter: '{name}'."))
                    .with_param(name)
            })
    };
    let metadata = match object.get("metadata") {
        None | Some(Value::Null) => None,
        Some(metadata) => Some(serde_json::from_value(metadata.clone()).map_err(|_| {
            ApiFailure::bad_request("invalid_value", "'metadata' must be an object of string values.")
                .with_param("metadata")
        })?),
    };
    Ok(CreateBatchRequest {
        input_file_id: required("input_file_id")?,
        endpoint: required("endpoint")?,
        completion_window: required("completion_window")?,
        metadata,
    })
}

async fn get_batch(State(state): State<SharedSimState>, Path(batch_id): Path<String>) -> ApiResult<Batch> {
    state.run(move |step| step.get_batch(&batch_id)).await.map(Json)
}

async fn list_batches(
    State(state): State<SharedSimState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Value> {
    let query = parse_batch_list_query(&query_parameters(query)?, state.flavour())?;
    Ok(Json(state.run(move |step| step.list_batches(&query)).await))
}

async fn cancel_batch(State(state): State<SharedSimState>, Path(batch_id): Path<String>) -> ApiResult<Batch> {
    state.run(move |step| step.cancel_batch(&batch_id)).await.map(Json)
}
