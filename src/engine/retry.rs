//! Retries of transient failures: requests that failed for a passing reason (rate limit, server
//! error, timeout, expiry) are copied from their shard file into new retry shards and sent again,
//! up to `batch.max_attempts` sends in all. Requests that failed for good are never resent, and
//! neither are lines the provider lost (they may have been billed).
//!
//! A retry shard's results become the latest word on their rows (`row_overrides` in the ledger),
//! which the join prefers over the earlier attempt's failure.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};

use serde::Deserialize;

use super::RunDirectory;
use super::extra_shards::ExtraShards;
use super::shard_results::load_shard_results;
use crate::job::Job;
use crate::ledger::{Ledger, ShardRecord};
use crate::provider::ProviderProfile;
use crate::row_result::{RowResult, is_transient_failure};
use crate::shard::shard_limits;
use crate::wire::BatchStatus;

pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// The custom_id of a request line, read without the rest.
#[derive(Deserialize)]
pub(super) struct LineIdentity {
    pub(super) custom_id: String,
}

/// The input row number of each line (1-based) of a shard.
fn row_numbers(ledger: &Ledger, shard: &ShardRecord) -> anyhow::Result<HashMap<u64, u64>> {
    if shard.attempt <= 1 {
        return Ok(HashMap::new());
    }
    Ok(ledger
        .shard_rows(shard.shard_index)?
        .into_iter()
        .map(|(line, row, _)| (line, row))
        .collect())
}

/// Records the results of downloaded retry shards as row overrides.
pub fn ingest_retry_results(
    ledger: &mut Ledger,
    run_directory: &RunDirectory,
) -> anyhow::Result<()> {
    for shard in ledger.shards()? {
        if shard.attempt <= 1 || !shard.results_downloaded || shard.results_ingested {
            continue;
        }
        let status = shard.status();
        let mut results = load_shard_results(run_directory, &shard, status)?;
        let mut overrides = Vec::new();
        for (_, _, custom_id) in ledger.shard_rows(shard.shard_index)? {
            let result = results
                .take(&custom_id)
                .unwrap_or_else(|| RowResult::unanswered(Some(status)));
            overrides.push((custom_id, serde_json::to_string(&result)?));
        }
        ledger.ingest_overrides(
            shard.shard_index,
            shard.attempt,
            shard.batch_id.as_deref(),
            &overrides,
        )?;
    }
    Ok(())
}

/// Collects transient failures of settled shards into new retry shards. Returns how many were made.
pub fn plan_retries(
    job: &Job,
    profile: &ProviderProfile,
    ledger: &mut Ledger,
    run_directory: &RunDirectory,
) -> anyhow::Result<usize> {
    let max_attempts = job.spec.batch.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    let shards = ledger.shards()?;
    let next_index = shards
        .iter()
        .map(|shard| shard.shard_index + 1)
        .max()
        .unwrap_or(0);
    let candidates: Vec<&ShardRecord> = shards
        .iter()
        .filter(|shard| shard.results_downloaded && !shard.retry_scanned)
        .collect();
    if candidates.is_empty() {
        return Ok(0);
    }
    let mut scanned = Vec::new();
    let mut extra = ExtraShards::new(run_directory, shard_limits(job, profile), next_index);

    for shard in candidates {
        scanned.push(shard.shard_index);
        if shard.attempt >= max_attempts {
            continue;
        }
        let status = shard.status();
        if status == BatchStatus::Failed {
            // A batch that failed validation fails again the same way.
            continue;
        }
        let results = load_shard_results(run_directory, shard, status)?;
        // A line without a result is as the batch's ending makes it. When neither such a line
        // nor any result may succeed if sent again (the common case), there is nothing to
        // resend, and the shard's lines are not read.
        let unanswered_may_succeed = is_transient_failure(&RowResult::unanswered(Some(status)));
        if !unanswered_may_succeed && !results.any_not_ok(is_transient_failure) {
            extra.close_group()?;
            continue;
        }
        let rows = row_numbers(ledger, shard)?;
        let file = File::open(run_directory.shard_path(&shard.file_name))?;
        for (index, line) in BufReader::new(file).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let line_number = index as u64 + 1;
            let identity: LineIdentity = serde_json::from_str(&line)?;
            let result = results
                .get_without_answer_texts(&identity.custom_id)
                .unwrap_or_else(|| RowResult::unanswered(Some(status)));
            if !is_transient_failure(&result) {
                continue;
            }
            let row_number = if shard.attempt <= 1 {
                shard.first_row + line_number - 1
            } else {
                rows.get(&line_number).copied().unwrap_or(0)
            };
            extra.write(
                &line,
                row_number,
                identity.custom_id,
                &shard.model,
                shard.attempt + 1,
            )?;
        }
        // A retry shard holds the lines of one attempt of one shard.
        extra.close_group()?;
    }
    let (new_shards, new_rows) = extra.finish()?;
    ledger.insert_retry_plan(&new_shards, &new_rows, &scanned)?;
    Ok(new_shards.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::load_job;
    use crate::provider::ProviderKind;

    /// What the settled batch said about one row.
    #[derive(Debug, Clone, Copy)]
    enum RowOutcome {
        /// A 200 answer with usage.
        Answered,
        /// A line with this error code and no response (the shape of error-file lines).
        FailedWithCode(&'static str),
        /// A response with this HTTP status and a body that names no error code.
        FailedWithHttpStatus(u16),
        /// No result line at all for the row.
        NoResultLine,
    }

    struct RetryCase {
        name: &'static str,
        /// `[batch] max_attempts` in the job file; `None` leaves the default of 3.
        max_attempts: Option<u32>,
        /// `[batch] max_requests_per_file` in the job file.
        max_requests_per_file: Option<u64>,
        /// The attempt of the settled shard (1 for a planned shard).
        shard_attempt: u32,
        batch_status: &'static str,
        /// The input row of the shard's first line.
        first_row: u64,
        /// The shard's rows in line order: custom_id and what came back.
        rows: &'static [(&'static str, RowOutcome)],
        results_downloaded: bool,
        already_scanned: bool,
        /// (input row, custom_id) of every row copied into a retry shard, in order.
        expected_resent: &'static [(u64, &'static str)],
        /// Rows in each retry shard made, in order.
        expected_retry_shard_sizes: &'static [u64],
    }

    use RowOutcome::{Answered, FailedWithCode, FailedWithHttpStatus, NoResultLine};

    const PLANNED_SHARD: RetryCase = RetryCase {
        name: "",
        max_attempts: None,
        max_requests_per_file: None,
        shard_attempt: 1,
        batch_status: "completed",
        first_row: 1,
        rows: &[],
        results_downloaded: true,
        already_scanned: false,
        expected_resent: &[],
        expected_retry_shard_sizes: &[],
    };

    const RETRY_CASES: &[RetryCase] = &[
        RetryCase {
            name: "a shard with no lines makes no retry shard",
            ..PLANNED_SHARD
        },
        RetryCase {
            name: "every row answered: nothing is resent",
            rows: &[("a", Answered), ("b", Answered)],
            ..PLANNED_SHARD
        },
        RetryCase {
            name: "a rate-limited row is resent with its input row number",
            first_row: 11,
            rows: &[
                ("a", Answered),
                ("b", FailedWithCode("rate_limit_exceeded")),
            ],
            expected_resent: &[(12, "b")],
            expected_retry_shard_sizes: &[1],
            ..PLANNED_SHARD
        },
        RetryCase {
            name: "transient codes in DashScope and OpenAI spellings are all resent",
            rows: &[
                ("throttled", FailedWithCode("Throttling.RateQuota")),
                ("internal", FailedWithCode("InternalError.Algo")),
                ("timeout", FailedWithCode("RequestTimeOut")),
                ("server", FailedWithCode("server_error")),
                ("unavailable", FailedWithCode("ServiceUnavailable")),
                ("http-429", FailedWithHttpStatus(429)),
                ("http-500", FailedWithHttpStatus(500)),
                ("http-503", FailedWithHttpStatus(503)),
            ],
            expected_resent: &[
                (1, "throttled"),
                (2, "internal"),
                (3, "timeout"),
                (4, "server"),
                (5, "unavailable"),
                (6, "http-429"),
                (7, "http-500"),
                (8, "http-503"),
            ],
            expected_retry_shard_sizes: &[8],
            ..PLANNED_SHARD
        },
        RetryCase {
            name: "permanent failures are never resent",
            rows: &[
                ("bad-parameter", FailedWithCode("InvalidParameter")),
                ("inspection", FailedWithCode("DataInspectionFailed")),
                ("arrears", FailedWithCode("Arrearage")),
                ("too-long", FailedWithCode("context_length_exceeded")),
                ("quota", FailedWithCode("insufficient_quota")),
                ("http-400", FailedWithHttpStatus(400)),
                ("http-404", FailedWithHttpStatus(404)),
            ],
            ..PLANNED_SHARD
        },
        RetryCase {
            name: "mixed transient and permanent failures: only the transient ones, in line order",
            first_row: 101,
            rows: &[
                ("ok-1", Answered),
                ("limited", FailedWithCode("rate_limit_exceeded")),
                ("refused", FailedWithCode("InvalidParameter")),
                ("gateway", FailedWithHttpStatus(502)),
                ("ok-2", Answered),
                ("not-found", FailedWithHttpStatus(404)),
                ("slow", FailedWithCode("timeout")),
            ],
            expected_resent: &[(102, "limited"), (104, "gateway"), (107, "slow")],
            expected_retry_shard_sizes: &[3],
            ..PLANNED_SHARD
        },
        RetryCase {
            name: "a line a completed batch lost is missing and never resent, since it may have been billed",
            rows: &[("a", Answered), ("lost", NoResultLine)],
            ..PLANNED_SHARD
        },
        RetryCase {
            name: "rows an expired batch never ran are resent, its answered rows are not",
            batch_status: "expired",
            rows: &[
                ("done", Answered),
                ("late-1", NoResultLine),
                ("late-2", FailedWithCode("batch_expired")),
            ],
            expected_resent: &[(2, "late-1"), (3, "late-2")],
            expected_retry_shard_sizes: &[2],
            ..PLANNED_SHARD
        },
        RetryCase {
            name: "rows a cancelled batch never ran are not resent",
            batch_status: "cancelled",
            rows: &[("done", Answered), ("stopped", NoResultLine)],
            ..PLANNED_SHARD
        },
        RetryCase {
            name: "a batch that failed validation is not resent even with transient codes",
            batch_status: "failed",
            rows: &[
                ("a", FailedWithCode("rate_limit_exceeded")),
                ("b", NoResultLine),
            ],
            ..PLANNED_SHARD
        },
        RetryCase {
            name: "max_attempts of 1 turns retries off",
            max_attempts: Some(1),
            rows: &[("a", FailedWithCode("rate_limit_exceeded"))],
            ..PLANNED_SHARD
        },
        RetryCase {
            name: "without max_attempts a second attempt is resent a third time",
            shard_attempt: 2,
            first_row: 40,
            rows: &[
                ("a", FailedWithCode("rate_limit_exceeded")),
                ("b", Answered),
            ],
            expected_resent: &[(40, "a")],
            expected_retry_shard_sizes: &[1],
            ..PLANNED_SHARD
        },
        RetryCase {
            name: "without max_attempts the third attempt is the last",
            shard_attempt: 3,
            rows: &[("a", FailedWithCode("rate_limit_exceeded"))],
            ..PLANNED_SHARD
        },
        RetryCase {
            name: "one attempt below max_attempts is resent and one at it is exhausted",
            max_attempts: Some(5),
            shard_attempt: 4,
            first_row: 7,
            rows: &[("a", FailedWithCode("server_error"))],
            expected_resent: &[(7, "a")],
            expected_retry_shard_sizes: &[1],
            ..PLANNED_SHARD
        },
        RetryCase {
            name: "attempts exhausted: a shard at max_attempts is not resent",
            max_attempts: Some(5),
            shard_attempt: 5,
            rows: &[("a", FailedWithCode("server_error"))],
            ..PLANNED_SHARD
        },
        RetryCase {
            name: "many transient failures are split into retry shards within the request limit",
            max_requests_per_file: Some(2),
            rows: &[
                ("a", FailedWithHttpStatus(500)),
                ("b", Answered),
                ("c", FailedWithHttpStatus(500)),
                ("d", FailedWithHttpStatus(500)),
                ("e", FailedWithHttpStatus(500)),
                ("f", FailedWithHttpStatus(500)),
            ],
            expected_resent: &[(1, "a"), (3, "c"), (4, "d"), (5, "e"), (6, "f")],
            expected_retry_shard_sizes: &[2, 2, 1],
            ..PLANNED_SHARD
        },
        RetryCase {
            name: "a shard already scanned is not resent twice",
            already_scanned: true,
            rows: &[("a", FailedWithCode("rate_limit_exceeded"))],
            ..PLANNED_SHARD
        },
        RetryCase {
            name: "a shard whose results are not downloaded yet is not scanned",
            results_downloaded: false,
            rows: &[("a", FailedWithCode("rate_limit_exceeded"))],
            ..PLANNED_SHARD
        },
    ];

    fn request_line(custom_id: &str) -> String {
        format!(
            r#"{{"custom_id":"{custom_id}","method":"POST","url":"/v1/chat/completions","body":{{"model":"qwen-plus","messages":[{{"role":"user","content":"row {custom_id}"}}]}}}}"#
        )
    }

    /// The result line of a row, and whether it belongs in the error file.
    fn result_line(custom_id: &str, outcome: RowOutcome) -> Option<(String, bool)> {
        match outcome {
            Answered => Some((
                format!(
                    r#"{{"id":"r-{custom_id}","custom_id":"{custom_id}","response":{{"status_code":200,"request_id":"q-{custom_id}","body":{{"usage":{{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}},"choices":[{{"index":0,"finish_reason":"stop","message":{{"role":"assistant","content":"fine"}}}}]}}}},"error":null}}"#
                ),
                false,
            )),
            FailedWithCode(code) => Some((
                format!(
                    r#"{{"id":"e-{custom_id}","custom_id":"{custom_id}","response":null,"error":{{"code":"{code}","message":"it failed"}}}}"#
                ),
                true,
            )),
            FailedWithHttpStatus(status) => Some((
                format!(
                    r#"{{"id":"e-{custom_id}","custom_id":"{custom_id}","response":{{"status_code":{status},"request_id":"q-{custom_id}","body":{{}}}},"error":null}}"#
                ),
                true,
            )),
            NoResultLine => None,
        }
    }

    /// Writes the case's job, shard file, results and ledger; returns them for `plan_retries`.
    fn settled_shard_of(
        case: &RetryCase,
        directory: &std::path::Path,
    ) -> (Job, RunDirectory, Ledger) {
        let mut batch_section = String::from("[batch]\n");
        if let Some(max_attempts) = case.max_attempts {
            batch_section.push_str(&format!("max_attempts = {max_attempts}\n"));
        }
        if let Some(max_requests) = case.max_requests_per_file {
            batch_section.push_str(&format!("max_requests_per_file = {max_requests}\n"));
        }
        std::fs::write(
            directory.join("job.toml"),
            format!(
                "[input]\npath = \"rows.csv\"\n[request]\nmodel = \"qwen-plus\"\ntemplate = \"{{{{ text }}}}\"\n{batch_section}"
            ),
        )
        .unwrap();
        let job = load_job(&directory.join("job.toml")).unwrap();
        let run_directory = RunDirectory::new(directory.join("run"));
        run_directory.create().unwrap();
        let shard_file: String = case
            .rows
            .iter()
            .map(|(custom_id, _)| request_line(custom_id) + "\n")
            .collect();
        std::fs::write(run_directory.shard_path("shard-00000.jsonl"), shard_file).unwrap();
        let mut output_lines = String::new();
        let mut error_lines = String::new();
        for (custom_id, outcome) in case.rows {
            if let Some((line, in_error_file)) = result_line(custom_id, *outcome) {
                let file = if in_error_file {
                    &mut error_lines
                } else {
                    &mut output_lines
                };
                file.push_str(&line);
                file.push('\n');
            }
        }
        std::fs::write(run_directory.output_results_path(0), output_lines).unwrap();
        std::fs::write(run_directory.error_results_path(0), error_lines).unwrap();

        let shard = ShardRecord {
            row_count: case.rows.len() as u64,
            ..ShardRecord::planned(
                0,
                case.first_row,
                "shard-00000.jsonl".into(),
                "qwen-plus".into(),
                case.shard_attempt,
            )
        };
        let mut ledger = Ledger::open(&run_directory.root).unwrap();
        if case.shard_attempt <= 1 {
            ledger.insert_shards(&[shard]).unwrap();
        } else {
            // A retry shard's rows are known from the ledger, not from its position.
            let rows: Vec<(u64, u64, u64, String)> = case
                .rows
                .iter()
                .enumerate()
                .map(|(line, (custom_id, _))| {
                    (
                        0,
                        line as u64 + 1,
                        case.first_row + line as u64,
                        (*custom_id).to_owned(),
                    )
                })
                .collect();
            ledger.insert_retry_plan(&[shard], &rows, &[]).unwrap();
        }
        // The batch's progress is recorded the way the engine records it.
        ledger.set_file_id(0, Some("file-in")).unwrap();
        ledger.set_batch_id(0, "batch-0").unwrap();
        let row_count = case.rows.len() as u64;
        ledger
            .update_batch_state(
                0,
                case.batch_status,
                row_count,
                row_count,
                0,
                Some("file-out"),
                Some("file-errors"),
                None,
            )
            .unwrap();
        if case.results_downloaded {
            ledger.set_results_downloaded(0).unwrap();
        }
        if case.already_scanned {
            ledger.insert_retry_plan(&[], &[], &[0]).unwrap();
        }
        (job, run_directory, ledger)
    }

    #[test]
    fn retry_cases() {
        let profile = ProviderProfile::for_kind(ProviderKind::Sim);
        for case in RETRY_CASES {
            let directory = tempfile::tempdir().unwrap();
            let (job, run_directory, mut ledger) = settled_shard_of(case, directory.path());

            let made = plan_retries(&job, &profile, &mut ledger, &run_directory)
                .unwrap_or_else(|error| panic!("case `{}`: {error:#}", case.name));
            assert_eq!(
                made,
                case.expected_retry_shard_sizes.len(),
                "case `{}`: retry shards made",
                case.name
            );
            let retry_shards: Vec<ShardRecord> = ledger
                .shards()
                .unwrap()
                .into_iter()
                .filter(|shard| shard.shard_index > 0)
                .collect();
            let sizes: Vec<u64> = retry_shards.iter().map(|shard| shard.row_count).collect();
            assert_eq!(
                sizes, case.expected_retry_shard_sizes,
                "case `{}`: rows per retry shard",
                case.name
            );
            let mut resent = Vec::new();
            for shard in &retry_shards {
                assert_eq!(
                    shard.attempt,
                    case.shard_attempt + 1,
                    "case `{}`: attempt of retry shard {}",
                    case.name,
                    shard.shard_index
                );
                let rows = ledger.shard_rows(shard.shard_index).unwrap();
                assert_eq!(
                    shard.first_row, rows[0].1,
                    "case `{}`: first row of retry shard {}",
                    case.name, shard.shard_index
                );
                let file =
                    std::fs::read_to_string(run_directory.shard_path(&shard.file_name)).unwrap();
                let expected_file: String = rows
                    .iter()
                    .map(|(_, _, custom_id)| request_line(custom_id) + "\n")
                    .collect();
                assert_eq!(
                    file, expected_file,
                    "case `{}`: retry shard {} holds the original lines",
                    case.name, shard.shard_index
                );
                resent.extend(rows.into_iter().map(|(_, row, custom_id)| (row, custom_id)));
            }
            let expected_resent: Vec<(u64, String)> = case
                .expected_resent
                .iter()
                .map(|(row, custom_id)| (*row, (*custom_id).to_owned()))
                .collect();
            assert_eq!(resent, expected_resent, "case `{}`: rows resent", case.name);

            let source = &ledger.shards().unwrap()[0];
            assert_eq!(
                source.retry_scanned,
                case.results_downloaded || case.already_scanned,
                "case `{}`: the settled shard is marked scanned",
                case.name
            );
            assert_eq!(
                plan_retries(&job, &profile, &mut ledger, &run_directory).unwrap(),
                0,
                "case `{}`: a second pass resends nothing again",
                case.name
            );
        }
    }
}
