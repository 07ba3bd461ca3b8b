//! Sentence embeddings, whatever the backend: sentences go through the encoder in length
//! order (so each batch pads little), come back unit-length, and in the caller's order.

use super::models::SentenceEncoder;
use super::Embedding;
use crate::error::{Error, Result};
use crate::text::rank::normalize;

/// Sentences embedded per forward pass.
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
    let mut out: Vec<Option<Embedding>> = vec![None; sentences.len()];
    for chunk in order.chunks(EMBED_BATCH) {
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
