//! The simulated clock: real elapsed time multiplied by a time scale, plus explicit jumps.
//!
//! Simulated time is what every timestamp of the API shows and what drives batch lifecycles.
//! It never runs backwards: a restarted simulator resumes from the latest simulated time it had
//! saved, even when that is ahead of the wall clock.

use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Simulated unix seconds (fractional).
#[derive(Debug)]
pub(crate) struct SimulatedClock {
    anchor: Mutex<ClockAnchor>,
}

#[derive(Debug, Clone, Copy)]
struct ClockAnchor {
    simulated_seconds: f64,
    real_instant: Instant,
    time_scale: f64,
}

impl SimulatedClock {
    /// A clock that starts at `start_seconds` (or at the wall clock if that is later).
    pub(crate) fn starting_at(start_seconds: f64, time_scale: f64) -> SimulatedClock {
        SimulatedClock {
            anchor: Mutex::new(ClockAnchor {
                simulated_seconds: start_seconds.max(wall_clock_seconds()),
                real_instant: Instant::now(),
                time_scale: sanitised_time_scale(time_scale),
            }),
        }
    }

    pub(crate) fn now(&self) -> f64 {
        let anchor = *self.anchor.lock().expect("clock lock");
        anchor.simulated_seconds + anchor.real_instant.elapsed().as_secs_f64() * anchor.time_scale
    }

    pub(crate) fn time_scale(&self) -> f64 {
        self.anchor.lock().expect("clock lock").time_scale
    }

    /// Changes the speed from now on, without a jump.
    pub(crate) fn set_time_scale(&self, time_scale: f64) {
        let mut anchor = self.anchor.lock().expect("clock lock");
        let now = anchor.simulated_seconds
            + anchor.real_instant.elapsed().as_secs_f64() * anchor.time_scale;
        *anchor = ClockAnchor {
            simulated_seconds: now,
            real_instant: Instant::now(),
            time_scale: sanitised_time_scale(time_scale),
        };
    }

    /// Jumps forward by `seconds` (negative values are ignored: time never runs backwards).
    pub(crate) fn advance(&self, seconds: f64) {
        if seconds.is_finite() && seconds > 0.0 {
            self.anchor.lock().expect("clock lock").simulated_seconds += seconds;
        }
    }
}

fn sanitised_time_scale(time_scale: f64) -> f64 {
    if time_scale.is_finite() && time_scale > 0.0 {
        time_scale
    } else {
        0.0
    }
}

/// The real wall clock in unix seconds.
pub(crate) fn wall_clock_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|duration| duration.as_secs_f64())
        .unwrap_or(0.0)
}

/// Whole unix seconds, as the API shows them.
pub(crate) fn whole_seconds(seconds: f64) -> i64 {
    seconds.floor() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::time::Duration;

    use super::super::SimConfig;
    use super::super::test_support::{chat_lines, start_sim};
    use crate::wire::BatchStatus;

    #[test]
    fn a_frozen_clock_moves_only_when_advanced() {
        let clock = SimulatedClock::starting_at(0.0, 0.0);
        let start = clock.now();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(clock.now(), start);
        clock.advance(100.0);
        clock.advance(-50.0);
        assert_eq!(clock.now(), start + 100.0);
    }

    #[test]
    fn a_scaled_clock_runs_faster_and_never_starts_before_the_wall_clock() {
        let clock = SimulatedClock::starting_at(0.0, 1000.0);
        let start = clock.now();
        assert!(start >= wall_clock_seconds() - 1.0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(clock.now() - start >= 15.0);
        clock.set_time_scale(0.0);
        let frozen = clock.now();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(clock.now(), frozen);
    }

    #[test]
    fn a_saved_future_time_is_kept() {
        let future = wall_clock_seconds() + 1_000_000.0;
        let clock = SimulatedClock::starting_at(future, 0.0);
        assert_eq!(clock.now(), future);
    }

    #[tokio::test]
    async fn the_default_time_scale_finishes_a_few_hundred_lines_within_seconds() {
        let sim = start_sim(SimConfig::default()).await;
        let batch = sim.submit(&chat_lines(300, "qwen-flash")).await;
        let started = Instant::now();
        let finished = loop {
            let batch = sim.batch(&batch.id).await;
            if batch.status.is_terminal() {
                break batch;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "still {:?}",
                batch.status
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(finished.status, BatchStatus::Completed);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_slower_clock_lets_a_poller_watch_progress() {
        let sim = start_sim(SimConfig {
            time_scale: 100.0,
            ..SimConfig::default()
        })
        .await;
        let batch = sim.submit(&chat_lines(20, "qwen-flash")).await;
        let started = Instant::now();
        let mut progress_seen = BTreeSet::new();
        loop {
            let batch = sim.batch(&batch.id).await;
            if batch.status == BatchStatus::InProgress {
                progress_seen.insert(batch.request_counts.unwrap().completed);
            }
            if batch.status.is_terminal() {
                assert_eq!(batch.status, BatchStatus::Completed);
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(3));
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        assert!(
            progress_seen
                .iter()
                .filter(|completed| (1..20).contains(*completed))
                .count()
                >= 2,
            "{progress_seen:?}"
        );
    }
}
