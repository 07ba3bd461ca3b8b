//! A gRPC load generator for gist: `--concurrency` clients call one RPC in a closed loop
//! for `--seconds`, then it prints throughput and latency percentiles (and counts of each
//! status code) as one JSON line.
//!
//! ```sh
//! cargo run --release --example loadgen -- --addr 127.0.0.1:50051 --rpc entities \
//!     --concurrency 8 --seconds 20 --text tests/data/khan-li-call.txt
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use gist::pb;
use gist::pb::entity_extractor_client::EntityExtractorClient;
use gist::pb::summarizer_client::SummarizerClient;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Rpc {
    /// ExtractEntities.
    Entities,
    /// Summarize (extractive).
    Summarize,
}

#[derive(Parser)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: String,
    /// Which RPC to call.
    #[arg(long, value_enum, default_value_t = Rpc::Entities)]
    rpc: Rpc,
    /// Concurrent clients (each on its own HTTP/2 connection).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// How long to run, after a 2-second warm-up.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Text file sent in every request.
    #[arg(long, default_value = "tests/data/khan-li-call.txt")]
    text: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.text)?;
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", args.addr))?;
    let warmup = Duration::from_secs(2);
    let run = Duration::from_secs_f64(args.seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let channel = endpoint.connect().await?;
        let text = text.clone();
        let rpc = args.rpc;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut codes: BTreeMap<String, usize> = BTreeMap::new();
            let mut entities = EntityExtractorClient::new(channel.clone());
            let mut summarizer = SummarizerClient::new(channel);
            while start.elapsed() < warmup + run {
                let sent = Instant::now();
                let result = match rpc {
                    Rpc::Entities => entities
                        .extract_entities(pb::ExtractEntitiesRequest {
                            text: text.clone(),
                            ..Default::default()
                        })
                        .await
                        .map(|_| ()),
                    Rpc::Summarize => summarizer
                        .summarize(pb::SummarizeRequest {
                            text: text.clone(),
                            mode: pb::SummaryMode::Extractive as i32,
                            ..Default::default()
                        })
                        .await
                        .map(|_| ()),
                };
                if sent.duration_since(start) < warmup {
                    continue;
                }
                let code = match &result {
                    Ok(()) => "OK".to_string(),
                    Err(status) => format!("{:?}", status.code()),
                };
                *codes.entry(code).or_default() += 1;
                if result.is_ok() {
                    latencies.push(sent.elapsed());
                }
            }
            (latencies, codes)
        }));
    }
    let mut latencies = Vec::new();
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for task in tasks {
        let (l, c) = task.await?;
        latencies.extend(l);
        for (k, v) in c {
            *codes.entry(k).or_default() += v;
        }
    }
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{}",
        serde_json::json!({
            "rpc": format!("{:?}", args.rpc),
            "concurrency": args.concurrency,
            "seconds": args.seconds,
            "ok_per_second": latencies.len() as f64 / args.seconds,
            "p50_ms": pct(0.5),
            "p95_ms": pct(0.95),
            "p99_ms": pct(0.99),
            "codes": codes,
        })
    );
    Ok(())
}
