//! The budget cap of a run (`max_cost`) and the cost estimates a run keeps: refuse before the first upload when the upper bound is over the cap, and never submit a shard that could take the money committed past it.
//!
//! Money committed is what the run could be billed for at worst: for every shard with a batch, the
//! actual cost of its billed rows once its results are in, plus the upper bound of every row
//! without a result yet, or billed at a cost its result does not give (rows that came back failed
//! are not billed, reference §7.1). A shard is
//! submitted only if committed money plus the shard's own upper bound stays within the cap, so as
//! long as each answer stays within its upper bound (`max_tokens`, the thinking budget), the bill
//! stays within the cap.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use super::estimates_ahead::EstimatesAhead;
use super::run_failure::RunFailure;
use super::run_record::RunRecord;
use super::shard_results::load_shard_results;
use super::{Event, EventSink, RunDirectory};
use crate::cost::RunPricer;
use crate::estimate::{
    EstimateTotals, RequestEstimator, ShardEstimate, estimate_shard_file,
    request_estimator_for_job, vocabulary_for_job, with_thousands,
};
use crate::job::Job;
use crate::ledger::{EffectKind, Ledger, ShardRecord};
use crate::pricing::{Money, PriceTable};
use crate::row_result::{RowResult, UNDECODABLE_BODY_ERROR_CODE};
use crate::settings::{SettingPlaces, SettingSource};
use crate::wire::BatchStatus;

/// The `error_code` of rows whose shard was not submitted because of the budget cap.
pub const BUDGET_CAP_ERROR_CODE: &str = "budget_cap";

/// Where a run's cap comes from.
/// The cap in force.
#[derive(Debug, Clone, Copy)]
pub struct BudgetCap {
    pub limit: Money,
    pub source: SettingSource,
}

/// The budget section of `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetReport {
    /// Exact decimal text in the report's currency.
    pub max_cost: String,
    pub source: SettingSource,
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
    estimator: Option<Arc<RequestEstimator>>,
    /// Estimates being counted on their own thread while the run uploads and waits.
    ahead: Option<EstimatesAhead>,
    pricer: RunPricer,
    cap: Option<BudgetCap>,
    estimates: BTreeMap<u64, ShardEstimate>,
    /// Shards whose estimate is in `estimates` but not yet kept in the ledger.
    estimates_not_saved: BTreeSet<u64>,
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
    // The vocabulary a run recorded may be gone by the time it resumes (a copied file deleted):
    // the run must still finish what it paid for, so it counts as if no file were named at all
    // (the model's installed vocabulary, or the heuristic with its wider bound), and says so.
    let recorded_file_gone = tokenizer_flag.is_none()
        && record
            .tokenizer
            .as_ref()
            .is_some_and(|path| !crate::tokens::vocabulary_file_is_readable(path));
    let vocabulary = if recorded_file_gone {
        crate::console::say(&format!(
            "note: the tokenizer vocabulary this run started with, `{}`, cannot be read any more; its estimates now \
             count without it (give `--tokenizer FILE` to `dashbatch run JOB --run-dir RUN_DIR` to name another)",
            record
                .tokenizer
                .as_deref()
                .unwrap_or_else(|| std::path::Path::new(""))
                .display()
        ));
        None
    } else {
        vocabulary_for_job(tokenizer_flag, record.tokenizer.clone(), job)
    };
    if let Some(flag) = max_cost_flag {
        crate::job::check_positive_amount(flag)
            .map_err(|problem| RunFailure::local(anyhow::anyhow!("`--max-cost`: {problem}")))?;
    }
    let cap_text = max_cost_setting(max_cost_flag, record.max_cost.clone(), job);

    let estimator = match request_estimator_for_job(job, prices, vocabulary.as_ref()) {
        Ok(estimator) => Some(estimator),
        Err(crate::estimate::EstimateSetupError::UnknownModel { .. }) if cap_text.is_none() => None,
        Err(error) => {
            let needs_price = matches!(
                error,
                crate::estimate::EstimateSetupError::UnknownModel { .. }
            );
            let hint = if cap_text.is_some() && needs_price {
                " (a budget cap needs the model's price)"
            } else {
                ""
            };
            return Err(RunFailure::local(anyhow::anyhow!("{error}{hint}")));
        }
    };
    let cap = match (&cap_text, &estimator) {
        (Some(setting), Some(estimator)) => {
            let limit = crate::job::amount_in_currency(
                &setting.value,
                estimator.price().currency(),
                &job.spec.request.model,
            )
            .map_err(|problem| {
                RunFailure::local(anyhow::anyhow!(
                    "max_cost from {}: {problem}",
                    setting.source
                ))
            })?;
            Some(BudgetCap {
                limit,
                source: setting.source,
            })
        }
        _ => None,
    };
    // Recorded only once accepted: a refused setting must never bind the run's resumes. The
    // vocabulary only when it was the one counting (not one the model ignores), as an absolute
    // path, so that a resume from another directory finds the same file.
    if let Some(flag) = max_cost_flag {
        RunRecord::record_max_cost(ledger, flag.trim()).map_err(RunFailure::local)?;
    }
    if let (Some(setting), Some(estimator)) = (&vocabulary, &estimator)
        && let crate::tokens::TokenCounter::Qwen { tokenizer, .. } = estimator.counter()
        && tokenizer.vocabulary_path() == setting.value
    {
        let absolute = std::fs::canonicalize(&setting.value).unwrap_or(setting.value.clone());
        RunRecord::record_tokenizer(ledger, &absolute).map_err(RunFailure::local)?;
    }
    let thinking = job.bills_thinking();
    // Estimates an earlier process of the run counted the same way: read, not counted again.
    let mut estimates = BTreeMap::new();
    if let Some(estimator) = &estimator {
        for text in ledger
            .shard_estimates(&estimate_identity(estimator))
            .map_err(RunFailure::local)?
        {
            if let Some(estimate) = ShardEstimate::from_stored(&text, estimator.price().currency())
            {
                estimates.insert(estimate.shard_index, estimate);
            }
        }
    }
    Ok(RunBudget {
        estimator: estimator.map(Arc::new),
        ahead: None,
        pricer: RunPricer::new(prices.clone(), &job.spec.request.model, thinking),
        cap,
        estimates,
        estimates_not_saved: BTreeSet::new(),
        settled: BTreeMap::new(),
        skipped: BTreeSet::new(),
        last_committed: None,
    })
}

/// The `max_cost` in force, as written, and where it came from: `--max-cost`, else the one the
/// run was started with (`run_ledger`), else the job's `[batch] max_cost`.
pub fn max_cost_setting(
    flag: Option<&str>,
    run_ledger: Option<String>,
    job: &Job,
) -> Option<crate::settings::Setting<String>> {
    SettingPlaces {
        flag: flag.map(|flag| (flag.trim().to_owned(), "--max-cost")),
        run_ledger,
        environment: None,
        job_file: job
            .spec
            .batch
            .max_cost
            .as_ref()
            .map(|amount| (amount.0.clone(), "[batch] max_cost")),
        default: None,
    }
    .resolve()
}

/// What a kept estimate was counted and priced with: the tokenizer and the model's whole price
/// (tiers, currency). An estimate kept under another identity (a price file changed on resume,
/// a new built-in table, another vocabulary) is counted again, never read at the old prices.
fn estimate_identity(estimator: &RequestEstimator) -> String {
    format!(
        "{} | {:?}",
        estimator.counter().description(),
        estimator.price()
    )
}

/// The estimate of `shard` from `cache`, computed from its shard file the first time (and then
/// noted in `not_saved`, to be kept in the ledger).
fn cached_shard_estimate<'cache>(
    cache: &'cache mut BTreeMap<u64, ShardEstimate>,
    not_saved: &mut BTreeSet<u64>,
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
            not_saved.insert(shard.shard_index);
            Ok(entry.insert(ShardEstimate {
                shard_index: shard.shard_index,
                first_row: shard.first_row,
                attempt: shard.attempt,
                totals,
            }))
        }
    }
}

/// Whether a row's result says it was, or may have been, billed: an answer (its usage may be
/// missing), or a 200 answer whose body could not be read.
fn may_have_been_billed(result: &RowResult) -> bool {
    result.status().was_billed()
        || result.error_code.as_deref() == Some(UNDECODABLE_BODY_ERROR_CODE)
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
        if !self.estimates.contains_key(&shard.shard_index) {
            // Needed now (a budget check, the join): the counting thread stops after its current
            // shard, and what it has not counted is counted here, at the run's own priority.
            self.take_estimates_ahead(true);
            if !self.estimates.contains_key(&shard.shard_index) {
                crate::interrupt::check()?;
            }
        }
        let Some(estimator) = &self.estimator else {
            return Ok(None);
        };
        cached_shard_estimate(
            &mut self.estimates,
            &mut self.estimates_not_saved,
            estimator,
            run_directory,
            shard,
        )
        .map(Some)
    }

    /// Counts the estimates of shards of the run not counted yet (while its batches run, when
    /// the machine is otherwise idle), for about `time_limit` at most (at least one shard), and
    /// keeps the new ones in the ledger, so the join reads them. Returns whether every shard is
    /// counted; the rest are counted by later calls (between polls, so polling never waits long)
    /// or, failing that, by the join.
    ///
    /// # Errors
    /// When a shard file cannot be read or the ledger written.
    pub fn estimate_shards_for(
        &mut self,
        ledger: &Ledger,
        run_directory: &RunDirectory,
        time_limit: std::time::Duration,
    ) -> anyhow::Result<bool> {
        if self.estimator.is_none() {
            return Ok(true);
        }
        // While the counting thread runs, what it counted is kept and nothing is counted twice.
        if self.ahead.as_ref().is_some_and(|ahead| !ahead.is_done()) {
            self.take_estimates_ahead(false);
            self.save_estimates(ledger)?;
            return Ok(false);
        }
        self.take_estimates_ahead(true);
        let started = std::time::Instant::now();
        let mut every_shard = true;
        let mut counted = 0;
        for shard in ledger.shards()? {
            if self.estimates.contains_key(&shard.shard_index) {
                continue;
            }
            if counted > 0 && started.elapsed() >= time_limit {
                every_shard = false;
                break;
            }
            counted += 1;
            // Counting a big shard takes a second: a signal stops it between shards.
            crate::interrupt::check()?;
            if self.shard_estimate(run_directory, &shard)?.is_none() {
                return Ok(true);
            }
        }
        self.save_estimates(ledger)?;
        Ok(every_shard)
    }

    /// Starts counting, on a thread of their own, the estimates of the shards planned so far
    /// that no process of the run has counted yet. Nothing without a price or when all are
    /// counted; once per process.
    ///
    /// # Errors
    /// When the ledger cannot be read.
    pub fn start_estimating_ahead(
        &mut self,
        ledger: &Ledger,
        run_directory: &RunDirectory,
    ) -> anyhow::Result<()> {
        let Some(estimator) = &self.estimator else {
            return Ok(());
        };
        if self.ahead.is_some() {
            return Ok(());
        }
        let shards: Vec<ShardRecord> = ledger
            .shards()?
            .into_iter()
            .filter(|shard| !self.estimates.contains_key(&shard.shard_index))
            .collect();
        if !shards.is_empty() {
            self.ahead = Some(EstimatesAhead::start(
                Arc::clone(estimator),
                run_directory.clone(),
                shards,
            ));
        }
        Ok(())
    }

    /// Takes what the counting thread has counted; with `stop`, stops it first (after the shard
    /// it is counting) and takes everything.
    fn take_estimates_ahead(&mut self, stop: bool) {
        let counted = match self.ahead.take() {
            None => return,
            Some(ahead) if stop => ahead.stop(),
            Some(ahead) => {
                let ready = ahead.ready();
                self.ahead = Some(ahead);
                ready
            }
        };
        for estimate in counted {
            let shard_index = estimate.shard_index;
            if let std::collections::btree_map::Entry::Vacant(entry) =
                self.estimates.entry(shard_index)
            {
                entry.insert(estimate);
                self.estimates_not_saved.insert(shard_index);
            }
        }
    }

    /// Keeps the estimates counted since the last call in the ledger.
    ///
    /// # Errors
    /// When the ledger cannot be written.
    pub fn save_estimates(&mut self, ledger: &Ledger) -> anyhow::Result<()> {
        let Some(estimator) = &self.estimator else {
            return Ok(());
        };
        let estimates: Vec<(u64, String)> = std::mem::take(&mut self.estimates_not_saved)
            .into_iter()
            .filter_map(|shard_index| {
                self.estimates
                    .get(&shard_index)
                    .map(|estimate| (shard_index, estimate.to_stored()))
            })
            .collect();
        ledger.save_shard_estimates(&estimate_identity(estimator), &estimates)?;
        Ok(())
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
        // Starts at zero: a plan without shards (every row skipped) costs nothing.
        let mut total = EstimateTotals::empty(
            self.estimator
                .as_ref()
                .expect("a cap is only set with an estimator"),
        );
        for shard in &shards {
            let estimate = self
                .shard_estimate(run_directory, shard)
                .map_err(RunFailure::local)?
                .expect("a cap is only set with an estimator");
            total.add_totals(&estimate.totals);
        }
        let Some(upper_bound) = total.upper_bound_cost.map(|cost| cost.batch) else {
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
            estimates_not_saved,
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
                let estimate = cached_shard_estimate(
                    estimates,
                    estimates_not_saved,
                    estimator,
                    run_directory,
                    &shard,
                )?;
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
                    let mut at_most_its_upper_bound = || match request.upper_bound_cost {
                        Some(cost) => Some(cost.batch),
                        None => {
                            unbounded = true;
                            None
                        }
                    };
                    let row = match results.get_without_answer_texts(custom_id) {
                        Some(result) => match pricer.row_cost(&result) {
                            Some(cost) => Some(cost.batch),
                            // Billed (or perhaps billed) by an amount the line does not give:
                            // never counted as free.
                            None if may_have_been_billed(&result) => at_most_its_upper_bound(),
                            None => None,
                        },
                        // A batch that failed validation bills nothing; a line missing from any
                        // other settled batch may still have been billed.
                        None if status == BatchStatus::Failed => None,
                        None => at_most_its_upper_bound(),
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
            Event::BudgetCapReached {
                shard: shard.shard_index,
                rows: shard.row_count,
                shard_upper_bound: shard_upper.map(|money| money.to_decimal_string()),
                committed: committed.map(|money| money.to_decimal_string()),
                max_cost: cap.limit.to_decimal_string(),
            },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::OutputMode;
    use crate::job::load_job;
    use serde_json::json;

    /// Test prices. `sim-budget`: prompts are free and output is 2 per 1M tokens realtime, so at
    /// batch price (half) every token a row's `max_tokens` allows is exactly 0.000001 CNY.
    /// `sim-budget-fraction`: output 0.000003 per 1M realtime, 1.5e-12 CNY per token at batch,
    /// far below the 9 decimal places messages show.
    const TEST_PRICES: &str = "[models.sim-budget]\ncurrency = \"CNY\"\ninput = 0\noutput = 2\n\
        [models.sim-budget-fraction]\ncurrency = \"CNY\"\ninput = 0\noutput = \"0.000003\"\n";

    /// What one row's result says, once its shard settled.
    #[derive(Debug, Clone, Copy)]
    enum SettledRow {
        /// A 200 answer that used this many output tokens.
        AnsweredUsingTokens(u64),
        /// A 200 answer without token usage: billed, amount unknown.
        AnsweredWithoutUsage,
        /// A 200 answer whose body is not JSON: the provider may have billed it.
        AnsweredWithUnreadableBody,
        /// A failure with this error code: not billed.
        FailedWithCode(&'static str),
        /// No result line for the row.
        NoResultLine,
    }

    #[derive(Debug, Clone, Copy)]
    enum ShardState {
        /// Written to disk, nothing sent.
        Planned,
        /// Its batch exists and has not settled.
        BatchOut,
        /// Its batch settled with this status and its results are on disk, one per row.
        Settled {
            batch_status: &'static str,
            results: &'static [SettledRow],
        },
    }

    struct BudgetShard {
        /// 1 for planned shards, more for retry shards.
        attempt: u32,
        /// Each row's `max_tokens`; `None` leaves it out (no upper bound).
        max_tokens: &'static [Option<u64>],
        state: ShardState,
    }

    const fn planned(max_tokens: &'static [Option<u64>]) -> BudgetShard {
        BudgetShard {
            attempt: 1,
            max_tokens,
            state: ShardState::Planned,
        }
    }

    const fn batch_out(max_tokens: &'static [Option<u64>]) -> BudgetShard {
        BudgetShard {
            attempt: 1,
            max_tokens,
            state: ShardState::BatchOut,
        }
    }

    const fn settled(
        batch_status: &'static str,
        max_tokens: &'static [Option<u64>],
        results: &'static [SettledRow],
    ) -> BudgetShard {
        BudgetShard {
            attempt: 1,
            max_tokens,
            state: ShardState::Settled {
                batch_status,
                results,
            },
        }
    }

    const fn planned_retry(max_tokens: &'static [Option<u64>]) -> BudgetShard {
        BudgetShard {
            attempt: 2,
            max_tokens,
            state: ShardState::Planned,
        }
    }

    fn request_line(custom_id: &str, model: &str, max_tokens: Option<u64>) -> String {
        let mut body = json!({
            "model": model,
            "messages": [{"role": "user", "content": format!("row {custom_id}")}],
        });
        if let Some(max_tokens) = max_tokens {
            body["max_tokens"] = json!(max_tokens);
        }
        json!({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body})
            .to_string()
    }

    /// The result line of a settled row, and whether it belongs in the error file.
    fn result_line(custom_id: &str, row: SettledRow) -> Option<(String, bool)> {
        let answer = |body: serde_json::Value| {
            json!({"id": format!("r-{custom_id}"), "custom_id": custom_id, "error": null,
                   "response": {"status_code": 200, "request_id": format!("q-{custom_id}"), "body": body}})
            .to_string()
        };
        let choices = json!([{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "fine"}}]);
        match row {
            SettledRow::AnsweredUsingTokens(tokens) => Some((
                answer(json!({"choices": choices,
                              "usage": {"prompt_tokens": 7, "completion_tokens": tokens, "total_tokens": 7 + tokens}})),
                false,
            )),
            SettledRow::AnsweredWithoutUsage => Some((answer(json!({"choices": choices})), false)),
            SettledRow::AnsweredWithUnreadableBody => {
                Some((answer(json!("this is not a JSON object")), false))
            }
            SettledRow::FailedWithCode(code) => Some((
                json!({"id": format!("e-{custom_id}"), "custom_id": custom_id, "response": null,
                       "error": {"code": code, "message": "it failed"}})
                .to_string(),
                true,
            )),
            SettledRow::NoResultLine => None,
        }
    }

    struct BudgetSetup {
        _directory: tempfile::TempDir,
        job: Job,
        run_directory: RunDirectory,
        ledger: Ledger,
        budget: Result<RunBudget, RunFailure>,
    }

    /// A job on `model` with `cap` given as `--max-cost`, and `shards` in its ledger and on disk.
    fn budget_setup(model: &str, cap: &str, shards: &[BudgetShard]) -> BudgetSetup {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(
            directory.path().join("job.toml"),
            format!(
                "[input]\npath = \"rows.csv\"\n[request]\nmodel = \"{model}\"\ntemplate = \"{{{{ text }}}}\"\n"
            ),
        )
        .unwrap();
        let job = load_job(&directory.path().join("job.toml")).unwrap();
        let prices = PriceTable::for_provider(crate::provider::ProviderKind::Dashscope)
            .with_override_toml(TEST_PRICES, std::path::Path::new("test-prices.toml"))
            .unwrap();
        let run_directory = RunDirectory::new(directory.path().join("run"));
        run_directory.create().unwrap();
        let mut ledger = Ledger::open(&run_directory.root).unwrap();
        // A founded run, as every run with shards is.
        super::super::run_record::RunRecord::found(
            &mut ledger,
            &super::super::run_record::RunFounding {
                run_id: "run-budget".into(),
                job_file: directory.path().join("job.toml"),
                job_sha256: job.job_file_sha256.clone(),
                provider: crate::provider::ProviderKind::Dashscope,
                base_url: None,
                output_path: directory.path().join("out.parquet"),
                output_format: "parquet".into(),
                rehearsal: false,
                prices_file: None,
                prices_text: None,
                answer_store: Some(None),
                refresh: false,
                founded_at: None,
            },
        )
        .unwrap();

        let mut records = Vec::new();
        let mut first_row = 1;
        for (index, shard) in shards.iter().enumerate() {
            let index = index as u64;
            let file_name = format!("shard-{index:05}.jsonl");
            let custom_ids: Vec<String> = (0..shard.max_tokens.len())
                .map(|row| format!("s{index}-r{row}"))
                .collect();
            let lines: String = custom_ids
                .iter()
                .zip(shard.max_tokens)
                .map(|(custom_id, max_tokens)| request_line(custom_id, model, *max_tokens) + "\n")
                .collect();
            std::fs::write(run_directory.shard_path(&file_name), lines).unwrap();
            if let ShardState::Settled { results, .. } = shard.state {
                assert_eq!(results.len(), shard.max_tokens.len(), "one result per row");
                let (mut output, mut errors) = (String::new(), String::new());
                for (custom_id, row) in custom_ids.iter().zip(results) {
                    if let Some((line, in_error_file)) = result_line(custom_id, *row) {
                        let file = if in_error_file {
                            &mut errors
                        } else {
                            &mut output
                        };
                        file.push_str(&line);
                        file.push('\n');
                    }
                }
                std::fs::write(run_directory.output_results_path(index), output).unwrap();
                std::fs::write(run_directory.error_results_path(index), errors).unwrap();
            }
            records.push(ShardRecord {
                row_count: shard.max_tokens.len() as u64,
                ..ShardRecord::planned(index, first_row, file_name, model.into(), shard.attempt)
            });
            first_row += shard.max_tokens.len() as u64;
        }
        ledger.insert_shards(&records).unwrap();
        for (index, shard) in shards.iter().enumerate() {
            let index = index as u64;
            if matches!(shard.state, ShardState::Planned) {
                continue;
            }
            ledger
                .set_file_id(index, Some(&format!("file-{index}")))
                .unwrap();
            ledger
                .set_batch_id(index, &format!("batch-{index}"))
                .unwrap();
            if let ShardState::Settled { batch_status, .. } = shard.state {
                let rows = shard.max_tokens.len() as u64;
                ledger
                    .update_batch_state(index, batch_status, rows, rows, 0, None, None, None)
                    .unwrap();
                ledger.set_results_downloaded(index).unwrap();
            }
        }

        let record = RunRecord::read(&ledger).unwrap();
        let budget = prepare_run_budget(&job, &prices, &ledger, &record, Some(cap), None);
        BudgetSetup {
            _directory: directory,
            job,
            run_directory,
            ledger,
            budget,
        }
    }

    #[test]
    fn estimates_counted_between_polls_stop_at_their_time_limit_and_go_on_later() {
        let shards = [
            planned(&[Some(1_000)]),
            planned(&[Some(2_000)]),
            planned(&[Some(3_000)]),
        ];
        let mut setup = budget_setup("sim-budget", "10", &shards);
        let budget = setup.budget.as_mut().unwrap();
        // No time at all: one shard a call, and the third call says every shard is counted.
        let mut unfinished_calls = 0;
        while !budget
            .estimate_shards_for(
                &setup.ledger,
                &setup.run_directory,
                std::time::Duration::ZERO,
            )
            .unwrap()
        {
            unfinished_calls += 1;
            assert!(unfinished_calls < 3, "a call counted nothing");
        }
        assert_eq!(unfinished_calls, 2);
        assert!(
            budget
                .estimate_shards_for(
                    &setup.ledger,
                    &setup.run_directory,
                    std::time::Duration::ZERO
                )
                .unwrap(),
            "nothing is left to count"
        );
    }

    #[test]
    fn estimates_counted_ahead_on_their_own_thread_are_the_same_and_kept_in_the_ledger() {
        let shards = [
            planned(&[Some(1_000)]),
            planned(&[Some(2_000), Some(500)]),
            planned(&[Some(3_000)]),
        ];
        let mut counted_here = budget_setup("sim-budget", "10", &shards);
        let here = counted_here.budget.as_mut().unwrap();
        let forever = std::time::Duration::from_secs(60);
        assert!(
            here.estimate_shards_for(&counted_here.ledger, &counted_here.run_directory, forever)
                .unwrap()
        );
        let mut counted_ahead = budget_setup("sim-budget", "10", &shards);
        let ahead = counted_ahead.budget.as_mut().unwrap();
        ahead
            .start_estimating_ahead(&counted_ahead.ledger, &counted_ahead.run_directory)
            .unwrap();
        // Between polls only what the thread counted is kept; then nothing is left to count.
        while !ahead
            .estimate_shards_for(&counted_ahead.ledger, &counted_ahead.run_directory, forever)
            .unwrap()
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(ahead.ahead.is_none(), "the thread is waited for once done");
        assert_eq!(ahead.estimates, here.estimates);
        let kept = |setup: &BudgetSetup| {
            let budget = setup.budget.as_ref().unwrap();
            setup
                .ledger
                .shard_estimates(&estimate_identity(budget.estimator.as_ref().unwrap()))
                .unwrap()
                .len()
        };
        assert_eq!(kept(&counted_ahead), 3);
        assert_eq!(kept(&counted_here), 3);
        // A shard needed while the thread counts (a budget check, the join): the thread stops
        // after its current shard and the rest are counted here, each once, the same.
        let mut stopped_early = budget_setup("sim-budget", "10", &shards);
        let early = stopped_early.budget.as_mut().unwrap();
        early
            .start_estimating_ahead(&stopped_early.ledger, &stopped_early.run_directory)
            .unwrap();
        for shard in stopped_early.ledger.shards().unwrap().iter().rev() {
            let estimate = early
                .shard_estimate(&stopped_early.run_directory, shard)
                .unwrap()
                .unwrap()
                .clone();
            let counted = counted_here
                .budget
                .as_ref()
                .unwrap()
                .estimates
                .get(&shard.shard_index);
            assert_eq!(Some(&estimate), counted);
        }
        assert!(early.ahead.is_none());
        // A second start counts nothing again.
        let ahead = counted_ahead.budget.as_mut().unwrap();
        ahead
            .start_estimating_ahead(&counted_ahead.ledger, &counted_ahead.run_directory)
            .unwrap();
        assert!(ahead.ahead.is_none());
    }

    #[test]
    fn kept_estimates_are_read_back_only_under_the_prices_they_were_counted_with() {
        let shards = [planned(&[Some(1_000), Some(3_000)])];
        let mut setup = budget_setup("sim-budget", "10", &shards);
        let budget = setup.budget.as_mut().unwrap();
        assert!(
            budget
                .estimate_shards_for(
                    &setup.ledger,
                    &setup.run_directory,
                    std::time::Duration::from_secs(60)
                )
                .unwrap()
        );
        let upper = |budget: &mut RunBudget, ledger: &Ledger| {
            let shard = &ledger.shards().unwrap()[0];
            budget
                .shard_estimate(&setup.run_directory, shard)
                .unwrap()
                .unwrap()
                .totals
                .upper_bound_cost
                .unwrap()
                .batch
                .to_decimal_string()
        };
        // 4,000 output tokens at 0.000001 CNY each.
        assert_eq!(upper(budget, &setup.ledger), "0.004");
        // The kept estimate is what a later process reads: a doctored one proves it.
        setup
            .ledger
            .connection_for_tests()
            .execute(
                "UPDATE shard_estimates SET estimate = replace(estimate, '\"0.004\"', '\"0.005\"')",
                [],
            )
            .unwrap();
        let record = RunRecord::read(&setup.ledger).unwrap();
        let prices = |output: &str| {
            PriceTable::for_provider(crate::provider::ProviderKind::Dashscope)
                .with_override_toml(
                    &format!(
                        "[models.sim-budget]\ncurrency = \"CNY\"\ninput = 0\noutput = {output}\n"
                    ),
                    std::path::Path::new("test-prices.toml"),
                )
                .unwrap()
        };
        let mut same_prices = prepare_run_budget(
            &setup.job,
            &prices("2"),
            &setup.ledger,
            &record,
            Some("10"),
            None,
        )
        .unwrap();
        assert_eq!(upper(&mut same_prices, &setup.ledger), "0.005");
        // Dearer prices on resume: counted again at them, never read at the old ones.
        let mut dearer = prepare_run_budget(
            &setup.job,
            &prices("4"),
            &setup.ledger,
            &record,
            Some("10"),
            None,
        )
        .unwrap();
        assert_eq!(upper(&mut dearer, &setup.ledger), "0.008");
    }

    struct BeforeFirstUploadCase {
        name: &'static str,
        model: &'static str,
        cap: &'static str,
        shards: &'static [BudgetShard],
        /// `Ok` when the run may go on; else words the refusal must contain.
        expected: Result<(), &'static [&'static str]>,
    }

    const BEFORE_FIRST_UPLOAD: BeforeFirstUploadCase = BeforeFirstUploadCase {
        name: "",
        model: "sim-budget",
        cap: "1",
        shards: &[],
        // Words no message has: a case that forgets its expectation fails.
        expected: Err(&["(every case states what it expects)"]),
    };

    const BEFORE_FIRST_UPLOAD_CASES: &[BeforeFirstUploadCase] = &[
        BeforeFirstUploadCase {
            name: "an upper bound exactly equal to the cap is allowed",
            cap: "0.0003",
            shards: &[planned(&[Some(100), Some(200)])],
            expected: Ok(()),
            ..BEFORE_FIRST_UPLOAD
        },
        BeforeFirstUploadCase {
            name: "a cap with trailing zeros is the same amount",
            cap: "0.000300000",
            shards: &[planned(&[Some(100), Some(200)])],
            expected: Ok(()),
            ..BEFORE_FIRST_UPLOAD
        },
        BeforeFirstUploadCase {
            name: "a cap one femto-unit below the upper bound is refused, and the first row still fits",
            cap: "0.000299999999999",
            shards: &[planned(&[Some(100), Some(200)])],
            expected: Err(&[
                "the upper bound of this run is 0.0003 CNY",
                "first 1 of 2 rows (0 of 1 whole shard(s))",
                "Nothing was uploaded or spent",
                "from `--max-cost`",
            ]),
            ..BEFORE_FIRST_UPLOAD
        },
        BeforeFirstUploadCase {
            name: "one huge row over the cap on its own leaves nothing that fits",
            cap: "0.5",
            shards: &[planned(&[Some(1_000_000)])],
            expected: Err(&[
                "0.50 CNY over max_cost 0.50 CNY",
                "first 0 of 1 rows (0 of 1 whole shard(s))",
            ]),
            ..BEFORE_FIRST_UPLOAD
        },
        BeforeFirstUploadCase {
            name: "many small rows fit up to the first one past the cap, and whole shards are counted",
            cap: "0.000045",
            shards: &[
                planned(&[Some(10), Some(10)]),
                planned(&[Some(10), Some(10)]),
                planned(&[Some(10), Some(10)]),
            ],
            expected: Err(&["first 4 of 6 rows (2 of 3 whole shard(s))"]),
            ..BEFORE_FIRST_UPLOAD
        },
        BeforeFirstUploadCase {
            name: "only leading rows count as fitting: a cheap row after one that does not fit is left out",
            cap: "0.00015",
            shards: &[planned(&[Some(100), Some(500), Some(10)])],
            expected: Err(&["first 1 of 3 rows (0 of 1 whole shard(s))"]),
            ..BEFORE_FIRST_UPLOAD
        },
        BeforeFirstUploadCase {
            name: "a row without max_tokens leaves no upper bound, so the cap cannot be enforced",
            shards: &[planned(&[Some(10), None])],
            expected: Err(&[
                "cannot be enforced",
                "request.max_tokens",
                "nothing was uploaded or spent",
            ]),
            ..BEFORE_FIRST_UPLOAD
        },
        BeforeFirstUploadCase {
            name: "a plan with no shard (every row skipped as empty) costs nothing and is allowed",
            shards: &[],
            expected: Ok(()),
            ..BEFORE_FIRST_UPLOAD
        },
        BeforeFirstUploadCase {
            name: "rows of zero max_tokens on free prompts cost nothing and fit the smallest cap",
            cap: "0.000000000000001",
            shards: &[planned(&[Some(0), Some(0)])],
            expected: Ok(()),
            ..BEFORE_FIRST_UPLOAD
        },
        BeforeFirstUploadCase {
            name: "a cap of zero is refused",
            cap: "0",
            shards: &[planned(&[Some(0)])],
            expected: Err(&["`--max-cost`", "must be more than 0"]),
            ..BEFORE_FIRST_UPLOAD
        },
        BeforeFirstUploadCase {
            name: "a cap with more decimals than a femto-unit is refused, never rounded",
            cap: "0.0003000000000000001",
            shards: &[planned(&[Some(300)])],
            expected: Err(&["`--max-cost`", "is not an amount of money"]),
            ..BEFORE_FIRST_UPLOAD
        },
        BeforeFirstUploadCase {
            name: "amounts below what messages show are compared exactly: two tokens equal to the cap fit",
            model: "sim-budget-fraction",
            cap: "0.000000000003",
            shards: &[planned(&[Some(1), Some(1)])],
            expected: Ok(()),
        },
        BeforeFirstUploadCase {
            name: "amounts below what messages show are compared exactly: a cap a femto-unit short is refused",
            model: "sim-budget-fraction",
            cap: "0.000000000002999",
            shards: &[planned(&[Some(1), Some(1)])],
            expected: Err(&["first 1 of 2 rows"]),
        },
        BeforeFirstUploadCase {
            name: "once a batch exists the refusal no longer applies; the per-shard check takes over",
            cap: "0.0001",
            shards: &[batch_out(&[Some(300)]), planned(&[Some(300)])],
            expected: Ok(()),
            ..BEFORE_FIRST_UPLOAD
        },
    ];

    #[test]
    fn before_first_upload_cases() {
        for case in BEFORE_FIRST_UPLOAD_CASES {
            let BudgetSetup {
                job,
                run_directory,
                ledger,
                budget,
                _directory,
            } = budget_setup(case.model, case.cap, case.shards);
            let outcome = budget.and_then(|mut budget| {
                budget.refuse_if_over_before_first_upload(&ledger, &run_directory, &job)
            });
            match (outcome, case.expected) {
                (Ok(()), Ok(())) => {}
                (Err(failure), Err(words)) => {
                    // Refused before the first upload: local, and nothing was spent, so exit 2.
                    assert_eq!(
                        failure.kind,
                        crate::engine::FailureKind::Local,
                        "case `{}`",
                        case.name
                    );
                    assert_eq!(
                        crate::engine::spending_of(&run_directory.root),
                        crate::engine::Spending::Nothing,
                        "case `{}`",
                        case.name
                    );
                    let message = failure.to_string();
                    for word in words {
                        assert!(
                            message.contains(word),
                            "case `{}`: no `{word}` in: {message}",
                            case.name
                        );
                    }
                }
                (Ok(()), Err(_)) => panic!("case `{}`: allowed, expected a refusal", case.name),
                (Err(failure), Ok(())) => {
                    panic!(
                        "case `{}`: refused, expected to go on: {failure}",
                        case.name
                    )
                }
            }
        }
    }

    struct AdmissionCase {
        name: &'static str,
        cap: &'static str,
        shards: &'static [BudgetShard],
        /// Shards submitted, in order (each admitted shard gets a batch before the next check).
        expected_submitted: &'static [u64],
        /// The report's `shards_not_submitted`, `rows_not_submitted` and `committed`.
        expected_not_submitted: &'static [u64],
        expected_rows_not_submitted: u64,
        expected_committed: &'static str,
    }

    use SettledRow::{
        AnsweredUsingTokens, AnsweredWithUnreadableBody, AnsweredWithoutUsage, FailedWithCode,
        NoResultLine,
    };

    const ADMISSION_CASES: &[AdmissionCase] = &[
        AdmissionCase {
            name: "a shard whose upper bound equals the cap is submitted",
            cap: "0.0003",
            shards: &[planned(&[Some(100), Some(200)])],
            expected_submitted: &[0],
            expected_not_submitted: &[],
            expected_rows_not_submitted: 0,
            expected_committed: "0.0003",
        },
        AdmissionCase {
            name: "a cap one femto-unit below the shard's upper bound submits nothing, and later shards wait too",
            cap: "0.000299999999999",
            shards: &[planned(&[Some(100), Some(200)]), planned(&[Some(1)])],
            expected_submitted: &[],
            expected_not_submitted: &[0, 1],
            expected_rows_not_submitted: 3,
            expected_committed: "0.00",
        },
        AdmissionCase {
            name: "shards that together fill the cap exactly are submitted, and a one-token shard after them is not",
            cap: "0.0003",
            shards: &[
                planned(&[Some(100)]),
                planned(&[Some(200)]),
                planned(&[Some(1)]),
            ],
            expected_submitted: &[0, 1],
            expected_not_submitted: &[2],
            expected_rows_not_submitted: 1,
            expected_committed: "0.0003",
        },
        AdmissionCase {
            name: "a batch still out counts at its upper bound and the next shard fills the cap exactly",
            cap: "0.0004",
            shards: &[batch_out(&[Some(300)]), planned(&[Some(100)])],
            expected_submitted: &[1],
            expected_not_submitted: &[],
            expected_rows_not_submitted: 0,
            expected_committed: "0.0004",
        },
        AdmissionCase {
            name: "a batch still out counts at its upper bound and the next shard one femto-unit over waits",
            cap: "0.000399999999999",
            shards: &[batch_out(&[Some(300)]), planned(&[Some(100)])],
            expected_submitted: &[],
            expected_not_submitted: &[1],
            expected_rows_not_submitted: 1,
            expected_committed: "0.0003",
        },
        AdmissionCase {
            name: "a settled shard counts what its answers cost, not their upper bound",
            cap: "0.00035",
            shards: &[
                settled("completed", &[Some(300)], &[AnsweredUsingTokens(50)]),
                planned(&[Some(300)]),
            ],
            expected_submitted: &[1],
            expected_not_submitted: &[],
            expected_rows_not_submitted: 0,
            expected_committed: "0.00035",
        },
        AdmissionCase {
            name: "a mixed settled shard: answered rows at cost, failed rows free, lost rows at their upper bound",
            cap: "0.0002",
            shards: &[
                settled(
                    "completed",
                    &[Some(100), Some(100), Some(100)],
                    &[
                        AnsweredUsingTokens(40),
                        FailedWithCode("InvalidParameter"),
                        NoResultLine,
                    ],
                ),
                planned(&[Some(60)]),
            ],
            expected_submitted: &[1],
            expected_not_submitted: &[],
            expected_rows_not_submitted: 0,
            expected_committed: "0.0002",
        },
        AdmissionCase {
            name: "a line a completed batch lost may have been billed, so the next shard one femto-unit over waits",
            cap: "0.000399999999999",
            shards: &[
                settled("completed", &[Some(300)], &[NoResultLine]),
                planned(&[Some(100)]),
            ],
            expected_submitted: &[],
            expected_not_submitted: &[1],
            expected_rows_not_submitted: 1,
            expected_committed: "0.0003",
        },
        AdmissionCase {
            name: "a batch that failed validation billed nothing",
            cap: "0.0003",
            shards: &[
                settled("failed", &[Some(300)], &[NoResultLine]),
                planned(&[Some(300)]),
            ],
            expected_submitted: &[1],
            expected_not_submitted: &[],
            expected_rows_not_submitted: 0,
            expected_committed: "0.0003",
        },
        AdmissionCase {
            name: "rows an expired batch reported as expired billed nothing",
            cap: "0.0003",
            shards: &[
                settled("expired", &[Some(300)], &[FailedWithCode("batch_expired")]),
                planned_retry(&[Some(300)]),
            ],
            expected_submitted: &[1],
            expected_not_submitted: &[],
            expected_rows_not_submitted: 0,
            expected_committed: "0.0003",
        },
        AdmissionCase {
            name: "a rate-limited row is free and its retry shard's upper bound fills the cap exactly",
            cap: "0.0003",
            shards: &[
                settled(
                    "completed",
                    &[Some(300)],
                    &[FailedWithCode("rate_limit_exceeded")],
                ),
                planned_retry(&[Some(300)]),
            ],
            expected_submitted: &[1],
            expected_not_submitted: &[],
            expected_rows_not_submitted: 0,
            expected_committed: "0.0003",
        },
        AdmissionCase {
            name: "a retry shard left out keeps its rows' earlier failure, so no row counts as never submitted",
            cap: "0.0001",
            shards: &[
                settled(
                    "completed",
                    &[Some(300)],
                    &[FailedWithCode("rate_limit_exceeded")],
                ),
                planned_retry(&[Some(300)]),
            ],
            expected_submitted: &[],
            expected_not_submitted: &[1],
            expected_rows_not_submitted: 0,
            expected_committed: "0.00",
        },
        AdmissionCase {
            name: "an answer without token usage was billed an unknown amount and counts at its upper bound, never as free",
            cap: "0.000399999999999",
            shards: &[
                settled("completed", &[Some(300)], &[AnsweredWithoutUsage]),
                planned(&[Some(100)]),
            ],
            expected_submitted: &[],
            expected_not_submitted: &[1],
            expected_rows_not_submitted: 1,
            expected_committed: "0.0003",
        },
        AdmissionCase {
            name: "a 200 answer whose body cannot be read may have been billed and counts at its upper bound",
            cap: "0.000399999999999",
            shards: &[
                settled("completed", &[Some(300)], &[AnsweredWithUnreadableBody]),
                planned(&[Some(100)]),
            ],
            expected_submitted: &[],
            expected_not_submitted: &[1],
            expected_rows_not_submitted: 1,
            expected_committed: "0.0003",
        },
        AdmissionCase {
            name: "a planned shard without max_tokens has no upper bound and is never submitted",
            cap: "1",
            shards: &[planned(&[Some(1), None])],
            expected_submitted: &[],
            expected_not_submitted: &[0],
            expected_rows_not_submitted: 2,
            expected_committed: "0.00",
        },
        AdmissionCase {
            name: "a batch out without an upper bound leaves the money committed unknown, so nothing more is submitted",
            cap: "1",
            shards: &[batch_out(&[None]), planned(&[Some(1)])],
            expected_submitted: &[],
            expected_not_submitted: &[1],
            expected_rows_not_submitted: 1,
            expected_committed: "unknown",
        },
        AdmissionCase {
            name: "rows of zero max_tokens on free prompts cost nothing and fit the smallest cap",
            cap: "0.000000000000001",
            shards: &[planned(&[Some(0), Some(0)])],
            expected_submitted: &[0],
            expected_not_submitted: &[],
            expected_rows_not_submitted: 0,
            expected_committed: "0.00",
        },
        AdmissionCase {
            name: "with no shard at all nothing is submitted or committed",
            cap: "1",
            shards: &[],
            expected_submitted: &[],
            expected_not_submitted: &[],
            expected_rows_not_submitted: 0,
            expected_committed: "0.00",
        },
    ];

    #[test]
    fn admission_cases() {
        let events = EventSink::new(OutputMode::Quiet);
        for case in ADMISSION_CASES {
            let BudgetSetup {
                run_directory,
                ledger,
                budget,
                _directory,
                job: _,
            } = budget_setup("sim-budget", case.cap, case.shards);
            let mut budget =
                budget.unwrap_or_else(|failure| panic!("case `{}`: {failure}", case.name));
            // The submission loop: every shard without a batch is asked about in order, and an
            // admitted one gets its batch before the next is asked about.
            let mut submitted = Vec::new();
            for shard in ledger.shards().unwrap() {
                if shard.batch_id.is_some() {
                    continue;
                }
                let admitted = budget
                    .admits(&shard, &ledger, &run_directory, &events)
                    .unwrap_or_else(|error| panic!("case `{}`: {error:#}", case.name));
                if admitted {
                    ledger
                        .set_batch_id(shard.shard_index, &format!("batch-{}", shard.shard_index))
                        .unwrap();
                    submitted.push(shard.shard_index);
                }
            }
            assert_eq!(
                submitted, case.expected_submitted,
                "case `{}`: shards submitted",
                case.name
            );
            let report = budget
                .report(&ledger, &run_directory)
                .unwrap()
                .expect("a cap is set");
            assert_eq!(
                report.shards_not_submitted, case.expected_not_submitted,
                "case `{}`: shards not submitted",
                case.name
            );
            assert_eq!(
                report.rows_not_submitted, case.expected_rows_not_submitted,
                "case `{}`: rows not submitted",
                case.name
            );
            assert_eq!(
                report.committed, case.expected_committed,
                "case `{}`: money committed",
                case.name
            );
        }
    }
}
