//! The provider calls that change something and may be repeated without harm (deleting a file,
//! cancelling a batch): each is announced in the ledger as an intent before it is made and its
//! outcome recorded after, as every side effect is (see ARCHITECTURE.md, "Exactly once").

use crate::client::{ApiClient, ClientError};
use crate::ledger::{EffectKind, EffectOutcome, Ledger, LedgerError};
use crate::wire::Batch;

/// Deletes `file_id` (of shard `shard_index`, when known); the provider's answer, or its error.
///
/// # Errors
/// When the ledger cannot be written (the call is then not made, or its outcome not recorded).
pub(super) async fn delete_file_announced(
    ledger: &Ledger,
    client: &ApiClient,
    shard_index: Option<u64>,
    file_id: &str,
) -> Result<Result<(), ClientError>, LedgerError> {
    let effect = ledger.record_intent(shard_index, EffectKind::DeleteFile, file_id)?;
    let answer = client.delete_file(file_id).await;
    let (outcome, detail) = match &answer {
        Ok(()) => (EffectOutcome::Done, file_id.to_owned()),
        Err(error) => (EffectOutcome::Failed, error.to_string()),
    };
    ledger.record_outcome(effect, outcome, &detail)?;
    Ok(answer)
}

/// Deletes the file uploaded for shard `shard_index` that no batch will use, announced as
/// [`delete_file_announced`] is, and once deleted forgets its id in the ledger, so that no later
/// pass sends it (a later run uploads the shard again).
///
/// # Errors
/// When the ledger cannot be written.
pub(super) async fn delete_unused_upload_and_forget(
    ledger: &Ledger,
    client: &ApiClient,
    shard_index: u64,
    file_id: &str,
) -> Result<Result<(), ClientError>, LedgerError> {
    let answer = delete_file_announced(ledger, client, Some(shard_index), file_id).await?;
    if answer.is_ok() {
        ledger.set_file_id(shard_index, None)?;
    }
    Ok(answer)
}

/// Asks the provider to cancel `batch_id` (of shard `shard_index`, when known); the batch as
/// the provider answered, or its error.
///
/// # Errors
/// When the ledger cannot be written (the call is then not made, or its outcome not recorded).
pub(super) async fn cancel_batch_announced(
    ledger: &Ledger,
    client: &ApiClient,
    shard_index: Option<u64>,
    batch_id: &str,
) -> Result<Result<Batch, ClientError>, LedgerError> {
    let effect = ledger.record_intent(shard_index, EffectKind::CancelBatch, batch_id)?;
    let answer = client.cancel_batch(batch_id).await;
    let (outcome, detail) = match &answer {
        Ok(batch) => (EffectOutcome::Done, batch.status.as_str().to_owned()),
        Err(error) => (EffectOutcome::Failed, error.to_string()),
    };
    ledger.record_outcome(effect, outcome, &detail)?;
    Ok(answer)
}
