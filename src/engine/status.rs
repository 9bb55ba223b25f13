//! `dashbatch status RUN_DIR`: what a run's ledger and downloaded results say, with no network
//! call.

use std::path::Path;

use serde_json::json;

use super::RunDirectory;
use super::connection::load_prices;
use super::rehearsal::make_rehearsal;
use super::run_failure::RunFailure;
use super::run_record::{RunRecord, read_existing_ledger, read_run_record};
use crate::cost::RunPricer;
use crate::job::load_job;
use crate::ledger::AdoptionState;

/// `dashbatch status RUN_DIR`: what the ledger knows, without any network call.
pub fn show_status(run_directory: &Path, as_json: bool) -> Result<String, RunFailure> {
    let ledger = read_existing_ledger(run_directory)?;
    let shards = ledger.shards().map_err(RunFailure::local)?;
    let record = read_run_record(&ledger)?;
    let finished = record.finished;
    let planned_rows: u64 = record.planned_rows.unwrap_or(0);
    let spent = cost_so_far(&record, run_directory, &shards);
    let report: Option<serde_json::Value> = std::fs::read(run_directory.join("report.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    // Requests this run adopted from other runs that had them in flight.
    let adopted = |state| ledger.adoptions_in(state).map_err(RunFailure::local);
    let waiting = adopted(AdoptionState::Waiting)?;
    let (answered, sent) = (
        adopted(AdoptionState::Answered)?.len(),
        adopted(AdoptionState::Sent)?.len(),
    );
    let waiting_for: std::collections::BTreeSet<&str> = waiting
        .iter()
        .map(|adoption| adoption.other_run_directory.as_str())
        .collect();
    if as_json {
        let shards_json: Vec<serde_json::Value> = shards
            .iter()
            .map(|shard| {
                json!({
                    "shard": shard.shard_index,
                    "first_row": shard.first_row,
                    "rows": shard.row_count,
                    "file_id": shard.file_id,
                    "batch_id": shard.batch_id,
                    "batch_status": shard.batch_status,
                    "request_counts": {"total": shard.request_total, "completed": shard.request_completed, "failed": shard.request_failed},
                    "results_downloaded": shard.results_downloaded,
                })
            })
            .collect();
        return Ok(json!({
            "run_directory": run_directory.display().to_string(),
            "planned_rows": planned_rows,
            "finished": finished,
            "cost_so_far": spent.as_ref().map(|(money, _)| money.to_decimal_string()),
            "currency": spent.as_ref().map(|(money, _)| money.currency().code()),
            "ok_rows_so_far": spent.as_ref().map(|(_, rows)| *rows),
            "shards": shards_json,
            "adopted_requests": {"waiting": waiting.len(), "answered": answered, "sent": sent, "waiting_for": waiting_for},
            "report": report,
        })
        .to_string());
    }
    let mut text = format!(
        "run `{}`: {planned_rows} rows in {} shard(s), {}\n",
        run_directory.display(),
        shards.len(),
        if finished { "finished" } else { "not finished" }
    );
    if !waiting.is_empty() || answered + sent > 0 {
        text.push_str(&format!(
            "requests other runs had in flight: {} still waited for{}, {answered} answered by them, {sent} sent by this run\n",
            waiting.len(),
            if waiting_for.is_empty() {
                String::new()
            } else {
                format!(
                    " (from {})",
                    waiting_for.iter().copied().collect::<Vec<_>>().join(", ")
                )
            }
        ));
    }
    text.push_str("shard  rows      batch                                      status       completed  failed  results\n");
    for shard in &shards {
        text.push_str(&format!(
            "{:<6} {:<9} {:<42} {:<12} {:<10} {:<7} {}\n",
            shard.shard_index,
            shard.row_count,
            shard.batch_id.as_deref().unwrap_or("-"),
            shard
                .batch_status
                .as_deref()
                .unwrap_or(if shard.file_id.is_some() {
                    "uploaded"
                } else {
                    "planned"
                }),
            shard.request_completed,
            shard.request_failed,
            if shard.results_downloaded {
                "downloaded"
            } else {
                "-"
            }
        ));
    }
    if let Some((money, rows)) = &spent {
        text.push_str(&format!(
            "so far: {rows} rows answered, costing {} {} at batch price\n",
            money.to_decimal_string(),
            money.currency().code()
        ));
    }
    if let Some(report) = report {
        text.push_str(&format!(
            "cost: {} {} (realtime {}), output `{}`\n",
            report["cost"].as_str().unwrap_or("unknown"),
            report["currency"].as_str().unwrap_or(""),
            report["realtime_cost"].as_str().unwrap_or("unknown"),
            report["output"].as_str().unwrap_or("")
        ));
    }
    Ok(text)
}

/// What the downloaded results cost so far, from their usage, and how many rows they answered.
/// `None` when the job file or the model's price cannot be found.
fn cost_so_far(
    record: &RunRecord,
    run_directory: &Path,
    shards: &[crate::ledger::ShardRecord],
) -> Option<(crate::pricing::Money, u64)> {
    let founding = record.founding.as_ref()?;
    let mut job = load_job(&founding.job_file).ok()?;
    // Price the way the run itself does: its recorded prices file, its (rehearsal) model.
    let prices = load_prices(None, Some(founding), founding.provider)
        .ok()?
        .table;
    if founding.rehearsal {
        make_rehearsal(&mut job, founding.provider).ok()?;
    }
    let pricer = RunPricer::new(prices, &job.spec.request.model, job.bills_thinking());
    let mut total = crate::pricing::Money::zero(pricer.currency()?);
    let mut rows = 0;
    let directory = RunDirectory::new(run_directory.to_owned());
    for shard in shards.iter().filter(|shard| shard.results_downloaded) {
        let results = super::shard_results::load_shard_results_into(
            &directory,
            shard,
            shard.status(),
            None,
            super::shard_results::Digesting::No,
        )
        .ok()?;
        for result in results.values_without_answer_texts() {
            if let Some(cost) = pricer.row_cost(&result) {
                total = total.checked_add(cost.batch).ok()?;
                rows += 1;
            }
        }
    }
    Some((total, rows))
}
