//! Cost estimates before anything is spent: every rendered request's input tokens counted, its answer assumed (expected) or at its longest (upper bound), priced at batch and realtime price. Used by `dashbatch estimate` and by a run's budget cap.
//!
//! Only `job_estimate` does I/O (the planning pass in a scratch directory) and `shard_estimate`
//! reads shard files; nothing here touches the network.

mod assumptions;
mod cost_at_both_prices;
mod estimate_text;
mod estimator_setup;
mod job_estimate;
mod request_estimate;
mod shard_estimate;

pub use assumptions::estimate_assumptions;
pub use cost_at_both_prices::CostAtBothPrices;
pub use estimate_text::{render_estimate_text, with_thousands};
pub use estimator_setup::{
    EstimateSetupError, load_price_table, request_estimator_for_job, vocabulary_for_job,
};
pub use job_estimate::{EstimateOptions, JobEstimate, TierPrices, estimate_job};
pub use request_estimate::{
    DEFAULT_EXPECTED_OUTPUT_PERCENT, PROVIDER_PROMPT_ALLOWANCE_TOKENS, RequestEstimate,
    RequestEstimator, RequestLineError,
};
pub use shard_estimate::{EstimateTotals, ShardEstimate, estimate_shard_file};
