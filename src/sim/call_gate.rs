//! The gate every API call passes: it names the route, counts the call, applies the fault the
//! plan scripts for it, and checks the `Authorization` header.
//!
//! Order: count → fault before acting (`slow`, `status_429`, `status_500`, `drop_before_acting`)
//! → auth → the handler → fault after acting (`drop_after_acting`, `truncate_download`).

use std::io;

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;

use super::api_error::ApiFailure;
use super::connection::ConnectionHandle;
use super::faults::{RouteFaultKind, RouteName};
use super::state::SharedSimState;

/// How long a cut download waits, after its last kept byte, before it breaks.
const FLUSH_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Middleware over the API routes. On the OpenAI flavour every answer carries the
/// `x-request-id` header OpenAI sends (the SDKs expose it as `_request_id`).
pub(crate) async fn guard_api_call(
    State(state): State<SharedSimState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = pass_gate(&state, request, next).await;
    if let Some(request_id) = state.next_http_request_id() {
        response.headers_mut().insert(
            "x-request-id",
            HeaderValue::from_str(&request_id).expect("an id is a valid header value"),
        );
    }
    response
}

async fn pass_gate(state: &SharedSimState, request: Request, next: Next) -> Response {
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
        Some(RouteFaultKind::Status429 {
            retry_after_seconds,
        }) => {
            return ApiFailure::throttled(*retry_after_seconds).into_response();
        }
        Some(RouteFaultKind::Status400) => {
            // A real server reads the whole request (a multipart upload) before refusing it;
            // answering first would let the client see a reset instead of the refusal.
            let _ = axum::body::to_bytes(request.into_body(), usize::MAX).await;
            return ApiFailure::bad_request(
                "InvalidParameter",
                "The request was refused (simulated definite refusal).",
            )
            .into_response();
        }
        Some(RouteFaultKind::Status404) => {
            return ApiFailure::not_found("No such route on this server (simulated).")
                .into_response();
        }
        Some(RouteFaultKind::Status500) => {
            return ApiFailure::internal(
                "The server had an error while processing your request (simulated).",
            )
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
        Err::<Bytes, io::Error>(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "connection dropped (simulated)",
        ))
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
    let cut = futures::stream::unfold(
        (chunks, keep, false),
        |(mut chunks, remaining, finished)| async move {
            if finished {
                return None;
            }
            if remaining == 0 {
                // Give hyper time to flush the head and the kept bytes: a body that fails before the
                // first flush would look like a dropped connection, not a cut download.
                tokio::time::sleep(FLUSH_PAUSE).await;
                let error = io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "download cut short (simulated)",
                );
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
                    tokio::time::sleep(FLUSH_PAUSE).await;
                    let error = io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "download cut short (simulated)",
                    );
                    Some((Err(error), (chunks, 0, true)))
                }
            }
        },
    );
    Response::from_parts(parts, Body::from_stream(cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_named_under_both_prefixes() {
        let cases = [
            (
                Method::POST,
                "/compatible-mode/v1/files",
                Some(RouteName::Upload),
            ),
            (Method::GET, "/v1/files", Some(RouteName::ListFiles)),
            (Method::GET, "/v1/files/file-1", Some(RouteName::GetFile)),
            (
                Method::DELETE,
                "/v1/files/file-1",
                Some(RouteName::DeleteFile),
            ),
            (
                Method::GET,
                "/compatible-mode/v1/files/file-1/content",
                Some(RouteName::FileContent),
            ),
            (Method::POST, "/v1/batches", Some(RouteName::CreateBatch)),
            (Method::GET, "/v1/batches", Some(RouteName::ListBatches)),
            (Method::GET, "/batches/batch_1", Some(RouteName::GetBatch)),
            (
                Method::POST,
                "/v1/batches/batch_1/cancel",
                Some(RouteName::CancelBatch),
            ),
            (Method::PUT, "/v1/batches", None),
            (Method::GET, "/_sim/ledger", None),
        ];
        for (method, path, expected) in cases {
            assert_eq!(route_of(&method, path), expected, "{method} {path}");
        }
    }
}

#[cfg(test)]
mod fault_tests {
    use std::time::{Duration, Instant};

    use serde_json::{Value, json};

    use super::super::test_support::{CHAT, KEY, chat_lines, frozen_sim};
    use super::super::{FaultPlan, RouteFaultKind, RouteName, SimFlavour};

    #[tokio::test]
    async fn status_429_answers_with_retry_after_and_does_nothing() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let plan = json!({"routes": {"upload": [{"nth": 1, "kind": {"status_429": {"retry_after_seconds": 2}}}]}});
        assert_eq!(sim.put_faults(plan).await.status(), 200);
        let response = sim
            .try_upload("a.jsonl", &chat_lines(1, "qwen-flash"))
            .await
            .unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "2");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "Throttling.RateQuota");
        assert_eq!(sim.handle.ledger().await.uploads, 0);
        sim.upload(&chat_lines(1, "qwen-flash")).await;
        assert_eq!(sim.handle.ledger().await.uploads, 1);
    }

    #[tokio::test]
    async fn status_500_answers_an_error_body() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let batch = sim.submit(&chat_lines(1, "qwen-flash")).await;
        sim.handle
            .set_fault_plan(FaultPlan::default().with_route_fault(
                RouteName::GetBatch,
                2,
                RouteFaultKind::Status500,
            ))
            .unwrap();
        let (first, _) = sim.get_json(&format!("/batches/{}", batch.id)).await;
        let (second, body) = sim.get_json(&format!("/batches/{}", batch.id)).await;
        let (third, _) = sim.get_json(&format!("/batches/{}", batch.id)).await;
        assert_eq!((first, second, third), (200, 500, 200));
        assert_eq!(body["error"]["type"], "server_error");
    }

    #[tokio::test]
    async fn drop_after_acting_creates_the_batch_but_the_client_sees_a_connection_error() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let file = sim.upload(&chat_lines(2, "qwen-flash")).await;
        let plan = json!({"routes": {"create_batch": [{"nth": 1, "kind": "drop_after_acting"}]}});
        assert_eq!(sim.put_faults(plan).await.status(), 200);
        let outcome = sim
            .try_create(
                json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h"}),
            )
            .await;
        let error = outcome.expect_err("the client must not get an answer");
        assert!(error.status().is_none(), "{error:?}");
        let ledger = sim.handle.ledger().await;
        assert_eq!(ledger.batches.len(), 1);
        assert_eq!(ledger.batches_per_input_file[&file.id], 1);
        // A careful client finds it by its input file.
        let (_, found) = sim
            .get_json(&format!("/batches?input_file_ids={}", file.id))
            .await;
        assert_eq!(found["data"].as_array().unwrap().len(), 1);
        assert_eq!(
            sim.handle.request_counts().calls_to(RouteName::CreateBatch),
            1
        );
    }

    #[tokio::test]
    async fn drop_before_acting_stores_nothing_and_answers_nothing() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let plan = FaultPlan::default().with_route_fault(
            RouteName::Upload,
            1,
            RouteFaultKind::DropBeforeActing,
        );
        sim.handle.set_fault_plan(plan).unwrap();
        let outcome = sim
            .try_upload("a.jsonl", &chat_lines(50, "qwen-flash"))
            .await;
        assert!(outcome.expect_err("no answer").status().is_none());
        assert_eq!(sim.handle.ledger().await.uploads, 0);
        let (_, files) = sim.get_json("/files").await;
        assert_eq!(files["data"], Value::Null);
    }

    #[tokio::test]
    async fn slow_delays_the_answer() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let plan = FaultPlan::default().with_route_fault(
            RouteName::ListFiles,
            1,
            RouteFaultKind::Slow { millis: 300 },
        );
        sim.handle.set_fault_plan(plan).unwrap();
        let started = Instant::now();
        let (status, _) = sim.get_json("/files").await;
        assert_eq!(status, 200);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn truncate_download_breaks_the_body_part_way() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let batch = sim.submit(&chat_lines(30, "qwen-flash")).await;
        let output_id = sim.finish(&batch.id).await.output_file_id.unwrap();
        let full = sim.download(&output_id).await;
        let plan = FaultPlan::default().with_route_fault(
            RouteName::FileContent,
            1,
            RouteFaultKind::TruncateDownload { keep_fraction: 0.5 },
        );
        sim.handle.set_fault_plan(plan).unwrap();
        let mut response = sim
            .client
            .get(sim.url(&format!("/files/{output_id}/content")))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.content_length(), Some(full.len() as u64));
        let mut received = 0;
        let broken = loop {
            match response.chunk().await {
                Ok(Some(chunk)) => received += chunk.len(),
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        assert!(broken, "the body must fail, not end");
        assert_eq!(received, full.len() / 2);
        assert_eq!(sim.download(&output_id).await, full);
    }

    #[tokio::test]
    async fn every_call_is_counted_per_route() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let batch = sim.submit(&chat_lines(1, "qwen-flash")).await;
        sim.batch(&batch.id).await;
        sim.batch(&batch.id).await;
        sim.cancel(&batch.id).await;
        let counts = sim.admin_json("/requests").await;
        assert_eq!(counts["calls"]["upload"], 1);
        assert_eq!(counts["calls"]["create_batch"], 1);
        assert_eq!(counts["calls"]["get_batch"], 2);
        assert_eq!(counts["calls"]["cancel_batch"], 1);
        assert_eq!(counts["calls"]["list_files"], 0);
        assert_eq!(sim.handle.request_counts().mutating_calls(), 3);
    }
}

/// The headers the gate checks and adds: the bearer key, and OpenAI's `x-request-id`.
#[cfg(test)]
mod header_tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::super::SimFlavour;
    use super::super::test_support::{KEY, frozen_sim, is_lower_hex};

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
}
