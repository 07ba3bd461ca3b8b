//! `gist eval summarize`: articles with reference highlights (JSON Lines: `id`, `article`,
//! `highlights`) through the Summarize pipeline, scored with ROUGE-1/2/Lsum F1 as
//! `rouge-score` computes them, side by side with the Lead-3 baseline on the same items.

use serde::{Deserialize, Serialize};

use super::rouge::{self, Rouge};
use crate::engine::Engine;
use crate::error::Result;
use crate::tasks::{self, Mode, SummarizeJob};
use crate::text::sentences;

/// One article with its reference summary.
#[derive(Debug, Clone, Deserialize)]
pub struct Item {
    /// Item id.
    pub id: String,
    /// The article.
    pub article: String,
    /// Reference highlights.
    pub highlights: String,
}

/// Parse JSON Lines, naming the line of any malformed item.
///
/// # Errors
/// The first malformed line.
pub fn read_jsonl(text: &str) -> Result<Vec<Item>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", n + 1)))
        .collect()
}

/// Mean F1 (×100) of one system.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Means {
    /// ROUGE-1 F1 × 100.
    pub rouge1: f64,
    /// ROUGE-2 F1 × 100.
    pub rouge2: f64,
    /// ROUGE-Lsum F1 × 100.
    pub rouge_lsum: f64,
}

fn means(scores: &[Rouge]) -> Means {
    let n = scores.len().max(1) as f64;
    Means {
        rouge1: 100.0 * scores.iter().map(|s| s.rouge1.f1).sum::<f64>() / n,
        rouge2: 100.0 * scores.iter().map(|s| s.rouge2.f1).sum::<f64>() / n,
        rouge_lsum: 100.0 * scores.iter().map(|s| s.rouge_lsum.f1).sum::<f64>() / n,
    }
}

/// What was compared for one item (newline-separated sentences, as ROUGE-Lsum reads them).
#[derive(Debug, Clone, Serialize)]
pub struct ItemResult {
    /// Item id.
    pub id: String,
    /// Reference sentences.
    pub reference: String,
    /// gist's key points.
    pub gist: String,
    /// The first three sentences.
    pub lead3: String,
}

/// The scores of gist and Lead-3 on the same items.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryReport {
    /// Items scored.
    pub items: usize,
    /// Key points per article asked of gist.
    pub key_points: usize,
    /// gist's means.
    pub gist: Means,
    /// Lead-3's means.
    pub lead3: Means,
    /// Per item.
    pub results: Vec<ItemResult>,
}

impl SummaryReport {
    /// A side-by-side table.
    pub fn table(&self) -> String {
        let row = |name: &str, m: &Means| {
            format!(
                "{name:<14} {:>8.2} {:>8.2} {:>10.2}\n",
                m.rouge1, m.rouge2, m.rouge_lsum
            )
        };
        format!(
            "{:<14} {:>8} {:>8} {:>10}\n{}{}items {}, gist key points per article {}\n",
            "F1 x 100",
            "ROUGE-1",
            "ROUGE-2",
            "ROUGE-Lsum",
            row("gist", &self.gist),
            row("Lead-3", &self.lead3),
            self.items,
            self.key_points
        )
    }
}

fn lines_of(text: &str) -> String {
    sentences::split(text)
        .iter()
        .map(|s| s.span.slice(text))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Summarize every item with `mode` and score it, with Lead-3 on the same items.
/// `progress` is called with the number of items done.
///
/// # Errors
/// Model errors.
pub fn evaluate(
    engine: &mut dyn Engine,
    items: &[Item],
    mode: Mode,
    key_points: usize,
    mut progress: impl FnMut(usize),
) -> Result<SummaryReport> {
    let (mut gist_scores, mut lead_scores, mut results) = (Vec::new(), Vec::new(), Vec::new());
    for (done, item) in items.iter().enumerate() {
        let job = SummarizeJob {
            text: item.article.clone(),
            mode,
            max_key_points: key_points,
            generation: Default::default(),
        };
        let summary = tasks::summarize::summarize(engine, &job)?;
        let gist = summary
            .key_points
            .iter()
            .map(|k| k.text.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let lead3 = sentences::split(&item.article)
            .iter()
            .take(3)
            .map(|s| s.span.slice(&item.article))
            .collect::<Vec<_>>()
            .join("\n");
        let reference = lines_of(&item.highlights);
        gist_scores.push(rouge::score(&reference, &gist));
        lead_scores.push(rouge::score(&reference, &lead3));
        results.push(ItemResult {
            id: item.id.clone(),
            reference,
            gist,
            lead3,
        });
        progress(done + 1);
    }
    Ok(SummaryReport {
        items: items.len(),
        key_points,
        gist: means(&gist_scores),
        lead3: means(&lead_scores),
        results,
    })
}
