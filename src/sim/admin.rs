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

async fn put_faults(
    State(state): State<SharedSimState>,
    body: Bytes,
) -> Result<Json<FaultPlan>, ApiFailure> {
    let plan: FaultPlan = serde_json::from_slice(&body).map_err(|error| {
        ApiFailure::bad_request("invalid_fault_plan", format!("Not a fault plan: {error}."))
    })?;
    state
        .set_fault_plan(plan)
        .map_err(|message| ApiFailure::bad_request("invalid_fault_plan", message))?;
    Ok(Json(state.fault_plan()))
}

async fn get_ledger(State(state): State<SharedSimState>) -> Result<Json<SimLedger>, ApiFailure> {
    state
        .run(|step| step.ledger())
        .await
        .map(Json)
        .map_err(|error| ApiFailure::internal(error.to_string()))
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

async fn put_clock(
    State(state): State<SharedSimState>,
    body: Bytes,
) -> Result<Json<Value>, ApiFailure> {
    let speed: ClockSpeed = serde_json::from_slice(&body).map_err(|error| {
        ApiFailure::bad_request(
            "invalid_request",
            format!("Expected {{\"time_scale\": x}}: {error}."),
        )
    })?;
    state.set_time_scale(speed.time_scale);
    Ok(clock_answer(&state))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockJump {
    seconds: f64,
}

async fn advance_clock(
    State(state): State<SharedSimState>,
    body: Bytes,
) -> Result<Json<Value>, ApiFailure> {
    let jump: ClockJump = serde_json::from_slice(&body).map_err(|error| {
        ApiFailure::bad_request(
            "invalid_request",
            format!("Expected {{\"seconds\": s}}: {error}."),
        )
    })?;
    state.advance_clock(jump.seconds);
    Ok(clock_answer(&state))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::test_support::{chat_lines, frozen_sim};
    use super::super::{SimFlavour, SimLedger};

    #[tokio::test]
    async fn the_fault_plan_can_be_read_and_replaced() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        assert_eq!(
            sim.admin_json("/faults").await,
            json!({"routes": {}, "batches": []})
        );
        let bad = sim
            .put_faults(json!({"routes": {"upload": [{"nth": 0, "kind": "status_500"}]}}))
            .await;
        assert_eq!(bad.status(), 400);
        let typo = sim.put_faults(json!({"route": {}})).await;
        assert_eq!(typo.status(), 400);
        let plan = json!({
            "routes": {"get_batch": [{"nth": 2, "kind": {"status_429": {"retry_after_seconds": 1}}}]},
            "batches": [{"batches": {"nth_batch": 1}, "behaviour": {"lose_lines": {"count": 1}}}]
        });
        assert_eq!(sim.put_faults(plan.clone()).await.status(), 200);
        assert_eq!(sim.admin_json("/faults").await, plan);
    }

    #[tokio::test]
    async fn the_ledger_lists_batches_uploads_and_bills() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let batch = sim.submit(&chat_lines(2, "qwen-flash")).await;
        sim.finish(&batch.id).await;
        let ledger = sim.admin_json("/ledger").await;
        assert_eq!(ledger["uploads"], 1);
        assert_eq!(ledger["batches"][0]["id"], json!(batch.id));
        assert_eq!(ledger["batches"][0]["status"], "completed");
        assert_eq!(ledger["batches"][0]["created_order"], 1);
        assert_eq!(ledger["batches_per_input_file"][&batch.input_file_id], 1);
        assert_eq!(ledger["billed_requests"].as_array().unwrap().len(), 2);
        let bill = &ledger["billed_requests"][0];
        for field in [
            "batch_id",
            "custom_id",
            "model",
            "prompt_tokens",
            "completion_tokens",
            "reasoning_tokens",
        ] {
            assert!(bill.get(field).is_some(), "{field}");
        }
        assert_eq!(ledger["bill_count_per_custom_id"]["row-0"], 1);
        let decoded: SimLedger = serde_json::from_value(ledger).unwrap();
        assert_eq!(
            decoded.total_prompt_tokens,
            decoded
                .billed_requests
                .iter()
                .map(|bill| bill.prompt_tokens)
                .sum::<u64>()
        );
    }

    #[tokio::test]
    async fn the_clock_can_be_read_moved_and_sped_up() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let before = sim.admin_json("/clock").await["now"].as_f64().unwrap();
        let moved: Value = sim
            .client
            .post(sim.admin_url("/clock/advance"))
            .json(&json!({"seconds": 3600}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(moved["now"].as_f64().unwrap(), before + 3600.0);
        let sped: Value = sim
            .client
            .put(sim.admin_url("/clock"))
            .json(&json!({"time_scale": 50.0}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(sped["time_scale"], 50.0);
    }
}
