//! Named-entity tagging, whatever the backend: each text is cut into sentence-aligned
//! pieces that fit the model window (overlong sentences into overlapping windows), pieces
//! of similar length share a forward pass, and each word takes the label of its first
//! sub-token. Each piece reports only the words it keeps, so every word is tagged once.

use super::models::{SubToken, TokenClassifier};
use super::Tagged;
use crate::error::{Error, Result};
use crate::text::entities::WordTag;
use crate::text::windows::{self, Piece};

/// Pieces tagged per forward pass.
pub const TAG_BATCH: usize = 16;
/// Sentences are tagged in pieces of at most this many tokens: token classifiers are
/// trained on single sentences (CoNLL), and context from a neighbouring paragraph can
/// change a label ("Li Keqiang" became ORG next to a second paragraph).
pub const TAG_PACK_TOKENS: usize = 48;
/// A sentence longer than this many tokens is cut into overlapping windows.
pub const TAG_WINDOW_TOKENS: usize = 256;

/// Tag the words of each text with `model`.
///
/// # Errors
/// The model's error; [`Error::Internal`] when it answers for the wrong number of texts.
pub fn tag(model: &mut dyn TokenClassifier, texts: &[&str]) -> Result<Vec<Tagged>> {
    let window = TAG_WINDOW_TOKENS.min(model.max_tokens().saturating_sub(2).max(8));
    let mut pieces: Vec<(usize, Piece)> = Vec::new();
    let mut tokens = vec![0usize; texts.len()];
    {
        let count = |s: &str| model.sub_words(s);
        for (t, text) in texts.iter().enumerate() {
            for piece in windows::pieces(text, TAG_PACK_TOKENS, window, window / 4, &count) {
                tokens[t] += piece.tokens;
                pieces.push((t, piece));
            }
        }
    }
    // Pieces of similar length share a forward pass, so little of it is padding
    // (requests batched together by the worker differ widely in length).
    pieces.sort_by_key(|(_, piece)| piece.tokens);
    let mut words: Vec<Vec<WordTag>> = vec![Vec::new(); texts.len()];
    for chunk in pieces.chunks(TAG_BATCH) {
        let batch: Vec<&str> = chunk
            .iter()
            .map(|(t, p)| &texts[*t][p.bytes.clone()])
            .collect();
        let classified = model.classify(&batch)?;
        if classified.len() != batch.len() {
            return Err(Error::Internal(format!(
                "the token classifier answered {} of {} pieces",
                classified.len(),
                batch.len()
            )));
        }
        for (((t, piece), piece_text), sub_tokens) in chunk.iter().zip(&batch).zip(classified) {
            for word in first_sub_token_words(piece_text, &sub_tokens) {
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
/// first sub-token's label and probability: token classifiers are trained on the first
/// sub-token of each CoNLL word, so "P." or "U.S." must be one word here too, not the
/// tokenizer's "P" + "." (whose "." was never trained).
pub fn first_sub_token_words(text: &str, sub_tokens: &[SubToken]) -> Vec<WordTag> {
    let spans = crate::text::words::spans(text);
    let mut out: Vec<WordTag> = Vec::new();
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
        out.push(WordTag {
            start,
            end,
            label: token.label.clone(),
            score: token.score,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(begin: usize, label: &str) -> SubToken {
        SubToken {
            begin,
            label: label.into(),
            score: 0.9,
        }
    }

    #[test]
    fn a_word_takes_its_first_sub_token_label() {
        // "U.S. aid": the tokenizer's "u", ".", "s", "." are one CoNLL word.
        let text = "U.S. aid";
        let tags = first_sub_token_words(
            text,
            &[sub(0, "B-LOC"), sub(1, "O"), sub(2, "I-LOC"), sub(5, "O")],
        );
        let got: Vec<(usize, usize, &str)> = tags
            .iter()
            .map(|w| (w.start, w.end, w.label.as_str()))
            .collect();
        assert_eq!(got, vec![(0, 4, "B-LOC"), (5, 8, "O")]);
    }
}
