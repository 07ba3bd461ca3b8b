//! gist's side of the key-points benchmark (bench/run.py): extractive Summarize of each
//! article of a JSON Lines file, one after another, behind gist's model thread with the
//! default models, as bench/peers/keypoints_peer.py does in Python (same splitting, same
//! MiniLM encoder, same ranking). Prints one JSON line in the peer's shape; `--output`
//! writes each article's key points, to check that both sides chose the same sentences.
//!
//! ```sh
//! cargo run --release --example bench_keypoints -- --models models \
//!     --input articles.jsonl --text-field text --limit 30 --threads 2
//! ```

use std::io::{BufRead, Write};
use std::time::Instant;

use clap::Parser;
use gist::tasks::{Mode, SummarizeJob};
use gist::worker::{Worker, WorkerArgs};

#[path = "support/mod.rs"]
mod support;
use support::{peak_rss_mb, round};

#[derive(Parser)]
struct Args {
    /// Folder with models.toml (its [encoder] model is measured).
    #[arg(long, default_value = "models")]
    models: std::path::PathBuf,
    /// JSON Lines file of articles.
    #[arg(long)]
    input: std::path::PathBuf,
    /// The field holding each article's text.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Articles to measure (0: all), after the first, which warms up and is not counted.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Key points per article.
    #[arg(long, default_value_t = 5)]
    k: usize,
    /// Model runtime (rust-bert or onnx), as `gist serve --engine`.
    #[arg(long, value_enum, default_value_t = gist::engine::Backend::RustBert)]
    engine: gist::engine::Backend,
    /// Intra-op threads of the runtime (0: its default).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Write each measured article's key points here (JSON Lines: id, key_points).
    #[arg(long)]
    output: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut articles = Vec::new();
    for (n, line) in std::io::BufReader::new(std::fs::File::open(&args.input)?)
        .lines()
        .enumerate()
    {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let record: serde_json::Value = serde_json::from_str(&line)?;
        let text = record[&args.text_field].as_str().ok_or_else(|| {
            anyhow::anyhow!(
                "{}:{}: no string field {:?}",
                args.input.display(),
                n + 1,
                args.text_field
            )
        })?;
        let id = record
            .get("id")
            .cloned()
            .unwrap_or_else(|| serde_json::json!(n + 1));
        articles.push((id, text.to_string()));
        if args.limit > 0 && articles.len() > args.limit {
            break; // one more than the limit: the warm-up article
        }
    }
    anyhow::ensure!(
        articles.len() >= 2,
        "{}: need at least 2 articles (one is the warm-up)",
        args.input.display()
    );
    let model = support::cpu_models_on(&args.models, args.threads, args.engine);
    let started = Instant::now();
    let worker = Worker::spawn(
        move || gist::engine::load(&model),
        WorkerArgs::default(),
        gist::metrics::Metrics::new(&gist::tasks::Task::names()),
    );
    let info = worker.ready().await?;
    let load_seconds = started.elapsed().as_secs_f64();
    let job = |text: &str| SummarizeJob {
        text: text.to_string(),
        mode: Mode::Extractive,
        max_key_points: args.k,
        generation: gist::engine::Generation::default(),
    };

    worker.run(job(&articles[0].1), None).await?; // warm-up
    let (mut sentences, mut tokens, mut results) = (0, 0, Vec::new());
    let t = Instant::now();
    for (_, text) in &articles[1..] {
        let summary = worker.run(job(text), None).await?.value;
        sentences += summary.sentence_count;
        tokens += summary.input_tokens;
        results.push(summary.key_points);
    }
    let seconds = t.elapsed().as_secs_f64();
    if let Some(path) = &args.output {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for ((id, _), points) in articles[1..].iter().zip(&results) {
            let points: Vec<_> = points
                .iter()
                .map(|p| serde_json::json!({"text": p.text, "score": round(p.score as f64, 4)}))
                .collect();
            writeln!(
                out,
                "{}",
                serde_json::json!({"id": id, "key_points": points})
            )?;
        }
        out.flush()?;
    }
    let measured = results.len();
    println!(
        "{}",
        serde_json::json!({
            "side": "gist",
            "model": info.get(gist::role::Role::Encoder).map(|m| m.name.clone()),
            "threads": support::threads(args.engine, args.threads),
            "engine": format!("{:?}", args.engine),
            "k": args.k,
            "articles": measured,
            "seconds": round(seconds, 3),
            "articles_per_second": round(measured as f64 / seconds, 3),
            "sentences": sentences,
            "tokens": tokens,
            "load_seconds": round(load_seconds, 2),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        })
    );
    Ok(())
}
