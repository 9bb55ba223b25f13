//! The fault plan and the call counters: what `control.json` holds, saved on every call.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::faults::{FaultPlan, RouteFaultKind, RouteName};
use super::ledger::SimRequestCounts;

/// Fault plan and counters: saved to `control.json` on every call.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Control {
    pub(crate) plan: FaultPlan,
    calls: BTreeMap<RouteName, u64>,
    calls_since_plan: BTreeMap<RouteName, u64>,
    /// Batches that existed when the plan was set (so `nth_batch` counts from the plan).
    pub(crate) batches_before_plan: u64,
    pub(crate) last_simulated_now: f64,
}

impl Control {
    /// The control a simulator starts with, given the saved one and the configured plan: a
    /// non-empty configured plan replaces a saved one; an empty one keeps it.
    pub(crate) fn at_start(
        saved: Option<Control>,
        configured: &FaultPlan,
        batch_count: u64,
    ) -> Control {
        match saved {
            Some(saved) if *configured == FaultPlan::default() => saved,
            Some(saved) => Control {
                plan: configured.clone(),
                calls_since_plan: BTreeMap::new(),
                batches_before_plan: batch_count,
                ..saved
            },
            None => Control {
                plan: configured.clone(),
                batches_before_plan: batch_count,
                ..Control::default()
            },
        }
    }

    /// Counts a call; returns the fault the plan scripts for its 1-based number since the plan
    /// was set.
    pub(crate) fn count_call(&mut self, route: RouteName) -> Option<RouteFaultKind> {
        *self.calls.entry(route).or_default() += 1;
        let since_plan = self.calls_since_plan.entry(route).or_default();
        *since_plan += 1;
        let nth = *since_plan;
        self.plan.route_fault(route, nth).cloned()
    }

    /// Replaces the fault plan and restarts the counts its rules refer to.
    pub(crate) fn replace_plan(&mut self, plan: FaultPlan, batch_count: u64) {
        self.plan = plan;
        self.calls_since_plan.clear();
        self.batches_before_plan = batch_count;
    }

    pub(crate) fn request_counts(&self) -> SimRequestCounts {
        let with_every_route = |counts: &BTreeMap<RouteName, u64>| {
            RouteName::ALL
                .iter()
                .map(|route| (*route, counts.get(route).copied().unwrap_or(0)))
                .collect()
        };
        SimRequestCounts {
            calls: with_every_route(&self.calls),
            calls_since_fault_plan: with_every_route(&self.calls_since_plan),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{persistent_config, scratch_directory, start_sim};
    use super::super::{FaultPlan, RouteFaultKind, RouteName, SimConfig};

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
