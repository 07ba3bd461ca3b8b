//! `gist batch`, the batch job: push a JSON Lines file of articles through gist's streaming
//! RPCs, appending one result line per input id to the output. (`--local` is the same job
//! against a server the command starts in-process; see `cli`.)
//!
//! The run is resumable: results are flushed as they arrive, and a rerun of the same
//! command skips the ids already in the output. Items go to whichever endpoint has room
//! (client-side load balancing); an endpoint that fails has its outstanding items moved to
//! the others (failover). Transient failures are retried with backoff; items that still
//! fail, malformed lines and duplicate ids go to the errors file, with their line numbers.

mod input;
mod lanes;
mod ledger;
mod resolve;

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};

use input::{Line, Parser};
pub use ledger::Counts;
use ledger::RetryPolicy;

use super::ModeArg;
use lanes::{LaneEnd, LaneSettings, Rpc};
use ledger::{Ledger, Sink};

/// `gist batch`: the batch job's settings.
#[derive(Debug, Clone, Args)]
pub struct BatchJobArgs {
    /// What to do with each text.
    #[arg(long, value_enum)]
    pub task: JobTask,
    /// JSON Lines input, one object per line with an id and a text ("-": stdin).
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// JSON Lines output, appended: one result per input id ("-": stdout, not resumable).
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
    /// Where items that failed go, one JSON object per line with id, line, code and
    /// message; rewritten on each run [default: OUTPUT.errors.jsonl, or
    /// gist-batch.errors.jsonl with --output -].
    #[arg(long, value_name = "FILE")]
    pub errors: Option<PathBuf>,
    /// Input field holding the id (a string or a number; written back unchanged as "id").
    #[arg(long, default_value = "id")]
    pub id_field: String,
    /// Input field holding the text.
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// gist server to send work to; repeat for several replicas (items go to whichever has
    /// room, and move to the others when one fails). `dns:///NAME:PORT` uses every
    /// address of NAME as a replica (a Kubernetes headless Service), resolved again every
    /// --resolve-every-secs.
    #[arg(
        long = "endpoint",
        value_name = "URL",
        env = "GIST_ENDPOINT",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:50051"
    )]
    pub endpoints: Vec<String>,
    /// Bearer token for servers started with --auth-tokens.
    #[arg(long, env = "GIST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for `https://` endpoints (default: the system's roots).
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate for servers that require one (mutual TLS); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Items outstanding per endpoint (or in-process) at a time.
    #[arg(long, default_value_t = 32)]
    pub in_flight: usize,
    /// Attempts per item, the first included, for transient failures (UNAVAILABLE,
    /// RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, a broken stream).
    #[arg(long, default_value_t = 5)]
    pub max_attempts: u32,
    /// Wait before the first retry, in ms; doubled for each further one (with jitter), at
    /// least the server's pushback hint.
    #[arg(long, default_value_t = 200)]
    pub retry_base_ms: u64,
    /// Longest wait between attempts, in ms (also caps a server's pushback hint).
    #[arg(long, default_value_t = 10_000)]
    pub retry_max_ms: u64,
    /// A stream with items outstanding and no answer for this long is reconnected and its
    /// items retried.
    #[arg(long, default_value_t = 300)]
    pub idle_timeout_secs: u64,
    /// An endpoint that keeps failing (refusing connections, breaking streams before
    /// answering anything) for this long is given up; with none left, the items not done
    /// go to the errors file.
    #[arg(long, default_value_t = 60)]
    pub give_up_secs: u64,
    /// How often `dns:///` endpoints are resolved again, in seconds (replicas that appear
    /// get work; those that disappear finish theirs).
    #[arg(long, default_value_t = 30)]
    pub resolve_every_secs: u64,
    /// Plain progress lines this often when stderr is not a terminal (0: none).
    #[arg(long, default_value_t = 10)]
    pub log_every_secs: u64,
    /// Task options.
    #[command(flatten)]
    pub options: Options,
}

/// The tasks a batch job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JobTask {
    /// Key points (Summarizer/SummarizeStream).
    Summarize,
    /// Named entities (EntityExtractor/ExtractEntitiesStream).
    Entities,
    /// Both, with the summary's entities checked against the source (Analyzer/AnalyzeStream).
    Analyze,
}

/// Options sent with every item.
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// Summary mode (summarize, analyze).
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,
    /// Key points per summary; 0: the server's default (summarize, analyze).
    #[arg(long, default_value_t = 0)]
    pub max_key_points: u32,
    /// Drop entities scoring below this (entities, analyze).
    #[arg(long)]
    pub min_score: Option<f32>,
    /// Keep only entities with these labels, comma-separated (entities, analyze).
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// The model to use, by its name in the server's models.toml (or name@version);
    /// default: the server's default (`grpcurl … gist.v1.Models/ListModels` lists them).
    #[arg(long, default_value = "")]
    pub model: String,
}

/// What a run did.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// The counts.
    pub counts: Counts,
    /// Wall time.
    pub elapsed: Duration,
}

impl Report {
    /// The summary line printed at the end.
    pub fn line(&self) -> String {
        let c = self.counts;
        let secs = self.elapsed.as_secs_f64();
        format!(
            "gist batch: {} done, {} skipped (already in the output), {} failed, {} retries, in {:.1} s ({:.2} items/s)",
            c.done,
            c.skipped,
            c.failed,
            c.retries,
            secs,
            c.done as f64 / secs.max(1e-9)
        )
    }
}

/// Run a batch job.
///
/// # Errors
/// When the input, output or errors file cannot be used. Failed items are not errors: they
/// are counted in the report.
pub async fn run(args: BatchJobArgs) -> anyhow::Result<Report> {
    let started = Instant::now();
    for endpoint in &args.endpoints {
        resolve::dns_target(endpoint).map_err(anyhow::Error::msg)?;
    }
    let resumable = args.output != Path::new("-");
    let done = if resumable {
        input::done_ids(&args.output)?
    } else {
        Default::default()
    };
    let errors = args.errors.clone().unwrap_or_else(|| {
        if resumable {
            let mut name = args.output.clone().into_os_string();
            name.push(".errors.jsonl");
            PathBuf::from(name)
        } else {
            PathBuf::from("gist-batch.errors.jsonl")
        }
    });
    let total = if args.input == Path::new("-") {
        None
    } else {
        Some(count_lines(&args.input)?)
    };
    let progress = Progress::new(total, done.len());
    let sink = Sink::open(&args.output, &errors, &done)?;
    let policy = RetryPolicy {
        max_attempts: args.max_attempts.max(1),
        base: Duration::from_millis(args.retry_base_ms),
        cap: Duration::from_millis(args.retry_max_ms.max(args.retry_base_ms)),
    };
    let on_settled = {
        let progress = progress.clone();
        Box::new(move |counts: Counts| progress.update(counts))
    };
    let ledger = Arc::new(Ledger::new(
        sink,
        policy,
        4 * args.in_flight.max(64),
        on_settled,
    ));
    if !done.is_empty() {
        tracing::info!(
            ids = done.len(),
            output = %args.output.display(),
            "resuming: ids already in the output are skipped"
        );
    }

    let tls = client_tls(&args)?;
    let reader = spawn_reader(&args, done, ledger.clone())?;
    let ticker = progress.spawn_logger(Duration::from_secs(args.log_every_secs), ledger.clone());
    let options = Arc::new(args.options.clone());
    let ends = match args.task {
        JobTask::Summarize => lanes::<lanes::Summarize>(&args, tls, &ledger, &options).await,
        JobTask::Entities => lanes::<lanes::Entities>(&args, tls, &ledger, &options).await,
        JobTask::Analyze => lanes::<lanes::Analyze>(&args, tls, &ledger, &options).await,
    }?;
    let gave_up: Vec<String> = ends
        .into_iter()
        .filter_map(|end| match end {
            LaneEnd::GaveUp(why) => Some(why),
            LaneEnd::Finished => None,
        })
        .collect();
    if !gave_up.is_empty() {
        // Every lane is gone, or this would still be running: nothing can run what is left.
        let why = format!("no endpoint left to run this item: {}", gave_up.join("; "));
        let mut changed = ledger.watch();
        while let Some(work) = ledger.next(&mut changed).await {
            ledger.abandon(work, &why)?;
        }
    }
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("the input reader panicked"))??;
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    let report = Report {
        counts: ledger.counts(),
        elapsed: started.elapsed(),
    };
    progress.finish();
    Ok(report)
}

async fn lanes<R: Rpc>(
    args: &BatchJobArgs,
    tls: tonic::transport::ClientTlsConfig,
    ledger: &Arc<Ledger>,
    options: &Arc<Options>,
) -> anyhow::Result<Vec<LaneEnd>> {
    let mut tasks = tokio::task::JoinSet::new();
    let settings = LaneSettings {
        window: args.in_flight,
        idle_timeout: Duration::from_secs(args.idle_timeout_secs.max(1)),
        give_up_after: Duration::from_secs(args.give_up_secs),
        backoff: (
            Duration::from_millis(args.retry_base_ms),
            Duration::from_millis(args.retry_max_ms.max(args.retry_base_ms)),
        ),
        token: args.token.clone(),
        tls,
        retire: None,
    };
    for endpoint in &args.endpoints {
        if let Some((host, port)) = resolve::dns_target(endpoint).map_err(anyhow::Error::msg)? {
            tasks.spawn(resolve::lanes::<R>(
                host,
                port,
                Duration::from_secs(args.resolve_every_secs.max(1)),
                ledger.clone(),
                options.clone(),
                settings.clone(),
            ));
            continue;
        }
        let endpoint = if endpoint.contains("://") {
            endpoint.clone()
        } else {
            format!("http://{endpoint}")
        };
        tasks.spawn(lanes::remote::<R>(
            endpoint,
            ledger.clone(),
            options.clone(),
            settings.clone(),
        ));
    }
    let mut ends = Vec::new();
    while let Some(end) = tasks.join_next().await {
        ends.push(
            end.context("a lane panicked")?
                .context("cannot write the output")?,
        );
    }
    Ok(ends)
}

/// TLS for `https://` endpoints: the CA file or the system's roots, and a client
/// certificate when given.
fn client_tls(args: &BatchJobArgs) -> anyhow::Result<tonic::transport::ClientTlsConfig> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let read = |path: &Path, flag: &str| {
        std::fs::read(path).with_context(|| format!("cannot read {} ({flag})", path.display()))
    };
    let mut tls = ClientTlsConfig::new();
    tls = match &args.tls_ca {
        Some(ca) => tls.ca_certificate(Certificate::from_pem(read(ca, "--tls-ca")?)),
        None => tls.with_native_roots(),
    };
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        tls = tls.identity(Identity::from_pem(
            read(cert, "--tls-cert")?,
            read(key, "--tls-key")?,
        ));
    }
    Ok(tls)
}

/// Read the input on its own thread (blocking I/O), feeding the ledger as it has room.
fn spawn_reader(
    args: &BatchJobArgs,
    done: std::collections::HashSet<String>,
    ledger: Arc<Ledger>,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<()>>> {
    let path = args.input.clone();
    let reader: Box<dyn BufRead + Send> = if path == Path::new("-") {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(&path)
            .with_context(|| format!("cannot open {} (--input)", path.display()))?;
        Box::new(std::io::BufReader::with_capacity(1 << 20, file))
    };
    let mut parser = Parser::new(&args.id_field, &args.text_field, done);
    let handle = std::thread::Builder::new()
        .name("gist-batch-reader".into())
        .spawn(move || {
            let result = (|| {
                for (i, line) in reader.lines().enumerate() {
                    let line = line.with_context(|| format!("cannot read {}", path.display()))?;
                    match parser.line(i + 1, &line) {
                        Line::Item(item) => ledger.push(item),
                        Line::Skipped => ledger.skipped(),
                        Line::Rejected(rejected) => ledger.rejected(rejected)?,
                        Line::Blank => {}
                    }
                }
                Ok(())
            })();
            // Even after a read error: the lanes finish what they have, then stop.
            ledger.input_done();
            result
        })?;
    Ok(handle)
}

/// Lines in a file (for the progress total), counted in bytes without parsing.
fn count_lines(path: &Path) -> anyhow::Result<u64> {
    let mut file = std::fs::File::open(path)
        .with_context(|| format!("cannot open {} (--input)", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let n = std::io::Read::read(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    Ok(lines + u64::from(last != b'\n'))
}

/// A progress bar on a terminal; plain log lines otherwise.
#[derive(Clone)]
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: Option<u64>,
    started: Instant,
}

impl Progress {
    fn new(total: Option<u64>, done_before: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match total {
                Some(total) => indicatif::ProgressBar::new(total),
                None => indicatif::ProgressBar::no_length(),
            };
            let template = if total.is_some() {
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} eta {eta} {msg}"
            } else {
                "{spinner} [{elapsed_precise}] {pos} {per_sec} {msg}"
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.set_position(done_before as u64);
            bar.reset_eta();
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            total,
            started: Instant::now(),
        }
    }

    fn update(&self, counts: Counts) {
        if let Some(bar) = &self.bar {
            bar.set_position((counts.done + counts.skipped + counts.failed) as u64);
            if counts.failed > 0 {
                bar.set_message(format!("{} failed", counts.failed));
            }
        }
    }

    /// Periodic log lines when there is no bar.
    fn spawn_logger(
        &self,
        every: Duration,
        ledger: Arc<Ledger>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if self.bar.is_some() || every.is_zero() {
            return None;
        }
        let (total, started) = (self.total, self.started);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at((Instant::now() + every).into(), every);
            loop {
                tick.tick().await;
                let c = ledger.counts();
                let rate = c.done as f64 / started.elapsed().as_secs_f64().max(1e-9);
                let seen = c.done + c.skipped + c.failed;
                let eta = total
                    .filter(|_| rate > 0.0)
                    .map(|t| format!(", eta {:.0} s", t.saturating_sub(seen as u64) as f64 / rate))
                    .unwrap_or_default();
                let of = total.map(|t| format!("/{t}")).unwrap_or_default();
                eprintln!(
                    "gist batch: {seen}{of} lines: {} done, {} skipped, {} failed, {:.2} items/s{eta}",
                    c.done, c.skipped, c.failed, rate
                );
            }
        }))
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `err: cause: cause…`, for messages about connections and TLS.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
