//! The simulated provider's state and the one lock it lives under: [`SimState`] opens (or
//! reloads) the world and the control documents, runs every operation the routes perform, and
//! saves what changed.
//!
//! All state operations are synchronous and run on tokio's blocking pool under one lock
//! ([`SimState::run`]); before each operation every unfinished batch is advanced to the current
//! simulated time (see [`super::advancing_batches`]), and after it the state is saved when it
//! changed (see [`super::persist`]). The operations themselves live beside their concept:
//! [`super::stored_files`] and [`super::batches`].

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::advancing_batches::advance_every_batch;
use super::bills::BillWriter;
use super::call_counters::Control;
use super::clock::SimulatedClock;
use super::config::{SimConfig, SimFlavour};
use super::faults::{FaultPlan, RouteFaultKind, RouteName};
use super::id_sequence::http_request_id;
use super::ledger::{SimLedger, SimRequestCounts};
use super::persist::{CONTROL_DOCUMENT, FileStore, StateDirectory, WORLD_DOCUMENT};
use super::world::World;

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

impl SimState {
    /// Builds the state, loading it from `config.state_dir` when that holds a saved state. A
    /// non-empty `config.faults` replaces a saved fault plan; an empty one keeps it.
    pub fn open(config: SimConfig) -> io::Result<SharedSimState> {
        let (state_directory, store, world, saved_control) = match &config.state_dir {
            Some(root) => {
                let directory = StateDirectory::open(root)?;
                let store = FileStore::in_directory(&directory);
                let mut world: World = directory.load(WORLD_DOCUMENT)?.unwrap_or_default();
                let control: Option<Control> = directory.load(CONTROL_DOCUMENT)?;
                move_bills_out_of_world(&store, &mut world)?;
                remove_orphan_bytes(&store, &world)?;
                (Some(directory), store, world, control)
            }
            None => (None, FileStore::in_memory(), World::default(), None),
        };
        let batch_count = world.batches.len() as u64;
        let control = Control::at_start(saved_control, &config.faults, batch_count);
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

    pub(crate) fn lock_control(&self) -> MutexGuard<'_, Control> {
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
        advance_every_batch(
            &mut world,
            &self.store,
            self.config.seed,
            self.config.flavour,
            self.config.capacity,
            now,
        );
        let mut step = Operation {
            state: self,
            world: &mut world,
            now,
        };
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
        let fault = control.count_call(route);
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
        Some(http_request_id(self.config.seed, self.started_at, number))
    }

    pub fn fault_plan(&self) -> FaultPlan {
        self.lock_control().plan.clone()
    }

    /// Replaces the fault plan and restarts the counts its rules refer to.
    pub fn set_fault_plan(&self, plan: FaultPlan) -> Result<(), String> {
        plan.check()?;
        let batch_count = self.lock_world().batches.len() as u64;
        let mut control = self.lock_control();
        control.replace_plan(plan, batch_count);
        self.save_control(&mut control);
        Ok(())
    }

    pub fn request_counts(&self) -> SimRequestCounts {
        self.lock_control().request_counts()
    }

    /// The ledger at the current simulated time (advances batches first). Blocking: from async
    /// code use [`super::SimHandle::ledger`] or `GET /_sim/ledger`.
    pub fn ledger_now(&self) -> SimLedger {
        self.run_blocking(|step| step.ledger())
            .expect("the simulator reads its own bills")
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

/// Moves the bill lines a state saved by an earlier simulator keeps in `world.json` to the file
/// store (the world is saved with their totals at its next save).
fn move_bills_out_of_world(store: &FileStore, world: &mut World) -> io::Result<()> {
    for batch in &mut world.batches {
        if batch.bills_kept_in_world.is_empty() {
            continue;
        }
        let mut writer = BillWriter::new(store);
        for bill in std::mem::take(&mut batch.bills_kept_in_world) {
            writer.add(&bill)?;
        }
        batch.bills = writer.finish(&batch.id)?;
        world.changed = true;
    }
    Ok(())
}

/// Removes stored bytes that no file record and no batch's bills refer to (left by a crash
/// between writing bytes and saving the world).
fn remove_orphan_bytes(store: &FileStore, world: &World) -> io::Result<()> {
    let bills = world
        .batches
        .iter()
        .filter_map(|batch| batch.bills.stored_as.as_deref());
    let referenced: std::collections::HashSet<&str> = world
        .files
        .iter()
        .filter(|file| !file.bytes_removed)
        .map(|file| file.object.id.as_str())
        .chain(bills)
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
    pub(crate) state: &'operation SimState,
    pub(crate) world: &'operation mut World,
    pub(crate) now: f64,
}

impl Operation<'_> {
    pub(crate) fn seed(&self) -> u64 {
        self.state.config.seed
    }

    pub(crate) fn flavour(&self) -> SimFlavour {
        self.state.config.flavour
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{chat_lines, persistent_config, scratch_directory, start_sim};
    use super::super::{FaultPlan, RouteFaultKind, RouteName, VALIDATION_SECONDS};
    use crate::wire::BatchStatus;

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
        // The bills are kept beside the files; the world holds their totals only.
        let bills = directory
            .join("files")
            .join(format!("bills-{}", finished.id));
        assert_eq!(std::fs::read_to_string(bills).unwrap().lines().count(), 6);
        let world = std::fs::read_to_string(directory.join("world.json")).unwrap();
        assert!(!world.contains("\"custom_id\""), "{world}");

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
    async fn bills_an_earlier_simulator_kept_in_the_world_are_moved_to_the_store() {
        let directory = scratch_directory("bills-in-world");
        let sim = start_sim(persistent_config(&directory)).await;
        let batch = sim.submit(&chat_lines(3, "qwen-flash")).await;
        sim.finish(&batch.id).await;
        let billed_before = sim.handle.ledger().await.billed_requests;
        sim.handle.shutdown().await;
        // The shape an earlier simulator saved: every bill line in world.json.
        let bills_path = directory.join("files").join(format!("bills-{}", batch.id));
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&bills_path)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        std::fs::remove_file(&bills_path).unwrap();
        let world_path = directory.join("world.json");
        let mut world: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&world_path).unwrap()).unwrap();
        let record = &mut world["batches"][0];
        record.as_object_mut().unwrap().remove("bills");
        record["billed"] = serde_json::Value::Array(lines);
        std::fs::write(&world_path, serde_json::to_vec(&world).unwrap()).unwrap();

        let sim = start_sim(persistent_config(&directory)).await;
        assert_eq!(sim.handle.ledger().await.billed_requests, billed_before);
        assert!(bills_path.exists());
        sim.handle.shutdown().await;
        let saved = std::fs::read_to_string(&world_path).unwrap();
        assert!(!saved.contains("\"billed\""), "{saved}");
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
}
