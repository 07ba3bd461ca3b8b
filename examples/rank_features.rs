//! Writes the key-point candidates of each article of a JSON Lines file (`id`, `article`,
//! `highlights`) with their features and sentence embeddings, for tuning the ranking
//! weights offline (`training/tune_rank.py`).
//!
//! ```sh
//! cargo run --release --example rank_features -- DEV.jsonl > features.jsonl
//! ```

use clap::Parser;
use gist::engine::EngineArgs;
use gist::text::sentences;

#[derive(Parser)]
struct Args {
    /// JSON Lines with `id`, `article`, `highlights`.
    jsonl: std::path::PathBuf,
    #[command(flatten)]
    model: EngineArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.jsonl)?;
    let items = gist::eval::summarize::read_jsonl(&text).map_err(anyhow::Error::msg)?;
    let mut engine = gist::engine::load(&args.model)?;
    for item in items {
        let all = sentences::split(&item.article);
        let content: Vec<&sentences::Sentence> = all.iter().filter(|s| !s.boilerplate).collect();
        let texts: Vec<&str> = content
            .iter()
            .map(|s| s.span.slice(&item.article))
            .collect();
        let embeddings = if texts.is_empty() {
            Vec::new()
        } else {
            engine.embed(&texts)?
        };
        let lead3: Vec<&str> = all
            .iter()
            .take(3)
            .map(|s| s.span.slice(&item.article))
            .collect();
        let reference: Vec<&str> = sentences::split(&item.highlights)
            .iter()
            .map(|s| s.span.slice(&item.highlights))
            .collect();
        let sentences: Vec<serde_json::Value> = texts
            .iter()
            .zip(&embeddings)
            .map(|(t, e)| {
                serde_json::json!({
                    "text": t,
                    "words": t.split_whitespace().count(),
                    "embedding": e.vector,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "id": item.id,
                "reference": reference.join("\n"),
                "lead3": lead3.join("\n"),
                "sentences": sentences,
            })
        );
    }
    Ok(())
}
