//! Errors of API calls, classified by what the caller may safely do next.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a non-2xx status.
    #[error("{operation} failed: HTTP {status}{code}: {message}", code = code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Status {
        operation: String,
        status: u16,
        code: Option<String>,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The request could not be completed. `may_have_reached_server` is false only when the
    /// connection was never established, so the server cannot have acted on it.
    #[error("{operation} failed: {message}")]
    Transport {
        operation: String,
        message: String,
        may_have_reached_server: bool,
    },
    /// The server answered 2xx with a body we could not understand.
    #[error("{operation} failed: the answer could not be read: {message}")]
    Decode { operation: String, message: String },
    /// A local file could not be read or written.
    #[error("{operation} failed: {message}")]
    Local { operation: String, message: String },
}

impl ClientError {
    /// Whether an idempotent call may be repeated after this error.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Status { status, code, .. } => {
                (*status == 429 && code.as_deref() != Some("insufficient_quota"))
                    || *status >= 500
                    || *status == 408
            }
            ClientError::Transport { .. } => true,
            ClientError::Decode { .. } | ClientError::Local { .. } => false,
        }
    }

    /// Whether the server may have acted on a non-idempotent call that returned this error.
    /// Only a definite 4xx (other than 408/429) or a connection never made proves it did not.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            ClientError::Status { status, .. } => {
                *status >= 500 || *status == 408 || *status == 429
            }
            ClientError::Transport {
                may_have_reached_server,
                ..
            } => *may_have_reached_server,
            ClientError::Decode { .. } => true,
            ClientError::Local { .. } => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> ClientError {
        ClientError::Status {
            operation: "x".into(),
            status,
            code: None,
            message: "m".into(),
            retry_after: None,
        }
    }

    #[test]
    fn classification() {
        assert!(status(429).is_transient());
        assert!(status(503).is_transient());
        assert!(!status(400).is_transient());
        assert!(!status(404).outcome_unknown());
        assert!(status(500).outcome_unknown());
        let refused = ClientError::Transport {
            operation: "x".into(),
            message: "refused".into(),
            may_have_reached_server: false,
        };
        assert!(refused.is_transient() && !refused.outcome_unknown());
    }
}
