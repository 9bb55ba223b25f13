//! The gate every API call passes: it names the route, counts the call, applies the fault the
//! plan scripts for it, and checks the `Authorization` header.
//!
//! Order: count → fault before acting (`slow`, `status_429`, `status_500`, `drop_before_acting`)
//! → auth → the handler → fault after acting (`drop_after_acting`, `truncate_download`).

use std::io;

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;

use super::api_error::ApiFailure;
use super::connection::ConnectionHandle;
use super::faults::{RouteFaultKind, RouteName};
use super::state::SharedSimState;

/// Middleware over the API routes.
pub(crate) async fn guard_api_call(State(state): State<SharedSimState>, request: Request, next: Next) -> Response {
    let Some(route) = route_of(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let fault = state.record_call(route);
    let connection = request
        .extensions()
        .get::<ConnectInfo<ConnectionHandle>>()
        .map(|ConnectInfo(handle)| handle.clone());
    match &fault {
        Some(RouteFaultKind::Slow { millis }) => {
            tokio::time::sleep(std::time::Duration::from_millis(*millis)).await;
        }
        Some(RouteFaultKind::Status429 { retry_after_seconds }) => {
            return ApiFailure::throttled(*retry_after_seconds).into_response();
        }
        Some(RouteFaultKind::Status500) => {
            return ApiFailure::internal("The server had an error while processing your request (simulated).")
                .into_response();
        }
        Some(RouteFaultKind::DropBeforeActing) => return sever(connection.as_ref()),
        _ => {}
    }
    if !has_bearer_key(&request) {
        return ApiFailure::unauthorized().into_response();
    }
    let response = next.run(request).await;
    match fault {
        Some(RouteFaultKind::DropAfterActing) => sever(connection.as_ref()),
        Some(RouteFaultKind::TruncateDownload { keep_fraction })
            if route == RouteName::FileContent && response.status().is_success() =>
        {
            truncate(response, keep_fraction)
        }
        _ => response,
    }
}

/// The route of an API path, whatever prefix it is served under.
pub(crate) fn route_of(method: &Method, path: &str) -> Option<RouteName> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let position = segments
        .iter()
        .rposition(|segment| *segment == "files" || *segment == "batches")?;
    let rest = &segments[position + 1..];
    let route = match (segments[position], rest, method) {
        ("files", [], &Method::POST) => RouteName::Upload,
        ("files", [], &Method::GET) => RouteName::ListFiles,
        ("files", [_], &Method::GET) => RouteName::GetFile,
        ("files", [_], &Method::DELETE) => RouteName::DeleteFile,
        ("files", [_, "content"], &Method::GET) => RouteName::FileContent,
        ("batches", [], &Method::POST) => RouteName::CreateBatch,
        ("batches", [], &Method::GET) => RouteName::ListBatches,
        ("batches", [_], &Method::GET) => RouteName::GetBatch,
        ("batches", [_, "cancel"], &Method::POST) => RouteName::CancelBatch,
        _ => return None,
    };
    Some(route)
}

fn has_bearer_key(request: &Request) -> bool {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, key) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(key)
        })
        .is_some_and(|key| !key.trim().is_empty())
}

/// Cuts the connection so no response reaches the client. Without a connection handle (the
/// router driven in-process) the best available imitation is a body that fails at once.
fn sever(connection: Option<&ConnectionHandle>) -> Response {
    if let Some(connection) = connection {
        connection.sever();
    }
    let failing = futures::stream::once(async {
        Err::<Bytes, io::Error>(io::Error::new(io::ErrorKind::ConnectionAborted, "connection dropped (simulated)"))
    });
    Body::from_stream(failing).into_response()
}

/// Lets through `keep_fraction` of the body's announced length, then breaks the body.
fn truncate(response: Response, keep_fraction: f64) -> Response {
    let (parts, body) = response.into_parts();
    let total = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap_or(0);
    let keep = ((total as f64) * keep_fraction).floor() as u64;
    let chunks = body.into_data_stream();
    let cut = futures::stream::unfold((chunks, keep, false), |(mut chunks, remaining, finished)| async move {
        if finished {
            return None;
        }
        if remaining == 0 {
            let error = io::Error::new(io::ErrorKind::ConnectionAborted, "download cut short (simulated)");
            return Some((Err(error), (chunks, 0, true)));
        }
        match chunks.next().await {
            Some(Ok(mut chunk)) => {
                if chunk.len() as u64 > remaining {
                    chunk.truncate(remaining as usize);
                }
                let left = remaining - chunk.len() as u64;
                Some((Ok(chunk), (chunks, left, false)))
            }
            Some(Err(error)) => Some((Err(io::Error::other(error)), (chunks, 0, true))),
            None => {
                let error = io::Error::new(io::ErrorKind::ConnectionAborted, "download cut short (simulated)");
                Some((Err(error), (chunks, 0, true)))
            }
        }
    });
    Response::from_parts(parts, Body::from_stream(cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_named_under_both_prefixes() {
        let cases = [
            (Method::POST, "/compatible-mode/v1/files", Some(RouteName::Upload)),
            (Method::GET, "/v1/files", Some(RouteName::ListFiles)),
            (Method::GET, "/v1/files/file-1", Some(RouteName::GetFile)),
            (Method::DELETE, "/v1/files/file-1", Some(RouteName::DeleteFile)),
            (Method::GET, "/compatible-mode/v1/files/file-1/content", Some(RouteName::FileContent)),
            (Method::POST, "/v1/batches", Some(RouteName::CreateBatch)),
            (Method::GET, "/v1/batches", Some(RouteName::ListBatches)),
            (Method::GET, "/batches/batch_1", Some(RouteName::GetBatch)),
            (Method::POST, "/v1/batches/batch_1/cancel", Some(RouteName::CancelBatch)),
            (Method::PUT, "/v1/batches", None),
            (Method::GET, "/_sim/ledger", None),
        ];
        for (method, path, expected) in cases {
            assert_eq!(route_of(&method, path), expected, "{method} {path}");
        }
    }
}
