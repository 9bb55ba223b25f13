//! `dashbatch validate`: the whole planning pass (job file, every input row, ids, limits) in a
//! throw-away directory, and a look at the first rendered requests. No network.

use std::fmt::Write;
use std::path::Path;

use crate::engine::plan_shards;
use crate::job::load_job;
use crate::ledger::Ledger;
use crate::provider::{ProviderKind, ProviderProfile};

pub fn validate_job(
    job_file: &Path,
    provider: ProviderKind,
    show: usize,
) -> anyhow::Result<String> {
    let job = load_job(job_file)?;
    let profile = ProviderProfile::for_kind(provider);
    profile.check_job(&job)?;
    let prices = crate::pricing::PriceTable::load(crate::env::chosen_prices_file(None).as_deref())?;
    crate::model_check::check_model(&job, provider, false, &prices)?;
    let scratch = tempfile::tempdir()?;
    let ledger = Ledger::open_path(&scratch.path().join("validate.sqlite"))?;
    let plan = plan_shards(&job, &profile, scratch.path(), &ledger, show)?;
    let mut text = String::new();
    writeln!(
        text,
        "job `{}` is valid: {} rows from `{}` → {} shard(s) for provider `{}` (no network calls made)",
        job.name,
        plan.row_count,
        job.input_path.display(),
        plan.shards.len(),
        provider
    )?;
    if plan.skipped_rows > 0 {
        writeln!(
            text,
            "  {} more row(s) have an empty prompt and will not be sent (`[input] skip_empty`): status `skipped`",
            plan.skipped_rows
        )?;
    }
    for shard in &plan.shards {
        writeln!(
            text,
            "  shard {}: from row {} ({} requests, {} bytes)",
            shard.shard_index, shard.first_row, shard.row_count, shard.byte_size
        )?;
    }
    for rendered in &plan.preview {
        let value: serde_json::Value = serde_json::from_slice(&rendered.line)?;
        writeln!(
            text,
            "\nrow {} → request line:\n{}",
            rendered.row_number,
            serde_json::to_string_pretty(&value)?
        )?;
    }
    Ok(text)
}
