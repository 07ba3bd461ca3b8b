//! ONNX Runtime thread settings for gist's ONNX engine: the default NER model tags one
//! article in a closed loop for `--seconds` with `--threads` intra-op threads and idle
//! threads spinning or not (`--spinning`). Run it on an idle machine and beside a busy
//! process to choose `engine::onnx::SPINNING` (docs/onnx.md, "Threads").
//!
//! ```sh
//! cargo run --release --example bench_onnx_threads -- --models models --text article.txt \
//!     --threads 2 --spinning false --seconds 10
//! ```

use std::time::{Duration, Instant};

use clap::Parser;
use gist::engine::manifest::Manifest;
use gist::engine::models::Models;
use gist::engine::onnx::{self, SessionSettings};
use gist::engine::Engine;
use gist::role::Role;

#[path = "support/mod.rs"]
mod support;
use support::{percentile, round};

#[derive(Parser)]
struct Args {
    /// Folder with models.toml (its [ner] model, and precision, is measured).
    #[arg(long, default_value = "models")]
    models: std::path::PathBuf,
    /// The article.
    #[arg(long)]
    text: std::path::PathBuf,
    /// Intra-op threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Let idle intra-op threads spin before sleeping.
    #[arg(long, action = clap::ArgAction::Set)]
    spinning: bool,
    /// Measured time, after one warm-up call.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.text)?;
    let ner = Manifest::load(&args.models)?
        .get(Role::Ner)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no [ner] in {}", args.models.display()))?;
    let settings = SessionSettings {
        threads: args.threads,
        spinning: args.spinning,
        library: None,
    };
    let mut engine = Models::load(&Manifest::one(Role::Ner, ner), |role, spec| {
        onnx::load_model(role, spec, &settings).map(Some)
    })?;
    engine.tag(&[text.as_str()])?;
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let mut latencies = Vec::new();
    while started.elapsed() < Duration::from_secs_f64(args.seconds) {
        let t = Instant::now();
        engine.tag(&[text.as_str()])?;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    latencies.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "threads": args.threads,
            "spinning": args.spinning,
            "docs": latencies.len(),
            "docs_per_second": round(latencies.len() as f64 / wall, 3),
            "p50_ms": round(percentile(&latencies, 0.5), 1),
            "p95_ms": round(percentile(&latencies, 0.95), 1),
            "cpu_seconds_per_doc": round(cpu / latencies.len().max(1) as f64, 4),
        })
    );
    Ok(())
}

/// User + system CPU time of this process so far (/proc/self/stat, clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0)
}
