//! `dashbatch validate`: the whole planning pass (job file, every input row, ids, limits) in a
//! throw-away directory, and a look at the first rendered requests. No network.

use std::fmt::Write;
use std::path::Path;

use crate::engine::{ShardDurability, plan_scratch_shards};
use crate::job::load_job;
use crate::ledger::Ledger;
use crate::provider::{ProviderKind, ProviderProfile};
use crate::settings::{Setting, SettingSource};

pub fn validate_job(
    job_file: &Path,
    provider: ProviderKind,
    show: usize,
    prices_flag: Option<&Path>,
    base_url: Option<&str>,
) -> anyhow::Result<String> {
    let job = load_job(job_file)?;
    let profile = ProviderProfile::for_kind(provider);
    profile.check_job(&job)?;
    let (prices, prices_file) = crate::pricing::PriceTable::load_chosen(prices_flag, provider)?;
    // A chosen vocabulary that cannot be used fails here, as it would fail `run` and `estimate`.
    let vocabulary =
        crate::tokens::choose_vocabulary(None, None, job.estimate_tokenizer_path.as_deref());
    let token_counter =
        crate::tokens::load_token_counter(&job.spec.request.model, vocabulary.as_ref())?;
    crate::model_check::check_model(&job, provider, false, &prices)?;
    // A cap written in another currency than the provider bills in would be refused by `run`.
    if let Some(max_cost) = &job.spec.batch.max_cost
        && let Err(problem) =
            crate::job::amount_in_currency(&max_cost.0, prices.currency(), &job.spec.request.model)
    {
        anyhow::bail!(
            "job file `{}`, key `batch.max_cost`: {problem}",
            job.job_file.display()
        );
    }
    let scratch = crate::scratch_directory::scratch_directory()?;
    let ledger = Ledger::open_path(&scratch.path().join("validate.sqlite"))?;
    let (reuse, store_preview) = crate::engine::previewed_reuse(&job, provider, base_url)?;
    let plan = plan_scratch_shards(
        &job,
        &profile,
        scratch.path(),
        // Nothing reads the request lines back: they are counted, not written.
        ShardDurability::CountedOnly,
        &ledger,
        &reuse,
        show,
    )?;
    if job.output_format == Some(crate::table::TableFormat::Excel)
        && let Err(problem) =
            crate::table::check_fits_a_sheet(plan.input_rows(), plan.output_columns)
    {
        anyhow::bail!(
            "job file `{}`, key `output.path`: the output cannot hold the table: {problem}",
            job.job_file.display()
        );
    }
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
    if plan.rows_from_store + plan.rows_deduplicated > 0 {
        writeln!(
            text,
            "  {} more row(s) would be answered from the answer store and {} more repeat another row's request: not sent, cost 0 (`answer_source` `store` / `dedup`)",
            plan.rows_from_store, plan.rows_deduplicated
        )?;
    }
    writeln!(
        text,
        "  answer store: {}",
        match (&store_preview.path, &store_preview.warning) {
            (_, Some(warning)) => format!("none (warning: {warning})"),
            (Some(path), None) => format!("`{}`", path.display()),
            (None, None)
                if job.answer_store
                    == crate::store_location::JobStoreSetting::NeverWithoutDeduplication =>
                "none (`[reuse] deduplicate = false`: every row is sent)".to_owned(),
            (None, None) => "none".to_owned(),
        }
    )?;
    for shard in &plan.shards {
        writeln!(
            text,
            "  shard {}: from row {} ({} requests, {} bytes)",
            shard.shard_index, shard.first_row, shard.row_count, shard.byte_size
        )?;
    }
    write_settings_in_force(&mut text, &job, prices_file.as_ref())?;
    if let Some(how) = &plan.input_description {
        writeln!(text, "  the input is read as: {how}")?;
    }
    let schema = &plan.input_schema;
    let row_variable =
        crate::render::row_variable_name(schema.fields().iter().map(|field| field.name().as_str()));
    let spellings: Vec<String> = schema
        .fields()
        .iter()
        .map(|field| {
            format!(
                "`{}` as {}",
                field.name(),
                crate::render::template_spelling(field.name(), row_variable)
            )
        })
        .collect();
    writeln!(
        text,
        "  the input's columns, as a template names them: {}",
        spellings.join(", ")
    )?;
    writeln!(
        text,
        "  tokens are counted with {}",
        token_counter.description()
    )?;
    match prices.price_in_provider_currency(&job.spec.request.model)? {
        Some(price) => writeln!(
            text,
            "  priced by {} from {}{}{}",
            price.name(),
            price.origin(),
            price
                .as_of()
                .map(|date| format!(", checked {date}"))
                .unwrap_or_default(),
            if price.batch_listed() == Some(false) {
                format!(
                    "; warning: the provider's batch page does not list `{}` for {}",
                    price.name(),
                    price.region().unwrap_or("this region")
                )
            } else {
                String::new()
            }
        )?,
        None => writeln!(
            text,
            "  `{}` has no price in the {} table: costs will be unknown (see `dashbatch prices`)",
            job.spec.request.model,
            prices.builtin_table()
        )?,
    }
    for rendered in &plan.preview {
        let mut value: serde_json::Value = serde_json::from_slice(&rendered.line)?;
        // An embedded image is megabytes of base64: shown by its start and size.
        crate::images::data_url::abbreviate_data_urls(&mut value);
        writeln!(
            text,
            "\nrow {} → request line:\n{}",
            rendered.row_number,
            serde_json::to_string_pretty(&value)?
        )?;
    }
    Ok(text)
}

/// The settings a `run` of this job would use with no flag, and where each comes from.
fn write_settings_in_force(
    text: &mut String,
    job: &crate::job::Job,
    prices_file: Option<&Setting<std::path::PathBuf>>,
) -> std::fmt::Result {
    let shown = |setting: Option<&Setting<String>>, otherwise: &str| match setting {
        Some(setting) => format!("{} (from {})", setting.value, setting.source),
        None => format!("{otherwise} ({})", SettingSource::Default),
    };
    let path_text = |setting: Setting<std::path::PathBuf>| Setting {
        value: format!("`{}`", setting.value.display()),
        source: setting.source,
    };
    let output = crate::engine::output_path_setting(None, job).map(path_text);
    let tokenizer =
        crate::tokens::choose_vocabulary(None, None, job.estimate_tokenizer_path.as_deref())
            .map(path_text);
    let max_cost = crate::engine::max_cost_setting(None, None, job);
    writeln!(
        text,
        "  settings of a new run without flags (a flag wins over the run's ledger, then the environment, then the job file, then the default):"
    )?;
    writeln!(
        text,
        "    output: {}",
        shown(output.as_ref(), "RUN_DIR/output.<format>")
    )?;
    writeln!(
        text,
        "    prices file: {}",
        shown(
            prices_file.cloned().map(path_text).as_ref(),
            "none, the built-in table"
        )
    )?;
    writeln!(
        text,
        "    tokenizer vocabulary: {}",
        shown(
            tokenizer.as_ref(),
            "none named: the model's own vocabulary when installed or built in, else the heuristic"
        )
    )?;
    writeln!(text, "    max_cost: {}", shown(max_cost.as_ref(), "none"))
}
