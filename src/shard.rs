//! Sharding: deciding where each request line goes so every shard file stays within the
//! provider's limits (requests per file, bytes per file, bytes per line). Pure: no I/O.

/// The limits one shard file must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardLimits {
    pub max_requests_per_file: u64,
    /// Counted over the whole file, newlines included.
    pub max_bytes_per_file: u64,
    /// Counted without the newline.
    pub max_line_bytes: u64,
}

/// Where the next line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Append to the shard being filled.
    CurrentShard,
    /// Close the current shard (if any) and start shard number `index`.
    NewShard { index: u64 },
}

/// A line that can never fit any shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong {
    pub line_bytes: u64,
    pub limit: u64,
}

/// Fills shards in order; the next line starts a new shard only when it would break a limit.
#[derive(Debug, Clone)]
pub struct ShardPlanner {
    limits: ShardLimits,
    shards_started: u64,
    lines_in_current: u64,
    bytes_in_current: u64,
}

impl ShardPlanner {
    pub fn new(limits: ShardLimits) -> ShardPlanner {
        ShardPlanner {
            limits,
            shards_started: 0,
            lines_in_current: 0,
            bytes_in_current: 0,
        }
    }

    /// Places a line of `line_bytes` bytes (without its newline).
    pub fn place(&mut self, line_bytes: u64) -> Result<Placement, LineTooLong> {
        let line_limit = self
            .limits
            .max_line_bytes
            .min(self.limits.max_bytes_per_file.saturating_sub(1));
        if line_bytes > line_limit {
            return Err(LineTooLong {
                line_bytes,
                limit: line_limit,
            });
        }
        let with_newline = line_bytes + 1;
        let fits = self.shards_started > 0
            && self.lines_in_current < self.limits.max_requests_per_file
            && self.bytes_in_current + with_newline <= self.limits.max_bytes_per_file;
        if fits {
            self.lines_in_current += 1;
            self.bytes_in_current += with_newline;
            Ok(Placement::CurrentShard)
        } else {
            let index = self.shards_started;
            self.shards_started += 1;
            self.lines_in_current = 1;
            self.bytes_in_current = with_newline;
            Ok(Placement::NewShard { index })
        }
    }

    pub fn shards_started(&self) -> u64 {
        self.shards_started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planner(requests: u64, bytes: u64, line: u64) -> ShardPlanner {
        ShardPlanner::new(ShardLimits {
            max_requests_per_file: requests,
            max_bytes_per_file: bytes,
            max_line_bytes: line,
        })
    }

    #[test]
    fn exactly_at_the_request_limit_stays_in_one_shard_and_one_past_starts_another() {
        let mut planner = planner(3, 1_000, 100);
        assert_eq!(planner.place(10), Ok(Placement::NewShard { index: 0 }));
        assert_eq!(planner.place(10), Ok(Placement::CurrentShard));
        assert_eq!(planner.place(10), Ok(Placement::CurrentShard));
        assert_eq!(planner.place(10), Ok(Placement::NewShard { index: 1 }));
        assert_eq!(planner.shards_started(), 2);
    }

    #[test]
    fn exactly_at_the_byte_limit_stays_and_one_byte_past_starts_another() {
        // Two lines of 9 bytes plus newlines are exactly 20 bytes.
        let mut planner = planner(100, 20, 100);
        assert_eq!(planner.place(9), Ok(Placement::NewShard { index: 0 }));
        assert_eq!(planner.place(9), Ok(Placement::CurrentShard));
        assert_eq!(planner.place(0), Ok(Placement::NewShard { index: 1 }));

        let mut planner = planner_with_bytes(20);
        assert_eq!(planner.place(9), Ok(Placement::NewShard { index: 0 }));
        assert_eq!(planner.place(10), Ok(Placement::NewShard { index: 1 }));
    }

    fn planner_with_bytes(bytes: u64) -> ShardPlanner {
        planner(100, bytes, 100)
    }

    #[test]
    fn exactly_at_the_line_limit_is_accepted_and_one_past_is_an_error() {
        let mut planner = planner(100, 1_000, 50);
        assert!(planner.place(50).is_ok());
        assert_eq!(
            planner.place(51),
            Err(LineTooLong {
                line_bytes: 51,
                limit: 50
            })
        );
    }

    #[test]
    fn a_line_larger_than_a_whole_file_is_an_error() {
        let mut planner = planner(100, 10, 100);
        assert!(planner.place(9).is_ok());
        assert!(planner.place(10).is_err());
    }

    #[test]
    fn every_shard_respects_every_limit_over_many_lines() {
        let limits = ShardLimits {
            max_requests_per_file: 7,
            max_bytes_per_file: 300,
            max_line_bytes: 90,
        };
        let mut planner = ShardPlanner::new(limits);
        let mut shards: Vec<(u64, u64)> = Vec::new();
        for line in 0..1_000u64 {
            let bytes = (line * 37) % 91;
            match planner.place(bytes).unwrap() {
                Placement::NewShard { .. } => shards.push((1, bytes + 1)),
                Placement::CurrentShard => {
                    let last = shards.last_mut().unwrap();
                    last.0 += 1;
                    last.1 += bytes + 1;
                }
            }
        }
        assert_eq!(shards.iter().map(|shard| shard.0).sum::<u64>(), 1_000);
        for (lines, bytes) in shards {
            assert!(lines <= 7 && bytes <= 300);
        }
    }
}
