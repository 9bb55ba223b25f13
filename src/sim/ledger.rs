//! The ledger: ground truth about what the simulated provider did and billed, for the engine's
//! invariant checks (no double submission, no double billing, cost equals usage).
//!
//! `GET /_sim/ledger` answers a [`SimLedger`]; `GET /_sim/requests` answers [`SimRequestCounts`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::faults::RouteName;

/// One line the provider answered successfully and billed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BilledRequest {
    pub batch_id: String,
    pub custom_id: String,
    pub model: String,
    pub prompt_tokens: u64,
    /// Includes `reasoning_tokens`.
    pub completion_tokens: u64,
    pub reasoning_tokens: u64,
    /// `batch-test-model` lines run but cost nothing.
    pub free: bool,
}

/// One batch, as the ledger lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerBatch {
    pub id: String,
    pub input_file_id: String,
    pub input_sha256: String,
    pub metadata: Option<BTreeMap<String, String>>,
    /// The API status now (`validating`, `completed`, ...).
    pub status: String,
    /// 1-based order of creation.
    pub created_order: u64,
}

/// Everything the simulated provider did, since its state began.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimLedger {
    /// Every batch ever created, oldest first.
    pub batches: Vec<LedgerBatch>,
    pub batches_per_input_file: BTreeMap<String, u64>,
    /// Batches per SHA-256 of the input file's bytes (catches the same shard uploaded twice and
    /// submitted twice).
    pub batches_per_input_sha256: BTreeMap<String, u64>,
    /// Uploads that stored a file (`POST /files` that succeeded, including those whose answer was
    /// dropped).
    pub uploads: u64,
    pub uploads_per_sha256: BTreeMap<String, u64>,
    pub files_deleted: u64,
    pub billed_requests: Vec<BilledRequest>,
    /// How often each `custom_id` was billed (free lines included), over all batches.
    pub bill_count_per_custom_id: BTreeMap<String, u64>,
    pub total_prompt_tokens: u64,
    pub total_completion_tokens: u64,
    pub total_reasoning_tokens: u64,
}

/// Calls received per route: since the simulator's state began, and since the fault plan was
/// last set (which is what fault rules' `nth` counts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimRequestCounts {
    pub calls: BTreeMap<RouteName, u64>,
    pub calls_since_fault_plan: BTreeMap<RouteName, u64>,
}

impl SimRequestCounts {
    pub fn calls_to(&self, route: RouteName) -> u64 {
        self.calls.get(&route).copied().unwrap_or(0)
    }

    /// Calls to routes that change state (uploads, deletes, creates, cancels).
    pub fn mutating_calls(&self) -> u64 {
        self.calls
            .iter()
            .filter(|(route, _)| route.is_mutating())
            .map(|(_, count)| count)
            .sum()
    }
}

impl SimLedger {
    /// Adds one bill to the list and the totals.
    pub(crate) fn add_bill(&mut self, bill: BilledRequest) {
        *self
            .bill_count_per_custom_id
            .entry(bill.custom_id.clone())
            .or_default() += 1;
        if !bill.free {
            self.total_prompt_tokens += bill.prompt_tokens;
            self.total_completion_tokens += bill.completion_tokens;
            self.total_reasoning_tokens += bill.reasoning_tokens;
        }
        self.billed_requests.push(bill);
    }

    /// `custom_id`s billed more than once.
    pub fn custom_ids_billed_twice(&self) -> Vec<&str> {
        self.bill_count_per_custom_id
            .iter()
            .filter(|(_, count)| **count > 1)
            .map(|(custom_id, _)| custom_id.as_str())
            .collect()
    }
}
