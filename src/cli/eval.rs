//! `gist eval ner` and `gist eval summarize`: the field's standard scores, through the
//! same task code the server runs.

use std::path::Path;

use anyhow::Context;

use super::run::read_file;
use super::{EvalNerArgs, EvalSummarizeArgs};

/// `gist eval ner`.
///
/// # Errors
/// When the file cannot be read or parsed, or the models cannot run.
pub fn ner(args: EvalNerArgs) -> anyhow::Result<()> {
    let text = read_file(&args.conll)?;
    let sentences = crate::eval::ner::parse_conll(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.conll.display()))?;
    let mut engine = crate::engine::load(&args.engine)?;
    let model = engine
        .info()
        .get(crate::role::Role::Ner)
        .cloned()
        .context("no NER model in the manifest")?;
    tracing::info!(sentences = sentences.len(), model = %model.name, "evaluating");
    let started = std::time::Instant::now();
    let total = sentences.len();
    let report =
        crate::eval::ner::evaluate(engine.as_mut(), &sentences, args.unit, args.batch, |done| {
            tracing::info!(done, total, "tagged");
        })?;
    println!(
        "model {}: {} ({} sentences, read by {}, {:.1} s)\n",
        model.name,
        args.conll.display(),
        total,
        match args.unit {
            crate::eval::ner::Unit::Document => "document",
            crate::eval::ner::Unit::Sentence => "sentence",
        },
        started.elapsed().as_secs_f64()
    );
    print!("{}", report.table());
    write_json(args.json.as_deref(), &report)
}

/// `gist eval summarize`.
///
/// # Errors
/// When the file cannot be read or parsed, or the models cannot run.
pub fn summarize(args: EvalSummarizeArgs) -> anyhow::Result<()> {
    let text = read_file(&args.jsonl)?;
    let mut items = crate::eval::summarize::read_jsonl(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.jsonl.display()))?;
    items.truncate(args.limit.unwrap_or(usize::MAX));
    let mode = args.mode.into();
    let mut engine = crate::engine::load(&args.engine)?;
    tracing::info!(items = items.len(), "evaluating");
    let started = std::time::Instant::now();
    let total = items.len();
    let report = crate::eval::summarize::evaluate(
        engine.as_mut(),
        &items,
        mode,
        args.max_key_points,
        |done| {
            if done % 25 == 0 || done == total {
                tracing::info!(done, total, "summarized");
            }
        },
    )?;
    println!(
        "{} ({} items, {:.1} s)\n",
        args.jsonl.display(),
        total,
        started.elapsed().as_secs_f64()
    );
    print!("{}", report.table());
    write_json(args.json.as_deref(), &report)
}

/// Write `value` as JSON to `path`, when one was given.
fn write_json(path: Option<&Path>, value: &impl serde::Serialize) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_string_pretty(value)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
