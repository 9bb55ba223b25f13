//! The crash harness: a run is killed with SIGKILL at every named step (and at random moments),
//! and several processes are started together on one run directory (one of them killed at a
//! random moment); then the run is resumed until it finishes, and after every cycle it must keep
//! every invariant (see `invariants.rs`), checked against the simulator's billing ledger. Prints
//! a totals line such as `crash cycles: 30, duplicate batches: 0, lost rows: 0, ...`.
//!
//! `DASHBATCH_CRASH_RANDOM_CYCLES` and `DASHBATCH_CRASH_CONCURRENT_CYCLES` set how many random
//! kills and concurrent starts are added to the named steps (30 and 12 by default);
//! `scripts/soak/run.sh` raises them for long soaks.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use super::harness::*;
use super::invariants::*;

const ROWS: usize = 24;
const PER_SHARD: usize = 6;

/// How a cycle kills the run.
#[derive(Debug, Clone)]
enum Kill {
    /// `DASHBATCH_TEST_KILL_AT=<step>:<nth>`: the process SIGKILLs itself there.
    AtStep(&'static str, u32),
    /// The harness sends SIGKILL after this long.
    After(Duration),
    /// `processes` processes (`run`, and `resume` once the run exists) start together on one
    /// run directory; one of them is SIGKILLed after `kill_after` when given.
    Concurrent {
        processes: usize,
        kill_after: Option<Duration>,
    },
}

struct CycleOutcome {
    killed: bool,
    resumes: u32,
    violations: Violations,
    notes: String,
}

fn cycle(simulator: &StandaloneSimulator, kill: &Kill) -> CycleOutcome {
    let workspace = review_workspace(ROWS, PER_SHARD, "");
    let run_directory = workspace.path().join("run");
    let mut command = review_run_command(&workspace, simulator, &run_directory);
    let killed = match kill {
        Kill::AtStep(step, nth) => {
            let status = command
                .env("DASHBATCH_TEST_KILL_AT", format!("{step}:{nth}"))
                .status()
                .unwrap();
            status.signal() == Some(libc::SIGKILL)
        }
        Kill::Concurrent {
            processes,
            kill_after,
        } => concurrent_start(
            &workspace,
            simulator,
            &run_directory,
            *processes,
            *kill_after,
        ),
        Kill::After(delay) => {
            let mut child = command.spawn().unwrap();
            let started = Instant::now();
            loop {
                if child.try_wait().unwrap().is_some() {
                    break false;
                }
                if started.elapsed() >= *delay {
                    child.kill().unwrap();
                    child.wait().unwrap();
                    break true;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    // Resume until the run finishes (a kill can also land before the ledger exists: then run again).
    let mut resumes = 0;
    loop {
        let output = if run_was_recorded(&run_directory) {
            resume_command(&workspace, &run_directory).output().unwrap()
        } else {
            review_run_command(&workspace, simulator, &run_directory)
                .output()
                .unwrap()
        };
        resumes += 1;
        if matches!(output.status.code(), Some(0 | 1)) {
            break;
        }
        assert!(
            resumes < 5,
            "{kill:?}: the run did not finish after {resumes} resumes: {:?}\n{}",
            output.status,
            text(&output.stderr)
        );
    }
    let (violations, notes) = check_finished_run(
        simulator,
        &run_directory,
        &workspace.path().join("out.parquet"),
        &review_ids(ROWS),
    );
    CycleOutcome {
        killed,
        resumes,
        violations,
        notes,
    }
}

/// Starts `processes` processes on one run directory at once: the odd ones `run`, the even ones
/// `resume` (refused while the run has no ledger, like a user's second terminal). Each must end
/// with 0 or 1 (it did the run), 2 (another process held the run, or no run existed yet), or by
/// the harness's SIGKILL. Returns whether one was killed.
fn concurrent_start(
    workspace: &Workspace,
    simulator: &StandaloneSimulator,
    run_directory: &std::path::Path,
    processes: usize,
    kill_after: Option<Duration>,
) -> bool {
    let mut children: Vec<std::process::Child> = (0..processes)
        .map(|index| {
            let mut command = if index % 2 == 0 {
                review_run_command(workspace, simulator, run_directory)
            } else {
                resume_command(workspace, run_directory)
            };
            command
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut killed = false;
    if let Some(delay) = kill_after {
        std::thread::sleep(delay);
        let victim = &mut children[delay.as_millis() as usize % processes];
        if victim.try_wait().unwrap().is_none() {
            victim.kill().unwrap();
            killed = true;
        }
    }
    for child in children {
        let output = child.wait_with_output().unwrap();
        let by_harness = output.status.signal() == Some(libc::SIGKILL);
        assert!(
            by_harness || matches!(output.status.code(), Some(0..=2)),
            "a concurrent process ended with {:?}: {}",
            output.status,
            text(&output.stderr)
        );
    }
    killed
}

fn cycles_from_environment(variable: &str, default: usize) -> usize {
    std::env::var(variable)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Whether the killed process got as far as recording the run (else `run` starts it again,
/// exactly as a user would after `resume` says so).
fn run_was_recorded(run_directory: &std::path::Path) -> bool {
    let Ok(connection) = rusqlite::Connection::open(run_directory.join("ledger.sqlite")) else {
        return false;
    };
    connection
        .query_row(
            "SELECT COUNT(*) FROM run_facts WHERE key = 'job_sha256'",
            [],
            |row| row.get::<_, i64>(0),
        )
        .map(|count| count > 0)
        .unwrap_or(false)
}

/// A small deterministic generator for the random kill moments (no extra dependency).
struct Lcg(u64);

impl Lcg {
    fn next_millis(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn killing_a_run_anywhere_never_duplicates_loses_or_miscounts() {
    let simulator = StandaloneSimulator::start(&[]);
    let mut kills = Vec::new();
    for step in dashbatch::kill_point::STEPS {
        for nth in 1..=3 {
            kills.push(Kill::AtStep(step, nth));
        }
    }
    let mut random = Lcg(0x5eed_2026);
    for _ in 0..cycles_from_environment("DASHBATCH_CRASH_RANDOM_CYCLES", 30) {
        kills.push(Kill::After(Duration::from_millis(random.next_millis(900))));
    }
    let concurrent = cycles_from_environment("DASHBATCH_CRASH_CONCURRENT_CYCLES", 12);
    for index in 0..concurrent {
        kills.push(Kill::Concurrent {
            processes: 2 + index % 3,
            kill_after: (index % 2 == 1).then(|| Duration::from_millis(random.next_millis(700))),
        });
    }
    let mut totals = Violations::default();
    let mut killed = 0;
    let mut failures = Vec::new();
    for kill in &kills {
        let outcome = cycle(&simulator, kill);
        killed += u64::from(outcome.killed);
        totals.add(outcome.violations);
        if !outcome.violations.is_clean() {
            failures.push(format!(
                "{kill:?} ({} resumes): {}",
                outcome.resumes, outcome.notes
            ));
        }
    }
    let summary = format!(
        "crash cycles: {} ({concurrent} with concurrent starts), killed: {killed}, duplicate batches: {}, lost rows: {}, cost mismatches: {}, double billed: {}, key leaks: {}",
        kills.len(),
        totals.duplicate_batches,
        totals.lost_rows,
        totals.cost_mismatches,
        totals.double_billed,
        totals.key_leaks
    );
    record_summary("crash", &summary);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        killed as usize >= kills.len() / 2,
        "most cycles must really kill the run ({killed})"
    );
}
