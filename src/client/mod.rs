//! The HTTP client of the Files and Batches API. Every network call of the engine goes through
//! [`ApiClient`].

mod api_client;
mod api_key;
mod client_error;
mod retry_policy;

pub use api_client::{ApiClient, BatchListQuery};
pub use api_key::ApiKey;
pub use client_error::ClientError;
pub use retry_policy::RetryPolicy;
