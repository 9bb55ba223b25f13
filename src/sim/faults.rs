//! The fault plan: scripted network faults per route and per call, and scripted outcomes per batch.
//!
//! A plan is plain serde data so tests can set it from Rust ([`super::SimConfig::faults`],
//! [`super::SimHandle::set_fault_plan`]) or over HTTP (`PUT /_sim/faults`). Route rules count the
//! calls to their route since the plan was set (`nth` is 1-based); batch rules count the batches
//! created since the plan was set (`nth_batch` is 1-based).
//!
//! ```json
//! {
//!   "routes": {
//!     "create_batch": [{ "nth": 1, "kind": "drop_after_acting" }],
//!     "get_batch": [{ "nth": 2, "kind": { "status_429": { "retry_after_seconds": 1 } } }],
//!     "file_content": [{ "nth": 1, "kind": { "truncate_download": { "keep_fraction": 0.5 } } }]
//!   },
//!   "batches": [
//!     { "batches": { "nth_batch": 1 }, "behaviour": { "expire_with_partial": { "done_fraction": 0.5 } } },
//!     { "batches": "all", "behaviour": "error_code_spelling_helper" }
//!   ]
//! }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The API routes, as named in fault plans and call counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteName {
    Upload,
    ListFiles,
    GetFile,
    FileContent,
    DeleteFile,
    CreateBatch,
    GetBatch,
    ListBatches,
    CancelBatch,
}

impl RouteName {
    pub const ALL: [RouteName; 9] = [
        RouteName::Upload,
        RouteName::ListFiles,
        RouteName::GetFile,
        RouteName::FileContent,
        RouteName::DeleteFile,
        RouteName::CreateBatch,
        RouteName::GetBatch,
        RouteName::ListBatches,
        RouteName::CancelBatch,
    ];

    /// Routes that change the provider's state (POST and DELETE).
    pub fn is_mutating(self) -> bool {
        matches!(
            self,
            RouteName::Upload
                | RouteName::DeleteFile
                | RouteName::CreateBatch
                | RouteName::CancelBatch
        )
    }
}

/// What happens to one call of a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RouteFaultKind {
    /// Answer 429 with `Retry-After` and the throttling error body; nothing is done.
    #[serde(rename = "status_429")]
    Status429 { retry_after_seconds: u64 },
    /// Answer 500 with an error body; nothing is done.
    #[serde(rename = "status_500")]
    Status500,
    /// Answer 400 `InvalidParameter` with an error body, a definite refusal; nothing is done.
    #[serde(rename = "status_400")]
    Status400,
    /// Answer 404 as a server without this route does; nothing is done.
    #[serde(rename = "status_404")]
    Status404,
    /// Do the call (store the file, create the batch, ...), then close the connection without
    /// any HTTP response.
    DropAfterActing,
    /// Close the connection without doing anything and without any HTTP response.
    DropBeforeActing,
    /// Wait this long before doing the call normally.
    Slow { millis: u64 },
    /// For `file_content`: send only this fraction of the bytes, then break the connection.
    TruncateDownload { keep_fraction: f64 },
}

/// One scripted fault: the `nth` call (1-based, counted since the plan was set) gets `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFaultRule {
    pub nth: u64,
    pub kind: RouteFaultKind,
}

/// Which batches a batch rule applies to: `"all"` or `{"nth_batch": N}` (1-based, counted among
/// batches created since the plan was set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchSelector {
    All,
    NthBatch(u64),
}

/// A scripted outcome for a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum BatchBehaviour {
    /// The batch expires after this fraction of its lines is done: those lines are in the output
    /// file and billed, the rest are in the error file as `batch_expired`.
    ExpireWithPartial { done_fraction: f64 },
    /// The batch fails validation with one entry in `errors.data` (a default reason when the
    /// code and message are not given).
    FailValidation {
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        message: Option<String>,
    },
    /// This fraction of lines is answered with a non-200 `status_code` INSIDE the output file,
    /// and `request_counts.failed` does not count them (a live DashScope quirk).
    FailedLinesInOutput { fraction: f64 },
    /// This fraction of lines lands in the error file with a transient error code
    /// (`rate_limit_exceeded`, `server_error` or `timeout`).
    TransientLineErrors { fraction: f64 },
    /// This many lines appear in neither file (and are not billed).
    LoseLines { count: u64 },
    /// Error-file lines spell their fields `error_code`/`error_message`, as DashScope's own CSV
    /// helper expects.
    ErrorCodeSpellingHelper,
    /// Successful lines carry `response.body` as a JSON *string* holding the object, as
    /// llama-stack's Batch API writes it.
    BodyAsJsonString,
    /// Successful chat lines carry no `usage` object (billed all the same).
    OmitUsage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchFaultRule {
    pub batches: BatchSelector,
    pub behaviour: BatchBehaviour,
}

/// Every scripted fault. The default plan has none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    #[serde(default)]
    pub routes: BTreeMap<RouteName, Vec<RouteFaultRule>>,
    #[serde(default)]
    pub batches: Vec<BatchFaultRule>,
}

impl FaultPlan {
    /// Adds a route fault (builder style).
    pub fn with_route_fault(mut self, route: RouteName, nth: u64, kind: RouteFaultKind) -> Self {
        self.routes
            .entry(route)
            .or_default()
            .push(RouteFaultRule { nth, kind });
        self
    }

    /// Adds a batch behaviour (builder style).
    pub fn with_batch_behaviour(
        mut self,
        batches: BatchSelector,
        behaviour: BatchBehaviour,
    ) -> Self {
        self.batches.push(BatchFaultRule { batches, behaviour });
        self
    }

    /// The fault for the `nth` call of a route, if any (the first matching rule wins).
    pub fn route_fault(&self, route: RouteName, nth: u64) -> Option<&RouteFaultKind> {
        self.routes
            .get(&route)?
            .iter()
            .find(|rule| rule.nth == nth)
            .map(|rule| &rule.kind)
    }

    /// The behaviours of the `nth_batch` batch created since the plan was set.
    pub fn behaviours_for_batch(&self, nth_batch: u64) -> Vec<BatchBehaviour> {
        self.batches
            .iter()
            .filter(|rule| match rule.batches {
                BatchSelector::All => true,
                BatchSelector::NthBatch(wanted) => wanted == nth_batch,
            })
            .map(|rule| rule.behaviour.clone())
            .collect()
    }

    /// Refuses plans that cannot mean anything (call 0, fractions outside 0..=1).
    pub fn check(&self) -> Result<(), String> {
        let fraction_ok = |value: f64| (0.0..=1.0).contains(&value);
        for (route, rules) in &self.routes {
            for rule in rules {
                if rule.nth == 0 {
                    return Err(format!("`nth` of a {route:?} rule is 1-based, got 0"));
                }
                if let RouteFaultKind::TruncateDownload { keep_fraction } = rule.kind
                    && !fraction_ok(keep_fraction)
                {
                    return Err(format!(
                        "`keep_fraction` must be within 0..=1, got {keep_fraction}"
                    ));
                }
            }
        }
        for rule in &self.batches {
            if rule.batches == BatchSelector::NthBatch(0) {
                return Err("`nth_batch` is 1-based, got 0".to_owned());
            }
            let fraction = match rule.behaviour {
                BatchBehaviour::ExpireWithPartial { done_fraction } => Some(done_fraction),
                BatchBehaviour::FailedLinesInOutput { fraction }
                | BatchBehaviour::TransientLineErrors { fraction } => Some(fraction),
                _ => None,
            };
            if let Some(fraction) = fraction
                && !fraction_ok(fraction)
            {
                return Err(format!("fractions must be within 0..=1, got {fraction}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_json_parses() {
        let plan: FaultPlan = serde_json::from_str(
            r#"{
              "routes": {
                "create_batch": [{ "nth": 1, "kind": "drop_after_acting" }],
                "get_batch": [{ "nth": 2, "kind": { "status_429": { "retry_after_seconds": 1 } } }],
                "upload": [{ "nth": 3, "kind": "status_500" }, { "nth": 4, "kind": { "slow": { "millis": 10 } } }],
                "file_content": [{ "nth": 1, "kind": { "truncate_download": { "keep_fraction": 0.5 } } }]
              },
              "batches": [
                { "batches": { "nth_batch": 1 }, "behaviour": { "expire_with_partial": { "done_fraction": 0.5 } } },
                { "batches": "all", "behaviour": "error_code_spelling_helper" },
                { "batches": "all", "behaviour": { "fail_validation": {} } },
                { "batches": "all", "behaviour": { "lose_lines": { "count": 2 } } }
              ]
            }"#,
        )
        .unwrap();
        assert!(plan.check().is_ok());
        assert_eq!(
            plan.route_fault(RouteName::CreateBatch, 1),
            Some(&RouteFaultKind::DropAfterActing)
        );
        assert_eq!(plan.route_fault(RouteName::CreateBatch, 2), None);
        assert_eq!(
            plan.route_fault(RouteName::GetBatch, 2),
            Some(&RouteFaultKind::Status429 {
                retry_after_seconds: 1
            })
        );
        assert_eq!(plan.behaviours_for_batch(1).len(), 4);
        assert_eq!(plan.behaviours_for_batch(2).len(), 3);
        let round_trip: FaultPlan =
            serde_json::from_str(&serde_json::to_string(&plan).unwrap()).unwrap();
        assert_eq!(round_trip, plan);
    }

    #[test]
    fn typos_and_nonsense_are_refused() {
        assert!(serde_json::from_str::<FaultPlan>(r#"{"route": {}}"#).is_err());
        assert!(serde_json::from_str::<FaultPlan>(r#"{"routes": {"uplod": []}}"#).is_err());
        let zero =
            FaultPlan::default().with_route_fault(RouteName::Upload, 0, RouteFaultKind::Status500);
        assert!(zero.check().is_err());
        let fraction = FaultPlan::default().with_batch_behaviour(
            BatchSelector::All,
            BatchBehaviour::TransientLineErrors { fraction: 1.5 },
        );
        assert!(fraction.check().is_err());
    }
}
