//! Reaching the provider: the base URL checked before anything else, the price table a run
//! prices with, the API client (or the embedded simulator for `--provider sim`) and how often
//! it polls.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::RunDirectory;
use super::poll::PollSchedule;
use super::run_failure::RunFailure;
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
        Ok(key) if !key.trim().is_empty() => key,
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

/// The price table with the run's price file on top, and that file's path (to record for resuming).
pub(super) fn load_prices(
    options_prices: Option<&Path>,
    provider: crate::provider::ProviderKind,
) -> Result<(PriceTable, Option<PathBuf>), RunFailure> {
    let (table, chosen) =
        PriceTable::load_chosen(options_prices, provider).map_err(RunFailure::local)?;
    Ok((table, chosen.map(|setting| setting.value)))
}
