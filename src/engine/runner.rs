//! Orchestration of a run: plan → upload → create → poll → download → join → report, each step
//! recorded in the ledger so that `resume` (or `run` on an existing run directory) continues
//! where the last process stopped, and a finished run makes no changing call at all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::budget::{RunBudget, prepare_run_budget};
use super::estimate_vs_actual::attach_estimates;
use super::join_pass::join_results;
use super::output_target::{OutputTarget, check_output_target, choose_output_target};
use super::plan::{file_sha256, plan_shards};
use super::poll::{BatchSlots, PollSchedule, poll_until_settled};
use super::rehearsal::make_rehearsal;
use super::remote_cleanup::delete_remote_files;
use super::report::RunReport;
use super::retry::{ingest_retry_results, plan_retries};
use super::submit::{SubmitError, Submitter};
use super::{EventSink, OutputMode, RunDirectory};
use crate::client::{ApiClient, ApiKey, RetryPolicy};
use crate::cost::RunPricer;
use crate::exit;
use crate::job::{Job, load_job};
use crate::ledger::{EffectKind, Ledger};
use crate::pricing::PriceTable;
use crate::provider::{ProviderKind, ProviderProfile};

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct RunFailure {
    pub exit_code: u8,
    pub error: anyhow::Error,
}

impl RunFailure {
    pub fn input(error: impl Into<anyhow::Error>) -> RunFailure {
        RunFailure {
            exit_code: exit::INPUT_ERROR,
            error: error.into(),
        }
    }

    pub fn remote(error: impl Into<anyhow::Error>) -> RunFailure {
        RunFailure {
            exit_code: exit::REMOTE_ERROR,
            error: error.into(),
        }
    }

    /// Stopped by a signal: exit 130 (SIGINT) or 143 (SIGTERM).
    pub fn interrupted(interrupted: crate::interrupt::Interrupted) -> RunFailure {
        RunFailure {
            exit_code: crate::interrupt::exit_code(interrupted),
            error: interrupted.into(),
        }
    }
}

/// The provider refused a call for good (a 4xx other than 408, 409 and 429): repeating it, or
/// resuming, would be refused again, so the message says what to change instead.
#[derive(Debug, thiserror::Error)]
#[error(
    "the provider refused shard {shard_index}: {error}\nThis is not a passing failure: resuming would be refused the same way. Change what the message names (model, endpoint, parameters, key or account) in the job or environment and run again. {cleanup}"
)]
pub struct ProviderRefusal {
    pub shard_index: u64,
    pub error: crate::client::ClientError,
    pub cleanup: String,
}

impl std::fmt::Display for RunFailure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{:#}", self.error)
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub provider: ProviderKind,
    pub base_url: Option<String>,
    pub run_directory: Option<PathBuf>,
    pub output: Option<PathBuf>,
    pub mode: OutputMode,
    pub prices_file: Option<PathBuf>,
    /// Send the shards to DashScope's free `batch-test-model` instead of the job's model.
    pub rehearse: bool,
    /// `--max-cost`: the budget cap, winning over the job's `[batch] max_cost`.
    pub max_cost: Option<String>,
    /// `--tokenizer`: the Qwen vocabulary for the run's cost estimates.
    pub tokenizer: Option<PathBuf>,
}

#[derive(Debug)]
pub struct RunOutcome {
    pub report: RunReport,
    pub exit_code: u8,
    pub run_directory: PathBuf,
}

/// Ledger fact keys.
pub(super) mod fact {
    pub const JOB_FILE: &str = "job_file";
    pub const JOB_SHA256: &str = "job_sha256";
    pub const INPUT_SHA256: &str = "input_sha256";
    pub const PROVIDER: &str = "provider";
    pub const BASE_URL: &str = "base_url";
    pub const OUTPUT_PATH: &str = "output_path";
    pub const OUTPUT_FORMAT: &str = "output_format";
    pub const PLANNED_ROWS: &str = "planned_rows";
    pub const PRICES_FILE: &str = "prices_file";
    pub const FINISHED: &str = "finished";
    pub const RUN_ID: &str = "run_id";
    pub const REHEARSAL: &str = "rehearsal";
}

/// The provider a run talks to, with the embedded simulator kept alive while it is used.
pub(super) struct Connection {
    pub(super) client: ApiClient,
    _simulator: Option<crate::sim::SimHandle>,
}

pub(super) async fn connect(
    kind: ProviderKind,
    base_url: Option<&str>,
    run_directory: &RunDirectory,
) -> Result<Connection, RunFailure> {
    let profile = ProviderProfile::for_kind(kind);
    if kind == ProviderKind::Sim && base_url.is_none() {
        let mut config = crate::sim::SimConfig {
            state_dir: Some(run_directory.root.join("simulator")),
            ..crate::sim::SimConfig::default()
        };
        if let Ok(scale) = std::env::var(crate::env::DASHBATCH_SIM_TIME_SCALE)
            && let Ok(scale) = scale.parse::<f64>()
        {
            config.time_scale = scale;
        }
        let handle = crate::sim::spawn("127.0.0.1:0", config)
            .await
            .map_err(|error| {
                RunFailure::remote(anyhow::anyhow!(
                    "cannot start the embedded simulator: {error}"
                ))
            })?;
        let client = ApiClient::new(
            &handle.base_url(),
            ApiKey::new("sim-key".into()),
            RetryPolicy::default(),
        )
        .map_err(RunFailure::remote)?;
        return Ok(Connection {
            client,
            _simulator: Some(handle),
        });
    }
    let base_url = match (base_url, profile.default_base_url) {
        (Some(url), _) => url.to_owned(),
        (None, Some(url)) => url.to_owned(),
        (None, None) => {
            return Err(RunFailure::input(anyhow::anyhow!(
                "no base URL for provider `{kind}`; pass `--base-url`"
            )));
        }
    };
    let key = match std::env::var(profile.api_key_variable) {
        Ok(key) if !key.trim().is_empty() => key,
        _ if kind == ProviderKind::Sim => "sim-key".to_owned(),
        _ => {
            return Err(RunFailure::input(anyhow::anyhow!(
                "`{}` is not set; export your API key in it (dashbatch reads the key only from the environment), or use `--provider sim` to try a job without a key",
                profile.api_key_variable
            )));
        }
    };
    let client = ApiClient::new(&base_url, ApiKey::new(key), RetryPolicy::default())
        .map_err(RunFailure::remote)?;
    Ok(Connection {
        client,
        _simulator: None,
    })
}

fn poll_schedule(job: &Job, kind: ProviderKind, base_url: Option<&str>) -> PollSchedule {
    let local = kind == ProviderKind::Sim
        || base_url.is_some_and(|url| url.contains("127.0.0.1") || url.contains("localhost"));
    let max = job
        .spec
        .batch
        .max_poll_interval_seconds
        .map(Duration::from_secs)
        .unwrap_or(if local {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(60)
        });
    PollSchedule {
        first_interval: if local {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        }
        .min(max),
        max_interval: max,
    }
}

/// Refuses a `--base-url` that is not an http(s) URL before anything else happens.
pub fn check_base_url(url: &str) -> Result<(), RunFailure> {
    let parsed = reqwest::Url::parse(url).map_err(|error| {
        RunFailure::input(anyhow::anyhow!(
            "`--base-url {url}` is not a URL ({error}); give the API's base, for example `https://dashscope.aliyuncs.com/compatible-mode/v1`"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(RunFailure::input(anyhow::anyhow!(
            "`--base-url {url}` must be an http:// or https:// URL with a host, for example `https://dashscope.aliyuncs.com/compatible-mode/v1`"
        )));
    }
    Ok(())
}

/// The price table with the run's price file on top, and that file's path (to record for resuming).
pub(super) fn load_prices(
    options_prices: Option<&Path>,
) -> Result<(PriceTable, Option<PathBuf>), RunFailure> {
    let path = crate::env::chosen_prices_file(options_prices);
    let table = PriceTable::load(path.as_deref()).map_err(RunFailure::input)?;
    Ok((table, path))
}

/// `dashbatch run JOB.toml`: a new run, or the continuation of the one in `--run-dir`.
pub async fn run_job(job_file: &Path, options: RunOptions) -> Result<RunOutcome, RunFailure> {
    let job = load_job(job_file).map_err(RunFailure::input)?;
    let run_directory = match &options.run_directory {
        Some(path) => RunDirectory::new(path.clone()),
        None => RunDirectory::default_for(&job.name),
    };
    execute(job, run_directory, options).await
}

/// `dashbatch resume RUN_DIR`: continues a run from its ledger alone.
pub async fn resume_run(
    run_directory: &Path,
    mode: OutputMode,
    output_override: Option<PathBuf>,
) -> Result<RunOutcome, RunFailure> {
    let ledger = open_existing_ledger(run_directory)?;
    let job_file = ledger
        .fact(fact::JOB_FILE)
        .map_err(RunFailure::input)?
        .ok_or_else(|| {
            RunFailure::input(anyhow::anyhow!("the ledger does not name its job file"))
        })?;
    let provider = recorded_provider(&ledger, run_directory)?;
    let base_url = ledger.fact(fact::BASE_URL).map_err(RunFailure::input)?;
    let rehearse = ledger
        .fact(fact::REHEARSAL)
        .map_err(RunFailure::input)?
        .as_deref()
        == Some("1");
    let output = match output_override {
        Some(path) => Some(path),
        None => ledger
            .fact(fact::OUTPUT_PATH)
            .map_err(RunFailure::input)?
            .map(PathBuf::from),
    };
    let prices_file = ledger
        .fact(fact::PRICES_FILE)
        .map_err(RunFailure::input)?
        .map(PathBuf::from);
    drop(ledger);
    let job = load_job(Path::new(&job_file)).map_err(RunFailure::input)?;
    execute(
        job,
        RunDirectory::new(run_directory.to_owned()),
        RunOptions {
            provider,
            base_url,
            run_directory: Some(run_directory.to_owned()),
            output,
            mode,
            prices_file,
            rehearse,
            max_cost: None,
            tokenizer: None,
        },
    )
    .await
}

/// The provider a run was started with. Never guessed: a wrong guess would talk to another
/// service than the one holding the run's batches.
pub(super) fn recorded_provider(
    ledger: &Ledger,
    run_directory: &Path,
) -> Result<ProviderKind, RunFailure> {
    ledger
        .fact(fact::PROVIDER)
        .map_err(RunFailure::input)?
        .and_then(|text| serde_json::from_value(json!(text)).ok())
        .ok_or_else(|| {
            RunFailure::input(anyhow::anyhow!(
                "run `{}` does not record its provider; it was interrupted before it started, so start it again with `dashbatch run`",
                run_directory.display()
            ))
        })
}

pub(super) fn open_existing_ledger(run_directory: &Path) -> Result<Ledger, RunFailure> {
    if !Ledger::exists_in(run_directory) {
        return Err(RunFailure::input(anyhow::anyhow!(
            "`{}` is not a run directory (it has no {})",
            run_directory.display(),
            crate::ledger::LEDGER_FILE_NAME
        )));
    }
    Ledger::open(run_directory).map_err(RunFailure::input)
}

/// Uploads and creates batches for every shard that has none yet, reconciling first any side
/// effect a previous process announced but never saw through.
async fn submit_pending(
    client: &ApiClient,
    ledger: &Ledger,
    run_directory: &RunDirectory,
    job: &Job,
    profile: &ProviderProfile,
    events: &EventSink,
    budget: &mut RunBudget,
) -> anyhow::Result<()> {
    let shards = ledger.shards()?;
    let mut submitter = Submitter {
        client,
        ledger,
        run_directory,
        job,
        profile,
        events,
        shard_count: shards.len() as u64,
        last_upload: None,
    };
    for (effect_id, shard_index, _) in ledger.open_intents(EffectKind::Upload)? {
        let Some(shard) =
            shard_index.and_then(|index| shards.iter().find(|s| s.shard_index == index))
        else {
            continue;
        };
        let outcome = if shard.file_id.is_none() {
            match submitter.reconcile_upload(shard).await? {
                Some(id) => format!("adopted {id}"),
                None => "not found; will upload".to_owned(),
            }
        } else {
            "file id already recorded".to_owned()
        };
        ledger.record_outcome(effect_id, "reconciled", &outcome)?;
    }
    let shards = ledger.shards()?;
    for (effect_id, shard_index, file_id) in ledger.open_intents(EffectKind::CreateBatch)? {
        let Some(shard) =
            shard_index.and_then(|index| shards.iter().find(|s| s.shard_index == index))
        else {
            continue;
        };
        let outcome = if shard.batch_id.is_none() {
            match submitter.reconcile_batch(shard, &file_id).await? {
                Some(batch) => format!("adopted {}", batch.id),
                None => "not found; will create".to_owned(),
            }
        } else {
            "batch id already recorded".to_owned()
        };
        ledger.record_outcome(effect_id, "reconciled", &outcome)?;
    }
    let shards = ledger.shards()?;
    let mut live = shards.iter().filter(|shard| shard.has_live_batch()).count();
    for shard in shards {
        if shard.batch_id.is_some() {
            continue;
        }
        if live >= profile.max_live_batches {
            // The rest wait until running batches settle.
            break;
        }
        if !budget.admits(&shard, ledger, run_directory, events)? {
            continue;
        }
        live += 1;
        crate::interrupt::check()?;
        let file_id = match submitter.ensure_uploaded(&shard).await {
            Ok(file_id) => file_id,
            Err(SubmitError::Client(error)) if is_refusal(&error) => {
                return Err(ProviderRefusal {
                    shard_index: shard.shard_index,
                    error,
                    cleanup: "Nothing was uploaded for this shard.".to_owned(),
                }
                .into());
            }
            Err(error) => return Err(error.into()),
        };
        crate::interrupt::check()?;
        match submitter.ensure_batch(&shard, &file_id).await {
            Ok(_) => {}
            Err(SubmitError::Client(error)) if is_refusal(&error) => {
                let cleanup =
                    delete_refused_upload(client, ledger, shard.shard_index, &file_id).await?;
                return Err(ProviderRefusal {
                    shard_index: shard.shard_index,
                    error,
                    cleanup,
                }
                .into());
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// The failure of a run whose directory (with its ledger) was deleted under it: nothing can
/// resume it, so say which batches exist at the provider (the ledger, still open though
/// unlinked, can tell) instead of claiming the state is saved.
fn lost_run_directory(
    error: &anyhow::Error,
    run_directory: &RunDirectory,
    ledger: &Ledger,
) -> anyhow::Error {
    let batches: Vec<String> = ledger
        .shards()
        .map(|shards| {
            shards
                .into_iter()
                .filter_map(|shard| shard.batch_id)
                .collect()
        })
        .unwrap_or_default();
    anyhow::anyhow!(
        "{error:#}\nThe run directory `{}` and its ledger were deleted while the run was live, so this run cannot be resumed. Its batches at the provider ({}) keep running and are billed for what they answer; fetch their results with the provider's console or API, or cancel them there. Do not start the job again unless you mean to pay for it again.",
        run_directory.root.display(),
        if batches.is_empty() {
            "none recorded".to_owned()
        } else {
            batches
                .iter()
                .map(|id| format!("`{id}`"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    )
}

/// A definite refusal: the provider answered with a 4xx that repeating cannot change.
fn is_refusal(error: &crate::client::ClientError) -> bool {
    matches!(error.status(), Some(status) if (400..500).contains(&status) && ![408, 409, 429].contains(&status))
        && !error.is_transient()
        && !error.outcome_unknown()
}

/// Deletes the file uploaded for a shard whose batch the provider refused (announced in the
/// ledger first), and forgets its id so that a later run uploads the shard again.
async fn delete_refused_upload(
    client: &ApiClient,
    ledger: &Ledger,
    shard_index: u64,
    file_id: &str,
) -> anyhow::Result<String> {
    let effect = ledger.record_intent(Some(shard_index), EffectKind::DeleteFile, file_id)?;
    match client.delete_file(file_id).await {
        Ok(()) => {
            ledger.record_outcome(effect, "done", file_id)?;
            ledger.set_file_id(shard_index, None)?;
            Ok(format!(
                "The file uploaded for it (`{file_id}`) was deleted; no batch was created for it."
            ))
        }
        Err(error) => {
            ledger.record_outcome(effect, "failed", &error.to_string())?;
            Ok(format!(
                "No batch was created for it; deleting its uploaded file `{file_id}` failed too ({error}), delete it at the provider if you wish."
            ))
        }
    }
}

/// Runs the stages, then makes the exit code of a failure tell the truth: a stop by signal is
/// 130/143, and once a batch of the run exists (money may be spent) a failure is never exit 2.
async fn execute(
    job: Job,
    run_directory: RunDirectory,
    options: RunOptions,
) -> Result<RunOutcome, RunFailure> {
    let root = run_directory.root.clone();
    let job_file = job.job_file.clone();
    execute_stages(job, run_directory, options)
        .await
        .map_err(|failure| settle_failure(failure, &root, &job_file))
}

fn settle_failure(mut failure: RunFailure, run_root: &Path, job_file: &Path) -> RunFailure {
    if let Some(interrupted) = crate::interrupt::received()
        && crate::interrupt::is_interruption(&failure.error)
    {
        return RunFailure::interrupted(interrupted);
    }
    if failure.error.downcast_ref::<ProviderRefusal>().is_some() {
        failure.exit_code = exit::REMOTE_ERROR;
        return failure;
    }
    if failure.exit_code == exit::INPUT_ERROR && batches_exist(run_root) {
        failure.exit_code = exit::REMOTE_ERROR;
        failure.error = anyhow::anyhow!(
            "{:#}\nBatches of this run were already created, so results may be billed: nothing will be submitted again. Fix what the message says, then finish the run with `dashbatch resume {root}` (or `dashbatch run {job} --run-dir {root} --output OTHER_PATH` to write the table elsewhere); the results already downloaded are kept in `{root}/results`.",
            failure.error,
            root = run_root.display(),
            job = job_file.display()
        );
    }
    failure
}

/// True when the run in `run_root` created (or may have created) at least one batch.
fn batches_exist(run_root: &Path) -> bool {
    if !Ledger::exists_in(run_root) {
        return false;
    }
    let Ok(ledger) = Ledger::open(run_root) else {
        // Cannot tell: assume the worst, never claim nothing was spent.
        return true;
    };
    let created = ledger
        .shards()
        .map(|shards| shards.iter().any(|shard| shard.batch_id.is_some()))
        .unwrap_or(true);
    created || ledger.count_effects(EffectKind::CreateBatch).unwrap_or(1) > 0
}

async fn execute_stages(
    job: Job,
    mut run_directory: RunDirectory,
    options: RunOptions,
) -> Result<RunOutcome, RunFailure> {
    let events = EventSink::new(options.mode);
    let mut profile = ProviderProfile::for_kind(options.provider);
    let mut job = job;
    if options.rehearse {
        make_rehearsal(&mut job, options.provider)?;
        profile = profile.for_rehearsal();
    }
    profile.check_job(&job).map_err(RunFailure::input)?;
    let (prices, prices_file) = load_prices(options.prices_file.as_deref())?;
    if let Some(url) = &options.base_url {
        check_base_url(url)?;
    }
    crate::model_check::check_model(&job, options.provider, options.base_url.is_some(), &prices)
        .map_err(RunFailure::input)?;
    // A finished run makes no call, so it needs no key.
    let finished_before = Ledger::exists_in(&run_directory.root)
        && Ledger::open(&run_directory.root)
            .ok()
            .and_then(|ledger| ledger.fact(fact::FINISHED).ok().flatten())
            .is_some();
    if options.provider != ProviderKind::Sim && !finished_before {
        let variable = profile.api_key_variable;
        if std::env::var(variable).map_or(true, |key| key.trim().is_empty()) {
            return Err(RunFailure::input(anyhow::anyhow!(
                "`{variable}` is not set; export your API key in it (dashbatch reads the key only from the environment), or use `--provider sim` to try a job without a key"
            )));
        }
    }

    run_directory.create().map_err(|error| {
        RunFailure::input(anyhow::anyhow!(
            "cannot create the run directory `{}`: {error}",
            run_directory.root.display()
        ))
    })?;
    let mut ledger = Ledger::open(&run_directory.root).map_err(RunFailure::input)?;
    // A run exists once its founding facts are recorded (all in one transaction).
    let resuming = ledger
        .fact(fact::JOB_SHA256)
        .map_err(RunFailure::input)?
        .is_some();
    let output_target = choose_output_target(options.output.as_deref(), &job, &run_directory)?;
    check_output_target(&output_target, &job, &run_directory)?;
    let OutputTarget {
        path: output_path,
        format: output_format,
    } = output_target;
    if resuming {
        if let Some(recorded) = ledger.fact(fact::JOB_SHA256).map_err(RunFailure::input)?
            && recorded != job.job_file_sha256
        {
            return Err(RunFailure::input(anyhow::anyhow!(
                "job file `{}` changed since run `{}` started; resuming would mix two jobs. Restore the job file, or start a new run with another `--run-dir`",
                job.job_file.display(),
                run_directory.root.display()
            )));
        }
        let recorded_rehearsal = ledger.fact(fact::REHEARSAL).map_err(RunFailure::input)?;
        if recorded_rehearsal.as_deref().unwrap_or("0") != u8::from(options.rehearse).to_string() {
            return Err(RunFailure::input(anyhow::anyhow!(
                "run `{}` is {} rehearsal; resume it {} `--rehearse`, or start a new run",
                run_directory.root.display(),
                if options.rehearse { "not a" } else { "a" },
                if options.rehearse { "without" } else { "with" }
            )));
        }
        if let Some(recorded) = ledger.fact(fact::PROVIDER).map_err(RunFailure::input)?
            && recorded != options.provider.to_string()
        {
            return Err(RunFailure::input(anyhow::anyhow!(
                "run `{}` was started with provider `{recorded}`, not `{}`; resume it with the same provider",
                run_directory.root.display(),
                options.provider
            )));
        }
    } else {
        let job_file_absolute =
            std::fs::canonicalize(&job.job_file).unwrap_or(job.job_file.clone());
        let mut founding = vec![
            (fact::RUN_ID, run_directory.new_run_id()),
            (fact::JOB_FILE, job_file_absolute.display().to_string()),
            (fact::PROVIDER, options.provider.to_string()),
            (fact::OUTPUT_PATH, output_path.display().to_string()),
            (fact::OUTPUT_FORMAT, output_format.extension().to_owned()),
            (fact::REHEARSAL, u8::from(options.rehearse).to_string()),
            // Written last in the list, but the transaction makes them appear together.
            (fact::JOB_SHA256, job.job_file_sha256.clone()),
        ];
        if let Some(url) = &options.base_url {
            founding.push((fact::BASE_URL, url.clone()));
        }
        if let Some(path) = &prices_file {
            let absolute = std::fs::canonicalize(path).unwrap_or(path.clone());
            founding.push((fact::PRICES_FILE, absolute.display().to_string()));
        }
        ledger.set_facts(&founding).map_err(RunFailure::input)?;
    }
    let run_id = ledger
        .fact(fact::RUN_ID)
        .map_err(RunFailure::input)?
        .ok_or_else(|| RunFailure::input(anyhow::anyhow!("the ledger lost its run id")))?;
    run_directory.set_run_id(run_id);
    let mut budget = prepare_run_budget(
        &job,
        &prices,
        &ledger,
        options.max_cost.as_deref(),
        options.tokenizer.as_deref(),
    )?;

    events.emit(
        "run_started",
        json!({
            "job": job.name,
            "run_directory": run_directory.root.display().to_string(),
            "provider": options.provider.to_string(),
            "resumed": resuming,
        }),
        || {
            Some(format!(
                "{} job `{}` in `{}` on provider `{}`",
                if resuming { "resuming" } else { "running" },
                job.name,
                run_directory.root.display(),
                options.provider
            ))
        },
    );

    // Plan (local, free). A crash while planning leaves no `planned_rows`, so planning restarts.
    let planned_rows = match ledger.fact(fact::PLANNED_ROWS).map_err(RunFailure::input)? {
        Some(rows) => rows.parse::<u64>().unwrap_or(0),
        None => {
            ledger.clear_plan().map_err(RunFailure::input)?;
            let input_sha256 = file_sha256(&job.input_path).map_err(|error| {
                RunFailure::input(anyhow::anyhow!(
                    "cannot read input `{}`: {error}",
                    job.input_path.display()
                ))
            })?;
            let plan = plan_shards(
                &job,
                &profile,
                &run_directory.shards_directory(),
                &ledger,
                0,
            )
            .map_err(RunFailure::input)?;
            ledger
                .insert_shards(&plan.shards)
                .map_err(RunFailure::input)?;
            ledger
                .set_fact(fact::INPUT_SHA256, &input_sha256)
                .map_err(RunFailure::input)?;
            ledger
                .set_fact(fact::PLANNED_ROWS, &plan.row_count.to_string())
                .map_err(RunFailure::input)?;
            events.emit(
                "planned",
                json!({"rows": plan.row_count, "skipped_rows": plan.skipped_rows, "shards": plan.shards.len()}),
                || {
                    Some(format!(
                        "{} rows in {} shard(s){}",
                        plan.row_count,
                        plan.shards.len(),
                        if plan.skipped_rows > 0 {
                            format!(
                                "; {} row(s) with an empty prompt skipped",
                                plan.skipped_rows
                            )
                        } else {
                            String::new()
                        }
                    ))
                },
            );
            plan.row_count
        }
    };
    if resuming {
        let recorded = ledger.fact(fact::INPUT_SHA256).map_err(RunFailure::input)?;
        let current = file_sha256(&job.input_path).ok();
        if recorded.is_some() && recorded != current {
            return Err(RunFailure::input(anyhow::anyhow!(
                "input `{}` changed since run `{}` was planned; joining would mismatch rows. Restore the input, or start a new run",
                job.input_path.display(),
                run_directory.root.display()
            )));
        }
    }

    budget.refuse_if_over_before_first_upload(&ledger, &run_directory, &job)?;

    let finished = ledger
        .fact(fact::FINISHED)
        .map_err(RunFailure::input)?
        .is_some();
    let thinking = job.spec.request.enable_thinking == Some(true);
    let pricer = RunPricer::new(prices, &job.spec.request.model, thinking);

    if !finished {
        let connection = connect(
            options.provider,
            options.base_url.as_deref(),
            &run_directory,
        )
        .await?;
        let client = &connection.client;
        events.start_progress(planned_rows);
        let schedule = poll_schedule(&job, options.provider, options.base_url.as_deref());
        let saved = |error: anyhow::Error, ledger: &Ledger| {
            // A refusal or a signal says itself what to do; anything else can be resumed.
            if crate::interrupt::is_interruption(&error)
                || error.downcast_ref::<ProviderRefusal>().is_some()
            {
                return RunFailure::remote(error);
            }
            if !Ledger::exists_in(&run_directory.root) {
                return RunFailure::remote(lost_run_directory(&error, &run_directory, ledger));
            }
            RunFailure::remote(anyhow::anyhow!(
                "{error:#}\nThe run's state is saved; continue it with `dashbatch resume {}`",
                run_directory.root.display()
            ))
        };
        loop {
            submit_pending(
                client,
                &ledger,
                &run_directory,
                &job,
                &profile,
                &events,
                &mut budget,
            )
            .await
            .map_err(|error| saved(error, &ledger))?;
            // Shards held back by the budget cap are not waiting: they will not be sent.
            let waiting_shards = |ledger: &Ledger| -> Result<bool, RunFailure> {
                Ok(ledger
                    .shards()
                    .map_err(RunFailure::input)?
                    .iter()
                    .any(|shard| {
                        shard.batch_id.is_none()
                            && !budget.skipped_shards().contains(&shard.shard_index)
                    }))
            };
            let waiting_before_poll = waiting_shards(&ledger)?;
            poll_until_settled(
                client,
                &ledger,
                &run_directory,
                &events,
                schedule,
                planned_rows,
                BatchSlots {
                    max_live_batches: profile.max_live_batches,
                    shards_waiting: waiting_before_poll,
                },
            )
            .await
            .map_err(|error| saved(error.into(), &ledger))?;
            let waiting = waiting_shards(&ledger)?;
            if waiting {
                continue;
            }
            ingest_retry_results(&mut ledger, &run_directory).map_err(RunFailure::input)?;
            let retry_shards = plan_retries(&job, &profile, &mut ledger, &run_directory)
                .map_err(RunFailure::input)?;
            if retry_shards == 0 {
                break;
            }
            events.emit("retry_planned", json!({"shards": retry_shards}), || {
                Some(format!(
                    "resending transiently failed requests in {retry_shards} retry shard(s)"
                ))
            });
        }
        if job.spec.batch.delete_remote_files.unwrap_or(true) {
            delete_remote_files(client, &ledger, &events)
                .await
                .map_err(|error| saved(error, &ledger))?;
        }
        events.finish_progress();
    }

    let shards = ledger.shards().map_err(RunFailure::input)?;
    let summary = join_results(
        &job,
        &profile,
        &run_directory,
        &ledger,
        &shards,
        &pricer,
        &output_path,
        output_format,
        budget.skipped_shards(),
    )
    .map_err(RunFailure::input)?;
    // A run that stopped at its budget cap stays unfinished: run it again with a higher
    // `--max-cost` to submit the rest.
    if budget.skipped_shards().is_empty() {
        ledger
            .set_fact(fact::FINISHED, "1")
            .map_err(RunFailure::input)?;
    }

    let lost_results = shards
        .iter()
        .filter_map(|shard| {
            shard
                .results_unavailable
                .as_ref()
                .map(|reason| super::report::LostResults {
                    shard_index: shard.shard_index,
                    batch_id: shard.batch_id.clone(),
                    completed_requests: shard.request_completed,
                    reason: reason.clone(),
                })
        })
        .collect();
    let mut report = build_report(
        &job,
        &run_directory,
        options.provider,
        &output_path,
        &pricer,
        summary,
        lost_results,
    );
    attach_estimates(&mut report, &mut budget, &shards, &run_directory, &ledger)
        .map_err(RunFailure::input)?;
    let report_json = serde_json::to_vec_pretty(&report).expect("report serialises");
    write_atomically(&run_directory.report_path(), &report_json)
        .map_err(|error| RunFailure::input(anyhow::anyhow!("cannot write the report: {error}")))?;
    events.emit(
        "run_finished",
        serde_json::to_value(&report).expect("report serialises"),
        || Some(report.summary()),
    );
    if let Some(budget_report) = report
        .budget
        .as_ref()
        .filter(|budget| !budget.shards_not_submitted.is_empty())
    {
        events.emit(
            "budget_stopped",
            json!({"shards_not_submitted": budget_report.shards_not_submitted, "rows_not_submitted": budget_report.rows_not_submitted}),
            || {
                Some(format!(
                    "the run stopped at its budget cap and is not finished: {} row(s) were not submitted. To submit them, \
                     raise the cap: `dashbatch run {} --run-dir {} --max-cost AMOUNT`",
                    budget_report.rows_not_submitted,
                    job.job_file.display(),
                    run_directory.root.display()
                ))
            },
        );
    }
    let exit_code = if report.all_rows_ok() {
        exit::SUCCESS
    } else {
        exit::SOME_ROWS_FAILED
    };
    Ok(RunOutcome {
        report,
        exit_code,
        run_directory: run_directory.root.clone(),
    })
}

fn build_report(
    job: &Job,
    run_directory: &RunDirectory,
    provider: ProviderKind,
    output_path: &Path,
    pricer: &RunPricer,
    summary: super::join_pass::JoinSummary,
    lost_results: Vec<super::report::LostResults>,
) -> RunReport {
    let saving = match (summary.cost.total, summary.realtime_cost.total) {
        (Some(batch), Some(realtime)) => Some(
            crate::pricing::Money::from_femto_units(
                realtime.femto_units() - batch.femto_units(),
                batch.currency(),
            )
            .to_decimal_string(),
        ),
        _ => None,
    };
    RunReport {
        job: job.name.clone(),
        run_id: run_directory.run_id(),
        provider: provider.to_string(),
        model: job.spec.request.model.clone(),
        input: job.input_path.display().to_string(),
        output: output_path.display().to_string(),
        rows: summary.rows,
        rows_by_status: summary.rows_by_status,
        rows_without_usage: summary.rows_without_usage,
        tokens: summary.tokens,
        currency: pricer.currency().map(|currency| currency.code().to_owned()),
        cost: summary.cost.total.map(|money| money.to_decimal_string()),
        realtime_cost: summary
            .realtime_cost
            .total
            .map(|money| money.to_decimal_string()),
        saving,
        price_table_as_of: pricer.table().as_of().to_owned(),
        lost_results,
        tokens_counted_with: None,
        estimate_vs_actual: None,
        budget: None,
        shards: summary.shards,
        cost_money: summary.cost.total,
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes)?;
    std::fs::File::open(&partial)?.sync_all()?;
    crate::ledger::restrict_permissions(&partial);
    std::fs::rename(partial, path)
}
