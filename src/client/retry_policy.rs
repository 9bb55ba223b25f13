//! How often and how long idempotent calls are retried: bounded attempts, exponential back-off,
//! and the server's `Retry-After` honoured.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (attempts count from 1), given the server's wish.
    pub fn delay_after(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponential = self
            .first_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max_delay);
        match retry_after {
            // The server knows best, but a huge value should not park a run for hours.
            Some(wish) => wish
                .min(Duration::from_secs(300))
                .max(exponential.min(wish)),
            None => exponential,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay_after(1, None), Duration::from_millis(250));
        assert_eq!(policy.delay_after(2, None), Duration::from_millis(500));
        assert_eq!(policy.delay_after(20, None), Duration::from_secs(30));
    }

    #[test]
    fn retry_after_is_honoured() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay_after(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            policy.delay_after(1, Some(Duration::from_secs(9999))),
            Duration::from_secs(300)
        );
    }
}
