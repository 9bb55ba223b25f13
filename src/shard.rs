//! Sharding: deciding where each request line goes so every shard file stays within the
//! provider's limits (requests per file, bytes per file, bytes per line), lowered by the job. Pure:
//! no I/O.

/// The limits one shard file must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardLimits {
    pub max_requests_per_file: u64,
    /// Counted over the whole file, newlines included.
    pub max_bytes_per_file: u64,
    /// Counted without the newline.
    pub max_line_bytes: u64,
}

/// The limits of one shard: the provider's, lowered by the job where it asks.
pub fn shard_limits(
    job: &crate::job::Job,
    profile: &crate::provider::ProviderProfile,
) -> ShardLimits {
    let batch = &job.spec.batch;
    ShardLimits {
        max_requests_per_file: batch
            .max_requests_per_file
            .map_or(profile.max_requests_per_file, |v| {
                v.min(profile.max_requests_per_file)
            }),
        max_bytes_per_file: batch
            .max_bytes_per_file
            .map_or(profile.max_bytes_per_file, |v| {
                v.min(profile.max_bytes_per_file)
            }),
        max_line_bytes: batch
            .max_line_bytes
            .map_or(profile.max_line_bytes, |v| v.min(profile.max_line_bytes)),
    }
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
    use crate::job::load_job;
    use crate::provider::{ProviderKind, ProviderProfile};

    struct ShardLimitCase {
        name: &'static str,
        /// The job's (max_requests_per_file, max_bytes_per_file, max_line_bytes).
        job_limits: (Option<u64>, Option<u64>, Option<u64>),
        expected: ShardLimits,
    }

    const SIM_LIMITS: ShardLimits = ShardLimits {
        max_requests_per_file: 50_000,
        max_bytes_per_file: 500_000_000,
        max_line_bytes: 6_000_000,
    };

    const SHARD_LIMIT_CASES: &[ShardLimitCase] = &[
        ShardLimitCase {
            name: "a job that sets no limit gets the provider's",
            job_limits: (None, None, None),
            expected: SIM_LIMITS,
        },
        ShardLimitCase {
            name: "a job may lower every limit, down to one",
            job_limits: (Some(1), Some(1), Some(1)),
            expected: ShardLimits {
                max_requests_per_file: 1,
                max_bytes_per_file: 1,
                max_line_bytes: 1,
            },
        },
        ShardLimitCase {
            name: "a job limit exactly at the provider's is kept",
            job_limits: (Some(50_000), Some(500_000_000), Some(6_000_000)),
            expected: SIM_LIMITS,
        },
        ShardLimitCase {
            name: "a job limit one over the provider's is lowered to the provider's",
            job_limits: (Some(50_001), Some(500_000_001), Some(6_000_001)),
            expected: SIM_LIMITS,
        },
        ShardLimitCase {
            name: "each limit is lowered on its own",
            job_limits: (Some(10), None, Some(7_000_000)),
            expected: ShardLimits {
                max_requests_per_file: 10,
                ..SIM_LIMITS
            },
        },
    ];

    #[test]
    fn shard_limit_cases() {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(
            directory.path().join("job.toml"),
            "[input]\npath = \"rows.csv\"\n[request]\nmodel = \"qwen-plus\"\ntemplate = \"{{ text }}\"\n",
        )
        .unwrap();
        let mut job = load_job(&directory.path().join("job.toml")).unwrap();
        let profile = ProviderProfile::for_kind(ProviderKind::Sim);
        for case in SHARD_LIMIT_CASES {
            let (requests, bytes, line) = case.job_limits;
            job.spec.batch.max_requests_per_file = requests;
            job.spec.batch.max_bytes_per_file = bytes;
            job.spec.batch.max_line_bytes = line;
            assert_eq!(
                shard_limits(&job, &profile),
                case.expected,
                "case `{}`",
                case.name
            );
        }
    }

    /// A line that opens shard number `index`.
    const fn starts_shard(index: u64) -> Result<Placement, LineTooLong> {
        Ok(Placement::NewShard { index })
    }

    /// A line appended to the shard being filled.
    const JOINS_CURRENT_SHARD: Result<Placement, LineTooLong> = Ok(Placement::CurrentShard);

    /// A line refused because no shard could ever hold it.
    const fn refused_as_too_long(line_bytes: u64, limit: u64) -> Result<Placement, LineTooLong> {
        Err(LineTooLong { line_bytes, limit })
    }

    struct ShardPlannerCase {
        name: &'static str,
        max_requests_per_file: u64,
        max_bytes_per_file: u64,
        max_line_bytes: u64,
        /// Byte length of each line offered, in order, without its newline.
        line_sizes: &'static [u64],
        /// What `place` answers for each line, in the same order.
        expected_placements: &'static [Result<Placement, LineTooLong>],
        expected_shards_started: u64,
    }

    const SHARD_PLANNER_CASES: &[ShardPlannerCase] = &[
        ShardPlannerCase {
            name: "no lines at all start no shard",
            max_requests_per_file: 3,
            max_bytes_per_file: 1_000,
            max_line_bytes: 100,
            line_sizes: &[],
            expected_placements: &[],
            expected_shards_started: 0,
        },
        ShardPlannerCase {
            name: "a zero-byte line is accepted and its newline opens the first shard",
            max_requests_per_file: 3,
            max_bytes_per_file: 1_000,
            max_line_bytes: 100,
            line_sizes: &[0, 0],
            expected_placements: &[starts_shard(0), JOINS_CURRENT_SHARD],
            expected_shards_started: 1,
        },
        ShardPlannerCase {
            name: "exactly at the request limit stays in one shard and one past starts another",
            max_requests_per_file: 3,
            max_bytes_per_file: 1_000,
            max_line_bytes: 100,
            line_sizes: &[10, 10, 10, 10],
            expected_placements: &[
                starts_shard(0),
                JOINS_CURRENT_SHARD,
                JOINS_CURRENT_SHARD,
                starts_shard(1),
            ],
            expected_shards_started: 2,
        },
        ShardPlannerCase {
            name: "a request limit of one puts every line in a shard of its own",
            max_requests_per_file: 1,
            max_bytes_per_file: 1_000,
            max_line_bytes: 100,
            line_sizes: &[5, 5, 5],
            expected_placements: &[starts_shard(0), starts_shard(1), starts_shard(2)],
            expected_shards_started: 3,
        },
        ShardPlannerCase {
            name: "two 9-byte lines with newlines are exactly the 20-byte limit and even an empty line is one byte past",
            max_requests_per_file: 100,
            max_bytes_per_file: 20,
            max_line_bytes: 100,
            line_sizes: &[9, 9, 0],
            expected_placements: &[starts_shard(0), JOINS_CURRENT_SHARD, starts_shard(1)],
            expected_shards_started: 2,
        },
        ShardPlannerCase {
            name: "a second line one byte over the byte limit starts another shard",
            max_requests_per_file: 100,
            max_bytes_per_file: 20,
            max_line_bytes: 100,
            line_sizes: &[9, 10],
            expected_placements: &[starts_shard(0), starts_shard(1)],
            expected_shards_started: 2,
        },
        ShardPlannerCase {
            name: "a line exactly at the line limit is accepted and one byte past is refused",
            max_requests_per_file: 100,
            max_bytes_per_file: 1_000,
            max_line_bytes: 50,
            line_sizes: &[50, 51],
            expected_placements: &[starts_shard(0), refused_as_too_long(51, 50)],
            expected_shards_started: 1,
        },
        ShardPlannerCase {
            name: "a refused line leaves the open shard as it was",
            max_requests_per_file: 3,
            max_bytes_per_file: 1_000,
            max_line_bytes: 50,
            line_sizes: &[10, 51, 10, 10, 10],
            expected_placements: &[
                starts_shard(0),
                refused_as_too_long(51, 50),
                JOINS_CURRENT_SHARD,
                JOINS_CURRENT_SHARD,
                starts_shard(1),
            ],
            expected_shards_started: 2,
        },
        ShardPlannerCase {
            name: "a line that with its newline would be larger than a whole file is refused even under the line limit",
            max_requests_per_file: 100,
            max_bytes_per_file: 10,
            max_line_bytes: 100,
            line_sizes: &[9, 10],
            expected_placements: &[starts_shard(0), refused_as_too_long(10, 9)],
            expected_shards_started: 1,
        },
        ShardPlannerCase {
            name: "a one-byte file holds exactly one empty line and refuses any longer one",
            max_requests_per_file: 100,
            max_bytes_per_file: 1,
            max_line_bytes: 100,
            line_sizes: &[0, 0, 1],
            expected_placements: &[starts_shard(0), starts_shard(1), refused_as_too_long(1, 0)],
            expected_shards_started: 2,
        },
        ShardPlannerCase {
            name: "one huge line that fills a whole file gets a shard of its own between small ones",
            max_requests_per_file: 100,
            max_bytes_per_file: 1_000,
            max_line_bytes: 1_000,
            line_sizes: &[10, 999, 10],
            expected_placements: &[starts_shard(0), starts_shard(1), starts_shard(2)],
            expected_shards_started: 3,
        },
        ShardPlannerCase {
            name: "many small lines fill shards to the byte limit before the request limit",
            max_requests_per_file: 100,
            max_bytes_per_file: 6,
            max_line_bytes: 100,
            line_sizes: &[1, 1, 1, 1, 1, 1, 1],
            expected_placements: &[
                starts_shard(0),
                JOINS_CURRENT_SHARD,
                JOINS_CURRENT_SHARD,
                starts_shard(1),
                JOINS_CURRENT_SHARD,
                JOINS_CURRENT_SHARD,
                starts_shard(2),
            ],
            expected_shards_started: 3,
        },
        ShardPlannerCase {
            name: "when both limits are reached by the same line the shard closes once, not twice",
            max_requests_per_file: 2,
            max_bytes_per_file: 4,
            max_line_bytes: 100,
            line_sizes: &[1, 1, 1, 1],
            expected_placements: &[
                starts_shard(0),
                JOINS_CURRENT_SHARD,
                starts_shard(1),
                JOINS_CURRENT_SHARD,
            ],
            expected_shards_started: 2,
        },
    ];

    #[test]
    fn shard_planner_cases() {
        for case in SHARD_PLANNER_CASES {
            assert_eq!(
                case.line_sizes.len(),
                case.expected_placements.len(),
                "case `{}`: one expected placement per line",
                case.name
            );
            let mut planner = ShardPlanner::new(ShardLimits {
                max_requests_per_file: case.max_requests_per_file,
                max_bytes_per_file: case.max_bytes_per_file,
                max_line_bytes: case.max_line_bytes,
            });
            for (position, (&line_bytes, expected)) in case
                .line_sizes
                .iter()
                .zip(case.expected_placements)
                .enumerate()
            {
                assert_eq!(
                    &planner.place(line_bytes),
                    expected,
                    "case `{}`: line {} of {line_bytes} bytes",
                    case.name,
                    position + 1
                );
            }
            assert_eq!(
                planner.shards_started(),
                case.expected_shards_started,
                "case `{}`: shards started",
                case.name
            );
        }
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
