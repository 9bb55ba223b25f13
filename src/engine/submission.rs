//! The submission step of a run: reconcile what an earlier process announced but never saw
//! through, then upload and create a batch for every shard that has none, within the provider's
//! live-batch limit and the budget cap. A definite refusal by the provider stops it with a
//! [`ProviderRefusal`] after deleting the refused shard's upload.

use super::budget::RunBudget;
use super::run_failure::ProviderRefusal;
use super::submit::{SubmitError, Submitter};
use super::{EventSink, RunDirectory};
use crate::client::ApiClient;
use crate::job::Job;
use crate::ledger::{EffectKind, EffectOutcome, Ledger};
use crate::provider::ProviderProfile;

/// Uploads and creates batches for every shard that has none yet, reconciling first any side
/// effect a previous process announced but never saw through.
#[allow(clippy::too_many_arguments)]
pub(super) async fn submit_pending(
    client: &ApiClient,
    ledger: &Ledger,
    run_directory: &RunDirectory,
    job: &Job,
    profile: &ProviderProfile,
    events: &EventSink,
    budget: &mut RunBudget,
    looks: &mut super::batch_looks::BatchLooks,
) -> anyhow::Result<()> {
    let shards = ledger.shards()?;
    let mut submitter = Submitter {
        client,
        ledger,
        run_directory,
        job,
        profile,
        events,
        shard_count: shards.len() as u64,
        last_upload: None,
        looks,
    };
    for (effect_id, shard_index, _) in ledger.open_intents(EffectKind::Upload)? {
        let Some(shard) =
            shard_index.and_then(|index| shards.iter().find(|s| s.shard_index == index))
        else {
            continue;
        };
        let outcome = if shard.file_id.is_none() {
            match submitter.reconcile_upload(shard).await? {
                Some(id) => format!("adopted {id}"),
                None => "not found; will upload".to_owned(),
            }
        } else {
            "file id already recorded".to_owned()
        };
        ledger.record_outcome(effect_id, EffectOutcome::Reconciled, &outcome)?;
    }
    let shards = ledger.shards()?;
    for (effect_id, shard_index, file_id) in ledger.open_intents(EffectKind::CreateBatch)? {
        let Some(shard) =
            shard_index.and_then(|index| shards.iter().find(|s| s.shard_index == index))
        else {
            continue;
        };
        let outcome = if shard.batch_id.is_none() {
            match submitter.reconcile_batch(shard, &file_id).await? {
                Some(batch) => format!("adopted {}", batch.id),
                None => "not found; will create".to_owned(),
            }
        } else {
            "batch id already recorded".to_owned()
        };
        ledger.record_outcome(effect_id, EffectOutcome::Reconciled, &outcome)?;
    }
    let shards = ledger.shards()?;
    let mut live = shards.iter().filter(|shard| shard.has_live_batch()).count();
    for shard in shards {
        if shard.batch_id.is_some() {
            continue;
        }
        if live >= profile.max_live_batches {
            // The rest wait until running batches settle.
            break;
        }
        if !budget.admits(&shard, ledger, run_directory, events)? {
            continue;
        }
        live += 1;
        crate::interrupt::check()?;
        let file_id = match submitter.ensure_uploaded(&shard).await {
            Ok(file_id) => file_id,
            Err(SubmitError::Client(error)) if is_refusal(&error) => {
                return Err(ProviderRefusal {
                    shard_index: shard.shard_index,
                    error,
                    cleanup: "Nothing was uploaded for this shard.".to_owned(),
                }
                .into());
            }
            Err(SubmitError::ShardChanged(changed)) => return Err(changed.into()),
            Err(error) => return Err(error.into()),
        };
        crate::interrupt::check()?;
        match submitter.ensure_batch(&shard, &file_id).await {
            Ok(_) => {}
            Err(SubmitError::Client(error)) if is_refusal(&error) => {
                let cleanup =
                    delete_refused_upload(client, ledger, shard.shard_index, &file_id).await?;
                return Err(ProviderRefusal {
                    shard_index: shard.shard_index,
                    error,
                    cleanup,
                }
                .into());
            }
            Err(SubmitError::MadeElsewhere(refusal)) => return Err(refusal.into()),
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// A definite refusal: the provider answered with a 4xx that repeating cannot change.
fn is_refusal(error: &crate::client::ClientError) -> bool {
    matches!(error.status(), Some(status) if (400..500).contains(&status) && ![408, 409, 429].contains(&status))
        && !error.is_transient()
        && !error.outcome_unknown()
}

/// Deletes the file uploaded for a shard whose batch the provider refused (announced in the
/// ledger first), and forgets its id so that a later run uploads the shard again.
async fn delete_refused_upload(
    client: &ApiClient,
    ledger: &Ledger,
    shard_index: u64,
    file_id: &str,
) -> anyhow::Result<String> {
    match super::announced_calls::delete_unused_upload_and_forget(
        ledger,
        client,
        shard_index,
        file_id,
    )
    .await?
    {
        Ok(()) => Ok(format!(
            "The file uploaded for it (`{file_id}`) was deleted; no batch was created for it."
        )),
        Err(error) => Ok(format!(
            "No batch was created for it; deleting its uploaded file `{file_id}` failed too ({error}), delete it at the provider if you wish."
        )),
    }
}
