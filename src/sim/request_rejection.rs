//! Why the (simulated) realtime endpoint refuses a line's body, and the error body it answers.

use serde_json::Value;

use crate::wire::{ApiError, ApiErrorBody};

/// Why the (simulated) realtime endpoint would refuse a line's body with HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestRejection {
    pub(crate) message: String,
}

impl RequestRejection {
    pub(crate) const CODE: &'static str = "invalid_parameter_error";

    pub(crate) fn new(message: impl Into<String>) -> RequestRejection {
        RequestRejection {
            message: message.into(),
        }
    }

    /// The realtime-style error body of a refused line.
    pub(crate) fn error_body(&self) -> ApiErrorBody {
        error_body(Self::CODE, "invalid_request_error", &self.message)
    }
}

pub(crate) fn error_body(code: &str, kind: &str, message: &str) -> ApiErrorBody {
    ApiErrorBody {
        error: ApiError {
            message: Some(message.to_owned()),
            kind: Some(kind.to_owned()),
            code: Some(Value::String(code.to_owned())),
            param: None,
        },
    }
}
