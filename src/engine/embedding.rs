//! Sentence embeddings, whatever the backend: sentences go through the encoder in length
//! order, in batches cut where padding would cost more than another forward pass, come back
//! unit-length, and in the caller's order.
//!
//! Why the cut: a batch is padded to its longest sentence, and the encoder computes every
//! padded slot. Fixed batches of 32 over an article's length-sorted sentences computed 1.7×
//! the real tokens on the benchmark's articles and 2.6× on CNN/DM dev (one batch per
//! article, short sentences padded to the longest); the forward pass is nearly all of the
//! key-points time (bench/FINDINGS.md, 2026-12-02).

use super::batches::{plan, PASS_COST};
use super::models::SentenceEncoder;
use super::Embedding;
use crate::error::{Error, Result};
use crate::text::rank::normalize;

/// Sentences embedded per forward pass, at most.
pub const EMBED_BATCH: usize = 32;

/// Embed `sentences` with `encoder`: one unit-length vector per sentence, in order.
///
/// # Errors
/// The encoder's error; [`Error::Internal`] when it returns too few vectors.
pub fn embed(encoder: &mut dyn SentenceEncoder, sentences: &[&str]) -> Result<Vec<Embedding>> {
    let tokens: Vec<usize> = sentences.iter().map(|s| encoder.count_tokens(s)).collect();
    let max = encoder.max_tokens();
    let mut order: Vec<usize> = (0..sentences.len()).collect();
    order.sort_by_key(|&i| tokens[i]);
    // What each sentence occupies in a batch: its tokens, cut to the window.
    let widths: Vec<usize> = order.iter().map(|&i| tokens[i].min(max)).collect();
    let mut out: Vec<Option<Embedding>> = vec![None; sentences.len()];
    for range in plan(&widths, EMBED_BATCH, PASS_COST) {
        let chunk = &order[range];
        let batch: Vec<&str> = chunk.iter().map(|&i| sentences[i]).collect();
        let vectors = encoder.encode(&batch)?;
        if vectors.len() != batch.len() {
            return Err(Error::Internal(format!(
                "the encoder returned {} vectors for {} sentences",
                vectors.len(),
                batch.len()
            )));
        }
        for (&i, mut vector) in chunk.iter().zip(vectors) {
            normalize(&mut vector);
            out[i] = Some(Embedding {
                vector,
                tokens: tokens[i],
                truncated: tokens[i] > max,
            });
        }
    }
    out.into_iter()
        .map(|e| e.ok_or_else(|| Error::Internal("encoder returned too few embeddings".into())))
        .collect()
}
