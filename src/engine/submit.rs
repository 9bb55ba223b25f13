//! Submission: upload each shard and create its batch, writing the intent to the ledger before
//! each call and the outcome after it. A call whose outcome is unknown (timeout, reset, 5xx) is
//! never simply repeated: the provider's lists are searched for its effect first, and what is
//! found is adopted (see ARCHITECTURE.md, "Exactly once").

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::poll::record_batch_state;
use super::{Event, EventSink, RunDirectory};
use crate::client::{ApiClient, BatchListQuery, ClientError};
use crate::job::Job;
use crate::ledger::{EffectKind, EffectOutcome, Ledger, ShardRecord};
use crate::provider::ProviderProfile;
use crate::wire::{Batch, CreateBatchRequest};

pub const METADATA_RUN: &str = "dashbatch_run";
pub const METADATA_SHARD: &str = "dashbatch_shard";
pub const METADATA_JOB: &str = "dashbatch_job";

/// How many pages of `GET /batches` reconciliation reads on providers without an
/// `input_file_ids` filter.
const MAX_RECONCILE_PAGES: usize = 20;

/// How long before this process started a batch another process created may be (the
/// provider's clock and this machine's may differ): an hour.
const CREATED_ELSEWHERE_SLACK_SECONDS: i64 = 3_600;

/// Seconds since the epoch, now.
pub fn now_in_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

/// How many times one upload or create may be tried when each try surely left no effect.
const MAX_SUBMIT_ATTEMPTS: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error(transparent)]
    ShardChanged(#[from] ShardFileChanged),
    #[error(transparent)]
    Unrecorded(#[from] super::unrecorded_batches::UnrecordedBatches),
}

/// A shard file that is no longer the one the plan recorded: it is not uploaded.
#[derive(Debug, thiserror::Error)]
#[error(
    "shard file `{path}` is not the one planned ({found}; the plan recorded {planned}): it was changed or damaged after planning, and nothing of it was uploaded. Put the planned file back and resume, or start again in a new run directory (with the answer store on, answers this run already received are reused)"
)]
pub struct ShardFileChanged {
    path: String,
    found: String,
    planned: String,
}

/// Checks that the shard file holds the bytes the plan recorded (size and SHA-256).
fn check_shard_file(path: &std::path::Path, shard: &ShardRecord) -> Result<(), ShardFileChanged> {
    if shard.sha256.is_empty() {
        return Ok(());
    }
    let changed = |found: String| ShardFileChanged {
        path: path.display().to_string(),
        found,
        planned: format!("{} bytes with SHA-256 {}", shard.byte_size, shard.sha256),
    };
    let sha256 = super::plan::file_sha256(path)
        .map_err(|error| changed(format!("it cannot be read: {error}")))?;
    let bytes = std::fs::metadata(path).map_or(0, |metadata| metadata.len());
    if sha256 != shard.sha256 || bytes != shard.byte_size {
        return Err(changed(format!("{bytes} bytes with SHA-256 {sha256}")));
    }
    Ok(())
}

pub struct Submitter<'a> {
    pub client: &'a ApiClient,
    pub ledger: &'a Ledger,
    pub run_directory: &'a RunDirectory,
    pub job: &'a Job,
    pub profile: &'a ProviderProfile,
    pub events: &'a EventSink,
    pub shard_count: u64,
    pub last_upload: Option<Instant>,
    /// When this process last looked at the provider's batch list for batches of this run
    /// (seconds since the epoch): see [`Submitter::batch_made_elsewhere`].
    pub looked_for_batches_at: &'a mut i64,
}

impl Submitter<'_> {
    fn run_id(&self) -> String {
        self.run_directory.run_id()
    }

    pub fn upload_name(&self, shard: &ShardRecord) -> String {
        upload_name(&self.run_id(), shard)
    }

    /// The endpoint batches are created for (the job's, or the test model's for rehearsals).
    fn endpoint(&self) -> String {
        self.job.spec.request.endpoint.clone()
    }

    fn metadata(&self, shard: &ShardRecord) -> BTreeMap<String, String> {
        let mut metadata = BTreeMap::new();
        if self.profile.uses_dashscope_metadata {
            // ds_name ≤ 100 and ds_description ≤ 200 characters (reference §3.1).
            metadata.insert("ds_name".to_owned(), truncate(&self.job.name, 100));
            let description = format!(
                "dashbatch run {} shard {}/{}",
                self.run_id(),
                shard.shard_index + 1,
                self.shard_count
            );
            metadata.insert("ds_description".to_owned(), truncate(&description, 200));
        }
        metadata.insert(METADATA_RUN.to_owned(), self.run_id());
        metadata.insert(METADATA_SHARD.to_owned(), shard.shard_index.to_string());
        metadata.insert(METADATA_JOB.to_owned(), truncate(&self.job.name, 64));
        // The job's own keys were checked against the provider's limits before planning.
        for (key, value) in &self.job.spec.batch.metadata {
            metadata.insert(key.clone(), value.clone());
        }
        metadata
    }

    async fn respect_upload_rate(&mut self) {
        let spacing =
            Duration::from_secs_f64(1.0 / f64::from(self.profile.max_uploads_per_second.max(1)));
        if let Some(last) = self.last_upload {
            let elapsed = last.elapsed();
            if elapsed < spacing {
                tokio::time::sleep(spacing - elapsed).await;
            }
        }
        self.last_upload = Some(Instant::now());
    }

    /// Uploads the shard unless it already has a file id; returns the file id. A failed upload
    /// is repeated (within bounds) only once the provider's file list shows it did not happen.
    pub async fn ensure_uploaded(&mut self, shard: &ShardRecord) -> Result<String, SubmitError> {
        if let Some(file_id) = &shard.file_id {
            return Ok(file_id.clone());
        }
        check_shard_file(&self.run_directory.shard_path(&shard.file_name), shard)?;
        let mut attempt = 1;
        loop {
            match self.upload_once(shard).await? {
                Ok(file_id) => return Ok(file_id),
                Err(error) if error.is_transient() && attempt < MAX_SUBMIT_ATTEMPTS => {
                    tokio::time::sleep(self.retry_delay(attempt, &error)).await;
                    attempt += 1;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    fn retry_delay(&self, attempt: u32, error: &ClientError) -> Duration {
        self.client
            .retry_policy()
            .delay_after(attempt, error.retry_after())
    }

    /// One upload. `Ok(Err(_))` means the upload surely did not happen (a definite refusal, or
    /// an unknown outcome that reconciliation showed left no file).
    async fn upload_once(
        &mut self,
        shard: &ShardRecord,
    ) -> Result<Result<String, ClientError>, SubmitError> {
        let upload_name = self.upload_name(shard);
        let path = self.run_directory.shard_path(&shard.file_name);
        self.respect_upload_rate().await;
        let effect =
            self.ledger
                .record_intent(Some(shard.shard_index), EffectKind::Upload, &upload_name)?;
        match self.client.upload_file(&path, &upload_name).await {
            Ok(file) => {
                crate::kill_point::reach("after_upload_before_record");
                self.ledger.set_file_id(shard.shard_index, Some(&file.id))?;
                self.ledger
                    .record_outcome(effect, EffectOutcome::Done, &file.id)?;
                self.events.emit(
                    Event::FileUploaded {
                        shard: shard.shard_index,
                        file_id: &file.id,
                        bytes: file.bytes,
                    },
                    || {
                        Some(format!(
                            "uploaded shard {} as `{}`",
                            shard.shard_index, file.id
                        ))
                    },
                );
                Ok(Ok(file.id))
            }
            Err(error) if error.outcome_unknown() => {
                self.ledger
                    .record_outcome(effect, EffectOutcome::Unknown, &error.to_string())?;
                // The file may exist; look before uploading again.
                if let Some(file_id) = self.reconcile_upload(shard).await? {
                    self.ledger.record_outcome(
                        effect,
                        EffectOutcome::Done,
                        &format!("adopted {file_id}"),
                    )?;
                    return Ok(Ok(file_id));
                }
                self.ledger.record_outcome(
                    effect,
                    EffectOutcome::Failed,
                    &format!("not found after an unknown outcome: {error}"),
                )?;
                Ok(Err(error))
            }
            Err(error) => {
                self.ledger
                    .record_outcome(effect, EffectOutcome::Failed, &error.to_string())?;
                Ok(Err(error))
            }
        }
    }

    /// Looks for files this shard's upload may have created. Adopts one, deletes the rest.
    pub async fn reconcile_upload(
        &mut self,
        shard: &ShardRecord,
    ) -> Result<Option<String>, SubmitError> {
        let upload_name = self.upload_name(shard);
        let mut matches = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_RECONCILE_PAGES {
            let page = self.client.list_files(after.as_deref(), 2000).await?;
            let has_more = page.has_more;
            let items = page.into_items();
            let last = items.last().map(|file| file.id.clone());
            for file in items {
                if file.filename == upload_name && file.bytes == shard.byte_size {
                    matches.push(file.id);
                }
            }
            if !has_more || last.is_none() {
                break;
            }
            after = last;
        }
        let Some(adopted) = matches.first().cloned() else {
            return Ok(None);
        };
        self.ledger.set_file_id(shard.shard_index, Some(&adopted))?;
        self.events.emit(
            Event::FileAdopted {
                shard: shard.shard_index,
                file_id: &adopted,
            },
            || {
                Some(format!(
                    "found the upload of shard {} already made (`{adopted}`); not uploading again",
                    shard.shard_index
                ))
            },
        );
        for orphan in matches.iter().skip(1) {
            let effect = self.ledger.record_intent(
                Some(shard.shard_index),
                EffectKind::DeleteFile,
                orphan,
            )?;
            match self.client.delete_file(orphan).await {
                Ok(()) => self
                    .ledger
                    .record_outcome(effect, EffectOutcome::Done, orphan)?,
                Err(error) => {
                    self.ledger
                        .record_outcome(effect, EffectOutcome::Failed, &error.to_string())?
                }
            }
        }
        Ok(Some(adopted))
    }

    /// Creates the shard's batch unless it already has one; returns the batch id. A create is
    /// repeated (within bounds) only once the provider's batch list shows it did not happen.
    pub async fn ensure_batch(
        &mut self,
        shard: &ShardRecord,
        file_id: &str,
    ) -> Result<String, SubmitError> {
        if let Some(batch_id) = &shard.batch_id {
            return Ok(batch_id.clone());
        }
        if let Some(batch) = self.batch_made_elsewhere(shard, file_id).await? {
            return Ok(batch.id);
        }
        let mut attempt = 1;
        loop {
            match self.create_once(shard, file_id).await? {
                Ok(batch_id) => return Ok(batch_id),
                Err(error) if error.is_transient() && attempt < MAX_SUBMIT_ATTEMPTS => {
                    tokio::time::sleep(self.retry_delay(attempt, &error)).await;
                    attempt += 1;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// One create. `Ok(Err(_))` means no batch was created (a definite refusal, or an unknown
    /// outcome that reconciliation, looking twice, showed left no batch).
    async fn create_once(
        &mut self,
        shard: &ShardRecord,
        file_id: &str,
    ) -> Result<Result<String, ClientError>, SubmitError> {
        let request = CreateBatchRequest {
            input_file_id: file_id.to_owned(),
            endpoint: self.endpoint(),
            completion_window: self.job.spec.batch.completion_window.clone(),
            metadata: Some(self.metadata(shard)),
        };
        let effect =
            self.ledger
                .record_intent(Some(shard.shard_index), EffectKind::CreateBatch, file_id)?;
        match self.client.create_batch(&request).await {
            Ok(batch) => {
                crate::kill_point::reach("after_create_before_record");
                self.ledger.set_batch_id(shard.shard_index, &batch.id)?;
                // The create answer is the batch's first state: `status` shows it at once.
                record_batch_state(self.ledger, shard.shard_index, &batch)?;
                self.ledger
                    .record_outcome(effect, EffectOutcome::Done, &batch.id)?;
                self.events.emit(
                    Event::BatchCreated {
                        shard: shard.shard_index,
                        batch_id: &batch.id,
                        input_file_id: file_id,
                    },
                    || {
                        Some(format!(
                            "created batch `{}` for shard {}",
                            batch.id, shard.shard_index
                        ))
                    },
                );
                Ok(Ok(batch.id))
            }
            Err(error) if error.outcome_unknown() => {
                self.ledger
                    .record_outcome(effect, EffectOutcome::Unknown, &error.to_string())?;
                // Never create again before looking: the first create may have happened.
                for wait in [Duration::from_millis(0), Duration::from_secs(2)] {
                    tokio::time::sleep(wait).await;
                    if let Some(batch) = self.reconcile_batch(shard, file_id).await? {
                        self.ledger.record_outcome(
                            effect,
                            EffectOutcome::Done,
                            &format!("adopted {}", batch.id),
                        )?;
                        return Ok(Ok(batch.id));
                    }
                }
                self.ledger.record_outcome(
                    effect,
                    EffectOutcome::Failed,
                    &format!("not found after an unknown outcome: {error}"),
                )?;
                Ok(Err(error))
            }
            Err(error) => {
                self.ledger
                    .record_outcome(effect, EffectOutcome::Failed, &error.to_string())?;
                Ok(Err(error))
            }
        }
    }

    /// Looks, right before creating `shard`'s batch, for one another process made for it since
    /// this process last looked, and adopts it. Two processes on one run directory are kept
    /// apart by its lock, but a copy of a live run directory resumed on another machine (or
    /// under another user, where the lock cannot see the original) read the provider's list
    /// once, at its start: a batch the other process created after that would otherwise be
    /// created again and its rows paid twice. The list is read newest first back to the last
    /// look (less an hour for the two clocks), most often one page.
    async fn batch_made_elsewhere(
        &mut self,
        shard: &ShardRecord,
        file_id: &str,
    ) -> Result<Option<Batch>, SubmitError> {
        let looking_at = now_in_seconds();
        let found = super::unrecorded_batches::adopt_batch_made_elsewhere(
            self.client,
            self.ledger,
            self.events,
            self.run_directory,
            shard,
            file_id,
            *self.looked_for_batches_at - CREATED_ELSEWHERE_SLACK_SECONDS,
        )
        .await?;
        *self.looked_for_batches_at = looking_at;
        if let Some(batch) = &found
            && batch.input_file_id != file_id
        {
            // This process's own upload of the shard is not used: deleted (best effort).
            self.delete_unused_upload(shard, file_id).await?;
        }
        Ok(found)
    }

    /// Deletes an upload of `shard` that no batch uses, announced in the ledger first; a
    /// failure is recorded, not the run's.
    async fn delete_unused_upload(
        &mut self,
        shard: &ShardRecord,
        file_id: &str,
    ) -> Result<(), SubmitError> {
        let effect =
            self.ledger
                .record_intent(Some(shard.shard_index), EffectKind::DeleteFile, file_id)?;
        match self.client.delete_file(file_id).await {
            Ok(()) => self
                .ledger
                .record_outcome(effect, EffectOutcome::Done, file_id)?,
            Err(error) => {
                self.ledger
                    .record_outcome(effect, EffectOutcome::Failed, &error.to_string())?
            }
        }
        Ok(())
    }

    /// Looks for a batch this run already created for `file_id` and adopts it.
    pub async fn reconcile_batch(
        &mut self,
        shard: &ShardRecord,
        file_id: &str,
    ) -> Result<Option<Batch>, SubmitError> {
        let run_id = self.run_id();
        let shard_text = shard.shard_index.to_string();
        let mut after: Option<String> = None;
        for _ in 0..MAX_RECONCILE_PAGES {
            let page = self
                .client
                .list_batches(&BatchListQuery {
                    after: after.clone(),
                    limit: Some(100),
                    input_file_ids: vec![file_id.to_owned()],
                    ..BatchListQuery::default()
                })
                .await?;
            let has_more = page.has_more;
            let items = page.into_items();
            let last = items.last().map(|batch| batch.id.clone());
            if let Some(found) = items.into_iter().find(|batch| {
                batch.input_file_id == file_id
                    && batch.metadata_value(METADATA_RUN) == Some(run_id.as_str())
                    && batch.metadata_value(METADATA_SHARD) == Some(shard_text.as_str())
            }) {
                self.ledger.set_batch_id(shard.shard_index, &found.id)?;
                record_batch_state(self.ledger, shard.shard_index, &found)?;
                self.events.emit(
                    Event::BatchAdopted {
                        shard: shard.shard_index,
                        batch_id: &found.id,
                    },
                    || {
                        Some(format!(
                            "found batch `{}` already created for shard {}; not creating another",
                            found.id, shard.shard_index
                        ))
                    },
                );
                return Ok(Some(found));
            }
            if !has_more || last.is_none() {
                break;
            }
            after = last;
        }
        Ok(None)
    }
}

/// The name a shard of run `run_id` is uploaded under: unique per run, so it can be found
/// again.
pub fn upload_name(run_id: &str, shard: &ShardRecord) -> String {
    format!("{run_id}-{}", shard.file_name)
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}
