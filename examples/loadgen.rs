//! A gRPC load generator for gist (bench/run.py): clients on their own HTTP/2 connections
//! call one RPC either in a closed loop (`--concurrency` callers, each sending its next
//! request when the last is answered) or at a steady rate (`--rate` requests per second
//! spread over the connections, sent whether or not earlier ones are answered). After a
//! warm-up it prints one JSON line: throughput, latency percentiles, counts of each status
//! code, and what the server says it spent on the model (`x-inference-time-ms`), so the
//! rest of each call's time — the server's own overhead plus the network — shows.
//! `--report-every` adds a JSON line per interval (the soak test's timeline).
//!
//! ```sh
//! cargo run --release --example loadgen -- --addr 127.0.0.1:50051 --rpc entities \
//!     --concurrency 8 --seconds 20 --text tests/data/khan-li-call.txt
//! cargo run --release --example loadgen -- --rpc mixed --rate 4 --concurrency 4 \
//!     --seconds 600 --report-every 30
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use gist::pb;
use gist::pb::analyzer_client::AnalyzerClient;
use gist::pb::entity_extractor_client::EntityExtractorClient;
use gist::pb::summarizer_client::SummarizerClient;
use tonic::transport::Channel;

#[path = "support/mod.rs"]
mod support;
use support::{percentile, round};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Rpc {
    /// ExtractEntities.
    Entities,
    /// Summarize (extractive).
    Summarize,
    /// Analyze (extractive summary and entities).
    Analyze,
    /// The three in turn.
    Mixed,
}

#[derive(Parser)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: String,
    /// Which RPC to call.
    #[arg(long, value_enum, default_value_t = Rpc::Entities)]
    rpc: Rpc,
    /// Connections; in closed loop also the number of callers.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Open loop: requests per second in all (0: closed loop).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// How long to measure, after the warm-up.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Requests sent in this first stretch are not counted.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Print a JSON line for each interval of this many seconds (0: none).
    #[arg(long, default_value_t = 0.0)]
    report_every: f64,
    /// Deadline of each call (grpc-timeout), in seconds.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Text file sent in every request.
    #[arg(long, default_value = "tests/data/khan-li-call.txt")]
    text: std::path::PathBuf,
}

/// One measured call.
struct Sample {
    sent: Instant,
    latency: Duration,
    /// The server's `x-inference-time-ms`, when the call succeeded.
    inference_ms: Option<f64>,
    code: String,
}

#[derive(Clone)]
struct Clients {
    entities: EntityExtractorClient<Channel>,
    summarizer: SummarizerClient<Channel>,
    analyzer: AnalyzerClient<Channel>,
}

impl Clients {
    fn new(channel: Channel) -> Self {
        Clients {
            entities: EntityExtractorClient::new(channel.clone()),
            summarizer: SummarizerClient::new(channel.clone()),
            analyzer: AnalyzerClient::new(channel),
        }
    }

    /// One call of `rpc` (for `Mixed`, the `n`th request's turn).
    async fn call(&mut self, rpc: Rpc, n: u64, text: &str, timeout: Duration) -> Sample {
        let rpc = match rpc {
            Rpc::Mixed => [Rpc::Entities, Rpc::Summarize, Rpc::Analyze][(n % 3) as usize],
            other => other,
        };
        fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
            let mut r = tonic::Request::new(message);
            r.set_timeout(timeout);
            r
        }
        let sent = Instant::now();
        let metadata = match rpc {
            Rpc::Entities => self
                .entities
                .extract_entities(request(
                    pb::ExtractEntitiesRequest {
                        text: text.to_string(),
                        ..Default::default()
                    },
                    timeout,
                ))
                .await
                .map(|r| r.metadata().clone()),
            Rpc::Summarize => self
                .summarizer
                .summarize(request(
                    pb::SummarizeRequest {
                        text: text.to_string(),
                        mode: pb::SummaryMode::Extractive as i32,
                        ..Default::default()
                    },
                    timeout,
                ))
                .await
                .map(|r| r.metadata().clone()),
            _ => self
                .analyzer
                .analyze(request(
                    pb::AnalyzeRequest {
                        text: text.to_string(),
                        mode: pb::SummaryMode::Extractive as i32,
                        ..Default::default()
                    },
                    timeout,
                ))
                .await
                .map(|r| r.metadata().clone()),
        };
        let latency = sent.elapsed();
        match metadata {
            Ok(m) => Sample {
                sent,
                latency,
                inference_ms: m
                    .get("x-inference-time-ms")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok()),
                code: "OK".into(),
            },
            Err(status) => Sample {
                sent,
                latency,
                inference_ms: None,
                code: format!("{:?}", status.code()),
            },
        }
    }
}

/// Throughput, percentiles and codes of `samples` over `seconds`.
fn summary(samples: &[&Sample], seconds: f64) -> serde_json::Value {
    let mut codes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ok_ms = Vec::new();
    let (mut inference, mut rest, mut timed) = (0.0, 0.0, 0usize);
    for s in samples {
        *codes.entry(&s.code).or_default() += 1;
        if s.code == "OK" {
            let ms = s.latency.as_secs_f64() * 1000.0;
            ok_ms.push(ms);
            if let Some(i) = s.inference_ms {
                (inference, rest, timed) = (inference + i, rest + ms - i, timed + 1);
            }
        }
    }
    ok_ms.sort_by(f64::total_cmp);
    let mean = |sum: f64| {
        if timed > 0 {
            round(sum / timed as f64, 3)
        } else {
            0.0
        }
    };
    serde_json::json!({
        "requests": samples.len(),
        "ok": ok_ms.len(),
        "ok_per_second": round(ok_ms.len() as f64 / seconds, 3),
        "mean_ms": round(ok_ms.iter().sum::<f64>() / ok_ms.len().max(1) as f64, 3),
        "p50_ms": round(percentile(&ok_ms, 0.5), 3),
        "p95_ms": round(percentile(&ok_ms, 0.95), 3),
        "p99_ms": round(percentile(&ok_ms, 0.99), 3),
        "inference_ms_mean": mean(inference),
        "outside_inference_ms_mean": mean(rest),
        "codes": codes,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(args.rate >= 0.0, "--rate must not be negative");
    let text: Arc<str> = std::fs::read_to_string(&args.text)?.into();
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", args.addr))?;
    let mut clients = Vec::new();
    for _ in 0..args.concurrency {
        clients.push(Clients::new(endpoint.connect().await?));
    }
    let warmup = Duration::from_secs_f64(args.warmup);
    let run = Duration::from_secs_f64(args.seconds);
    let timeout = Duration::from_secs_f64(args.timeout);
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let start = Instant::now();
    let end = start + warmup + run;

    // Interval reports (soak timeline): each line covers requests sent in its interval.
    let reporter = (args.report_every > 0.0).then(|| {
        let (samples, every) = (samples.clone(), Duration::from_secs_f64(args.report_every));
        tokio::spawn(async move {
            let mut from = start + warmup;
            tokio::time::sleep_until((from + every).into()).await;
            while from + every <= end {
                // Wait out the calls still open from this interval (at most the timeout).
                let to = from + every;
                let line = {
                    let samples = samples.lock().unwrap();
                    let window: Vec<&Sample> = samples
                        .iter()
                        .filter(|s| s.sent >= from && s.sent < to)
                        .collect();
                    let mut line = summary(&window, every.as_secs_f64());
                    line["interval_end_s"] = round((to - start - warmup).as_secs_f64(), 1).into();
                    line
                };
                println!("{line}");
                from = to;
                tokio::time::sleep_until((from + every).into()).await;
            }
        })
    });

    let mut tasks = Vec::new();
    if args.rate > 0.0 {
        // Open loop: one request every 1/rate seconds, round robin over the connections.
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut n = 0u64;
        while Instant::now() < end {
            ticker.tick().await;
            let mut client = clients[(n as usize) % clients.len()].clone();
            let (text, samples, rpc) = (text.clone(), samples.clone(), args.rpc);
            tasks.push(tokio::spawn(async move {
                let s = client.call(rpc, n, &text, timeout).await;
                samples.lock().unwrap().push(s);
            }));
            n += 1;
        }
    } else {
        for (i, mut client) in clients.into_iter().enumerate() {
            let (text, samples, rpc) = (text.clone(), samples.clone(), args.rpc);
            tasks.push(tokio::spawn(async move {
                let mut n = i as u64;
                while Instant::now() < end {
                    let s = client.call(rpc, n, &text, timeout).await;
                    samples.lock().unwrap().push(s);
                    n += args.concurrency as u64;
                }
            }));
        }
    }
    for task in tasks {
        task.await?;
    }
    if let Some(reporter) = reporter {
        reporter.await?;
    }
    let samples = samples.lock().unwrap();
    let measured: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.sent >= start + warmup)
        .collect();
    let mut line = summary(&measured, args.seconds);
    let extra = serde_json::json!({
        "rpc": format!("{:?}", args.rpc).to_lowercase(),
        "concurrency": args.concurrency,
        "rate": args.rate,
        "seconds": args.seconds,
    });
    for (k, v) in extra.as_object().unwrap() {
        line[k] = v.clone();
    }
    println!("{line}");
    Ok(())
}
