//! Merging word-level tags (B-PER, I-PER, O…) into entities with exact offsets.
//!
//! This is the "simple" aggregation of Hugging Face pipelines: an entity starts at a B- tag,
//! or at an I- tag whose type differs from the open entity, and continues over I- tags of
//! its type. Plain labels ("PER") and BIOES (S-, E-) are accepted too.

use serde::Serialize;
use unicode_segmentation::UnicodeSegmentation;

use super::offsets::{CharMap, Span};

/// One word as tagged by a token classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct WordTag {
    /// Start of the word in the input, in code points.
    pub start: usize,
    /// End (exclusive) of the word in the input, in code points.
    pub end: usize,
    /// The model's label: "O", "B-PER", "I-LOC", …
    pub label: String,
    /// Probability of that label, in [0, 1].
    pub score: f32,
}

/// A named entity of the input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entity {
    /// Exactly the input slice covered by `span`.
    pub text: String,
    /// Entity type without a B-/I- prefix.
    pub label: String,
    /// Mean score of its words.
    pub score: f32,
    /// Where it is, in code points and bytes.
    #[serde(flatten)]
    pub span: Span,
}

enum Tag<'a> {
    Outside,
    Begin(&'a str),
    Inside(&'a str),
}

fn parse(label: &str) -> Tag<'_> {
    if label == "O" || label.is_empty() {
        return Tag::Outside;
    }
    match label.split_once('-') {
        Some(("B" | "S", kind)) => Tag::Begin(kind),
        Some(("I" | "E", kind)) => Tag::Inside(kind),
        _ => Tag::Inside(label),
    }
}

/// Merge tagged words (in input order) into entities of `text`. Words whose offsets do not
/// fall inside `text` are ignored rather than trusted. Entity spans are widened to whole
/// grapheme clusters: uncased tokenizers drop combining marks ("café" written with U+0301)
/// from their offsets, and an entity must never end inside a user-perceived character.
pub fn merge(text: &str, words: &[WordTag]) -> Vec<Entity> {
    struct Open<'a> {
        kind: &'a str,
        start: usize,
        end: usize,
        scores: Vec<f32>,
    }
    let map = CharMap::new(text);
    let graphemes: Vec<usize> = text
        .grapheme_indices(true)
        .map(|(b, _)| b)
        .chain(std::iter::once(text.len()))
        .collect();
    let widen = |span: Span| -> Span {
        let start = graphemes[graphemes.partition_point(|&b| b <= span.byte_start) - 1];
        let end = graphemes[graphemes.partition_point(|&b| b < span.byte_end)];
        Span::from_bytes(&map, start, end).unwrap_or(span)
    };
    let mut out = Vec::new();
    let mut open: Option<Open> = None;
    let close = |open: Option<Open>, out: &mut Vec<Entity>| {
        if let Some(o) = open {
            if let Some(span) = Span::from_chars(&map, o.start, o.end) {
                let mut span = widen(span);
                // Two words in one grapheme cluster ("{" and a combining mark after it):
                // widened, the second entity would overlap the first; it starts where the
                // first ends (a cluster boundary) instead.
                if let Some(last) = out.last() {
                    if span.start < last.span.end {
                        span = Span::from_chars(&map, last.span.end, span.end.max(last.span.end))
                            .unwrap_or(span);
                    }
                }
                let span = span.trim(text);
                if !span.is_empty() {
                    out.push(Entity {
                        text: span.slice(text).to_string(),
                        label: o.kind.to_string(),
                        score: o.scores.iter().sum::<f32>() / o.scores.len() as f32,
                        span,
                    });
                }
            }
        }
    };
    for word in words {
        if word.start >= word.end || word.end > map.char_len() {
            continue;
        }
        match parse(&word.label) {
            Tag::Outside => close(open.take(), &mut out),
            Tag::Inside(kind)
                if open
                    .as_ref()
                    .is_some_and(|o| o.kind == kind && o.end <= word.start) =>
            {
                let o = open.as_mut().expect("checked by the guard");
                o.end = word.end;
                o.scores.push(word.score);
            }
            Tag::Begin(kind) | Tag::Inside(kind) => {
                close(open.take(), &mut out);
                open = Some(Open {
                    kind,
                    start: word.start,
                    end: word.end,
                    scores: vec![word.score],
                });
            }
        }
    }
    close(open, &mut out);
    join_hyphenated(text, out)
}

/// Names are capitalised: words at either end of an entity written all in lower case, or
/// made of symbols such as emoji, are not part of it ("multi-billion Belt and Road
/// initiative" → "Belt and Road", "🚀 Imran Khan" → "Imran Khan"), and an entity of such
/// words only ("telephonic", "vaccine") is none. Words inside stay ("Belt and Road",
/// "Bank of England"); words with a digit or without cased letters (CJK, Arabic) count as
/// capitalised, so scripts without case lose nothing. On CoNLL-2003 dev this gained 0.01
/// F1 (README, "Evaluation").
pub fn capitalised(text: &str, entities: Vec<Entity>) -> Vec<Entity> {
    let map = CharMap::new(text);
    entities
        .into_iter()
        .filter_map(|e| trim_lower_case_words(text, &map, e))
        .collect()
}

/// Quotes, dashes and other punctuation outside ASCII (“ ” ‘ ’ – — …).
fn is_punctuation(c: char) -> bool {
    matches!(c, '\u{2010}'..='\u{2027}' | '\u{2030}'..='\u{205E}' | '«' | '»' | '¡' | '¿' | '·')
        || ('\u{3000}'..='\u{303F}').contains(&c)
        || ('\u{FF00}'..='\u{FF65}').contains(&c)
}

/// One entity under the rule of [`capitalised`].
fn trim_lower_case_words(text: &str, map: &CharMap, e: Entity) -> Option<Entity> {
    // A word that cannot begin or end a name: all lower case, or made of symbols such as
    // emoji (which uncased tokenizers know only as [UNK]). Punctuation is left alone: cutting
    // it too cost 0.0008 F1 on CoNLL dev.
    let lower = |w: &str| {
        w.chars()
            .all(|c| !c.is_alphanumeric() && !c.is_ascii() && !is_punctuation(c))
            || (w.chars().any(char::is_lowercase)
                && !w.chars().any(|c| c.is_uppercase() || c.is_numeric()))
    };
    let slice = &text[e.span.byte_start..e.span.byte_end];
    // Words: runs between white space, with their byte ranges in `slice`.
    let words: Vec<(usize, usize)> = slice
        .split_whitespace()
        .map(|w| {
            let at = w.as_ptr() as usize - slice.as_ptr() as usize;
            (at, at + w.len())
        })
        .collect();
    let first = words.iter().position(|&(a, b)| !lower(&slice[a..b]))?;
    let last = words.iter().rposition(|&(a, b)| !lower(&slice[a..b]))?;
    if first == 0 && last == words.len() - 1 {
        return Some(e);
    }
    let (start, end) = (
        e.span.byte_start + words[first].0,
        e.span.byte_start + words[last].1,
    );
    let span = Span::from_bytes(map, start, end)?;
    Some(Entity {
        text: span.slice(text).to_string(),
        span,
        ..e
    })
}

/// Join entities of one type separated by a bare hyphen: WordPiece tokenizers split
/// "COVID-19" and "China-Pakistan" at the hyphen, which models then tag "O".
fn join_hyphenated(text: &str, entities: Vec<Entity>) -> Vec<Entity> {
    let mut out: Vec<Entity> = Vec::with_capacity(entities.len());
    for e in entities {
        if let Some(last) = out.last_mut() {
            let between = text
                .get(last.span.byte_end..e.span.byte_start)
                .unwrap_or(" ");
            if last.label == e.label && matches!(between, "-" | "‐" | "–") {
                last.span = last.span.to(e.span);
                last.text = last.span.slice(text).to_string();
                last.score = (last.score + e.score) / 2.0;
                continue;
            }
        }
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_that_split_a_grapheme_cluster_never_give_overlapping_entities() {
        // Found by fuzz/fuzz_targets/entities.rs: "{" and the combining mark after it are
        // two words; widened to whole clusters, both entities began at 0.
        let text = "{\u{657}Imran Khan";
        let words = [
            WordTag {
                start: 0,
                end: 1,
                label: "B-PER".into(),
                score: 0.9,
            },
            WordTag {
                start: 1,
                end: 12,
                label: "I-ORG".into(),
                score: 0.9,
            },
        ];
        let entities = merge(text, &words);
        assert_eq!(entities.len(), 2, "{entities:?}");
        assert_eq!(entities[0].text, "{\u{657}");
        assert_eq!(entities[1].text, "Imran Khan");
        assert!(entities[0].span.end <= entities[1].span.start);
    }

    /// Tag each whitespace-separated word of `text` with the given labels.
    fn tag(text: &str, labels: &[&str]) -> Vec<WordTag> {
        let mut words = Vec::new();
        let mut start = None;
        // Words end at white space; a hyphen is a word of its own, as in WordPiece.
        for (i, c) in text.chars().chain(std::iter::once(' ')).enumerate() {
            if c.is_whitespace() || c == '-' {
                if let Some(s) = start.take() {
                    words.push((s, i));
                }
                if c == '-' {
                    words.push((i, i + 1));
                }
            } else if start.is_none() {
                start = Some(i);
            }
        }
        assert_eq!(words.len(), labels.len(), "test labels for {text:?}");
        words
            .into_iter()
            .zip(labels)
            .map(|((start, end), label)| WordTag {
                start,
                end,
                label: label.to_string(),
                score: 0.5,
            })
            .collect()
    }

    fn merged(text: &str, labels: &[&str]) -> Vec<(String, String)> {
        merge(text, &tag(text, labels))
            .into_iter()
            .map(|e| (e.text, e.label))
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn lower_case_words_at_the_ends_of_an_entity_are_not_part_of_it() {
        let text = "the multi-billion Belt and Road initiative held telephonic talks";
        let labels = [
            "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "I-MISC", "I-MISC", "I-MISC", "O",
            "B-ORG", "O",
        ];
        // merge alone keeps what the model said.
        assert_eq!(
            merged(text, &labels),
            pairs(&[
                ("multi-billion Belt and Road initiative", "MISC"),
                ("telephonic", "ORG")
            ])
        );
        let capital = |text: &str, labels: &[&str]| -> Vec<(String, String)> {
            capitalised(text, merge(text, &tag(text, labels)))
                .into_iter()
                .map(|e| (e.text, e.label))
                .collect()
        };
        assert_eq!(capital(text, &labels), pairs(&[("Belt and Road", "MISC")]));
        // Digits and scripts without case count as capitalised; symbols at the ends go.
        let text = "in 2021 met 李克强 and iPhone 🚀 Imran Khan ! “ 🚀";
        let got = capital(
            text,
            &[
                "O", "B-MISC", "O", "B-PER", "O", "B-MISC", "B-PER", "I-PER", "I-PER", "B-LOC",
                "B-ORG", "B-ORG",
            ],
        );
        assert_eq!(
            got,
            pairs(&[
                ("2021", "MISC"),
                ("李克强", "PER"),
                ("iPhone", "MISC"),
                ("Imran Khan", "PER"),
                ("!", "LOC"),
                ("“", "ORG")
            ])
        );
    }

    #[test]
    fn bio_sequences_merge_into_entities() {
        let text = "Prime Minister Imran Khan met Li Keqiang in Islamabad";
        let got = merged(
            text,
            &[
                "O", "O", "B-PER", "I-PER", "O", "B-PER", "I-PER", "O", "B-LOC",
            ],
        );
        assert_eq!(
            got,
            pairs(&[
                ("Imran Khan", "PER"),
                ("Li Keqiang", "PER"),
                ("Islamabad", "LOC")
            ])
        );
    }

    #[test]
    fn adjacent_b_tags_start_new_entities() {
        let got = merged("Pakistan China talks", &["B-LOC", "B-LOC", "O"]);
        assert_eq!(got, pairs(&[("Pakistan", "LOC"), ("China", "LOC")]));
    }

    #[test]
    fn stray_inside_tags_open_an_entity_and_type_changes_split() {
        let got = merged(
            "the National Institute of Health Pakistan",
            &["O", "I-ORG", "I-ORG", "I-ORG", "I-ORG", "I-LOC"],
        );
        assert_eq!(
            got,
            pairs(&[("National Institute of Health", "ORG"), ("Pakistan", "LOC")])
        );
    }

    #[test]
    fn plain_and_bioes_labels() {
        assert_eq!(
            merged("Xi Jinping spoke", &["PER", "PER", "O"]),
            pairs(&[("Xi Jinping", "PER")])
        );
        assert_eq!(
            merged(
                "Xi Jinping spoke to Gwadar",
                &["B-PER", "E-PER", "O", "O", "S-LOC"]
            ),
            pairs(&[("Xi Jinping", "PER"), ("Gwadar", "LOC")])
        );
    }

    #[test]
    fn offsets_are_exact_with_quotes_emoji_cjk_and_combining_marks() {
        let text = "“Khan” 🚀 met 李克强 at Café\u{301} Noir";
        let entities = merge(
            text,
            &tag(text, &["B-PER", "O", "O", "B-PER", "O", "B-LOC", "I-LOC"]),
        );
        let chars: Vec<char> = text.chars().collect();
        let got: Vec<&str> = entities.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(got, ["“Khan”", "李克强", "Café\u{301} Noir"]);
        for e in &entities {
            assert_eq!(&text[e.span.byte_start..e.span.byte_end], e.text);
            assert_eq!(
                chars[e.span.start..e.span.end].iter().collect::<String>(),
                e.text
            );
        }
        assert_eq!((entities[1].span.start, entities[1].span.end), (13, 16));
        assert_eq!(
            (entities[1].span.byte_start, entities[1].span.byte_end),
            (20, 29)
        );
    }

    #[test]
    fn hyphenated_names_are_one_entity() {
        let text = "the China-Pakistan Economic Corridor and COVID-19 and Pakistan - China";
        let labels = [
            "O", "B-ORG", "O", "B-ORG", "I-ORG", "I-ORG", "O", "B-MISC", "O", "B-MISC", "O",
            "B-LOC", "O", "B-LOC",
        ];
        let got = merged(text, &labels);
        assert_eq!(
            got,
            pairs(&[
                ("China-Pakistan Economic Corridor", "ORG"),
                ("COVID-19", "MISC"),
                ("Pakistan", "LOC"),
                ("China", "LOC")
            ])
        );
    }

    #[test]
    fn spans_never_split_a_grapheme_cluster() {
        // An uncased tokenizer reports "cafe" for "café" written with a combining accent,
        // and a word inside an emoji ZWJ sequence.
        let text = "Cafe\u{301} 👩\u{200d}🚀 crew";
        let words = vec![
            WordTag {
                start: 0,
                end: 4,
                label: "B-ORG".into(),
                score: 0.9,
            },
            WordTag {
                start: 6,
                end: 7,
                label: "B-MISC".into(),
                score: 0.9,
            },
        ];
        let got: Vec<String> = merge(text, &words).into_iter().map(|e| e.text).collect();
        assert_eq!(got, ["Cafe\u{301}", "👩\u{200d}🚀"]);
    }

    #[test]
    fn scores_are_averaged_and_bad_offsets_ignored() {
        let text = "Imran Khan";
        let words = vec![
            WordTag {
                start: 0,
                end: 5,
                label: "B-PER".into(),
                score: 0.9,
            },
            WordTag {
                start: 6,
                end: 10,
                label: "I-PER".into(),
                score: 0.7,
            },
            WordTag {
                start: 8,
                end: 99,
                label: "B-LOC".into(),
                score: 1.0,
            },
        ];
        let e = merge(text, &words);
        assert_eq!(e.len(), 1);
        assert!((e[0].score - 0.8).abs() < 1e-6);
        assert!(merge("", &words).is_empty());
    }
}
