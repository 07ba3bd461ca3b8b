//! Key-point ranking from sentence embeddings: centrality to the document, a lead prior
//! suited to news, similarity to the opening sentence, and MMR redundancy removal.

/// Weights of the ranking. The defaults were chosen on 247 CNN/DailyMail development
/// articles with `training/tune_rank.py` (see README, "Evaluation").
#[derive(Debug, Clone, Copy)]
pub struct RankWeights {
    /// Weight of cosine similarity to the document centroid.
    pub centrality: f32,
    /// Weight of the position prior `1 / (1 + position / lead_scale)`.
    pub lead: f32,
    /// Positions (sentences) over which the lead prior halves.
    pub lead_scale: f32,
    /// Weight of cosine similarity to the first sentence.
    pub opening: f32,
    /// MMR trade-off: 1 ignores redundancy, 0 only avoids it.
    pub mmr_lambda: f32,
    /// Sentences with fewer words than this are scored down by half.
    pub min_words: usize,
    /// A sentence this similar (cosine) to a chosen one is a near-duplicate and is only
    /// chosen when nothing else is left.
    pub duplicate: f32,
    /// Sentences with more words than this are scored by `long_factor`: a key point should
    /// be quick to read, and reference highlights are short.
    pub long_words: usize,
    /// Factor applied to the relevance of sentences longer than `long_words`.
    pub long_factor: f32,
}

impl Default for RankWeights {
    fn default() -> Self {
        RankWeights {
            centrality: 0.45,
            lead: 0.7,
            lead_scale: 3.0,
            opening: 0.2,
            mmr_lambda: 0.7,
            min_words: 6,
            duplicate: 0.9,
            long_words: 30,
            long_factor: 0.85,
        }
    }
}

/// A candidate sentence for ranking.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// Unit-length sentence embedding.
    pub embedding: &'a [f32],
    /// Position among the article's content sentences (0 = first).
    pub position: usize,
    /// Number of words.
    pub words: usize,
}

/// Chosen sentences: `(candidate index, relevance in [0, 1])`, in document order.
pub fn select(candidates: &[Candidate<'_>], k: usize, w: &RankWeights) -> Vec<(usize, f32)> {
    if candidates.is_empty() || k == 0 {
        return Vec::new();
    }
    let dim = candidates[0].embedding.len();
    let mut centroid = vec![0f32; dim];
    for c in candidates {
        for (acc, x) in centroid.iter_mut().zip(c.embedding) {
            *acc += x;
        }
    }
    normalize(&mut centroid);
    let opening = candidates
        .iter()
        .min_by_key(|c| c.position)
        .map(|c| c.embedding)
        .unwrap_or(&[]);
    let relevance: Vec<f32> = candidates
        .iter()
        .map(|c| {
            let lead = 1.0 / (1.0 + c.position as f32 / w.lead_scale);
            let mut r = w.centrality * cosine(c.embedding, &centroid)
                + w.lead * lead
                + w.opening * cosine(c.embedding, opening);
            if c.words < w.min_words {
                r *= 0.5;
            }
            if c.words > w.long_words {
                r *= w.long_factor;
            }
            r.clamp(0.0, 1.0)
        })
        .collect();

    let mut chosen: Vec<usize> = Vec::with_capacity(k);
    while chosen.len() < k.min(candidates.len()) {
        let best = (0..candidates.len())
            .filter(|i| !chosen.contains(i))
            .map(|i| {
                let redundancy = chosen
                    .iter()
                    .map(|&j| cosine(candidates[i].embedding, candidates[j].embedding))
                    .fold(0f32, f32::max);
                let near_duplicate = redundancy > w.duplicate;
                let score = w.mmr_lambda * relevance[i] - (1.0 - w.mmr_lambda) * redundancy;
                (i, near_duplicate, score)
            })
            // Non-duplicates first, then the MMR score, then the earlier sentence.
            .max_by(|a, b| b.1.cmp(&a.1).then(a.2.total_cmp(&b.2)).then(b.0.cmp(&a.0)))
            .map(|(i, _, score)| (i, score));
        match best {
            Some((i, _)) => chosen.push(i),
            None => break,
        }
    }
    chosen.sort_by_key(|&i| candidates[i].position);
    chosen.into_iter().map(|i| (i, relevance[i])).collect()
}

/// Cosine similarity; 0 when either vector is zero or the lengths differ.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// Scale `v` to unit length (left as is when zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let mut v = v.to_vec();
        normalize(&mut v);
        v
    }

    #[test]
    fn cosine_basics() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert_eq!(cosine(&[1.0], &[1.0, 0.0]), 0.0);
    }

    #[test]
    fn redundant_sentences_are_not_chosen_twice() {
        // Sentences 0 and 1 say the same thing; 2 is central but different.
        let e = [
            unit(&[1.0, 0.1, 0.0]),
            unit(&[1.0, 0.11, 0.0]),
            unit(&[0.6, 0.8, 0.0]),
            unit(&[0.0, 0.0, 1.0]),
        ];
        let cands: Vec<Candidate> = e
            .iter()
            .enumerate()
            .map(|(i, v)| Candidate {
                embedding: v,
                position: i,
                words: 10,
            })
            .collect();
        let got: Vec<usize> = select(&cands, 2, &RankWeights::default())
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(got, [0, 2]);
    }

    #[test]
    fn results_are_in_document_order_and_bounded() {
        let e: Vec<Vec<f32>> = (0..8)
            .map(|i| unit(&[1.0, i as f32 * 0.3, (8 - i) as f32 * 0.1]))
            .collect();
        let cands: Vec<Candidate> = e
            .iter()
            .enumerate()
            .map(|(i, v)| Candidate {
                embedding: v,
                position: i,
                words: 3 + i,
            })
            .collect();
        let got = select(&cands, 5, &RankWeights::default());
        assert_eq!(got.len(), 5);
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(got.iter().all(|(_, s)| (0.0..=1.0).contains(s)));
        assert_eq!(select(&cands, 50, &RankWeights::default()).len(), 8);
        assert!(select(&[], 3, &RankWeights::default()).is_empty());
        assert!(select(&cands, 0, &RankWeights::default()).is_empty());
    }

    #[test]
    fn short_fragments_lose_to_full_sentences() {
        let v = unit(&[1.0, 0.0]);
        let cands = [
            Candidate {
                embedding: &v,
                position: 0,
                words: 2,
            },
            Candidate {
                embedding: &v,
                position: 1,
                words: 12,
            },
        ];
        let got = select(&cands, 1, &RankWeights::default());
        assert_eq!(got[0].0, 1);
    }

    #[test]
    fn long_sentences_are_scored_down() {
        let v = unit(&[1.0, 0.0]);
        let w = RankWeights::default();
        let candidate = |words| Candidate {
            embedding: &v,
            position: 4,
            words,
        };
        let short = select(&[candidate(w.long_words)], 1, &w)[0].1;
        let long = select(&[candidate(w.long_words + 1)], 1, &w)[0].1;
        assert!(
            (long - short * w.long_factor).abs() < 1e-6,
            "{long} vs {short}"
        );
    }
}
