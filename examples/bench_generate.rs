//! gist's side of the generation benchmark (bench/run.py): the summarization model of a
//! models folder, loaded by gist's engine (rust-bert's BART generator), writing one summary
//! of fixed length per call. Prints one JSON line in the shape of
//! bench/peers/generate_peer.py's, so the two sides compare field by field.
//!
//! The work is fixed as on the peer's side: min length = max length, no n-gram blocking,
//! so every call decodes the same number of steps whatever the (random) weights predict;
//! `output_tokens` in the output shows it.
//!
//! ```sh
//! cargo run --release --example bench_generate -- --models bench-models --text input.txt \
//!     --beams 1,4 --length 60 --repeats 3 --threads 2
//! ```

use std::time::Instant;

use clap::Parser;
use gist::engine::Generation;

#[path = "support/mod.rs"]
mod support;
use support::{int_list, median, peak_rss_mb, round};

#[derive(Parser)]
struct Args {
    /// Folder with models.toml (its [summarizer] model is measured).
    #[arg(long)]
    models: std::path::PathBuf,
    /// The input text, sent in every call.
    #[arg(long)]
    text: std::path::PathBuf,
    /// Beam counts to measure, comma-separated.
    #[arg(long, default_value = "1,4")]
    beams: String,
    /// min_length = max_length of each summary, in tokens (decoder start included).
    #[arg(long, default_value_t = 60)]
    length: usize,
    /// Measured calls per beam count, after one warm-up call.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// libtorch intra-op threads (0: libtorch's default).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let beams = int_list(&args.beams).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(args.length >= 2, "--length must be at least 2");
    anyhow::ensure!(args.repeats >= 1, "--repeats must be at least 1");
    let text = std::fs::read_to_string(&args.text)?;
    let text = text.trim_end_matches('\n');
    let started = Instant::now();
    let mut engine = gist::engine::load(&support::cpu_models(&args.models, args.threads))?;
    let load_seconds = started.elapsed().as_secs_f64();
    let model = engine
        .info()
        .get(gist::role::Role::Summarizer)
        .map(|m| m.name.clone())
        .ok_or_else(|| anyhow::anyhow!("{}: no [summarizer] model", args.models.display()))?;

    let mut runs = Vec::new();
    let mut input_tokens = 0;
    for &num_beams in &beams {
        let options = Generation {
            min_length: args.length,
            max_length: args.length,
            num_beams,
            length_penalty: 1.0,
            no_repeat_ngram_size: 0,
        };
        let mut generate = || -> anyhow::Result<(f64, usize, usize)> {
            let t = Instant::now();
            let out = engine.generate(&[text], &options)?.remove(0);
            Ok((
                t.elapsed().as_secs_f64(),
                out.output_tokens,
                out.input_tokens,
            ))
        };
        generate()?; // warm-up
        let mut seconds = Vec::new();
        let mut tokens = 0;
        for _ in 0..args.repeats {
            let (s, out, input) = generate()?;
            seconds.push(s);
            (tokens, input_tokens) = (out, input);
        }
        let med = median(&seconds);
        runs.push(serde_json::json!({
            "beams": num_beams,
            "output_tokens": tokens,
            "seconds_per_generate": round(med, 4),
            "min_seconds": round(seconds.iter().copied().fold(f64::INFINITY, f64::min), 4),
            "tokens_per_second": round(tokens as f64 / med, 2),
            "repeats": args.repeats,
        }));
    }
    println!(
        "{}",
        serde_json::json!({
            "side": "gist",
            "model": model,
            "threads": tch::get_num_threads(),
            "input_tokens": input_tokens,
            "length": args.length,
            "load_seconds": round(load_seconds, 2),
            "runs": runs,
            "peak_rss_mb": round(peak_rss_mb(), 1),
        })
    );
    Ok(())
}
