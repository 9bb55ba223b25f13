//! How a command fails: the error and the exit code it maps to, and the provider's definite
//! refusals, which say what to change rather than "resume".

use crate::exit;

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct RunFailure {
    pub exit_code: u8,
    pub error: anyhow::Error,
}

impl RunFailure {
    pub fn input(error: impl Into<anyhow::Error>) -> RunFailure {
        RunFailure {
            exit_code: exit::INPUT_ERROR,
            error: error.into(),
        }
    }

    pub fn remote(error: impl Into<anyhow::Error>) -> RunFailure {
        RunFailure {
            exit_code: exit::REMOTE_ERROR,
            error: error.into(),
        }
    }

    /// Stopped by a signal: exit 130 (SIGINT) or 143 (SIGTERM).
    pub fn interrupted(interrupted: crate::interrupt::Interrupted) -> RunFailure {
        RunFailure {
            exit_code: crate::interrupt::exit_code(interrupted),
            error: interrupted.into(),
        }
    }
}

/// The provider refused a call for good (a 4xx other than 408, 409 and 429): repeating it, or
/// resuming, would be refused again, so the message says what to change instead.
#[derive(Debug, thiserror::Error)]
#[error(
    "the provider refused shard {shard_index}: {error}\nThis is not a passing failure: resuming would be refused the same way. Change what the message names (model, endpoint, parameters, key or account) in the job or environment and run again. {cleanup}"
)]
pub struct ProviderRefusal {
    pub shard_index: u64,
    pub error: crate::client::ClientError,
    pub cleanup: String,
}

impl std::fmt::Display for RunFailure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{:#}", self.error)
    }
}
