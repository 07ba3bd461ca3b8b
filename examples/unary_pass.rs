//! One pass over a JSON Lines file with one unary call at a time (the baseline `gist
//! batch` is compared with in bench/batch_throughput.sh); prints one JSON line with
//! items per second.
//!
//! ```sh
//! cargo run --release --example unary_pass -- --addr 127.0.0.1:50051 --task summarize \
//!     --input ../shared/data/cnndm/dev.jsonl --text-field article
//! ```

use std::io::BufRead;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use gist::pb;
use gist::pb::entity_extractor_client::EntityExtractorClient;
use gist::pb::summarizer_client::SummarizerClient;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Task {
    /// Summarize (AUTO mode, as `gist batch --task summarize`).
    Summarize,
    /// ExtractEntities.
    Entities,
}

#[derive(Parser)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: String,
    /// Which RPC to call.
    #[arg(long, value_enum, default_value_t = Task::Summarize)]
    task: Task,
    /// JSON Lines input.
    #[arg(long)]
    input: std::path::PathBuf,
    /// Field holding the text.
    #[arg(long, default_value = "text")]
    text_field: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut texts = Vec::new();
    for line in std::io::BufReader::new(std::fs::File::open(&args.input)?).lines() {
        let value: serde_json::Value = serde_json::from_str(&line?)?;
        if let Some(text) = value[&args.text_field].as_str() {
            texts.push(text.to_string());
        }
    }
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", args.addr))?
        .connect()
        .await?;
    let mut summarizer = SummarizerClient::new(channel.clone());
    let mut entities = EntityExtractorClient::new(channel);
    let (mut ok, mut failed) = (0usize, 0usize);
    let started = Instant::now();
    for (i, text) in texts.into_iter().enumerate() {
        let id = i.to_string();
        let result = match args.task {
            Task::Summarize => summarizer
                .summarize(pb::SummarizeRequest {
                    text,
                    id,
                    ..Default::default()
                })
                .await
                .map(|_| ()),
            Task::Entities => entities
                .extract_entities(pb::ExtractEntitiesRequest {
                    text,
                    id,
                    ..Default::default()
                })
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) => ok += 1,
            Err(_) => failed += 1,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "task": format!("{:?}", args.task),
            "mode": "unary, one call at a time",
            "ok": ok,
            "failed": failed,
            "seconds": seconds,
            "items_per_second": ok as f64 / seconds,
        })
    );
    Ok(())
}
