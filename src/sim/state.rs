//! The simulated provider's state: stored files, batches and their bills, the id sequence, the
//! fault plan and the call counters, and every operation the routes perform on them.
//!
//! All state operations are synchronous and run on tokio's blocking pool under one lock
//! ([`SimState::run`]); before each operation every unfinished batch is advanced to the current
//! simulated time, and after it the state is saved when it changed (see [`super::persist`]).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api_error::ApiFailure;
use super::clock::{SimulatedClock, whole_seconds};
use super::config::{SimConfig, SimFlavour};
use super::expiry;
use super::faults::{FaultPlan, RouteFaultKind, RouteName};
use super::ids::{base62_text, digest_of_parts, hex_text, uuid_text};
use super::input_lines::RequestLineReader;
use super::ledger::{LedgerBatch, SimLedger, SimRequestCounts};
use super::lifecycle::{
    BatchEnvironment, BatchRecord, BatchResults, BatchStage, UnprocessedLines, advance_batch,
};
use super::listing::{BatchListQuery, FileListQuery, list_answer, page_of};
use super::persist::{
    CONTROL_DOCUMENT, FileSink, FileStore, ReceivedUpload, StateDirectory, WORLD_DOCUMENT,
};
use super::results::write_results;
use super::validation::{InputValidation, validate_input};
use crate::wire::{Batch, CreateBatchRequest, FileDeleted, FileObject};

/// The state behind a simulator; shared by its routes.
pub type SharedSimState = Arc<SimState>;

/// See the module documentation.
#[derive(Debug)]
pub struct SimState {
    pub(crate) config: SimConfig,
    pub(crate) clock: SimulatedClock,
    pub(crate) store: FileStore,
    state_directory: Option<StateDirectory>,
    world: Mutex<World>,
    control: Mutex<Control>,
    /// Counts HTTP answers, for OpenAI's `x-request-id` header.
    http_requests: AtomicU64,
    /// The simulated time this process started at, so request ids differ across restarts.
    started_at: f64,
}

/// Files, batches and ids: saved to `world.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct World {
    files: Vec<FileRecord>,
    batches: Vec<BatchRecord>,
    ids: IdSequence,
    uploads: u64,
    uploads_per_sha256: BTreeMap<String, u64>,
    files_deleted: u64,
    last_simulated_now: f64,
    #[serde(skip)]
    changed: bool,
    /// Bytes to drop once the world that no longer refers to them is saved.
    #[serde(skip)]
    bytes_to_remove: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileRecord {
    object: FileObject,
    sha256: String,
    deleted: bool,
    bytes_removed: bool,
}

/// Counter behind every generated id.
#[derive(Debug, Default, Serialize, Deserialize)]
struct IdSequence {
    next_number: u64,
}

impl IdSequence {
    fn next_digest(&mut self, seed: u64, kind: &str) -> [u8; 32] {
        self.next_number += 1;
        digest_of_parts(&[
            &seed.to_le_bytes(),
            kind.as_bytes(),
            &self.next_number.to_le_bytes(),
        ])
    }

    fn input_file_id(&mut self, seed: u64, flavour: SimFlavour) -> String {
        let digest = self.next_digest(seed, "file");
        match flavour {
            SimFlavour::Dashscope => format!("file-batch-{}", hex_text(&digest, 24)),
            SimFlavour::Openai => format!("file-{}", base62_text(&digest, 22)),
        }
    }

    fn result_file_id(&mut self, seed: u64, flavour: SimFlavour) -> String {
        let digest = self.next_digest(seed, "result-file");
        match flavour {
            // DashScope's error files use this prefix too.
            SimFlavour::Dashscope => format!("file-batch_output-{}", hex_text(&digest, 24)),
            SimFlavour::Openai => format!("file-{}", base62_text(&digest, 22)),
        }
    }

    fn batch_id(&mut self, seed: u64, flavour: SimFlavour) -> String {
        let digest = self.next_digest(seed, "batch");
        match flavour {
            SimFlavour::Dashscope => format!("batch_{}", uuid_text(&digest)),
            SimFlavour::Openai => format!("batch_{}", hex_text(&digest, 32)),
        }
    }
}

/// Fault plan and counters: saved to `control.json` on every call.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Control {
    plan: FaultPlan,
    calls: BTreeMap<RouteName, u64>,
    calls_since_plan: BTreeMap<RouteName, u64>,
    /// Batches that existed when the plan was set (so `nth_batch` counts from the plan).
    batches_before_plan: u64,
    last_simulated_now: f64,
}

impl SimState {
    /// Builds the state, loading it from `config.state_dir` when that holds a saved state. A
    /// non-empty `config.faults` replaces a saved fault plan; an empty one keeps it.
    pub fn open(config: SimConfig) -> io::Result<SharedSimState> {
        let (state_directory, store, world, saved_control) = match &config.state_dir {
            Some(root) => {
                let directory = StateDirectory::open(root)?;
                let store = FileStore::in_directory(&directory);
                let world: World = directory.load(WORLD_DOCUMENT)?.unwrap_or_default();
                let control: Option<Control> = directory.load(CONTROL_DOCUMENT)?;
                remove_orphan_bytes(&store, &world)?;
                (Some(directory), store, world, control)
            }
            None => (None, FileStore::in_memory(), World::default(), None),
        };
        let batch_count = world.batches.len() as u64;
        let control = match saved_control {
            Some(saved) if config.faults == FaultPlan::default() => saved,
            Some(saved) => Control {
                plan: config.faults.clone(),
                calls_since_plan: BTreeMap::new(),
                batches_before_plan: batch_count,
                ..saved
            },
            None => Control {
                plan: config.faults.clone(),
                batches_before_plan: batch_count,
                ..Control::default()
            },
        };
        let resume_at = world.last_simulated_now.max(control.last_simulated_now);
        let clock = SimulatedClock::starting_at(resume_at, config.time_scale);
        let started_at = clock.now();
        Ok(Arc::new(SimState {
            config,
            clock,
            store,
            state_directory,
            world: Mutex::new(world),
            control: Mutex::new(control),
            http_requests: AtomicU64::new(0),
            started_at,
        }))
    }

    pub(crate) fn flavour(&self) -> SimFlavour {
        self.config.flavour
    }

    fn lock_world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a state operation on the blocking pool.
    pub(crate) async fn run<T, F>(self: &Arc<Self>, operation: F) -> T
    where
        F: FnOnce(&mut Operation<'_>) -> T + Send + 'static,
        T: Send + 'static,
    {
        let state = Arc::clone(self);
        tokio::task::spawn_blocking(move || state.run_blocking(operation))
            .await
            .expect("a simulator operation panicked")
    }

    /// Runs a state operation on this thread: advance every batch, operate, save if changed.
    pub(crate) fn run_blocking<T>(&self, operation: impl FnOnce(&mut Operation<'_>) -> T) -> T {
        let mut world = self.lock_world();
        let now = self.clock.now();
        let mut step = Operation {
            state: self,
            world: &mut world,
            now,
        };
        step.advance_every_batch();
        let result = operation(&mut step);
        self.save_world(&mut world, now);
        result
    }

    fn save_world(&self, world: &mut World, now: f64) {
        if world.changed {
            world.last_simulated_now = world.last_simulated_now.max(now);
            if let Some(directory) = &self.state_directory
                && let Err(error) = directory.save(WORLD_DOCUMENT, &*world, true)
            {
                eprintln!("dashbatch simulator: failed to save its state: {error}");
                return;
            }
            world.changed = false;
        }
        for id in std::mem::take(&mut world.bytes_to_remove) {
            if let Err(error) = self.store.remove(&id) {
                eprintln!("dashbatch simulator: failed to remove the bytes of `{id}`: {error}");
            }
        }
    }

    fn save_control(&self, control: &mut Control) {
        control.last_simulated_now = control.last_simulated_now.max(self.clock.now());
        if let Some(directory) = &self.state_directory
            && let Err(error) = directory.save(CONTROL_DOCUMENT, &*control, false)
        {
            eprintln!("dashbatch simulator: failed to save its call counters: {error}");
        }
    }

    /// Counts a call; returns its 1-based number since the fault plan was set, and its fault.
    pub(crate) fn record_call(&self, route: RouteName) -> Option<RouteFaultKind> {
        let mut control = self.lock_control();
        *control.calls.entry(route).or_default() += 1;
        let since_plan = control.calls_since_plan.entry(route).or_default();
        *since_plan += 1;
        let nth = *since_plan;
        let fault = control.plan.route_fault(route, nth).cloned();
        self.save_control(&mut control);
        fault
    }

    /// The `x-request-id` of the next API answer: `req_` and 32 hex digits on OpenAI (a function
    /// of the seed, of when this process started and of the answer's order), none on DashScope,
    /// whose headers the reference does not record.
    pub(crate) fn next_http_request_id(&self) -> Option<String> {
        if self.flavour() != SimFlavour::Openai {
            return None;
        }
        let number = self.http_requests.fetch_add(1, Ordering::Relaxed) + 1;
        let digest = digest_of_parts(&[
            &self.config.seed.to_le_bytes(),
            b"http-request",
            &self.started_at.to_le_bytes(),
            &number.to_le_bytes(),
        ]);
        Some(format!("req_{}", hex_text(&digest, 32)))
    }

    pub fn fault_plan(&self) -> FaultPlan {
        self.lock_control().plan.clone()
    }

    /// Replaces the fault plan and restarts the counts its rules refer to.
    pub fn set_fault_plan(&self, plan: FaultPlan) -> Result<(), String> {
        plan.check()?;
        let batch_count = self.lock_world().batches.len() as u64;
        let mut control = self.lock_control();
        control.plan = plan;
        control.calls_since_plan.clear();
        control.batches_before_plan = batch_count;
        self.save_control(&mut control);
        Ok(())
    }

    pub fn request_counts(&self) -> SimRequestCounts {
        let control = self.lock_control();
        let with_every_route = |counts: &BTreeMap<RouteName, u64>| {
            RouteName::ALL
                .iter()
                .map(|route| (*route, counts.get(route).copied().unwrap_or(0)))
                .collect()
        };
        SimRequestCounts {
            calls: with_every_route(&control.calls),
            calls_since_fault_plan: with_every_route(&control.calls_since_plan),
        }
    }

    /// The ledger at the current simulated time (advances batches first). Blocking: from async
    /// code use [`super::SimHandle::ledger`] or `GET /_sim/ledger`.
    pub fn ledger_now(&self) -> SimLedger {
        self.run_blocking(|step| step.ledger())
    }

    /// Moves simulated time forward.
    pub fn advance_clock(&self, seconds: f64) {
        self.clock.advance(seconds);
        let mut control = self.lock_control();
        self.save_control(&mut control);
    }

    pub fn set_time_scale(&self, time_scale: f64) {
        self.clock.set_time_scale(time_scale);
    }

    pub fn simulated_now(&self) -> f64 {
        self.clock.now()
    }

    pub fn time_scale(&self) -> f64 {
        self.clock.time_scale()
    }

    /// Saves everything (used at shutdown; every change is saved as it happens anyway).
    pub(crate) fn flush(&self) {
        let mut world = self.lock_world();
        world.changed = true;
        let now = self.clock.now();
        self.save_world(&mut world, now);
        let mut control = self.lock_control();
        self.save_control(&mut control);
    }
}

/// Removes stored bytes that no file record refers to (left by a crash between writing bytes and
/// saving the world).
fn remove_orphan_bytes(store: &FileStore, world: &World) -> io::Result<()> {
    let referenced: std::collections::HashSet<&str> = world
        .files
        .iter()
        .filter(|file| !file.bytes_removed)
        .map(|file| file.object.id.as_str())
        .collect();
    for id in store.stored_ids()? {
        if !referenced.contains(id.as_str()) {
            store.remove(&id)?;
        }
    }
    Ok(())
}

/// One state operation: the state, the locked world and the simulated time it runs at.
pub(crate) struct Operation<'operation> {
    state: &'operation SimState,
    world: &'operation mut World,
    now: f64,
}

/// The environment batches advance in: the file store, and the world's files and ids.
struct WorldBatchEnvironment<'world> {
    store: &'world FileStore,
    seed: u64,
    flavour: SimFlavour,
    files: &'world mut Vec<FileRecord>,
    ids: &'world mut IdSequence,
}

impl WorldBatchEnvironment<'_> {
    fn store_result_file(
        &mut self,
        sink: FileSink,
        batch: &BatchRecord,
        kind: &str,
        ended_at: f64,
    ) -> io::Result<String> {
        let id = self.ids.result_file_id(self.seed, self.flavour);
        let committed = self.store.commit_sink(sink, &id)?;
        let created_at = whole_seconds(ended_at);
        self.files.push(FileRecord {
            object: FileObject {
                id: id.clone(),
                object: "file".to_owned(),
                bytes: committed.bytes,
                created_at,
                filename: format!("{}_{kind}.jsonl", batch.id),
                purpose: "batch_output".to_owned(),
                status: Some("processed".to_owned()),
                expires_at: (self.flavour == SimFlavour::Openai)
                    .then(|| expiry::expires_at(created_at, batch.output_expires_after_seconds)),
                status_details: None,
            },
            sha256: committed.sha256,
            deleted: false,
            bytes_removed: false,
        });
        Ok(id)
    }
}

impl BatchEnvironment for WorldBatchEnvironment<'_> {
    fn seed(&self) -> u64 {
        self.seed
    }

    fn validate(&mut self, batch: &BatchRecord) -> io::Result<Option<InputValidation>> {
        let file_bytes = self
            .files
            .iter()
            .find(|file| file.object.id == batch.input_file_id)
            .map_or(0, |file| file.object.bytes);
        match self.store.open_source(&batch.input_file_id) {
            Ok(mut source) => {
                validate_input(&mut *source, file_bytes, &batch.endpoint, self.flavour).map(Some)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn write_results(
        &mut self,
        batch: &BatchRecord,
        processed: u64,
        unprocessed: UnprocessedLines,
        ended_at: f64,
    ) -> io::Result<BatchResults> {
        let written = write_results(
            self.store,
            self.seed,
            self.flavour,
            batch,
            processed,
            unprocessed,
            ended_at,
        )?;
        let output_file_id = match written.output {
            Some(sink) => Some(self.store_result_file(sink, batch, "output", ended_at)?),
            None => None,
        };
        let error_file_id = match written.errors {
            Some(sink) => Some(self.store_result_file(sink, batch, "error", ended_at)?),
            None => None,
        };
        Ok(BatchResults {
            output_file_id,
            error_file_id,
            counts: written.counts,
            billed: written.billed,
        })
    }
}

impl Operation<'_> {
    fn seed(&self) -> u64 {
        self.state.config.seed
    }

    fn flavour(&self) -> SimFlavour {
        self.state.config.flavour
    }

    /// Replays every due transition of every unfinished batch, then frees the bytes of deleted
    /// files no unfinished batch needs any more.
    fn advance_every_batch(&mut self) {
        let now = self.now;
        let World {
            files,
            batches,
            ids,
            changed,
            bytes_to_remove,
            ..
        } = &mut *self.world;
        let mut environment = WorldBatchEnvironment {
            store: &self.state.store,
            seed: self.state.config.seed,
            flavour: self.state.config.flavour,
            files,
            ids,
        };
        for batch in batches
            .iter_mut()
            .filter(|batch| !batch.stage.is_terminal())
        {
            match advance_batch(batch, now, &mut environment) {
                Ok(true) => *changed = true,
                Ok(false) => {}
                Err(error) => eprintln!(
                    "dashbatch simulator: batch `{}` could not advance: {error}",
                    batch.id
                ),
            }
        }
        for file in files
            .iter_mut()
            .filter(|file| file.deleted && !file.bytes_removed)
        {
            let needed = batches
                .iter()
                .any(|batch| !batch.stage.is_terminal() && batch.input_file_id == file.object.id);
            if !needed {
                file.bytes_removed = true;
                bytes_to_remove.push(file.object.id.clone());
                *changed = true;
            }
        }
    }

    fn live_file(&self, id: &str) -> Result<&FileRecord, ApiFailure> {
        self.world
            .files
            .iter()
            .find(|file| file.object.id == id && !file.deleted)
            .ok_or_else(|| ApiFailure::not_found(format!("No such File object: {id}")))
    }

    fn batch_position(&self, id: &str) -> Result<usize, ApiFailure> {
        self.world
            .batches
            .iter()
            .position(|batch| batch.id == id)
            .ok_or_else(|| ApiFailure::not_found(format!("No batch found with id '{id}'.")))
    }

    pub(crate) fn commit_upload(
        &mut self,
        upload: ReceivedUpload,
        filename: String,
        expires_after_seconds: Option<i64>,
    ) -> Result<FileObject, ApiFailure> {
        let (seed, flavour) = (self.seed(), self.flavour());
        let id = self.world.ids.input_file_id(seed, flavour);
        let committed = self.state.store.commit_upload(upload, &id)?;
        let created_at = whole_seconds(self.now);
        let object = FileObject {
            id,
            object: "file".to_owned(),
            bytes: committed.bytes,
            created_at,
            filename,
            purpose: "batch".to_owned(),
            status: Some("processed".to_owned()),
            expires_at: (flavour == SimFlavour::Openai)
                .then(|| expiry::expires_at(created_at, expires_after_seconds)),
            status_details: None,
        };
        self.world.uploads += 1;
        *self
            .world
            .uploads_per_sha256
            .entry(committed.sha256.clone())
            .or_default() += 1;
        self.world.files.push(FileRecord {
            object: object.clone(),
            sha256: committed.sha256,
            deleted: false,
            bytes_removed: false,
        });
        self.world.changed = true;
        Ok(file_answer(&object, flavour))
    }

    pub(crate) fn get_file(&self, id: &str) -> Result<FileObject, ApiFailure> {
        let flavour = self.flavour();
        self.live_file(id)
            .map(|file| file_answer(&file.object, flavour))
    }

    pub(crate) fn list_files(&self, query: &FileListQuery) -> Value {
        let mut files: Vec<FileObject> = self
            .world
            .files
            .iter()
            .filter(|file| !file.deleted)
            .filter(|file| {
                query
                    .purpose
                    .as_ref()
                    .is_none_or(|purpose| &file.object.purpose == purpose)
            })
            .filter(|file| {
                query
                    .created_after
                    .is_none_or(|after| file.object.created_at >= after)
            })
            .filter(|file| {
                query
                    .created_before
                    .is_none_or(|before| file.object.created_at <= before)
            })
            .map(|file| file_answer(&file.object, self.flavour()))
            .collect();
        if !query.oldest_first {
            files.reverse();
        }
        let (page, has_more) = page_of(
            files,
            |file| file.id.as_str(),
            query.after.as_deref(),
            query.limit,
        );
        let ids = first_and_last_ids(&page, |file| &file.id);
        let flavour = self.flavour();
        list_answer(page, has_more, ids, flavour, flavour == SimFlavour::Openai)
    }

    /// Checks that a file's content may be downloaded.
    pub(crate) fn check_download(&self, id: &str) -> Result<(), ApiFailure> {
        self.live_file(id)?;
        if self.flavour() == SimFlavour::Dashscope && !id.starts_with("file-batch_output") {
            return Err(ApiFailure::forbidden(
                "file_not_downloadable",
                "Only files whose file_id starts with file-batch_output can be downloaded.",
            ));
        }
        Ok(())
    }

    pub(crate) fn delete_file(&mut self, id: &str) -> Result<FileDeleted, ApiFailure> {
        self.live_file(id)?;
        let needed = self
            .world
            .batches
            .iter()
            .any(|batch| !batch.stage.is_terminal() && batch.input_file_id == id);
        let file = self
            .world
            .files
            .iter_mut()
            .find(|file| file.object.id == id && !file.deleted)
            .expect("checked above");
        file.deleted = true;
        if !needed {
            file.bytes_removed = true;
            self.world.bytes_to_remove.push(id.to_owned());
        }
        self.world.files_deleted += 1;
        self.world.changed = true;
        Ok(FileDeleted {
            id: id.to_owned(),
            object: "file".to_owned(),
            deleted: true,
        })
    }

    /// Creates a batch; `output_expires_after_seconds` is OpenAI's `output_expires_after`.
    pub(crate) fn create_batch(
        &mut self,
        request: CreateBatchRequest,
        output_expires_after_seconds: Option<i64>,
    ) -> Result<Batch, ApiFailure> {
        let flavour = self.flavour();
        if !flavour
            .batch_endpoints()
            .contains(&request.endpoint.as_str())
        {
            return Err(ApiFailure::bad_request(
                "invalid_value",
                format!(
                    "Invalid value for 'endpoint': '{}'. Supported values are: {}.",
                    request.endpoint,
                    flavour.batch_endpoints().join(", ")
                ),
            )
            .with_param("endpoint"));
        }
        let window_seconds = flavour
            .completion_window_seconds(&request.completion_window)
            .map_err(|message| {
                ApiFailure::bad_request("invalid_value", message).with_param("completion_window")
            })?;
        check_metadata(flavour, request.metadata.as_ref())?;
        let input = self.live_file(&request.input_file_id)?;
        if input.object.purpose != "batch" {
            return Err(ApiFailure::bad_request(
                "invalid_input_file",
                format!(
                    "The file '{}' has purpose '{}'; a batch needs a file uploaded with purpose 'batch'.",
                    request.input_file_id, input.object.purpose
                ),
            )
            .with_param("input_file_id"));
        }
        let input_sha256 = input.sha256.clone();
        let model = match flavour {
            SimFlavour::Openai => self.peek_model(&request.input_file_id),
            SimFlavour::Dashscope => None,
        };
        let (plan, batches_before_plan) = {
            let control = self.state.lock_control();
            (control.plan.clone(), control.batches_before_plan)
        };
        let creation_order = self.world.batches.len() as u64 + 1;
        let behaviours =
            plan.behaviours_for_batch(creation_order.saturating_sub(batches_before_plan));
        let id = self.world.ids.batch_id(self.seed(), flavour);
        let batch = BatchRecord {
            id,
            creation_order,
            input_file_id: request.input_file_id,
            input_sha256,
            endpoint: request.endpoint,
            completion_window: request.completion_window,
            window_seconds: window_seconds as f64,
            metadata: request.metadata,
            output_expires_after_seconds,
            created_at: self.now,
            behaviours,
            stage: BatchStage::Validating,
            model,
            request_count: 0,
            processing_started_at: None,
            line_fates: BTreeMap::new(),
            cancel_requested_at: None,
            finalizing_started_at: None,
            ended_at: None,
            errors: Vec::new(),
            output_file_id: None,
            error_file_id: None,
            final_counts: None,
            billed: Vec::new(),
        };
        let answer = batch.to_wire(self.now, flavour, self.seed());
        self.world.batches.push(batch);
        self.world.changed = true;
        Ok(answer)
    }

    /// The model of the first line of a file (OpenAI shows it on the batch from the start).
    fn peek_model(&self, file_id: &str) -> Option<String> {
        let mut source = self.state.store.open_source(file_id).ok()?;
        let line = RequestLineReader::starting_at(&mut *source, 0, 0)
            .ok()?
            .next_line()
            .ok()??;
        let value: Value = serde_json::from_slice(&line.bytes).ok()?;
        value.get("body")?.get("model")?.as_str().map(str::to_owned)
    }

    pub(crate) fn get_batch(&self, id: &str) -> Result<Batch, ApiFailure> {
        let position = self.batch_position(id)?;
        Ok(self.world.batches[position].to_wire(self.now, self.flavour(), self.seed()))
    }

    pub(crate) fn list_batches(&self, query: &BatchListQuery) -> Value {
        let (now, flavour, seed) = (self.now, self.flavour(), self.seed());
        let batches: Vec<Batch> = self
            .world
            .batches
            .iter()
            .rev()
            .filter(|batch| {
                query.ds_name.as_ref().is_none_or(|wanted| {
                    batch
                        .metadata
                        .as_ref()
                        .and_then(|metadata| metadata.get("ds_name"))
                        .is_some_and(|name| name.to_lowercase().contains(&wanted.to_lowercase()))
                })
            })
            .filter(|batch| {
                query
                    .input_file_ids
                    .as_ref()
                    .is_none_or(|ids| ids.contains(&batch.input_file_id))
            })
            .filter(|batch| {
                query
                    .statuses
                    .as_ref()
                    .is_none_or(|statuses| statuses.contains(&batch.stage.status()))
            })
            .filter(|batch| {
                query
                    .created_after
                    .is_none_or(|after| whole_seconds(batch.created_at) >= after)
            })
            .filter(|batch| {
                query
                    .created_before
                    .is_none_or(|before| whole_seconds(batch.created_at) <= before)
            })
            .map(|batch| batch.to_wire(now, flavour, seed))
            .collect();
        let (page, has_more) = page_of(
            batches,
            |batch| batch.id.as_str(),
            query.after.as_deref(),
            query.limit,
        );
        let ids = first_and_last_ids(&page, |batch| &batch.id);
        list_answer(page, has_more, ids, flavour, true)
    }

    pub(crate) fn cancel_batch(&mut self, id: &str) -> Result<Batch, ApiFailure> {
        let position = self.batch_position(id)?;
        let (now, flavour, seed) = (self.now, self.flavour(), self.seed());
        let batch = &mut self.world.batches[position];
        match batch.stage {
            BatchStage::Validating | BatchStage::InProgress => {
                batch.stage = BatchStage::Cancelling;
                batch.cancel_requested_at = Some(now);
                self.world.changed = true;
            }
            BatchStage::Cancelling => {}
            BatchStage::Finalizing
            | BatchStage::Completed
            | BatchStage::Failed
            | BatchStage::Expired
            | BatchStage::Cancelled => {
                return Err(ApiFailure::conflict(
                    "invalid_state",
                    format!(
                        "Cannot cancel a batch with status '{}'.",
                        batch.stage.status().as_str()
                    ),
                ));
            }
        }
        Ok(self.world.batches[position].to_wire(now, flavour, seed))
    }

    pub(crate) fn ledger(&self) -> SimLedger {
        let mut ledger = SimLedger {
            uploads: self.world.uploads,
            uploads_per_sha256: self.world.uploads_per_sha256.clone(),
            files_deleted: self.world.files_deleted,
            ..SimLedger::default()
        };
        for batch in &self.world.batches {
            ledger.batches.push(LedgerBatch {
                id: batch.id.clone(),
                input_file_id: batch.input_file_id.clone(),
                input_sha256: batch.input_sha256.clone(),
                metadata: batch.metadata.clone(),
                status: batch.stage.status().as_str().to_owned(),
                created_order: batch.creation_order,
            });
            *ledger
                .batches_per_input_file
                .entry(batch.input_file_id.clone())
                .or_default() += 1;
            *ledger
                .batches_per_input_sha256
                .entry(batch.input_sha256.clone())
                .or_default() += 1;
            ledger.add_bills(&batch.billed);
        }
        ledger
    }
}

/// A file object as the flavour shows it: OpenAI sends `"status_details": null` (reference §8.2,
/// the SDK's `FileObject`); live DashScope omits the key (§2.1).
fn file_answer(object: &FileObject, flavour: SimFlavour) -> FileObject {
    let mut shown = object.clone();
    shown.status_details = match flavour {
        SimFlavour::Openai => Some(Value::Null),
        SimFlavour::Dashscope => None,
    };
    shown
}

fn first_and_last_ids<T>(page: &[T], id_of: impl Fn(&T) -> &String) -> Option<(String, String)> {
    Some((id_of(page.first()?).clone(), id_of(page.last()?).clone()))
}

fn check_metadata(
    flavour: SimFlavour,
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<(), ApiFailure> {
    let Some(metadata) = metadata else {
        return Ok(());
    };
    let refuse = |message: String| {
        Err(ApiFailure::bad_request("invalid_value", message).with_param("metadata"))
    };
    match flavour {
        SimFlavour::Openai => {
            if metadata.len() > 16 {
                return refuse(format!(
                    "'metadata' may have at most 16 pairs, got {}.",
                    metadata.len()
                ));
            }
            for (key, value) in metadata {
                if key.chars().count() > 64 {
                    return refuse(format!(
                        "metadata key '{key}' is longer than 64 characters."
                    ));
                }
                if value.chars().count() > 512 {
                    return refuse(format!(
                        "metadata value of '{key}' is longer than 512 characters."
                    ));
                }
            }
        }
        SimFlavour::Dashscope => {
            let limits: HashMap<&str, usize> =
                HashMap::from([("ds_name", 100), ("ds_description", 200)]);
            for (key, limit) in limits {
                if let Some(value) = metadata.get(key)
                    && value.chars().count() > limit
                {
                    return refuse(format!(
                        "metadata '{key}' may have at most {limit} characters."
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::super::test_support::{CHAT, chat_lines, frozen_sim, start_sim};
    use super::super::{
        FaultPlan, RouteFaultKind, RouteName, SimConfig, SimFlavour, VALIDATION_SECONDS,
    };
    use crate::wire::BatchStatus;

    fn scratch_directory(name: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("dashbatch-sim-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        path
    }

    fn persistent_config(state_dir: &std::path::Path) -> SimConfig {
        SimConfig {
            time_scale: 0.0,
            seed: 5,
            state_dir: Some(state_dir.to_path_buf()),
            ..SimConfig::default()
        }
    }

    #[tokio::test]
    async fn the_state_directory_survives_a_restart() {
        let directory = scratch_directory("restart");
        let sim = start_sim(persistent_config(&directory)).await;
        let finished = sim.submit(&chat_lines(6, "qwen-flash")).await;
        let finished = sim.finish(&finished.id).await;
        let output_id = finished.output_file_id.clone().unwrap();
        let output_text = sim.download(&output_id).await;
        let waiting = sim.submit(&chat_lines(2, "qwen-flash")).await;
        sim.handle
            .set_fault_plan(FaultPlan::default().with_route_fault(
                RouteName::GetFile,
                7,
                RouteFaultKind::Status500,
            ))
            .unwrap();
        let ledger_before = sim.handle.ledger().await;
        let calls_before = sim.handle.request_counts();
        sim.handle.shutdown().await;
        assert!(directory.join("world.json").exists());
        assert!(directory.join("files").join(&output_id).exists());

        let sim = start_sim(persistent_config(&directory)).await;
        assert_eq!(sim.batch(&finished.id).await, finished);
        assert_eq!(sim.download(&output_id).await, output_text);
        assert_eq!(sim.batch(&waiting.id).await.status, BatchStatus::Validating);
        sim.handle.advance_clock(VALIDATION_SECONDS + 1_000.0);
        let resumed = sim.batch(&waiting.id).await;
        assert_eq!(resumed.status, BatchStatus::Completed);
        assert!(resumed.created_at >= finished.created_at);
        let ledger = sim.handle.ledger().await;
        assert_eq!(ledger.uploads, ledger_before.uploads);
        assert_eq!(ledger.batches.len(), 2);
        assert_eq!(ledger.billed_requests.len(), 8);
        assert!(
            ledger
                .custom_ids_billed_twice()
                .iter()
                .all(|custom_id| custom_id.starts_with("row-"))
        );
        assert_eq!(sim.handle.state().fault_plan().routes.len(), 1);
        assert!(
            sim.handle.request_counts().calls_to(RouteName::Upload)
                >= calls_before.calls_to(RouteName::Upload)
        );
        // New ids continue the sequence instead of repeating it.
        let new_file = sim.upload(&chat_lines(1, "qwen-flash")).await;
        assert!(ledger_before.uploads_per_sha256.len() <= 2);
        assert_ne!(new_file.id, finished.input_file_id);
        assert_ne!(new_file.id, waiting.input_file_id);
        sim.handle.shutdown().await;
        std::fs::remove_dir_all(directory).unwrap();
    }

    #[tokio::test]
    async fn bytes_nobody_refers_to_are_removed_at_start() {
        let directory = scratch_directory("orphans");
        let sim = start_sim(persistent_config(&directory)).await;
        let kept = sim.upload(&chat_lines(1, "qwen-flash")).await;
        sim.handle.shutdown().await;
        std::fs::write(
            directory.join("files").join("file-batch-orphan"),
            b"left by a crash",
        )
        .unwrap();
        std::fs::write(
            directory.join("tmp").join("upload.1.tmp"),
            b"half an upload",
        )
        .unwrap();
        let sim = start_sim(persistent_config(&directory)).await;
        assert!(!directory.join("files").join("file-batch-orphan").exists());
        assert!(directory.join("files").join(&kept.id).exists());
        assert_eq!(std::fs::read_dir(directory.join("tmp")).unwrap().count(), 0);
        sim.handle.shutdown().await;
        std::fs::remove_dir_all(directory).unwrap();
    }

    #[tokio::test]
    async fn deleting_the_input_of_a_running_batch_does_not_break_the_batch() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let file = sim.upload(&chat_lines(5, "qwen-flash")).await;
        let batch = sim.create(&file.id, CHAT).await;
        let deleted = sim
            .client
            .delete(sim.url(&format!("/files/{}", file.id)))
            .bearer_auth("k")
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 200);
        let done = sim.finish(&batch.id).await;
        assert_eq!(done.status, BatchStatus::Completed);
        assert_eq!(
            sim.result_lines(done.output_file_id.as_ref().unwrap())
                .await
                .len(),
            5
        );
        // The input is gone for new batches.
        let refused = sim
            .try_create(
                json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h"}),
            )
            .await
            .unwrap();
        assert_eq!(refused.status(), 404);
    }

    #[tokio::test]
    async fn a_saved_fault_plan_is_replaced_only_by_a_non_empty_configured_one() {
        let directory = scratch_directory("plans");
        let sim = start_sim(persistent_config(&directory)).await;
        sim.handle
            .set_fault_plan(FaultPlan::default().with_route_fault(
                RouteName::Upload,
                3,
                RouteFaultKind::Status500,
            ))
            .unwrap();
        sim.handle.shutdown().await;
        let configured = FaultPlan::default().with_route_fault(
            RouteName::ListFiles,
            1,
            RouteFaultKind::Status500,
        );
        let sim = start_sim(SimConfig {
            faults: configured.clone(),
            ..persistent_config(&directory)
        })
        .await;
        assert_eq!(sim.handle.state().fault_plan(), configured);
        let (status, _) = sim.get_json("/files").await;
        assert_eq!(status, 500);
        sim.handle.shutdown().await;
        std::fs::remove_dir_all(directory).unwrap();
    }
}
