//! The embedded API simulator: an axum server that behaves like DashScope's (or OpenAI's)
//! Files + Batches API, so the engine can be tested offline and new users can run a job without
//! a key.
//!
//! Start it with [`spawn`] (tests) or [`serve`] (`dashbatch sim serve`), or drive [`router`]
//! in-process. It serves the API under both `/compatible-mode/v1/...` and `/v1/...`, plus admin
//! routes under `/_sim/...` (fault plan, ledger, call counters, clock; see `admin.rs`).
//!
//! Layout, one concept per file:
//! - `config`: [`SimConfig`], [`SimFlavour`] and what differs between the flavours;
//! - `state`: [`SimState`], the one lock every operation runs under (`SimState::run`), loading
//!   and saving;
//! - `world`, `id_sequence`, `call_counters`: what `world.json` holds (file records, batches,
//!   upload counts), the id counter and `x-request-id`s, and `control.json`'s fault plan and call
//!   counters;
//! - `stored_files`, `batches`: the Files and Batches operations on the locked world (batches with
//!   their bills and the ledger); `advancing_batches`: moving batches on before each operation;
//! - `lifecycle`: a batch's life in simulated time, with its duration constants; `capacity`: a
//!   provider under load, a fixed number of lines per second shared by all batches in a queue;
//! - `validation`, `input_lines`: checking an input file as the provider does after create;
//! - `results`, `processing_order`: writing output and error files, out of input order;
//! - `responder`: the deterministic fake model, reading a line's body and answering it, with
//!   `free_text_answer`, `json_schema_answer`, `embedding_answer`, `token_usage` (usage, thinking,
//!   `max_tokens`), `chat_completion_body` (each flavour's field order), `request_rejection` and
//!   `token_estimate`;
//! - `faults`, `call_gate`, `connection`: scripted faults and how calls are dropped or cut;
//! - `ledger`: the ground truth the engine's invariant tests read;
//! - `persist`, `clock`, `ids`: storage, simulated time, deterministic ids;
//! - `routes`, `admin`, `listing`, `api_error`: the HTTP surface.
//!
//! Time: every duration is in simulated seconds ([`VALIDATION_SECONDS`], [`SECONDS_PER_LINE`]
//! with [`PARALLEL_LINES_PER_SQUARE_ROOT_OF_LINES`], [`FINALIZING_SECONDS`],
//! [`CANCELLING_SECONDS`]; [`simulated_seconds_to_complete`] adds them up for a batch), and
//! [`SimConfig::time_scale`] simulated seconds pass per real second. With [`SimConfig::capacity`]
//! set, lines run at that many per simulated second across all batches, first come first served,
//! instead of each batch at its own pace. The default
//! ([`DEFAULT_TIME_SCALE`] = 1000) finishes a few hundred lines in well under a second and 50,000
//! lines in a few seconds. To watch a batch sit `in_progress`, lower the scale (at 100, a 20-line
//! batch spends 0.7 s in progress) or freeze the clock with `time_scale: 0.0` and move it with
//! [`SimHandle::advance_clock`] / `POST /_sim/clock/advance`.

mod admin;
mod advancing_batches;
mod api_error;
mod batches;
mod bills;
mod call_counters;
mod call_gate;
mod capacity;
mod chat_completion_body;
mod clock;
mod config;
mod connection;
mod embedding_answer;
mod expiry;
mod faults;
mod free_text_answer;
mod id_sequence;
mod ids;
mod input_lines;
mod json_schema_answer;
mod ledger;
mod lifecycle;
mod listing;
mod persist;
mod processing_order;
mod request_rejection;
mod responder;
mod results;
mod routes;
mod state;
mod stored_files;
#[cfg(test)]
mod test_support;
mod token_estimate;
mod token_usage;
mod validation;
mod world;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{DEFAULT_TIME_SCALE, SimConfig, SimFlavour};
pub use faults::{
    BatchBehaviour, BatchFaultRule, BatchSelector, FaultPlan, RouteFaultKind, RouteFaultRule,
    RouteName,
};
pub use ledger::{BilledRequest, LedgerBatch, SimLedger, SimRequestCounts};
pub use lifecycle::{
    CANCELLING_SECONDS, FINALIZING_SECONDS, PARALLEL_LINES_PER_SQUARE_ROOT_OF_LINES,
    SECONDS_PER_LINE, VALIDATION_SECONDS, simulated_seconds_to_complete,
};
pub use routes::router;
pub use state::{SharedSimState, SimState};

use connection::{ConnectionHandle, SeverableListener};

/// How long [`SimHandle::shutdown`] waits for open calls before it stops serving anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A running simulator. Dropping it stops the server (without waiting).
#[derive(Debug)]
pub struct SimHandle {
    pub addr: SocketAddr,
    state: SharedSimState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl SimHandle {
    /// The base URL a client uses: `http://127.0.0.1:PORT/compatible-mode/v1` (DashScope) or
    /// `http://127.0.0.1:PORT/v1` (OpenAI). Both prefixes are served either way.
    pub fn base_url(&self) -> String {
        format!("http://{}{}", self.addr, self.state.flavour().base_path())
    }

    /// The root URL (`http://127.0.0.1:PORT`), under which `/_sim/...` lives.
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> &SharedSimState {
        &self.state
    }

    /// The ledger at the current simulated time.
    pub async fn ledger(&self) -> SimLedger {
        self.state
            .run(|step| step.ledger())
            .await
            .expect("the simulator reads its own bills")
    }

    pub fn request_counts(&self) -> SimRequestCounts {
        self.state.request_counts()
    }

    /// Replaces the fault plan (as `PUT /_sim/faults` does).
    pub fn set_fault_plan(&self, plan: FaultPlan) -> Result<(), String> {
        self.state.set_fault_plan(plan)
    }

    /// Moves simulated time forward by `seconds`.
    pub fn advance_clock(&self, seconds: f64) {
        self.state.advance_clock(seconds);
    }

    /// Stops serving (waiting up to two seconds for open calls) and saves the state.
    pub async fn shutdown(mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
            let _ = task.await;
        }
        let state = self.state.clone();
        let _ = tokio::task::spawn_blocking(move || state.flush()).await;
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
    }
}

/// Binds `addr` (port 0 picks a free port) and serves the simulator in a tokio task.
pub async fn spawn(addr: &str, config: SimConfig) -> io::Result<SimHandle> {
    let state = tokio::task::spawn_blocking(move || SimState::open(config))
        .await
        .map_err(io::Error::other)??;
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let service = router(state.clone()).into_make_service_with_connect_info::<ConnectionHandle>();
    let (sender, receiver) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(SeverableListener::new(listener), service)
            .with_graceful_shutdown(async move {
                let _ = receiver.await;
            })
            .await
    });
    Ok(SimHandle {
        addr: local_addr,
        state,
        shutdown: Some(sender),
        task: Some(task),
    })
}

/// Serves the simulator until Ctrl-C, after printing
/// `dashbatch simulator listening on <base URL>` to stderr.
pub async fn serve(addr: &str, config: SimConfig) -> io::Result<()> {
    let handle = spawn(addr, config).await?;
    eprintln!("dashbatch simulator listening on {}", handle.base_url());
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}
