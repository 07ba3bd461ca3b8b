//! Hugging Face `tokenizers` (tokenizer.json) against rust_tokenizers (vocab.txt, what
//! rust-bert uses) on the NER engine's own call pattern: `text::windows::pieces` counts
//! every sentence's tokens, then each piece is encoded with offsets and special tokens.
//! Both must give the same ids; prints one JSON line with each side's time.
//!
//! ```sh
//! cargo run --release --example bench_tokenizers -- --model models/conll03-minilm-ner \
//!     --input ../shared/data/cnndm/dev.jsonl --limit 100
//! ```

use std::time::Instant;

use clap::Parser;
use rust_tokenizers::tokenizer::{BertTokenizer, Tokenizer, TruncationStrategy};

#[derive(Parser)]
struct Args {
    /// Model folder with vocab.txt and tokenizer.json.
    #[arg(long)]
    model: std::path::PathBuf,
    /// JSON Lines of articles (field `article` or `text`); default: the Khan–Li article.
    #[arg(long)]
    input: Option<std::path::PathBuf>,
    /// Articles read from --input.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Passes over the articles (the best is reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let texts: Vec<String> = match &args.input {
        Some(path) => std::fs::read_to_string(path)?
            .lines()
            .take(args.limit)
            .map(|l| {
                let j: serde_json::Value = serde_json::from_str(l)?;
                Ok(j["article"]
                    .as_str()
                    .or(j["text"].as_str())
                    .unwrap_or_default()
                    .to_string())
            })
            .collect::<anyhow::Result<_>>()?,
        None => vec![std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/khan-li-call.txt"),
        )?],
    };
    let mut hf = tokenizers::Tokenizer::from_file(args.model.join("tokenizer.json"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    hf.with_truncation(None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    hf.with_padding(None);
    let rt = BertTokenizer::from_file(args.model.join("vocab.txt"), true, true)?;

    // (pieces, tokens, seconds counting, seconds encoding, ids of every piece)
    let run = |side: &str| -> (usize, usize, f64, f64, Vec<Vec<i64>>) {
        let (mut best_count, mut best_encode) = (f64::INFINITY, f64::INFINITY);
        let mut out = (0, 0, Vec::new());
        for _ in 0..args.repeats.max(1) {
            let (mut counting, mut encoding) = (0.0, 0.0);
            let (mut pieces, mut tokens, mut ids) = (0, 0, Vec::new());
            for text in &texts {
                let count = |s: &str| match side {
                    "hf" => hf.encode_fast(s, false).map_or(0, |e| e.len()),
                    _ => rt.tokenize(s).len(),
                };
                let started = Instant::now();
                let cut = gist::text::windows::pieces(text, 48, 256, 64, &count);
                counting += started.elapsed().as_secs_f64();
                let started = Instant::now();
                for piece in cut {
                    let piece_text = &text[piece.bytes.clone()];
                    let piece_ids: Vec<i64> = match side {
                        "hf" => {
                            let e = hf.encode_char_offsets(piece_text, true).unwrap();
                            e.get_ids().iter().map(|&i| i as i64).collect()
                        }
                        _ => {
                            rt.encode(piece_text, None, 512, &TruncationStrategy::LongestFirst, 0)
                                .token_ids
                        }
                    };
                    pieces += 1;
                    tokens += piece_ids.len();
                    ids.push(piece_ids);
                }
                encoding += started.elapsed().as_secs_f64();
            }
            best_count = best_count.min(counting);
            best_encode = best_encode.min(encoding);
            out = (pieces, tokens, ids);
        }
        (out.0, out.1, best_count, best_encode, out.2)
    };
    let (pieces, tokens, hf_count, hf_encode, hf_ids) = run("hf");
    let (_, _, rt_count, rt_encode, rt_ids) = run("rt");
    let (hf_seconds, rt_seconds) = (hf_count + hf_encode, rt_count + rt_encode);
    let same = hf_ids.iter().zip(&rt_ids).filter(|(a, b)| a == b).count();
    println!(
        "{}",
        serde_json::json!({
            "articles": texts.len(),
            "pieces": pieces,
            "tokens": tokens,
            "hf_tokenizers_seconds": hf_seconds,
            "rust_tokenizers_seconds": rt_seconds,
            "hf_speedup": rt_seconds / hf_seconds,
            "counting_seconds_hf_rt": [hf_count, rt_count],
            "encoding_seconds_hf_rt": [hf_encode, rt_encode],
            "pieces_with_equal_ids": same,
        })
    );
    Ok(())
}
