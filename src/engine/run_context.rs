//! One run and its stages. [`Run`] holds what every stage needs (job, provider profile, run
//! directory, ledger, record, events, prices, budget, output target), so each stage is a method
//! and `runner::execute` reads as the pipeline of ARCHITECTURE.md:
//!
//! prepare (checks, found or verify the run) → plan → submit and wait (upload, create, poll,
//! download, retry, clean up) → join and report.
//!
//! Every stage up to `plan` runs before anything is spent; `runner::settle_failure` keeps the
//! exit code of a failure after that from ever saying "nothing was spent".

use std::path::Path;

use super::adoption::settle_adoptions;
use super::answer_recording::AnswerRecording;
use super::answer_reuse::{
    AdoptionPlanning, AnswerReuse, announce_sent_requests, mark_pinned_answers_used,
    withdraw_stale_announcements,
};
use super::budget::{RunBudget, prepare_run_budget};
use super::connection::{check_base_url, connect, load_prices, poll_schedule};
use super::estimate_vs_actual::attach_estimates;
use super::input_check::InputCheck;
use super::join_pass::{JoinSummary, join_results};
use super::output_target::{OutputTarget, check_output_target, choose_output_target, same_file};
use super::plan::{input_digest, output_table_shape, plan_shards};
use super::poll::{BatchSlots, poll_until_settled};
use super::rehearsal::make_rehearsal;
use super::remote_cleanup::delete_remote_files;
use super::report::{LostResults, RunReport};
use super::request_key_claims::RequestKeyClaims;
use super::retry::{ingest_retry_results, plan_retries};
use super::run_failure::{ProviderRefusal, RunFailure};
use super::run_identity::RunIdentity;
use super::run_options::{RunOptions, RunOutcome};
use super::run_record::{RunFounding, RunRecord};
use super::submission::submit_pending;
use super::unrecorded_batches::{UnrecordedBatches, reconcile_unrecorded_batches};
use super::{Event, EventSink, RunDirectory};
use crate::answer_store::AnswerStore;
use crate::cost::RunPricer;
use crate::exit;
use crate::job::Job;
use crate::ledger::Ledger;
use crate::pricing::PriceTable;
use crate::provider::{ProviderKind, ProviderProfile};
use crate::table::{DigestAlgorithm, TableFormat, digests_while_reading};

/// How long shard estimates are counted between two rounds of polling (a 50,000-line shard
/// takes under a second), so polling never waits long for them.
const ESTIMATING_BETWEEN_POLLS: std::time::Duration = std::time::Duration::from_secs(2);

/// A run being carried out.
pub(super) struct Run {
    job: Job,
    options: RunOptions,
    profile: ProviderProfile,
    run_directory: RunDirectory,
    ledger: Ledger,
    record: RunRecord,
    resuming: bool,
    events: EventSink,
    prices: PriceTable,
    budget: RunBudget,
    output: OutputTarget,
    /// Rows the plan sends (the progress bar's total).
    planned_rows: u64,
    /// The answer store (none with `--no-store`, `[reuse] store = false`, for a rehearsal, or
    /// when the user's default store cannot be opened).
    store: Option<AnswerStore>,
    /// The provider part of request keys.
    provider_identity: String,
    /// The size and modification time the input file had when its hash last matched the plan.
    input_passed_as: Option<(u64, std::time::SystemTime)>,
    /// The provider, once this process has talked to it: remote files are deleted through it
    /// after the output is written.
    connection: Option<super::connection::Connection>,
}

impl Run {
    /// Everything checked, the run founded (or its founding verified against this job), its
    /// budget set up: all before anything is planned, uploaded or spent.
    pub(super) fn prepare(
        mut job: Job,
        mut run_directory: RunDirectory,
        options: RunOptions,
    ) -> Result<Run, RunFailure> {
        let events = EventSink::new(options.mode);
        let mut profile = ProviderProfile::for_kind(options.provider);
        if options.rehearse {
            make_rehearsal(&mut job, options.provider)?;
            profile = profile.for_rehearsal();
        }
        profile.check_job(&job).map_err(RunFailure::local)?;
        // Never founded over what a run whose ledger was lost left behind.
        super::damaged_run::refuse_a_damaged_run(&run_directory.root)?;
        // A run that already exists keeps the prices it was founded with (read before anything
        // is created; nothing exists yet for a new run).
        let existing_founding = if Ledger::exists_in(&run_directory.root) {
            let existing = Ledger::open(&run_directory.root).map_err(RunFailure::local)?;
            RunRecord::read(&existing)
                .map_err(RunFailure::local)?
                .founding
        } else {
            None
        };
        let run_prices = load_prices(
            options.prices_file.as_deref(),
            existing_founding.as_ref(),
            options.provider,
        )?;
        let prices = run_prices.table;
        if let Some(url) = &options.base_url {
            check_base_url(url)?;
        }
        crate::model_check::check_model(
            &job,
            options.provider,
            options.base_url.is_some(),
            &prices,
        )
        .map_err(RunFailure::local)?;

        run_directory.create().map_err(|error| {
            RunFailure::local(anyhow::anyhow!(
                "cannot create the run directory `{}`: {error}",
                run_directory.root.display()
            ))
        })?;
        let mut ledger = Ledger::open(&run_directory.root).map_err(RunFailure::local)?;
        let mut record = RunRecord::read(&ledger).map_err(RunFailure::local)?;
        // A finished run makes no call, so it needs no key.
        if options.provider != ProviderKind::Sim && !record.finished {
            require_api_key(&profile)?;
        }
        let output = choose_output_target(options.output.as_deref(), &job, &run_directory)?;
        check_output_target(&output, &job, &run_directory)?;
        let resuming = record.founding.is_some();
        let (store, store_path) = open_answer_store(
            &job,
            &options,
            &output.path,
            record
                .founding
                .as_ref()
                .and_then(|founding| founding.answer_store.clone()),
            resuming,
            &events,
        )?;
        match &record.founding {
            Some(founding) => {
                verify_same_run(founding, &job, &options, &run_directory)?;
                if options.prices_file.is_some()
                    && let (Some(path), Some(text)) = (&run_prices.file, &run_prices.text)
                {
                    let path = std::fs::canonicalize(path).unwrap_or(path.clone());
                    RunRecord::record_prices(&mut ledger, &path, text)
                        .map_err(RunFailure::local)?;
                }
            }
            None => {
                let founding = RunFounding {
                    run_id: run_directory.new_run_id(),
                    job_file: std::fs::canonicalize(&job.job_file).unwrap_or(job.job_file.clone()),
                    job_sha256: job.job_file_sha256.clone(),
                    provider: options.provider,
                    base_url: options.base_url.clone(),
                    output_path: output.path.clone(),
                    output_format: output.format.extension().to_owned(),
                    rehearsal: options.rehearse,
                    prices_file: run_prices
                        .file
                        .as_ref()
                        .map(|path| std::fs::canonicalize(path).unwrap_or(path.clone())),
                    prices_text: run_prices.text.clone(),
                    answer_store: Some(store_path),
                    refresh: options.refresh,
                    founded_at: Some(chrono::Utc::now().timestamp()),
                };
                RunRecord::found(&mut ledger, &founding).map_err(RunFailure::local)?;
                record.founding = Some(founding);
            }
        }
        let founding = record.founded(&run_directory.root)?;
        let run_id = founding.run_id.clone();
        // Beside the ledger, for when the ledger is lost (runs founded before it get one now).
        if RunIdentity::read(&run_directory.root).is_none() {
            RunIdentity {
                run_id: run_id.clone(),
                job_sha256: founding.job_sha256.clone(),
            }
            .write(&run_directory.root)
            .map_err(|error| {
                RunFailure::local(anyhow::anyhow!(
                    "cannot write `{}` in the run directory: {error}",
                    super::run_identity::RUN_IDENTITY_FILE_NAME
                ))
            })?;
        }
        run_directory.set_run_id(run_id);
        let budget = prepare_run_budget(
            &job,
            &prices,
            &ledger,
            &record,
            options.max_cost.as_deref(),
            options.tokenizer.as_deref(),
        )?;
        events.emit(
            Event::RunStarted {
                job: &job.name,
                run_directory: run_directory.root.display().to_string(),
                provider: options.provider.to_string(),
                resumed: resuming,
            },
            || {
                Some(format!(
                    "{} job `{}` in `{}` on provider `{}`",
                    if resuming { "resuming" } else { "running" },
                    job.name,
                    run_directory.root.display(),
                    options.provider
                ))
            },
        );
        let provider_identity =
            crate::request_key::provider_identity(options.provider, options.base_url.as_deref());
        Ok(Run {
            store,
            provider_identity,
            input_passed_as: None,
            connection: None,
            job,
            options,
            profile,
            run_directory,
            ledger,
            record,
            resuming,
            events,
            prices,
            budget,
            output,
            planned_rows: 0,
        })
    }

    /// Reads, renders and shards the whole input (local, free), unless an earlier process did;
    /// a crash while planning leaves no `planned_rows`, so planning restarts. A resumed run's
    /// input must be the one it planned. Ends with the budget's refusal, if any.
    pub(super) fn plan(&mut self) -> Result<(), RunFailure> {
        self.record
            .refuse_a_damaged_plan(&self.ledger, &self.run_directory.root)
            .map_err(RunFailure::damaged)?;
        // Input rows and output columns, known here when this process plans.
        let mut planned_shape: Option<(u64, usize)> = None;
        self.planned_rows = match self.record.planned_rows {
            Some(rows) => rows,
            None => {
                self.ledger.clear_plan().map_err(RunFailure::local)?;
                // Taken before hashing: a file changed while it is hashed does not pass later.
                let stamp = input_file_stamp(&self.job.input_path);
                let parts_stamp = input_parts_stamp(&self.job.input_path);
                let hash_input = || {
                    input_digest(&self.job.input_path, DigestAlgorithm::FOR_NEW_RUNS).map_err(
                        |error| match crate::interrupt::of_io_error(&error) {
                            Some(interrupted) => RunFailure::interrupted(interrupted),
                            None => RunFailure::local(anyhow::anyhow!(
                                "cannot read input `{}`: {error}",
                                self.job.input_path.display()
                            )),
                        },
                    )
                };
                // A CSV file is hashed from the bytes planning reads its rows from; any other
                // input in a pass of its own first.
                let digested_while_planning =
                    digests_while_reading(&self.job.input_path, self.job.input_format);
                let hashed_first = if digested_while_planning {
                    None
                } else {
                    Some(hash_input()?)
                };
                // `--refresh`: nothing is taken from the store (nor adopted); it is still written.
                let reads_store = !self.options.refresh;
                let shards_directory = self.run_directory.shards_directory();
                if let Some(store) = self.store.as_mut()
                    && let Err(error) =
                        withdraw_stale_announcements(store, Some(&self.run_directory.root))
                {
                    self.store_warning(&error);
                }
                let adoption = match &self.store {
                    Some(store) if reads_store && !self.options.no_adopt => {
                        AdoptionPlanning::start(store, &self.run_directory.root, &shards_directory)
                            .map_err(RunFailure::local)?
                    }
                    _ => None,
                };
                // Only a run that announces its requests in the store needs their keys kept.
                let keys_kept_in_ledger = self.store.is_some();
                let mut reuse = AnswerReuse {
                    provider_identity: self.provider_identity.clone(),
                    store: if reads_store { self.store.take() } else { None },
                    deduplicate: self.job.spec.reuse.deduplicate,
                    adoption,
                    claims: std::cell::RefCell::new(RequestKeyClaims::new(keys_kept_in_ledger)),
                };
                let progress = self.events.stage_progress("planning");
                let planned = plan_shards(
                    &self.job,
                    &self.profile,
                    &shards_directory,
                    super::shard_file::ShardDurability::Synced,
                    &self.ledger,
                    &reuse,
                    0,
                    digested_while_planning,
                    &|rows| progress.set_rows(rows),
                );
                drop(progress);
                if reads_store {
                    self.store = reuse.store.take();
                }
                let mut plan = planned.map_err(RunFailure::local)?;
                let (input_digest, passed_as, hashed_apart) =
                    match (hashed_first, plan.input_digest.take()) {
                        (Some(digest), _) => (digest, stamp, true),
                        (None, Some(digest)) => (digest, stamp, false),
                        // Planning stopped reading before the file's end (no reader known
                        // does, but a decompressor might): hashed apart, after the rows were
                        // read, so this process does not take the input as passed (the join
                        // hashes again).
                        (None, None) => (hash_input()?, None, true),
                    };
                // Hashed in a pass apart from the one that read the rows: the digest is of
                // the rows planned only if no part changed between the two.
                if hashed_apart
                    && parts_stamp.is_some()
                    && input_parts_stamp(&self.job.input_path) != parts_stamp
                {
                    return Err(RunFailure::local(anyhow::anyhow!(
                        "input `{}` changed while it was being planned, so which rows were planned is not known; nothing was sent. Once the input is no longer being written, `dashbatch resume {}` plans it again",
                        self.job.input_path.display(),
                        self.run_directory.root.display()
                    )));
                }
                self.input_passed_as = passed_as;
                if let Some(adoption) = reuse.adoption.take() {
                    adoption.finish().map_err(RunFailure::local)?;
                }
                self.ledger
                    .insert_shards(&plan.shards)
                    .map_err(RunFailure::local)?;
                RunRecord::record_plan(&mut self.ledger, &input_digest, plan.row_count)
                    .map_err(RunFailure::local)?;
                self.record.input_digest = Some(input_digest);
                self.record.planned_rows = Some(plan.row_count);
                planned_shape = Some((plan.input_rows(), plan.output_columns));
                if plan.rows_from_store > 0
                    && let Some(store) = self.store.as_mut()
                    && let Err(error) = mark_pinned_answers_used(&self.ledger, store)
                {
                    self.store_warning(&error);
                }
                let skipped = if plan.skipped_rows > 0 {
                    format!(
                        "; {} row(s) with an empty prompt skipped",
                        plan.skipped_rows
                    )
                } else {
                    String::new()
                };
                self.events.emit(
                    Event::Planned {
                        rows: plan.row_count,
                        skipped_rows: plan.skipped_rows,
                        rows_from_store: plan.rows_from_store,
                        rows_deduplicated: plan.rows_deduplicated,
                        rows_adopted: plan.rows_adopted,
                        shards: plan.shards.len(),
                    },
                    || {
                        let reused = match (plan.rows_from_store, plan.rows_deduplicated) {
                            (0, 0) => String::new(),
                            (store, repeated) => format!(
                                "; {store} row(s) answered from the answer store, {repeated} row(s) repeating another row's request (not sent)"
                            ),
                        };
                        let reused = if plan.rows_adopted > 0 {
                            format!(
                                "{reused}; {} row(s) another running run already sends: waiting for its answers (`--no-adopt` sends them instead)",
                                plan.rows_adopted
                            )
                        } else {
                            reused
                        };
                        Some(format!(
                            "{} rows to send in {} shard(s){skipped}{reused}",
                            plan.row_count,
                            plan.shards.len()
                        ))
                    },
                );
                plan.row_count
            }
        };
        // A finished run sends nothing more: its input is checked while it is joined again.
        if self.resuming
            && !self.record.finished
            && !self.input_is_as_planned().map_err(RunFailure::local)?
        {
            return Err(RunFailure::local(anyhow::anyhow!(
                "input `{}` changed since run `{}` was planned; joining would mismatch rows. Restore the input, or start a new run",
                self.job.input_path.display(),
                self.run_directory.root.display()
            )));
        }
        if self.output.format == TableFormat::Excel {
            let (rows, columns) = match planned_shape {
                Some(shape) => shape,
                None => output_table_shape(&self.job).map_err(RunFailure::local)?,
            };
            crate::table::check_fits_a_sheet(rows, columns).map_err(|problem| {
                RunFailure::local(anyhow::anyhow!(
                    "the output `{}` cannot hold the table: {problem}",
                    self.output.path.display()
                ))
            })?;
        }
        self.budget.refuse_if_over_before_first_upload(
            &self.ledger,
            &self.run_directory,
            &self.job,
        )?;
        // Announced only once the run will send (a run refused above never does).
        // Other runs asking the same requests wait for this run's answers instead of paying.
        if let Some(store) = self.store.as_mut()
            && !RunRecord::requests_announced(&self.ledger).map_err(RunFailure::local)?
            && !self.record.finished
        {
            let announced = announce_sent_requests(
                &self.ledger,
                store,
                &self.run_directory.run_id(),
                &self.run_directory.root,
            );
            match announced {
                Ok(()) => {
                    RunRecord::record_requests_announced(&self.ledger).map_err(RunFailure::local)?
                }
                Err(error) => self.store_warning(&error),
            }
        }
        // Planning's memory (and the passes above: the estimates read back, the requests
        // announced) is freed by now: what the allocators keep of it goes back before the wait.
        crate::split_allocator::return_freed_memory();
        Ok(())
    }

    /// Whether the input is still the one planned (true when no plan recorded one). Hashing is a
    /// pass over the whole input, so a second check in this process of a single file whose size
    /// and modification time are those it had when it last passed (an unfinished resumed run
    /// checks here before submitting, then again while joining,
    /// [`Self::input_check_before_joining`]) is answered without hashing again.
    ///
    /// # Errors
    /// When the input is there but cannot be read.
    fn input_is_as_planned(&mut self) -> anyhow::Result<bool> {
        let Some(check) = self.planned_input_check() else {
            return Ok(true);
        };
        let stamp = input_file_stamp(&self.job.input_path);
        if self.input_passed_with(stamp) {
            return Ok(true);
        }
        let as_planned = check.is_as_planned()?;
        self.input_passed_as = if as_planned { stamp } else { None };
        Ok(as_planned)
    }

    /// The check against the digest the plan recorded, if it recorded one.
    fn planned_input_check(&self) -> Option<InputCheck> {
        Some(InputCheck::new(
            self.job.input_path.clone(),
            self.run_directory.root.clone(),
            self.record.input_digest.clone()?,
        ))
    }

    /// Whether this process already saw the input pass the check with `stamp`, the size and
    /// modification time it has now (a single file; a partitioned input, without a stamp, is
    /// always hashed).
    fn input_passed_with(&self, stamp: Option<(u64, std::time::SystemTime)>) -> bool {
        stamp.is_some() && stamp == self.input_passed_as
    }

    /// The check that the input is still the one planned, to run while joining; `None` when
    /// no plan recorded its hash, or this process already saw it pass as it is now and
    /// checking again would take a pass of its own. An input hashed as the join reads it (a
    /// CSV file) is always checked: that costs next to nothing, and a file replaced by one of
    /// the same size with its modification time kept (`cp -p`, `rsync -t`) passes the size and
    /// time.
    fn input_check_before_joining(&self) -> Option<InputCheck> {
        let hashed_while_joining =
            crate::table::digests_while_reading(&self.job.input_path, self.job.input_format);
        if !hashed_while_joining && self.input_passed_with(input_file_stamp(&self.job.input_path)) {
            return None;
        }
        self.planned_input_check()
    }

    /// Submits every shard (within the live-batch limit and the budget), polls until each
    /// settles, downloads, resends transient failures, and deletes the remote files. A finished
    /// run skips it all and makes no call.
    pub(super) async fn submit_and_wait(&mut self) -> Result<(), RunFailure> {
        if self.record.finished {
            return Ok(());
        }
        let connection = connect(
            self.options.provider,
            self.options.base_url.as_deref(),
            &self.run_directory,
        )
        .await?;
        let client = &connection.client;
        if self.resuming {
            // An older copy of the ledger does not record what a later process created: what
            // the provider holds for this run is matched against it before anything is sent.
            let founded_at = self
                .record
                .founding
                .as_ref()
                .and_then(|founding| founding.founded_at);
            reconcile_unrecorded_batches(
                client,
                &self.ledger,
                &self.run_directory,
                founded_at,
                &self.events,
            )
            .await
            .map_err(|error| {
                if error.downcast_ref::<UnrecordedBatches>().is_some() {
                    RunFailure::damaged(error)
                } else {
                    self.saved(error)
                }
            })?;
            // Files an earlier process could not delete after writing its output (its results
            // are on disk): deleted first, whatever the join below then finds.
            self.delete_remote_files_or_warn(client, "the earlier batches' results are on disk")
                .await;
        }
        // The join's estimate-versus-actual needs every shard's estimate: counted on a thread
        // of their own while the run uploads and waits.
        self.budget
            .start_estimating_ahead(&self.ledger, &self.run_directory)
            .map_err(RunFailure::local)?;
        self.events.start_progress(self.planned_rows);
        let mut last_waiting: Option<u64> = None;
        let schedule = poll_schedule(
            &self.job,
            self.options.provider,
            self.options.base_url.as_deref(),
        );
        // Batches another process makes for this run are looked for around each create (see
        // `batch_looks.rs`).
        let mut batch_looks = super::batch_looks::BatchLooks::new();
        loop {
            submit_pending(
                client,
                &self.ledger,
                &self.run_directory,
                &self.job,
                &self.profile,
                &self.events,
                &mut self.budget,
                &mut batch_looks,
            )
            .await
            .map_err(|error| self.saved(error))?;
            // What the counting thread counted is kept in the ledger between polls; once it
            // stopped, shards it did not count (retries) are counted here, a couple of seconds
            // at a time.
            self.budget
                .estimate_shards_for(&self.ledger, &self.run_directory, ESTIMATING_BETWEEN_POLLS)
                .map_err(RunFailure::local)?;
            let (shards_waiting, _) = self.shards_waiting_and_running()?;
            poll_until_settled(
                client,
                &self.ledger,
                &self.run_directory,
                &self.events,
                schedule,
                self.planned_rows,
                BatchSlots {
                    max_live_batches: self.profile.max_live_batches,
                    shards_waiting,
                },
            )
            .await
            .map_err(|error| self.saved(error.into()))?;
            self.record_answers();
            // Before a retry shard's results are taken into its rows.
            self.recover_lost_results();
            // Each settled shard's transient failures are sent again at once, while other
            // batches still run.
            ingest_retry_results(&mut self.ledger, &self.run_directory)
                .map_err(RunFailure::local)?;
            let retry_shards = plan_retries(
                &self.job,
                &self.profile,
                &mut self.ledger,
                &self.run_directory,
            )
            .map_err(RunFailure::local)?;
            if retry_shards > 0 {
                self.events.emit(
                    Event::RetryPlanned {
                        shards: retry_shards,
                    },
                    || {
                        Some(format!(
                            "resending transiently failed requests in {retry_shards} retry shard(s)"
                        ))
                    },
                );
                continue;
            }
            let (waiting, running) = self.shards_waiting_and_running()?;
            if waiting || running {
                continue;
            }
            let progress = settle_adoptions(
                &self.job,
                &self.profile,
                &mut self.ledger,
                &self.run_directory,
                self.store.as_mut(),
                &self.run_directory.run_id(),
            )
            .map_err(|error| self.saved(error))?;
            if progress.shards_created > 0 {
                let (requests, shards) = (progress.sent, progress.shards_created);
                self.events.emit(Event::AdoptionSent { requests, shards }, || {
                    Some(format!(
                        "sending {requests} request(s) another run had in flight and stopped without answering, in {shards} shard(s)"
                    ))
                });
                continue;
            }
            if progress.waiting == 0 {
                break;
            }
            if last_waiting != Some(progress.waiting) {
                last_waiting = Some(progress.waiting);
                let runs: Vec<String> = progress.waiting_for.iter().cloned().collect();
                let waiting = progress.waiting;
                self.events.emit(
                    Event::AdoptionWaiting {
                        requests: waiting,
                        runs: runs.clone(),
                    },
                    || {
                        Some(format!(
                            "waiting for {waiting} answer(s) that another running run ({}) already pays for; stopping this run is safe (`dashbatch resume` picks up), and `--no-adopt` sends them instead next time",
                            runs.join(", ")
                        ))
                    },
                );
            }
            tokio::time::sleep(schedule.max_interval).await;
        }
        self.events.finish_progress();
        self.connection = Some(connection);
        Ok(())
    }

    /// Deletes the run's files at the provider (the job may keep them), once the output is
    /// written: the user has the table first. Whether none is left; a failure is said, and a
    /// resumed run deletes what is left.
    async fn delete_remote_files_after_output(&mut self) -> bool {
        let Some(connection) = &self.connection else {
            // This process made no call (a finished run joined again): nothing to delete.
            return true;
        };
        self.delete_remote_files_or_warn(&connection.client, "the output is written")
            .await
    }

    /// Deletes the remote files of every shard whose results are on disk (unless the job keeps
    /// them); whether none is left. A failure is said (after `done`, what came before), not the
    /// run's failure.
    async fn delete_remote_files_or_warn(
        &self,
        client: &crate::client::ApiClient,
        done: &str,
    ) -> bool {
        if !self.job.spec.batch.delete_remote_files.unwrap_or(true) {
            return true;
        }
        match delete_remote_files(client, &self.ledger, &self.events).await {
            Ok(()) => true,
            Err(error) => {
                let message = format!(
                    "{done}, but the run's files at the provider could not all be deleted ({error:#}); `dashbatch resume {}` deletes the rest",
                    self.run_directory.root.display()
                );
                self.events.emit(
                    Event::RemoteCleanupFailed {
                        message: message.clone(),
                    },
                    || Some(format!("warning: {message}")),
                );
                false
            }
        }
    }

    /// Records the answers of every shard downloaded since the last call in the answer store.
    /// The store only saves money later: a failure to write it is a warning, never the run's
    /// failure (the shards stay unmarked, so a resumed run records them).
    fn record_answers(&mut self) {
        if self.store.is_none() || self.options.rehearse {
            return;
        }
        let pricer = self.pricer();
        let Some(store) = self.store.as_mut() else {
            return;
        };
        let recording = AnswerRecording {
            job: &self.job,
            run_id: &self.run_directory.run_id(),
            provider_identity: &self.provider_identity,
            pricer: &pricer,
        };
        match recording.record_downloaded_shards(&self.ledger, &self.run_directory, store) {
            Ok(stored) => {
                for (shard, answers) in stored {
                    self.events
                        .emit(Event::AnswersStored { shard, answers }, || None);
                }
            }
            Err(error) => self.store_warning(&error),
        }
    }

    /// Takes the answers of shards whose output file can no longer be fetched from the answer
    /// store (see [`super::lost_results_recovery`]). Like recording, a store failure is a
    /// warning: the rows it would have answered say `results_unavailable`.
    fn recover_lost_results(&self) {
        let Some(store) = self.store.as_ref() else {
            return;
        };
        if self.options.rehearse {
            return;
        }
        if let Err(error) = super::lost_results_recovery::recover_lost_results(
            &self.ledger,
            &self.run_directory,
            store,
            &self.provider_identity,
            &self.events,
        ) {
            self.store_warning(&error);
        }
    }

    /// What the run's rows cost: the model's price at batch and realtime price.
    fn pricer(&self) -> RunPricer {
        RunPricer::new(
            self.prices.clone(),
            &self.job.spec.request.model,
            self.job.bills_thinking(),
        )
    }

    fn store_warning(&self, error: &anyhow::Error) {
        let message = format!(
            "the answer store could not be used ({error:#}); the run goes on, and its answers stay in `{}`",
            self.run_directory.root.display()
        );
        self.events.emit(
            Event::StoreWarning {
                message: message.clone(),
            },
            || Some(format!("warning: {message}")),
        );
    }

    /// Whether some shard still waits for submission (shards held back by the budget cap are
    /// not waiting: they will not be sent), and whether some shard's batch has not settled with
    /// its results on disk: one read of the shards.
    fn shards_waiting_and_running(&self) -> Result<(bool, bool), RunFailure> {
        let shards = self.ledger.shards().map_err(RunFailure::local)?;
        let waiting = shards.iter().any(|shard| {
            shard.batch_id.is_none() && !self.budget.skipped_shards().contains(&shard.shard_index)
        });
        let running = shards
            .iter()
            .any(|shard| shard.batch_id.is_some() && !shard.results_downloaded);
        Ok((waiting, running))
    }

    /// A failure while batches are out: a refusal or a signal says itself what to do; a run
    /// whose directory was deleted cannot be resumed; anything else can be.
    fn saved(&self, error: anyhow::Error) -> RunFailure {
        // Says itself what to do; a local problem (nothing of that shard was uploaded).
        if error
            .downcast_ref::<super::submit::ShardFileChanged>()
            .is_some()
        {
            return RunFailure::local(error);
        }
        if error
            .downcast_ref::<super::submit::ShardMadeElsewhere>()
            .is_some()
        {
            return RunFailure::damaged(error);
        }
        if crate::interrupt::is_interruption(&error)
            || error.downcast_ref::<ProviderRefusal>().is_some()
        {
            return RunFailure::remote(error);
        }
        if !Ledger::exists_in(&self.run_directory.root) {
            return RunFailure::remote(lost_run_directory(
                &error,
                &self.run_directory,
                &self.ledger,
            ));
        }
        RunFailure::remote(anyhow::anyhow!(
            "{error:#}\nThe run's state is saved; continue it with `dashbatch resume {}`",
            self.run_directory.root.display()
        ))
    }

    /// Joins every input row to its result, writes the output table and `report.json`, and
    /// marks the run finished (unless the budget cap held shards back).
    pub(super) async fn join_and_report(mut self) -> Result<RunOutcome, RunFailure> {
        // Answers downloaded by an earlier process that stopped before storing them.
        self.record_answers();
        // Answers whose output file the provider no longer serves, kept by the store.
        self.recover_lost_results();
        let pricer = self.pricer();
        let shards = self.ledger.shards().map_err(RunFailure::local)?;
        // What the wait, the downloads and their checks freed goes back before the join's
        // peak, which would otherwise come on top of it.
        crate::split_allocator::return_freed_memory();
        // The input is read again to join: it must still be the one planned (a part rewritten
        // with as many rows would otherwise be joined to another row's answer). It is hashed
        // while the rows are joined, and the output is put in place only once it passed.
        let input_check = self.input_check_before_joining();
        let progress = self.events.stage_progress("joining");
        let summary = join_results(
            &self.job,
            &self.profile,
            &self.run_directory,
            &self.ledger,
            &shards,
            &pricer,
            &self.output.path,
            self.output.format,
            self.budget.skipped_shards(),
            input_check,
            &|rows| progress.set_rows(rows),
        )
        .map_err(RunFailure::local)?;
        drop(progress);
        // The output is written: the provider's copies of the files can go now. A run whose
        // files are not all deleted stays unfinished, so a resumed run deletes the rest.
        let remote_files_deleted = self.delete_remote_files_after_output().await;
        // A run that stopped at its budget cap stays unfinished: run it again with a higher
        // `--max-cost` to submit the rest.
        if self.budget.skipped_shards().is_empty() {
            if remote_files_deleted {
                RunRecord::mark_finished(&self.ledger).map_err(RunFailure::local)?;
            }
            // Nothing of this run is in flight any more: runs waiting for its answers stop
            // waiting (and send what it did not answer).
            if let Some(store) = self.store.as_mut()
                && let Err(error) = store.withdraw_in_flight(&self.run_directory.run_id())
            {
                let error = anyhow::Error::new(error);
                self.store_warning(&error);
            }
        }
        let lost_results = shards
            .iter()
            .filter_map(|shard| {
                shard
                    .results_unavailable
                    .as_ref()
                    .map(|reason| LostResults {
                        shard_index: shard.shard_index,
                        batch_id: shard.batch_id.clone(),
                        completed_requests: shard.request_completed,
                        reason: reason.clone(),
                    })
            })
            .collect();
        let mut report = self.build_report(&pricer, summary, lost_results);
        attach_estimates(
            &mut report,
            &mut self.budget,
            &shards,
            &self.run_directory,
            &self.ledger,
        )
        .map_err(RunFailure::local)?;
        let report_json = serde_json::to_vec_pretty(&report).expect("report serialises");
        write_atomically(&self.run_directory.report_path(), &report_json).map_err(|error| {
            RunFailure::local(anyhow::anyhow!("cannot write the report: {error}"))
        })?;
        self.events
            .emit(Event::RunFinished(&report), || Some(report.summary()));
        self.say_if_stopped_by_budget(&report);
        let exit_code = if report.all_rows_ok() {
            exit::SUCCESS
        } else {
            exit::SOME_ROWS_FAILED
        };
        Ok(RunOutcome {
            report,
            exit_code,
            run_directory: self.run_directory.root.clone(),
        })
    }

    fn say_if_stopped_by_budget(&self, report: &RunReport) {
        let Some(budget_report) = report
            .budget
            .as_ref()
            .filter(|budget| !budget.shards_not_submitted.is_empty())
        else {
            return;
        };
        self.events.emit(
            Event::BudgetStopped {
                shards_not_submitted: &budget_report.shards_not_submitted,
                rows_not_submitted: budget_report.rows_not_submitted,
            },
            || {
                Some(format!(
                    "the run stopped at its budget cap and is not finished: {} row(s) were not submitted. To submit them, \
                     raise the cap: `dashbatch run {} --run-dir {} --max-cost AMOUNT`",
                    budget_report.rows_not_submitted,
                    self.job.job_file.display(),
                    self.run_directory.root.display()
                ))
            },
        );
    }

    fn build_report(
        &self,
        pricer: &RunPricer,
        summary: JoinSummary,
        lost_results: Vec<LostResults>,
    ) -> RunReport {
        let saving = match (summary.cost.total, summary.realtime_cost.total) {
            (Some(batch), Some(realtime)) => Some(
                crate::pricing::Money::from_femto_units(
                    realtime.femto_units() - batch.femto_units(),
                    batch.currency(),
                )
                .to_decimal_string(),
            ),
            _ => None,
        };
        let reuse = super::report::ReuseReport {
            answer_store: self
                .store
                .as_ref()
                .map(|store| store.path().display().to_string()),
            requests_sent: summary.rows_sent,
            rows_from_store: summary.rows_from_store,
            rows_deduplicated: summary.rows_deduplicated,
            rows_adopted: summary.rows_adopted,
            saved: summary
                .reuse_saved
                .total
                .map(|money| money.to_decimal_string()),
        };
        RunReport {
            reuse,
            job: self.job.name.clone(),
            run_id: self.run_directory.run_id(),
            provider: self.options.provider.to_string(),
            model: self.job.spec.request.model.clone(),
            input: self.job.input_path.display().to_string(),
            output: self.output.path.display().to_string(),
            rows: summary.rows,
            rows_by_status: summary.rows_by_status,
            rows_without_usage: summary.rows_without_usage,
            output_texts_cut: summary.output_texts_cut,
            tokens: summary.tokens,
            currency: pricer.currency().map(|currency| currency.code().to_owned()),
            cost: summary.cost.total.map(|money| money.to_decimal_string()),
            realtime_cost: summary
                .realtime_cost
                .total
                .map(|money| money.to_decimal_string()),
            saving,
            price_table_as_of: pricer.table().as_of().to_owned(),
            price: pricer
                .model_price()
                .map(|price| super::report::PriceEntryReport::new(pricer.table(), price)),
            lost_results,
            tokens_counted_with: None,
            estimate_vs_actual: None,
            budget: None,
            shards: summary.shards,
            cost_money: summary.cost.total,
            run_directory: self.run_directory.root.display().to_string(),
        }
    }
}

/// The run's answer store, opened (created when missing) before anything is spent, and the
/// choice to record in a new run's founding. A store the user named (flag, environment or job
/// file) that cannot be opened stops a new run before anything is spent; the default store, or
/// the store of a run being resumed, that cannot be opened is a warning, and the run goes on
/// without one. A rehearsal has none: its answers are not the model's.
fn open_answer_store(
    job: &Job,
    options: &RunOptions,
    output: &std::path::Path,
    recorded: Option<Option<std::path::PathBuf>>,
    resuming: bool,
    events: &EventSink,
) -> Result<(Option<AnswerStore>, Option<std::path::PathBuf>), RunFailure> {
    if options.rehearse {
        return Ok((None, None));
    }
    let choice = crate::store_location::choose_store(options.no_store, recorded, &job.answer_store);
    let Some(path) = choice.path else {
        return Ok((None, None));
    };
    let path = std::path::absolute(&path).unwrap_or(path);
    let clash = if same_file(&path, output) {
        Some("the run's output")
    } else if same_file(&path, &job.input_path)
        || crate::table::is_within_input(&path, &job.input_path)
    {
        Some("the job's input")
    } else if same_file(&path, &job.job_file) {
        Some("the job file")
    } else {
        None
    };
    if let Some(what) = clash {
        return Err(RunFailure::local(anyhow::anyhow!(
            "the answer store `{}` (chosen by {}) is {what}; writing either would destroy the other. Point `DASHBATCH_STORE` or `[reuse] store` at a file of its own",
            path.display(),
            choice.source
        )));
    }
    match AnswerStore::open(&path) {
        Ok(store) => Ok((Some(store), Some(path))),
        Err(error) if resuming || choice.source == crate::settings::SettingSource::Default => {
            let message = if resuming {
                format!(
                    "{error}; the run goes on without its answer store (its answers are kept in the run directory)"
                )
            } else {
                format!(
                    "{error}; the run goes on without an answer store (name one with `DASHBATCH_STORE` or `[reuse] store`)"
                )
            };
            events.emit(
                Event::StoreWarning {
                    message: message.clone(),
                },
                || Some(format!("warning: {message}")),
            );
            Ok((None, None))
        }
        Err(error) => Err(RunFailure::local(anyhow::anyhow!(
            "{error} (chosen by {})",
            choice.source
        ))),
    }
}

fn require_api_key(profile: &ProviderProfile) -> Result<(), RunFailure> {
    let variable = profile.api_key_variable;
    let key = std::env::var(variable).unwrap_or_default();
    if key.trim().is_empty() {
        return Err(RunFailure::local(anyhow::anyhow!(
            "`{variable}` is not set; export your API key in it (dashbatch reads the key only from the environment), or use `--provider sim` to try a job without a key"
        )));
    }
    super::connection::check_api_key(variable, key)?;
    Ok(())
}

/// A resumed run must be continued with the job, kind and provider it was started with.
fn verify_same_run(
    founding: &RunFounding,
    job: &Job,
    options: &RunOptions,
    run_directory: &RunDirectory,
) -> Result<(), RunFailure> {
    let root = run_directory.root.display();
    if founding.job_sha256 != job.job_file_sha256 {
        return Err(RunFailure::local(anyhow::anyhow!(
            "job file `{}` changed since run `{root}` started; resuming would mix two jobs. Restore the job file, or start a new run with another `--run-dir`",
            job.job_file.display()
        )));
    }
    if founding.rehearsal != options.rehearse {
        return Err(RunFailure::local(anyhow::anyhow!(
            "run `{root}` is {} rehearsal; resume it {} `--rehearse`, or start a new run",
            if options.rehearse { "not a" } else { "a" },
            if options.rehearse { "without" } else { "with" }
        )));
    }
    if founding.provider != options.provider {
        return Err(RunFailure::local(anyhow::anyhow!(
            "run `{root}` was started with provider `{}`, not `{}`; resume it with the same provider",
            founding.provider,
            options.provider
        )));
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes)?;
    std::fs::File::open(&partial)?.sync_all()?;
    crate::ledger::restrict_permissions(&partial);
    std::fs::rename(partial, path)
}

/// The failure of a run whose directory (with its ledger) was deleted under it: nothing can
/// resume it, so say which batches exist at the provider (the ledger, still open though
/// unlinked, can tell) instead of claiming the state is saved.
fn lost_run_directory(
    error: &anyhow::Error,
    run_directory: &RunDirectory,
    ledger: &Ledger,
) -> anyhow::Error {
    let batches: Vec<String> = ledger
        .shards()
        .map(|shards| {
            shards
                .into_iter()
                .filter_map(|shard| shard.batch_id)
                .collect()
        })
        .unwrap_or_default();
    anyhow::anyhow!(
        "{error:#}\nThe run directory `{}` and its ledger were deleted while the run was live, so this run cannot be resumed. Its batches at the provider ({}) keep running and are billed for what they answer; fetch their results with the provider's console or API, or cancel them there. Do not start the job again unless you mean to pay for it again.",
        run_directory.root.display(),
        if batches.is_empty() {
            "none recorded".to_owned()
        } else {
            batches
                .iter()
                .map(|id| format!("`{id}`"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    )
}

/// The path, size and modification time of each part of an input (of the one file, for an
/// input that is one), in order; `None` when they cannot all be read. Planning compares them
/// before and after, when it hashes the input in a pass of its own.
fn input_parts_stamp(
    path: &std::path::Path,
) -> Option<Vec<(std::path::PathBuf, u64, std::time::SystemTime)>> {
    let files = crate::table::find_input_files(path).ok()?;
    files
        .parts
        .into_iter()
        .map(|part| {
            let metadata = std::fs::metadata(&part).ok()?;
            let modified = metadata.modified().ok()?;
            Some((part, metadata.len(), modified))
        })
        .collect()
}

/// The size and modification time of an input that is one regular file; `None` for a
/// partitioned input (its parts are hashed every time).
fn input_file_stamp(path: &std::path::Path) -> Option<(u64, std::time::SystemTime)> {
    let metadata = std::fs::metadata(path).ok()?;
    if !metadata.is_file() {
        return None;
    }
    Some((metadata.len(), metadata.modified().ok()?))
}
