//! Reaching the provider: the base URL checked before anything else, the price table a run
//! prices with, the API client (or the embedded simulator for `--provider sim`) and how often
//! it polls.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::RunDirectory;
use super::poll::PollSchedule;
use super::run_failure::RunFailure;
use super::run_record::RunFounding;
use crate::client::{ApiClient, ApiKey, RetryPolicy};
use crate::job::Job;
use crate::pricing::PriceTable;
use crate::provider::{ProviderKind, ProviderProfile};

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
            return Err(RunFailure::local(anyhow::anyhow!(
                "no base URL for provider `{kind}`; pass `--base-url`"
            )));
        }
    };
    let key = match std::env::var(profile.api_key_variable) {
        Ok(key) if !key.trim().is_empty() => check_api_key(profile.api_key_variable, key)?,
        _ if kind == ProviderKind::Sim => "sim-key".to_owned(),
        _ => {
            return Err(RunFailure::local(anyhow::anyhow!(
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

/// The key as read from `variable`, refused when it could not be a key: an HTTP header cannot
/// carry a control character, and no provider's key has whitespace or characters beyond ASCII
/// (a pasted line, a non-breaking space). Said without ever showing the key.
pub(super) fn check_api_key(variable: &str, key: String) -> Result<String, RunFailure> {
    if key.chars().any(|character| !character.is_ascii_graphic()) {
        return Err(RunFailure::local(anyhow::anyhow!(
            "`{variable}` holds a space, line break, control or non-ASCII character, which no API key has; export the key alone (for example `export {variable}=sk-...`, without quotes around a pasted line)"
        )));
    }
    Ok(key)
}

pub(super) fn poll_schedule(job: &Job, kind: ProviderKind, base_url: Option<&str>) -> PollSchedule {
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
        RunFailure::local(anyhow::anyhow!(
            "`--base-url {url}` is not a URL ({error}); give the API's base, for example `https://dashscope.aliyuncs.com/compatible-mode/v1`"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(RunFailure::local(anyhow::anyhow!(
            "`--base-url {url}` must be an http:// or https:// URL with a host, for example `https://dashscope.aliyuncs.com/compatible-mode/v1`"
        )));
    }
    Ok(())
}

/// The prices a run uses, and the price file they came from with its text (to record when the
/// run is founded).
pub(super) struct RunPrices {
    pub table: PriceTable,
    pub file: Option<PathBuf>,
    pub text: Option<String>,
}

/// The run's prices, by the settings precedence: the `--prices` flag; else what the run recorded
/// when it was founded (the file's text, so that editing or deleting the file later never
/// reprices a run; runs founded before texts were recorded read the recorded path); else
/// DASHBATCH_PRICES; else the built-in table alone. Always on top of `provider`'s table.
pub(super) fn load_prices(
    flag: Option<&Path>,
    recorded: Option<&RunFounding>,
    provider: crate::provider::ProviderKind,
) -> Result<RunPrices, RunFailure> {
    let builtin = PriceTable::for_provider(provider);
    let (file, text) = match (flag, recorded) {
        (Some(path), _) => (Some(path.to_owned()), None),
        (None, Some(founding)) => match (&founding.prices_file, &founding.prices_text) {
            (Some(path), Some(text)) => (Some(path.clone()), Some(text.clone())),
            (path, None) => (path.clone(), None),
            (None, Some(_)) => (None, None),
        },
        (None, None) => (
            crate::env::chosen_prices_file(None).map(|setting| setting.value),
            None,
        ),
    };
    let Some(path) = file else {
        return Ok(RunPrices {
            table: builtin,
            file: None,
            text: None,
        });
    };
    let text = match text {
        Some(text) => text,
        None => crate::pricing::read_price_file(&path).map_err(RunFailure::local)?,
    };
    let table = builtin
        .with_override_toml(&text, &path)
        .map_err(RunFailure::local)?;
    Ok(RunPrices {
        table,
        file: Some(path),
        text: Some(text),
    })
}
