//! Rehearsals: the same rows and prompts sent to DashScope's free test model, to prove the whole
//! path with a real key at no inference cost.

use super::run_failure::RunFailure;
use crate::job::Job;
use crate::provider::ProviderKind;

/// The free test model and its endpoint (reference §4.2, §10 item 8).
pub const REHEARSAL_MODEL: &str = "batch-test-model";
pub const REHEARSAL_ENDPOINT: &str = "/v1/chat/ds-test";

/// Turns the job into its rehearsal: the same rows and prompts, sent to the free test model.
pub(super) fn make_rehearsal(job: &mut Job, provider: ProviderKind) -> Result<(), RunFailure> {
    if matches!(provider, ProviderKind::Openai) {
        return Err(RunFailure::local(anyhow::anyhow!(
            "`--rehearse` uses DashScope's free `{REHEARSAL_MODEL}`, which `{provider}` does not have"
        )));
    }
    if job.is_embeddings() {
        return Err(RunFailure::local(anyhow::anyhow!(
            "`--rehearse` covers chat jobs only: `{REHEARSAL_MODEL}` answers on `{REHEARSAL_ENDPOINT}`, not on embeddings"
        )));
    }
    if !job.spec.request.images.is_empty() {
        return Err(RunFailure::local(anyhow::anyhow!(
            "`--rehearse` covers text jobs only: `{REHEARSAL_MODEL}` reads no images (it would fail every row), and its 1 MB files could not hold the same requests; try the vision model on a few rows instead (a small input, or `[input]` pointing at a sample)"
        )));
    }
    let request = &mut job.spec.request;
    request.model = REHEARSAL_MODEL.to_owned();
    request.endpoint = REHEARSAL_ENDPOINT.to_owned();
    request.enable_thinking = None;
    request.thinking_budget = None;
    request.response_format = None;
    // The test model answers a fixed sentence, so typed fields would all be invalid.
    job.spec.output.fields.clear();
    Ok(())
}
