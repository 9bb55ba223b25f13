//! Crash points for the crash-test harness. With `DASHBATCH_TEST_KILL_AT=<step>` (or
//! `<step>:<n>`) the process kills itself with SIGKILL the first (or n-th) time it reaches
//! `<step>`, exactly as a power cut or `kill -9` would. Unset, it costs one environment read.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Steps the harness can crash at, in the order a run reaches them.
pub const STEPS: &[&str] = &[
    "after_upload_before_record",
    "after_create_before_record",
    "during_poll",
    "during_download",
    "after_answers_stored",
    "during_join",
    "during_output_write",
];

struct KillPlan {
    step: String,
    nth: u64,
    seen: Mutex<HashMap<String, u64>>,
}

fn plan() -> Option<&'static KillPlan> {
    static PLAN: OnceLock<Option<KillPlan>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let value = std::env::var(crate::env::DASHBATCH_TEST_KILL_AT).ok()?;
        let (step, nth) = match value.split_once(':') {
            Some((step, nth)) => (step.to_owned(), nth.parse().unwrap_or(1)),
            None => (value, 1),
        };
        Some(KillPlan {
            step,
            nth,
            seen: Mutex::new(HashMap::new()),
        })
    })
    .as_ref()
}

/// Marks that the run reached `step`; dies here when the crash plan says so.
pub fn reach(step: &str) {
    let Some(plan) = plan() else { return };
    if plan.step != step {
        return;
    }
    let mut seen = plan.seen.lock().expect("kill plan lock");
    let count = seen.entry(step.to_owned()).or_insert(0);
    *count += 1;
    if *count == plan.nth {
        // SAFETY: raising a signal on our own process has no memory-safety preconditions.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}
