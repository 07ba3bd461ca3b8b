//! Evaluation with the field's standard scores, run through gist's own pipelines:
//! entity-level precision/recall/F1 (the `seqeval` definition) for NER on CoNLL files.

pub mod ner;
