//! Named-entity tagging, whatever the backend: each text is cut into sentence-aligned
//! pieces that fit the model window (overlong sentences into overlapping windows), pieces
//! of similar length share a forward pass, and each word takes the label of its first
//! sub-token. Each piece reports only the words it keeps, so every word is tagged once.

use super::batches::{plan, PASS_COST};
use super::models::{SubToken, TokenClassifier};
use super::Tagged;
use crate::error::{Error, Result};
use crate::text::entities::WordTag;
use crate::text::windows::{self, Piece};

/// Pieces tagged per forward pass.
pub const TAG_BATCH: usize = 16;
/// Sentences are tagged in pieces of at most this many tokens when the model says nothing
/// else: most token classifiers are trained on single sentences (CoNLL), and context from
/// a neighbouring paragraph can change their labels ("Li Keqiang" became ORG next to a
/// second paragraph).
pub const TAG_PACK_TOKENS: usize = 48;
/// A sentence longer than this many tokens is cut into overlapping windows.
pub const TAG_WINDOW_TOKENS: usize = 256;

/// How a token classifier reads a text, as it was trained: its own sentences packed up to
/// `pack` tokens, with whole neighbouring sentences up to `context` tokens on each side
/// read but not labelled (document context, FLERT-style; 0 for none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packing {
    /// Tokens of a piece's own sentences.
    pub pack: usize,
    /// Tokens of context on each side.
    pub context: usize,
}

impl Default for Packing {
    fn default() -> Self {
        Packing {
            pack: TAG_PACK_TOKENS,
            context: 0,
        }
    }
}

/// Tag the words of each text with `model`.
///
/// # Errors
/// The model's error; [`Error::Internal`] when it answers for the wrong number of texts.
pub fn tag(model: &mut dyn TokenClassifier, texts: &[&str]) -> Result<Vec<Tagged>> {
    let window = TAG_WINDOW_TOKENS.min(model.max_tokens().saturating_sub(2).max(8));
    let Packing { pack, context } = model.packing();
    let mut pieces: Vec<(usize, Piece)> = Vec::new();
    let mut tokens = vec![0usize; texts.len()];
    {
        let count = |s: &str| model.sub_words(s);
        for (t, text) in texts.iter().enumerate() {
            for piece in windows::pieces(text, pack, window, window / 4, context, &count) {
                tokens[t] += piece.tokens;
                pieces.push((t, piece));
            }
        }
    }
    // Pieces of similar length share a forward pass, cut where padding would cost more
    // than another pass (requests batched together by the worker differ widely in length).
    pieces.sort_by_key(|(_, piece)| piece.tokens);
    let mut words: Vec<Vec<WordTag>> = vec![Vec::new(); texts.len()];
    // Each piece is its tokens plus [CLS] and [SEP] wide.
    let widths: Vec<usize> = pieces.iter().map(|(_, piece)| piece.tokens + 2).collect();
    for range in plan(&widths, TAG_BATCH, PASS_COST) {
        let chunk = &pieces[range];
        let batch: Vec<&str> = chunk
            .iter()
            .map(|(t, p)| &texts[*t][p.bytes.clone()])
            .collect();
        let classified = model.classify(&batch)?;
        let labels = model.labels();
        if classified.len() != batch.len() {
            return Err(Error::Internal(format!(
                "the token classifier answered {} of {} pieces",
                classified.len(),
                batch.len()
            )));
        }
        for (((t, piece), piece_text), sub_tokens) in chunk.iter().zip(&batch).zip(classified) {
            for word in constrain(labels, first_sub_token_words(piece_text, &sub_tokens)) {
                let start = piece.char_offset + word.start;
                if piece.keep.contains(&start) {
                    words[*t].push(WordTag {
                        start,
                        end: piece.char_offset + word.end,
                        ..word
                    });
                }
            }
        }
    }
    Ok(words
        .into_iter()
        .zip(tokens)
        .map(|(mut words, tokens)| {
            words.sort_by_key(|w| w.start);
            Tagged { words, tokens }
        })
        .collect())
}

/// Label each word of `text` (CoNLL-style words, see [`crate::text::words`]) with its
/// first sub-token's label and probability, and that sub-token's probabilities of every
/// label: token classifiers are trained on the first sub-token of each CoNLL word, so
/// "P." or "U.S." must be one word here too, not the tokenizer's "P" + "." (whose "." was
/// never trained).
pub fn first_sub_token_words<'a>(
    text: &str,
    sub_tokens: &'a [SubToken],
) -> Vec<(WordTag, &'a [f32])> {
    let spans = crate::text::words::spans(text);
    let mut out: Vec<(WordTag, &[f32])> = Vec::new();
    let mut last_word = None;
    for token in sub_tokens {
        let begin = token.begin;
        // The word containing the sub-token's first character.
        let i = spans.partition_point(|&(start, _)| start <= begin);
        let Some(&(start, end)) = i.checked_sub(1).and_then(|i| spans.get(i)) else {
            continue;
        };
        if begin >= end || last_word == Some(start) {
            continue;
        }
        last_word = Some(start);
        out.push((
            WordTag {
                start,
                end,
                label: token.label.clone(),
                score: token.score,
            },
            &token.probs,
        ));
    }
    out
}

/// The labels of a sequence of words that IOB2 allows (an `I-X` only after `B-X` or
/// `I-X`), the most probable such sequence by the words' label probabilities (Viterbi).
/// A word's score becomes the probability of its new label. Words are left with their
/// own labels when any word lacks probabilities for all of `labels` (a backend that gives
/// only the best label), and labels without an `I-` prefix are never constrained.
pub fn constrain(labels: &[String], words: Vec<(WordTag, &[f32])>) -> Vec<WordTag> {
    let n = labels.len();
    if words.is_empty() || n == 0 || words.iter().any(|(_, p)| p.len() != n) {
        return words.into_iter().map(|(w, _)| w).collect();
    }
    // May label `to` follow label `from` (None: the start of the sequence)?
    let follows = |from: Option<usize>, to: usize| match labels[to].strip_prefix("I-") {
        None => true,
        Some(kind) => from.is_some_and(|f| {
            labels[f]
                .strip_prefix("B-")
                .or_else(|| labels[f].strip_prefix("I-"))
                == Some(kind)
        }),
    };
    let log = |p: f32| p.max(1e-12).ln();
    let mut best: Vec<f32> = (0..n)
        .map(|k| {
            if follows(None, k) {
                log(words[0].1[k])
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect();
    let mut back: Vec<Vec<usize>> = Vec::with_capacity(words.len());
    for (_, probs) in &words[1..] {
        let mut next = vec![f32::NEG_INFINITY; n];
        let mut from = vec![0usize; n];
        for to in 0..n {
            for (f, &score) in best.iter().enumerate() {
                if score > f32::NEG_INFINITY && follows(Some(f), to) && score > next[to] {
                    next[to] = score;
                    from[to] = f;
                }
            }
            next[to] += log(probs[to]);
        }
        back.push(from);
        best = next;
    }
    let mut k = (0..n)
        .max_by(|&a, &b| best[a].total_cmp(&best[b]).then(b.cmp(&a)))
        .unwrap_or(0);
    let mut path = vec![k; words.len()];
    for (i, from) in back.iter().enumerate().rev() {
        k = from[k];
        path[i] = k;
    }
    words
        .into_iter()
        .zip(path)
        .map(|((word, probs), k)| WordTag {
            label: labels[k].clone(),
            score: probs[k],
            ..word
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(begin: usize, label: &str) -> SubToken {
        SubToken {
            begin,
            label: label.into(),
            score: 0.9,
            probs: vec![],
        }
    }

    #[test]
    fn a_word_takes_its_first_sub_token_label() {
        // "U.S. aid": the tokenizer's "u", ".", "s", "." are one CoNLL word.
        let text = "U.S. aid";
        let subs = [sub(0, "B-LOC"), sub(1, "O"), sub(2, "I-LOC"), sub(5, "O")];
        let tags = first_sub_token_words(text, &subs);
        let got: Vec<(usize, usize, &str)> = tags
            .iter()
            .map(|(w, _)| (w.start, w.end, w.label.as_str()))
            .collect();
        assert_eq!(got, vec![(0, 4, "B-LOC"), (5, 8, "O")]);
    }

    fn conll() -> Vec<String> {
        ["O", "B-PER", "I-PER", "B-ORG", "I-ORG"]
            .map(String::from)
            .to_vec()
    }

    /// Words labelled by `constrain` from their probabilities (one row per word).
    fn decode(rows: &[[f32; 5]]) -> Vec<String> {
        let words: Vec<(WordTag, &[f32])> = rows
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let tag = WordTag {
                    start: i,
                    end: i + 1,
                    label: "?".into(),
                    score: 0.0,
                };
                (tag, p.as_slice())
            })
            .collect();
        constrain(&conll(), words)
            .into_iter()
            .map(|w| w.label)
            .collect()
    }

    #[test]
    fn an_inside_label_needs_a_begin_of_its_kind_before_it() {
        // Greedy: O I-PER I-PER (invalid). The best valid sequence begins the entity.
        assert_eq!(
            decode(&[
                [0.9, 0.02, 0.03, 0.02, 0.03],
                [0.1, 0.4, 0.45, 0.0, 0.05],
                [0.1, 0.0, 0.9, 0.0, 0.0]
            ]),
            ["O", "B-PER", "I-PER"]
        );
        // Greedy: B-ORG I-PER: the kind must continue, so I-ORG or a new B-PER wins by
        // probability (here the ORG reading: 0.6 × 0.4 > 0.6 × 0.35).
        assert_eq!(
            decode(&[[0.1, 0.1, 0.1, 0.6, 0.1], [0.05, 0.35, 0.45, 0.0, 0.4]]),
            ["B-ORG", "I-ORG"]
        );
        // A valid greedy sequence is kept as it is.
        assert_eq!(
            decode(&[[0.0, 0.9, 0.1, 0.0, 0.0], [0.1, 0.1, 0.8, 0.0, 0.0]]),
            ["B-PER", "I-PER"]
        );
        // A sentence cannot start inside an entity.
        assert_eq!(decode(&[[0.3, 0.2, 0.5, 0.0, 0.0]]), ["O"]);
    }

    #[test]
    fn words_without_every_probability_keep_their_own_labels() {
        let words = vec![(
            WordTag {
                start: 0,
                end: 1,
                label: "I-PER".into(),
                score: 0.9,
            },
            &[][..],
        )];
        assert_eq!(constrain(&conll(), words)[0].label, "I-PER");
        assert!(constrain(&conll(), vec![]).is_empty());
    }
}
