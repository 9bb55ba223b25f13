//! The job file: its serde model and the checks that turn it into a trusted [`Job`].

mod estimate_spec;
mod load;
mod spec;

pub use estimate_spec::{
    DecimalAmountText, EstimateSpec, amount_in_currency, check_positive_amount,
    split_amount_and_currency,
};
pub use load::{
    CHAT_ENDPOINT, EMBEDDINGS_ENDPOINT, Job, JobError, RESERVED_COLUMN_NAMES, load_job,
};
pub use spec::{
    BatchSpec, EmptyImageRule, ImageFit, InputSpec, JobSpec, OutputFieldSpec, OutputFieldType,
    OutputSpec, RequestSpec, ResponseFormat,
};
