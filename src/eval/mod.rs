//! Evaluation with the field's standard scores, run through gist's own pipelines:
//! entity-level precision/recall/F1 (the `seqeval` definition) for NER on CoNLL files, and
//! ROUGE (the `rouge-score` definition) for key points, beside the Lead-3 baseline.

pub mod ner;
pub mod porter;
pub mod rouge;
pub mod summarize;
