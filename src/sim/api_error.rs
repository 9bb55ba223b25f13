//! Non-2xx answers of the simulated API, always with the `{ "error": { message, type, code, param } }`
//! body both providers use.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::wire::{ApiError, ApiErrorBody};

/// An error answer, built by the handlers and state operations.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiFailure {
    pub(crate) status: StatusCode,
    pub(crate) kind: &'static str,
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) param: Option<String>,
    pub(crate) retry_after_seconds: Option<u64>,
}

impl ApiFailure {
    fn new(
        status: StatusCode,
        kind: &'static str,
        code: &str,
        message: impl Into<String>,
    ) -> ApiFailure {
        ApiFailure {
            status,
            kind,
            code: code.to_owned(),
            message: message.into(),
            param: None,
            retry_after_seconds: None,
        }
    }

    pub(crate) fn with_param(mut self, param: &str) -> ApiFailure {
        self.param = Some(param.to_owned());
        self
    }

    pub(crate) fn bad_request(code: &str, message: impl Into<String>) -> ApiFailure {
        ApiFailure::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message,
        )
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiFailure {
        ApiFailure::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "not_found",
            message,
        )
    }

    pub(crate) fn conflict(code: &str, message: impl Into<String>) -> ApiFailure {
        ApiFailure::new(StatusCode::CONFLICT, "invalid_request_error", code, message)
    }

    pub(crate) fn forbidden(code: &str, message: impl Into<String>) -> ApiFailure {
        ApiFailure::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            code,
            message,
        )
    }

    pub(crate) fn payload_too_large(message: impl Into<String>) -> ApiFailure {
        ApiFailure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "file_too_large",
            message,
        )
    }

    pub(crate) fn unauthorized() -> ApiFailure {
        ApiFailure::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            "Incorrect or missing API key: send an `Authorization: Bearer <key>` header (the simulator accepts any non-empty key).",
        )
    }

    /// DashScope's throttling answer.
    pub(crate) fn throttled(retry_after_seconds: u64) -> ApiFailure {
        let mut failure = ApiFailure::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Throttling",
            "Throttling.RateQuota",
            "Requests rate limit exceeded, please try again later.",
        );
        failure.retry_after_seconds = Some(retry_after_seconds);
        failure
    }

    pub(crate) fn internal(message: impl Into<String>) -> ApiFailure {
        ApiFailure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal_error",
            message,
        )
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let body = ApiErrorBody {
            error: ApiError {
                message: Some(self.message),
                kind: Some(self.kind.to_owned()),
                code: Some(Value::String(self.code)),
                param: self.param,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after_seconds {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&seconds.to_string()).expect("digits are a valid header"),
            );
        }
        response
    }
}

impl From<std::io::Error> for ApiFailure {
    fn from(error: std::io::Error) -> ApiFailure {
        ApiFailure::internal(format!("simulator storage error: {error}"))
    }
}
