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
/// The first 16 hex digits of the shard file's SHA-256: two processes number the retry shards
/// they make each on their own, so a shard index alone does not say which rows a batch holds.
pub const METADATA_SHARD_CONTENT: &str = "dashbatch_shard_sha256";
/// How many hex digits of the shard's SHA-256 [`METADATA_SHARD_CONTENT`] holds.
pub const SHARD_CONTENT_DIGITS: usize = 16;
pub const METADATA_JOB: &str = "dashbatch_job";

/// How many pages of `GET /batches` reconciliation reads on providers without an
/// `input_file_ids` filter.
const MAX_RECONCILE_PAGES: usize = 20;

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
    MadeElsewhere(#[from] ShardMadeElsewhere),
}

/// Another process made batches for a shard of this run that this one cannot use (their input
/// is not the shard's upload): nothing is created for it.
#[derive(Debug, thiserror::Error)]
#[error(
    "the provider holds batch(es) for shard {shard} of this run (metadata `{METADATA_RUN}` `{run_id}`) that another process made and this one cannot use: {listed}. Another copy of run directory `{run_directory}` works, or worked, on this run (on another machine or under another user): let that one finish, or cancel its batches with `dashbatch cancel` where it runs. Nothing was created for this shard here, and this process's upload of it was deleted"
)]
pub struct ShardMadeElsewhere {
    shard: u64,
    run_id: String,
    run_directory: String,
    listed: String,
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
    /// What this process's looks at the provider's batch list saw of this run's batches.
    pub looks: &'a mut super::batch_looks::BatchLooks,
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
        if let Some(content) = shard.sha256.get(..SHARD_CONTENT_DIGITS) {
            metadata.insert(METADATA_SHARD_CONTENT.to_owned(), content.to_owned());
        }
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
            self.delete_unused_upload(shard, orphan).await?;
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
                let used = self
                    .settle_concurrent_create(shard, file_id, &batch)
                    .await?;
                Ok(Ok(used))
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
                        // Made by this create after all: another process may have created the
                        // shard at the same moment, as after a create answered at once.
                        let used = self
                            .settle_concurrent_create(shard, file_id, &batch)
                            .await?;
                        return Ok(Ok(used));
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

    /// Looks at the provider's list for this run's batches (see [`super::batch_looks`]); the
    /// ones this look listed, newest first, or `None` when it could not be made. After a failed
    /// look this process does not look again (each would wait through the client's retries):
    /// said once, unless the provider has no batch list at all.
    async fn look_at_batches(&mut self) -> Option<Vec<Batch>> {
        if self.looks.given_up {
            return None;
        }
        let run_id = self.run_id();
        match self.looks.look(self.client, &run_id).await {
            Ok(listed) => Some(listed),
            Err(error) => {
                self.say_failed_look(&error);
                None
            }
        }
    }

    /// Of this run's batches seen for `shard`, those whose input is the shard's upload
    /// (`own` names this process's), and the others described; `None` when the provider could
    /// not say (said once, as a failed look is).
    async fn usable_batches_of(
        &mut self,
        own: &ShardRecord,
        batches: Vec<Batch>,
    ) -> Option<(Vec<Batch>, Vec<String>)> {
        let run_id = self.run_id();
        let (mut usable, mut unusable) = (Vec::new(), Vec::new());
        for batch in batches {
            match super::unrecorded_batches::is_upload_of(self.client, &batch, own, &run_id).await {
                Ok(Ok(())) => usable.push(batch),
                Ok(Err(why)) => unusable.push(super::unrecorded_batches::described(&batch, &why)),
                Err(error) => {
                    self.say_failed_look(&error);
                    return None;
                }
            }
        }
        Some((usable, unusable))
    }

    /// Gives up looking, saying why (unless the provider has no batch list at all).
    fn say_failed_look(&mut self, error: &ClientError) {
        if self.looks.given_up {
            return;
        }
        self.looks.given_up = true;
        if error
            .status()
            .is_some_and(super::unrecorded_batches::has_no_batch_list)
        {
            return;
        }
        super::unrecorded_batches::warn(
            self.events,
            format!(
                "the provider's batches could not be read around a create ({error}); this process no longer looks for batches another copy of this run directory makes, so if one works elsewhere it may create shards a second time"
            ),
        );
    }

    /// Right before creating `shard`'s batch: one another process made for it (see
    /// [`super::batch_looks`]) is adopted, this process's own upload `file_id` then deleted if
    /// that batch has another input.
    async fn batch_made_elsewhere(
        &mut self,
        shard: &ShardRecord,
        file_id: &str,
    ) -> Result<Option<Batch>, SubmitError> {
        if self.look_at_batches().await.is_none() {
            return Ok(None);
        }
        let seen = self.looks.of_shard(shard.shard_index);
        if seen.is_empty() {
            return Ok(None);
        }
        let own = ShardRecord {
            file_id: Some(file_id.to_owned()),
            ..shard.clone()
        };
        let Some((mut usable, unusable)) = self.usable_batches_of(&own, seen).await else {
            return Ok(None);
        };
        usable.sort_by_key(|batch| {
            std::cmp::Reverse(super::unrecorded_batches::adoption_preference(batch))
        });
        let Some(adopted) = usable.into_iter().next() else {
            if unusable.is_empty() {
                return Ok(None);
            }
            // Forgotten once deleted, as a refused shard's upload is, so no later resume sends
            // the id (a failure is in the ledger; the file only takes room at the provider).
            let _ = super::announced_calls::delete_unused_upload_and_forget(
                self.ledger,
                self.client,
                shard.shard_index,
                file_id,
            )
            .await?;
            return Err(ShardMadeElsewhere {
                shard: shard.shard_index,
                run_id: self.run_id(),
                run_directory: self.run_directory.root.display().to_string(),
                listed: unusable.join("; "),
            }
            .into());
        };
        super::unrecorded_batches::adopt(self.ledger, self.events, &own, &adopted)?;
        if adopted.input_file_id != file_id {
            self.delete_unused_upload(shard, file_id).await?;
        }
        Ok(Some(adopted))
    }

    /// Right after creating `created` for `shard`: when another process created the shard at
    /// the same moment, both keep the batch created first ([`super::batch_looks::kept_of`]);
    /// this process cancels its own if that is the other's. The batch the shard uses.
    async fn settle_concurrent_create(
        &mut self,
        shard: &ShardRecord,
        file_id: &str,
        created: &Batch,
    ) -> Result<String, SubmitError> {
        let Some(listed) = self.look_at_batches().await else {
            return Ok(created.id.clone());
        };
        let shard_text = shard.shard_index.to_string();
        let mut of_shard: Vec<Batch> = listed
            .into_iter()
            .filter(|batch| batch.metadata_value(METADATA_SHARD) == Some(shard_text.as_str()))
            .collect();
        let others: Vec<Batch> = of_shard
            .iter()
            .filter(|batch| batch.id != created.id)
            .cloned()
            .collect();
        if others.is_empty() {
            return Ok(created.id.clone());
        }
        let own = ShardRecord {
            file_id: Some(file_id.to_owned()),
            ..shard.clone()
        };
        let Some((usable, _)) = self.usable_batches_of(&own, others).await else {
            return Ok(created.id.clone());
        };
        if usable.is_empty() {
            return Ok(created.id.clone());
        }
        // The competing batches in the list's order; this one, not listed yet, as the newest.
        of_shard.retain(|batch| {
            batch.id == created.id || usable.iter().any(|other| other.id == batch.id)
        });
        if !of_shard.iter().any(|batch| batch.id == created.id) {
            of_shard.insert(0, created.clone());
        }
        let kept = super::batch_looks::kept_of(&of_shard)
            .expect("the list holds this batch")
            .clone();
        let other_ids: Vec<&str> = usable.iter().map(|batch| batch.id.as_str()).collect();
        if kept.id == created.id {
            super::unrecorded_batches::warn(
                self.events,
                format!(
                    "another process (a copy of this run directory at work elsewhere) created batch(es) `{}` for shard {} of this run right after this one's `{}`; this one is kept, and that process cancels its own when it sees this one. If it does not, both are billed: `dashbatch cancel` there stops its batches",
                    other_ids.join("`, `"),
                    shard.shard_index,
                    created.id
                ),
            );
            return Ok(created.id.clone());
        }
        // The ledger names the kept batch before this one is cancelled: stopped in between, a
        // resume finds the shard on the batch that goes on, not on a cancelled one.
        super::unrecorded_batches::adopt(self.ledger, self.events, &own, &kept)?;
        let cancelled = super::announced_calls::cancel_batch_announced(
            self.ledger,
            self.client,
            Some(shard.shard_index),
            &created.id,
        )
        .await?;
        let message = match cancelled {
            Ok(_) => format!(
                "shard {} was created just before this process's batch `{}` by another process (a copy of this run directory at work elsewhere) as batch `{}`; this process cancelled its own and uses that one. Requests its batch ran before the cancel are billed",
                shard.shard_index, created.id, kept.id
            ),
            Err(error) => format!(
                "shard {} was created just before this process's batch `{}` by another process (a copy of this run directory at work elsewhere) as batch `{}`, which this process uses; its own could not be cancelled ({error}) and is billed too: cancel it at the provider",
                shard.shard_index, created.id, kept.id
            ),
        };
        super::unrecorded_batches::warn(self.events, message);
        if kept.input_file_id != file_id {
            self.delete_unused_upload(shard, file_id).await?;
        }
        Ok(kept.id)
    }

    /// Deletes an upload of `shard` that no batch uses, announced in the ledger first; a
    /// failure is recorded, not the run's.
    async fn delete_unused_upload(
        &mut self,
        shard: &ShardRecord,
        file_id: &str,
    ) -> Result<(), SubmitError> {
        // A failure is in the ledger; the file only takes room at the provider.
        let _ = super::announced_calls::delete_file_announced(
            self.ledger,
            self.client,
            Some(shard.shard_index),
            file_id,
        )
        .await?;
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
