//! The command line: every setting is a flag with a `GIST_*` environment variable, and the
//! doc comments below are the `--help` text. This module and `main.rs` are the top of the
//! house: they wire the layers together, and nothing imports them.
//!
//! - [`serve`]: `gist serve`, and the in-process server of `gist batch --local`;
//! - [`run`]: `gist summarize`, `gist entities`, `gist batch`;
//! - [`eval`]: `gist eval ner|summarize`;
//! - [`models`]: `gist models import|pull`;
//! - [`telemetry`]: the log subscriber and the OTLP trace exporter.

pub mod eval;
pub mod models;
pub mod run;
pub mod serve;
pub mod telemetry;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::client::batch_job::BatchJobArgs;
use crate::client::ModeArg;
use crate::engine::manifest::{Precision, Runtime};
use crate::engine::EngineArgs;
use crate::role::Role;
use crate::server::{Limits, ServerArgs};
use crate::worker::WorkerArgs;

/// gist: key points and named entities from articles, served over gRPC.
#[derive(Debug, Parser)]
#[command(name = "gist", version, about, long_about = None)]
pub struct Cli {
    /// Logging settings.
    #[command(flatten)]
    pub log: LogArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the gRPC API.
    Serve(ServeArgs),
    /// Summarize a file (or stdin) in-process and print the result as JSON.
    Summarize(SummarizeArgs),
    /// Extract the named entities of a file (or stdin) in-process and print them as JSON.
    Entities(EntitiesArgs),
    /// Process a JSON Lines file of texts through gist servers (or in-process), resumably.
    Batch(BatchArgs),
    /// Measure the models with the field's standard scores.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Bring Hugging Face checkpoints into the models folder and name them in models.toml.
    #[command(subcommand)]
    Models(ModelsCommand),
}

/// `gist models …`.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Prepare a local Hugging Face snapshot folder for gist: check the architecture and
    /// files, write model.safetensors with the tensor names rust-bert reads, derive
    /// tokenizer files from tokenizer.json, load and run the result, then set the task's
    /// section of models.toml to it.
    Import(ImportArgs),
    /// Download a checkpoint from the Hugging Face Hub (only the files gist reads) and
    /// import it. HF_ENDPOINT picks a mirror, HF_HOME the cache (default
    /// ~/.cache/huggingface), HF_TOKEN the access token.
    Pull(PullArgs),
}

/// Where an imported model goes.
#[derive(Debug, Clone, Args)]
pub struct ImportTarget {
    /// What the model is for: its section in models.toml ([ner], [summarizer], [encoder]).
    #[arg(long, value_enum)]
    pub task: Role,
    /// Folder with models.toml; the model is prepared in a subfolder named after it.
    #[arg(long, env = "GIST_MODELS", default_value = "models")]
    pub models: PathBuf,
    /// Replace an existing model folder of the same name.
    #[arg(long)]
    pub force: bool,
    /// Runtime that serves the model: libtorch (rust-bert), or onnx (ONNX Runtime; NER
    /// models and encoders only), for which model.onnx and model.int8.onnx are written with
    /// the pinned exporter (scripts/onnx/).
    #[arg(long, value_enum, default_value_t = Runtime::default())]
    pub runtime: Runtime,
    /// With `--runtime onnx`: the weights the server loads, fp32 or int8.
    #[arg(long, value_enum, default_value_t = Precision::default())]
    pub precision: Precision,
}

/// `gist models import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// Snapshot folder: config.json, model.safetensors (or shards, or pytorch_model.bin),
    /// tokenizer files.
    pub dir: PathBuf,
    /// Model name: the folder under --models and the name in models.toml.
    #[arg(long = "as", value_name = "NAME")]
    pub name: String,
    /// Destination.
    #[command(flatten)]
    pub target: ImportTarget,
}

/// `gist models pull`.
#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// Hub repository, e.g. sshleifer/distilbart-cnn-6-6.
    pub repo: String,
    /// Branch, tag or commit.
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// Model name (default: the repository name without its owner).
    #[arg(long = "as", value_name = "NAME")]
    pub name: Option<String>,
    /// Hugging Face Hub address, or a mirror's.
    #[arg(long, env = "HF_ENDPOINT", default_value = "https://huggingface.co")]
    pub endpoint: String,
    /// Access token for private and gated repositories (default: the token file in HF_HOME).
    #[arg(long, env = "HF_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Destination.
    #[command(flatten)]
    pub target: ImportTarget,
}

/// `gist eval …`.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Entity-level precision, recall and F1 (seqeval definition) on a CoNLL file, through
    /// the ExtractEntities pipeline.
    Ner(EvalNerArgs),
    /// ROUGE-1/2/Lsum F1 of key points against reference highlights (JSON Lines with
    /// `id`, `article`, `highlights`), beside the Lead-3 baseline on the same items.
    Summarize(EvalSummarizeArgs),
}

/// `gist eval summarize`.
#[derive(Debug, Clone, Args)]
pub struct EvalSummarizeArgs {
    /// JSON Lines file, one article per line.
    pub jsonl: PathBuf,
    /// Key points per article.
    #[arg(long, default_value_t = 3)]
    pub max_key_points: usize,
    /// Summary mode.
    #[arg(long, value_enum, default_value_t = ModeArg::Extractive)]
    pub mode: ModeArg,
    /// Score only the first N items.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Also write the scores and every item's texts as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Models.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// `gist eval ner`.
#[derive(Debug, Clone, Args)]
pub struct EvalNerArgs {
    /// CoNLL file: `TOKEN … TAG` per line, blank lines between sentences.
    pub conll: PathBuf,
    /// What one text holds: a whole document, one sentence per line (as a service reads an
    /// article), or each sentence alone.
    #[arg(long, value_enum, default_value_t = crate::eval::ner::Unit::Document)]
    pub unit: crate::eval::ner::Unit,
    /// Texts per call.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Also write the scores as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Models.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Log output.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format; the level comes from RUST_LOG (default "info").
    #[arg(long, env = "GIST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Export traces over OTLP/gRPC to this collector, e.g. http://127.0.0.1:4317 (off when
    /// unset): a span per request, parented to the caller's W3C traceparent, with child
    /// spans for queue wait, batch formation and model time.
    #[arg(long, env = "GIST_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `gist serve`.
#[derive(Debug, Clone, Args, serde::Serialize)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "GIST_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Serve Prometheus metrics at `GET /metrics` on this address (off when unset).
    #[arg(long, env = "GIST_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve the HTTP/JSON API (POST /v1/summarize…, GET /openapi.json) on this address
    /// (off when unset), e.g. 127.0.0.1:8080.
    #[arg(long, env = "GIST_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Models.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Model thread.
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// Request limits.
    #[command(flatten)]
    pub limits: Limits,
    /// Transport.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `gist summarize`.
#[derive(Debug, Clone, Args)]
pub struct SummarizeArgs {
    /// Article file; "-" or nothing reads stdin.
    pub input: Option<PathBuf>,
    /// Summary mode.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,
    /// Maximum number of key points (0: the default, 5).
    #[arg(long, default_value_t = 0)]
    pub max_key_points: u32,
    /// Models.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// `gist entities`.
#[derive(Debug, Clone, Args)]
pub struct EntitiesArgs {
    /// Text file; "-" or nothing reads stdin.
    pub input: Option<PathBuf>,
    /// Drop entities scoring below this (0 to 1).
    #[arg(long)]
    pub min_score: Option<f32>,
    /// Keep only these labels (comma-separated, e.g. PER,LOC).
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Models.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// `gist batch`.
#[derive(Debug, Clone, Args)]
pub struct BatchArgs {
    /// The batch job.
    #[command(flatten)]
    pub job: BatchJobArgs,
    /// Run the models in this process instead (an in-process server on a loopback port,
    /// from --models), with the server's own validation, deadlines and limits.
    #[arg(long, conflicts_with = "endpoints")]
    pub local: bool,
    /// Models for --local.
    #[command(flatten)]
    pub engine: EngineArgs,
}

impl From<ModeArg> for crate::tasks::Mode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::Auto => Self::Auto,
            ModeArg::Extractive => Self::Extractive,
            ModeArg::Abstractive => Self::Abstractive,
        }
    }
}
