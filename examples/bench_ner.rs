//! gist's side of the NER benchmark (bench/run.py): the models of a models folder behind
//! gist's model thread, `--concurrency` callers sending one article in a closed loop, as
//! ExtractEntities does without the network. Prints one JSON line in the shape of
//! bench/peers/ner_peer.py's runs, so the two sides compare field by field.
//!
//! ```sh
//! cargo run --release --example bench_ner -- --models models --text article-800w.txt \
//!     --concurrency 8 --seconds 20 --threads 2
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use gist::tasks::EntitiesJob;
use gist::worker::{Worker, WorkerArgs};

#[path = "support/mod.rs"]
mod support;
use support::{peak_rss_mb, percentile, round};

#[derive(Parser)]
struct Args {
    /// Folder with models.toml (its [ner] model is measured).
    #[arg(long, default_value = "models")]
    models: std::path::PathBuf,
    /// The article, sent in every call.
    #[arg(long)]
    text: std::path::PathBuf,
    /// Concurrent callers.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Measured time, after the warm-up.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Calls in this first stretch are not counted.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Count calls instead of time: each caller makes one warm-up call, then this many
    /// measured ones (for long articles, where a time window would see too few).
    #[arg(long)]
    calls: Option<usize>,
    /// Model runtime (rust-bert or onnx), as `gist serve --engine`.
    #[arg(long, value_enum, default_value_t = gist::engine::Backend::RustBert)]
    engine: gist::engine::Backend,
    /// Intra-op threads of the runtime (0: its default).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Most requests per batch (gist serve's --max-batch).
    #[arg(long, default_value_t = 16)]
    max_batch: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.text)?.trim().to_string();
    let model = support::cpu_models_on(&args.models, args.threads, args.engine);
    let started = Instant::now();
    let worker = Worker::spawn(
        move || gist::engine::load(&model),
        WorkerArgs {
            max_batch: args.max_batch,
            queue_capacity: 4 * args.concurrency.max(64),
            ..WorkerArgs::default()
        },
        gist::metrics::Metrics::new(&gist::tasks::Task::names()),
    );
    let info = worker.ready().await?;
    let load_seconds = started.elapsed().as_secs_f64();
    let job = || EntitiesJob {
        text: text.clone(),
        min_score: 0.0,
        labels: Vec::new(),
    };
    let first = worker.run(job(), None).await?;
    let entities = first.value.entities.len();
    let tokens = first.value.input_tokens;

    let start = Instant::now();
    let warmup = Duration::from_secs_f64(args.warmup);
    let deadline = start + warmup + Duration::from_secs_f64(args.seconds);
    let calls = args.calls;
    let job = Arc::new(job());
    let mut callers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (worker, job) = (worker.clone(), job.clone());
        callers.push(tokio::spawn(async move {
            // (latency ms, sent, done) of the measured calls.
            let mut mine = Vec::new();
            if calls.is_some() {
                worker.run((*job).clone(), None).await?;
            }
            loop {
                let sent = Instant::now();
                let more = match calls {
                    Some(n) => mine.len() < n,
                    None => sent < deadline,
                };
                if !more {
                    break;
                }
                worker.run((*job).clone(), None).await?;
                if calls.is_some() || sent - start >= warmup {
                    let done = Instant::now();
                    mine.push(((done - sent).as_secs_f64() * 1000.0, sent, done));
                }
            }
            anyhow::Ok(mine)
        }));
    }
    let mut latencies = Vec::new();
    // Time mode counts from the end of the warm-up even when no call ends after it.
    let (mut first, mut last) = (
        None::<Instant>,
        if calls.is_some() {
            start
        } else {
            start + warmup
        },
    );
    for caller in callers {
        for (ms, sent, done) in caller.await?? {
            latencies.push(ms);
            first = Some(first.map_or(sent, |f| f.min(sent)));
            last = last.max(done);
        }
    }
    latencies.sort_by(f64::total_cmp);
    // Time mode: from the end of the warm-up; call mode: from the first measured call.
    let from = match calls {
        Some(_) => first.unwrap_or(last),
        None => start + warmup,
    };
    let span = last.saturating_duration_since(from).as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "side": "gist",
            "model": info.get(gist::role::Role::Ner).map(|m| m.name.clone()),
            "words": text.split_whitespace().count(),
            "tokens": tokens,
            "concurrency": args.concurrency,
            "threads": support::threads(args.engine, args.threads),
            "engine": format!("{:?}", args.engine),
            "max_batch": args.max_batch,
            "seconds": if calls.is_some() { serde_json::Value::Null } else { args.seconds.into() },
            "calls_per_caller": calls,
            "warmup": args.warmup,
            "docs": latencies.len(),
            "docs_per_second": round(latencies.len() as f64 / if calls.is_some() { span.max(1e-9) } else { args.seconds }, 3),
            "span_seconds": round(span, 3),
            "docs_per_span_second": if span > 0.0 { round(latencies.len() as f64 / span, 3) } else { 0.0 },
            "p50_ms": round(percentile(&latencies, 0.5), 1),
            "p95_ms": round(percentile(&latencies, 0.95), 1),
            "p99_ms": round(percentile(&latencies, 0.99), 1),
            "entities": entities,
            "load_seconds": round(load_seconds, 2),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        })
    );
    Ok(())
}
