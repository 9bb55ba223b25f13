//! The budget cap of a run (`max_cost`) and the cost estimates a run keeps: refuse before the first upload when the upper bound is over the cap, and never submit a shard that could take the money committed past it.
//!
//! Money committed is what the run could be billed for at worst: for every shard with a batch, the
//! actual cost of its billed rows once its results are in, plus the upper bound of every row
//! without a result yet (rows that came back failed are not billed, reference §7.1). A shard is
//! submitted only if committed money plus the shard's own upper bound stays within the cap, so as
//! long as each answer stays within its upper bound (`max_tokens`, the thinking budget), the bill
//! stays within the cap.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::json;

use super::run_failure::RunFailure;
use super::run_record::RunRecord;
use super::shard_results::load_shard_results;
use super::{EventKind, EventSink, RunDirectory};
use crate::cost::RunPricer;
use crate::estimate::{
    EstimateTotals, RequestEstimator, ShardEstimate, estimate_shard_file,
    request_estimator_for_job, vocabulary_for_job, with_thousands,
};
use crate::job::Job;
use crate::ledger::{EffectKind, Ledger, ShardRecord};
use crate::pricing::{Money, PriceTable};
use crate::tokens::VocabularySource;
use crate::wire::BatchStatus;

/// The `error_code` of rows whose shard was not submitted because of the budget cap.
pub const BUDGET_CAP_ERROR_CODE: &str = "budget_cap";

/// Where a run's cap comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CapSource {
    /// `--max-cost` on this command line.
    Flag,
    /// `--max-cost` given when the run started, kept in its ledger.
    RunLedger,
    /// `[batch] max_cost` in the job file.
    JobFile,
}

impl std::fmt::Display for CapSource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            CapSource::Flag => "`--max-cost`",
            CapSource::RunLedger => "the `--max-cost` this run was started with",
            CapSource::JobFile => "`[batch] max_cost` in the job file",
        })
    }
}

/// The cap in force.
#[derive(Debug, Clone, Copy)]
pub struct BudgetCap {
    pub limit: Money,
    pub source: CapSource,
}

/// The budget section of `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetReport {
    /// Exact decimal text in the report's currency.
    pub max_cost: String,
    pub source: CapSource,
    /// Money committed when the run last submitted or stopped (actual cost of billed rows plus the
    /// upper bound of rows without a result).
    pub committed: String,
    /// Shards left unsubmitted because they could have passed the cap.
    pub shards_not_submitted: Vec<u64>,
    /// Rows of those shards (retry shards' rows keep their earlier failure).
    pub rows_not_submitted: u64,
}

/// What a run knows about its costs before they are billed, and the cap it keeps.
pub struct RunBudget {
    /// `None` when the model has no price (then there is no estimate and no cap).
    estimator: Option<RequestEstimator>,
    pricer: RunPricer,
    cap: Option<BudgetCap>,
    estimates: BTreeMap<u64, ShardEstimate>,
    /// What each settled shard committed, from its results; `None` when unbounded. Settled
    /// results never change, so each shard's files are read (and estimated) once.
    settled: BTreeMap<u64, Option<Money>>,
    skipped: BTreeSet<u64>,
    last_committed: Option<Money>,
}

/// The estimator, cap and facts of a run, set up when it starts or resumes.
///
/// The cap is `--max-cost` (recorded in the ledger, so a resumed run keeps it), else the one the
/// run was started with, else the job's `[batch] max_cost`. The tokenizer is `--tokenizer`, else
/// the one the run was started with, else DASHBATCH_TOKENIZER, else the job's `[estimate]
/// tokenizer`, else the heuristic.
///
/// # Errors
/// Exit code 2 when a cap is set but the model has no price, a cap is not an amount, or a chosen
/// tokenizer vocabulary cannot be used.
pub fn prepare_run_budget(
    job: &Job,
    prices: &PriceTable,
    ledger: &Ledger,
    record: &RunRecord,
    max_cost_flag: Option<&str>,
    tokenizer_flag: Option<&std::path::Path>,
) -> Result<RunBudget, RunFailure> {
    let vocabulary = match (tokenizer_flag, record.tokenizer.clone()) {
        (Some(flag), _) => Some((flag.to_owned(), VocabularySource::Flag)),
        (None, Some(recorded)) => Some((recorded, VocabularySource::RunLedger)),
        (None, None) => vocabulary_for_job(None, job),
    };
    if let Some((path, _)) = &vocabulary {
        RunRecord::record_tokenizer(ledger, path).map_err(RunFailure::local)?;
    }

    let cap_text = match (
        max_cost_flag,
        record.max_cost.clone(),
        &job.spec.batch.max_cost,
    ) {
        (Some(flag), _, _) => {
            crate::job::check_positive_amount(flag)
                .map_err(|problem| RunFailure::local(anyhow::anyhow!("`--max-cost`: {problem}")))?;
            RunRecord::record_max_cost(ledger, flag.trim()).map_err(RunFailure::local)?;
            Some((flag.trim().to_owned(), CapSource::Flag))
        }
        (None, Some(recorded), _) => Some((recorded, CapSource::RunLedger)),
        (None, None, Some(job_value)) => Some((job_value.0.clone(), CapSource::JobFile)),
        (None, None, None) => None,
    };

    let estimator = match request_estimator_for_job(job, prices, vocabulary.as_ref()) {
        Ok(estimator) => Some(estimator),
        Err(crate::estimate::EstimateSetupError::UnknownModel { .. }) if cap_text.is_none() => None,
        Err(error) => {
            let hint = if cap_text.is_some() {
                " (a budget cap needs the model's price)"
            } else {
                ""
            };
            return Err(RunFailure::local(anyhow::anyhow!("{error}{hint}")));
        }
    };
    let cap = match (&cap_text, &estimator) {
        (Some((text, source)), Some(estimator)) => {
            let limit =
                Money::parse_decimal(text, estimator.price().currency()).map_err(|error| {
                    RunFailure::local(anyhow::anyhow!("max_cost from {source}: {error}"))
                })?;
            Some(BudgetCap {
                limit,
                source: *source,
            })
        }
        _ => None,
    };
    let thinking = job.spec.request.enable_thinking == Some(true);
    Ok(RunBudget {
        estimator,
        pricer: RunPricer::new(prices.clone(), &job.spec.request.model, thinking),
        cap,
        estimates: BTreeMap::new(),
        settled: BTreeMap::new(),
        skipped: BTreeSet::new(),
        last_committed: None,
    })
}

/// The estimate of `shard` from `cache`, computed from its shard file the first time.
fn cached_shard_estimate<'cache>(
    cache: &'cache mut BTreeMap<u64, ShardEstimate>,
    estimator: &RequestEstimator,
    run_directory: &RunDirectory,
    shard: &ShardRecord,
) -> anyhow::Result<&'cache ShardEstimate> {
    match cache.entry(shard.shard_index) {
        std::collections::btree_map::Entry::Occupied(entry) => Ok(entry.into_mut()),
        std::collections::btree_map::Entry::Vacant(entry) => {
            let totals = estimate_shard_file(
                &run_directory.shard_path(&shard.file_name),
                estimator,
                |_, _| {},
            )?;
            Ok(entry.insert(ShardEstimate {
                shard_index: shard.shard_index,
                first_row: shard.first_row,
                attempt: shard.attempt,
                totals,
            }))
        }
    }
}

impl RunBudget {
    /// The cap in force, if any.
    #[must_use]
    pub fn cap(&self) -> Option<BudgetCap> {
        self.cap
    }

    /// How the run's estimates count tokens; `None` without estimates.
    #[must_use]
    pub fn tokens_counted_with(&self) -> Option<String> {
        self.estimator
            .as_ref()
            .map(|estimator| estimator.counter().description())
    }

    /// Shards this process left unsubmitted because of the cap.
    #[must_use]
    pub fn skipped_shards(&self) -> &BTreeSet<u64> {
        &self.skipped
    }

    /// The estimate of `shard` (computed from its shard file once); `None` without a price.
    ///
    /// # Errors
    /// When the shard file cannot be read.
    pub fn shard_estimate(
        &mut self,
        run_directory: &RunDirectory,
        shard: &ShardRecord,
    ) -> anyhow::Result<Option<&ShardEstimate>> {
        let Some(estimator) = &self.estimator else {
            return Ok(None);
        };
        cached_shard_estimate(&mut self.estimates, estimator, run_directory, shard).map(Some)
    }

    /// Before the first upload of a run with a cap: refuses (exit code 2, nothing spent) when the
    /// upper bound of the planned shards is unknown or above the cap, saying by how much and how
    /// many rows would fit. Does nothing once anything was uploaded, or without a cap.
    ///
    /// # Errors
    /// The refusal, or a shard file that cannot be read.
    pub fn refuse_if_over_before_first_upload(
        &mut self,
        ledger: &Ledger,
        run_directory: &RunDirectory,
        job: &Job,
    ) -> Result<(), RunFailure> {
        let Some(cap) = self.cap else {
            return Ok(());
        };
        let shards = ledger.shards().map_err(RunFailure::local)?;
        let anything_sent = shards
            .iter()
            .any(|shard| shard.file_id.is_some() || shard.batch_id.is_some())
            || ledger
                .count_effects(EffectKind::Upload)
                .map_err(RunFailure::local)?
                > 0;
        if anything_sent {
            return Ok(());
        }
        let mut total: Option<EstimateTotals> = None;
        for shard in &shards {
            let estimate = self
                .shard_estimate(run_directory, shard)
                .map_err(RunFailure::local)?
                .expect("a cap is only set with an estimator");
            match total.as_mut() {
                Some(total) => total.add_totals(&estimate.totals),
                None => total = Some(estimate.totals.clone()),
            }
        }
        let Some(upper_bound) = total
            .and_then(|total| total.upper_bound_cost)
            .map(|cost| cost.batch)
        else {
            return Err(RunFailure::local(anyhow::anyhow!(
                "max_cost {} (from {}) cannot be enforced: the run has no upper bound, because the job sets no \
                 `request.max_tokens`{} and the price table gives no limit for `{}`. Set `request.max_tokens`{} in \
                 `{}`; nothing was uploaded or spent",
                cap.limit,
                cap.source,
                if job.spec.request.enable_thinking == Some(true) {
                    " or `request.thinking_budget`"
                } else {
                    ""
                },
                job.spec.request.model,
                if job.spec.request.enable_thinking == Some(true) {
                    " and `request.thinking_budget`"
                } else {
                    ""
                },
                job.job_file.display()
            )));
        };
        if upper_bound <= cap.limit {
            return Ok(());
        }
        let over_by = Money::from_femto_units(
            upper_bound.femto_units() - cap.limit.femto_units(),
            upper_bound.currency(),
        );
        let (rows_that_fit, shards_that_fit) =
            self.rows_within(run_directory, &shards, cap.limit)?;
        let planned_rows: u64 = shards.iter().map(|shard| shard.row_count).sum();
        Err(RunFailure::local(anyhow::anyhow!(
            "the upper bound of this run is {upper_bound} at batch price (every answer as long as `max_tokens` \
             allows), {over_by} over max_cost {} (from {}). Within the cap fit the first {} of {} rows ({} of {} \
             whole shard(s)). Nothing was uploaded or spent. Raise the cap (`--max-cost`), lower \
             `request.max_tokens`, or run fewer rows; `dashbatch estimate {}` shows the estimate and its assumptions",
            cap.limit,
            cap.source,
            with_thousands(rows_that_fit),
            with_thousands(planned_rows),
            shards_that_fit,
            shards.len(),
            job.job_file.display()
        )))
    }

    /// How many leading rows, and leading whole shards, fit within `limit` at their upper bounds.
    fn rows_within(
        &self,
        run_directory: &RunDirectory,
        shards: &[ShardRecord],
        limit: Money,
    ) -> Result<(u64, usize), RunFailure> {
        let estimator = self.estimator.as_ref().expect("an estimator is set");
        let mut spent = 0i128;
        let mut rows = 0u64;
        let mut whole_shards = 0usize;
        let mut full = false;
        for shard in shards {
            estimate_shard_file(
                &run_directory.shard_path(&shard.file_name),
                estimator,
                |_, request| {
                    if full {
                        return;
                    }
                    match request.upper_bound_cost {
                        Some(cost) if spent + cost.batch.femto_units() <= limit.femto_units() => {
                            spent += cost.batch.femto_units();
                            rows += 1;
                        }
                        _ => full = true,
                    }
                },
            )
            .map_err(RunFailure::local)?;
            if full {
                break;
            }
            whole_shards += 1;
        }
        Ok((rows, whole_shards))
    }

    /// Money committed by the shards that have a batch: actual cost of billed rows where results
    /// are in, the upper bound of every row still without a result.
    fn committed(
        &mut self,
        ledger: &Ledger,
        run_directory: &RunDirectory,
    ) -> anyhow::Result<Option<Money>> {
        let RunBudget {
            estimator,
            pricer,
            estimates,
            settled,
            ..
        } = self;
        let Some(estimator) = estimator.as_ref() else {
            return Ok(None);
        };
        let mut committed = Money::zero(estimator.price().currency());
        for shard in ledger.shards()? {
            if shard.batch_id.is_none() {
                continue;
            }
            let status = shard.status();
            if !shard.results_downloaded {
                let estimate = cached_shard_estimate(estimates, estimator, run_directory, &shard)?;
                let Some(upper) = estimate.totals.upper_bound_cost else {
                    return Ok(None);
                };
                committed = committed.checked_add(upper.batch)?;
                continue;
            }
            if let Some(known) = settled.get(&shard.shard_index) {
                match known {
                    Some(amount) => committed = committed.checked_add(*amount)?,
                    None => return Ok(None),
                }
                continue;
            }
            let results = load_shard_results(run_directory, &shard, status)?;
            let mut unbounded = false;
            let mut shard_committed = Money::zero(committed.currency());
            estimate_shard_file(
                &run_directory.shard_path(&shard.file_name),
                estimator,
                |custom_id, request| {
                    let row = match results.get(custom_id) {
                        Some(result) => pricer.row_cost(result).map(|cost| cost.batch),
                        // A batch that failed validation bills nothing; a line missing from any
                        // other settled batch may still have been billed.
                        None if status == BatchStatus::Failed => None,
                        None => match request.upper_bound_cost {
                            Some(cost) => Some(cost.batch),
                            None => {
                                unbounded = true;
                                None
                            }
                        },
                    };
                    if let Some(row) = row
                        && let Ok(sum) = shard_committed.checked_add(row)
                    {
                        shard_committed = sum;
                    }
                },
            )?;
            if unbounded {
                settled.insert(shard.shard_index, None);
                return Ok(None);
            }
            settled.insert(shard.shard_index, Some(shard_committed));
            committed = committed.checked_add(shard_committed)?;
        }
        Ok(Some(committed))
    }

    /// Whether `shard` may be submitted under the cap; records it as skipped (and says so) when
    /// not. Always true without a cap.
    ///
    /// # Errors
    /// When a shard or result file cannot be read.
    pub fn admits(
        &mut self,
        shard: &ShardRecord,
        ledger: &Ledger,
        run_directory: &RunDirectory,
        events: &EventSink,
    ) -> anyhow::Result<bool> {
        let Some(cap) = self.cap else {
            return Ok(true);
        };
        if !self.skipped.is_empty() {
            // Submission stopped at the first shard that did not fit: later ones wait too, so
            // shards are submitted in order and the report names one clear cut.
            self.skipped.insert(shard.shard_index);
            return Ok(false);
        }
        let committed = self.committed(ledger, run_directory)?;
        self.last_committed = committed.or(self.last_committed);
        let shard_upper = self
            .shard_estimate(run_directory, shard)?
            .and_then(|estimate| estimate.totals.upper_bound_cost)
            .map(|cost| cost.batch);
        let fits = match (committed, shard_upper) {
            (Some(committed), Some(upper)) => committed
                .checked_add(upper)
                .is_ok_and(|total| total <= cap.limit),
            _ => false,
        };
        if fits {
            if let (Some(committed), Some(upper)) = (committed, shard_upper) {
                self.last_committed = committed.checked_add(upper).ok();
            }
            return Ok(true);
        }
        self.skipped.insert(shard.shard_index);
        let describe = |amount: Option<Money>| {
            amount.map_or_else(|| "an unknown amount".to_owned(), |money| money.to_string())
        };
        events.emit(
            EventKind::BudgetCapReached,
            json!({
                "shard": shard.shard_index,
                "rows": shard.row_count,
                "shard_upper_bound": shard_upper.map(|money| money.to_decimal_string()),
                "committed": committed.map(|money| money.to_decimal_string()),
                "max_cost": cap.limit.to_decimal_string(),
            }),
            || {
                Some(format!(
                    "not submitting shard {} or any later shard: its {} request(s) could cost up to {}, and with {} \
                     already committed that could pass max_cost {} (from {})",
                    shard.shard_index,
                    shard.row_count,
                    describe(shard_upper),
                    describe(committed),
                    cap.limit,
                    cap.source
                ))
            },
        );
        Ok(false)
    }

    /// The budget section of the report, when a cap is set.
    ///
    /// # Errors
    /// When a shard or result file cannot be read.
    pub fn report(
        &mut self,
        ledger: &Ledger,
        run_directory: &RunDirectory,
    ) -> anyhow::Result<Option<BudgetReport>> {
        let Some(cap) = self.cap else {
            return Ok(None);
        };
        let committed = self
            .committed(ledger, run_directory)?
            .or(self.last_committed);
        let shards = ledger.shards()?;
        let rows_not_submitted = shards
            .iter()
            .filter(|shard| self.skipped.contains(&shard.shard_index) && shard.attempt <= 1)
            .map(|shard| shard.row_count)
            .sum();
        Ok(Some(BudgetReport {
            max_cost: cap.limit.to_decimal_string(),
            source: cap.source,
            committed: committed
                .map_or_else(|| "unknown".to_owned(), |money| money.to_decimal_string()),
            shards_not_submitted: self.skipped.iter().copied().collect(),
            rows_not_submitted,
        }))
    }
}
