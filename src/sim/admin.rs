//! Admin routes under `/_sim/` (no auth): the fault plan, the ledger, call counters and the clock.
//!
//! - `GET /_sim/faults`, `PUT /_sim/faults` (body: a [`FaultPlan`]; resets the counts its rules
//!   refer to) → the plan in force.
//! - `GET /_sim/ledger` → a [`super::SimLedger`].
//! - `GET /_sim/requests` → a [`super::SimRequestCounts`].
//! - `GET /_sim/clock` → `{"now": <simulated unix seconds>, "time_scale": <scale>}`;
//!   `PUT /_sim/clock` with `{"time_scale": x}` changes the speed;
//!   `POST /_sim/clock/advance` with `{"seconds": s}` jumps forward.

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api_error::ApiFailure;
use super::faults::FaultPlan;
use super::ledger::{SimLedger, SimRequestCounts};
use super::state::SharedSimState;

pub(crate) fn admin_router(state: SharedSimState) -> Router {
    Router::new()
        .route("/faults", get(get_faults).put(put_faults))
        .route("/ledger", get(get_ledger))
        .route("/requests", get(get_requests))
        .route("/clock", get(get_clock).put(put_clock))
        .route("/clock/advance", post(advance_clock))
        .with_state(state)
}

async fn get_faults(State(state): State<SharedSimState>) -> Json<FaultPlan> {
    Json(state.fault_plan())
}

async fn put_faults(State(state): State<SharedSimState>, body: Bytes) -> Result<Json<FaultPlan>, ApiFailure> {
    let plan: FaultPlan = serde_json::from_slice(&body)
        .map_err(|error| ApiFailure::bad_request("invalid_fault_plan", format!("Not a fault plan: {error}.")))?;
    state
        .set_fault_plan(plan)
        .map_err(|message| ApiFailure::bad_request("invalid_fault_plan", message))?;
    Ok(Json(state.fault_plan()))
}

async fn get_ledger(State(state): State<SharedSimState>) -> Json<SimLedger> {
    Json(state.run(|step| step.ledger()).await)
}

async fn get_requests(State(state): State<SharedSimState>) -> Json<SimRequestCounts> {
    Json(state.request_counts())
}

fn clock_answer(state: &SharedSimState) -> Json<Value> {
    Json(json!({ "now": state.simulated_now(), "time_scale": state.time_scale() }))
}

async fn get_clock(State(state): State<SharedSimState>) -> Json<Value> {
    clock_answer(&state)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockSpeed {
    time_scale: f64,
}

async fn put_clock(State(state): State<SharedSimState>, body: Bytes) -> Result<Json<Value>, ApiFailure> {
    let speed: ClockSpeed = serde_json::from_slice(&body)
        .map_err(|error| ApiFailure::bad_request("invalid_request", format!("Expected {{\"time_scale\": x}}: {error}.")))?;
    state.set_time_scale(speed.time_scale);
    Ok(clock_answer(&state))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockJump {
    seconds: f64,
}

async fn advance_clock(State(state): State<SharedSimState>, body: Bytes) -> Result<Json<Value>, ApiFailure> {
    let jump: ClockJump = serde_json::from_slice(&body)
        .map_err(|error| ApiFailure::bad_request("invalid_request", format!("Expected {{\"seconds\": s}}: {error}.")))?;
    state.advance_clock(jump.seconds);
    Ok(clock_answer(&state))
}
