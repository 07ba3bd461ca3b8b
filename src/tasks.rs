//! What gist does with an article, in gist's own types: the key-point and entity
//! pipelines that run on the model thread, composed from the pure text functions and the
//! [`Engine`]. The gRPC service and the CLI both call exactly these.

use serde::Serialize;

use crate::engine::{Engine, Generation};
use crate::error::{Error, Result};
use crate::text::entities::{self, Entity};
use crate::text::offsets::Span;
use crate::text::rank::{self, Candidate, RankWeights};
use crate::text::sentences;

/// How a summary is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Mode {
    /// Abstractive when a summarization model is loaded, else extractive.
    Auto,
    /// Sentences of the input, ranked with the encoder.
    Extractive,
    /// Written by the summarization model.
    Abstractive,
}

/// A validated summarization request.
#[derive(Debug, Clone, PartialEq)]
pub struct SummarizeJob {
    /// The article.
    pub text: String,
    /// Requested mode.
    pub mode: Mode,
    /// Maximum number of key points (≥ 1).
    pub max_key_points: usize,
    /// Decoding settings for abstractive mode.
    pub generation: Generation,
}

/// A validated entity request.
#[derive(Debug, Clone, PartialEq)]
pub struct EntitiesJob {
    /// The text.
    pub text: String,
    /// Entities scoring below this are dropped.
    pub min_score: f32,
    /// Keep only these labels; empty keeps all.
    pub labels: Vec<String>,
}

/// One key point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyPoint {
    /// The sentence (extractive: exactly the input slice of `span`).
    pub text: String,
    /// Where it is in the input (extractive only).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub span: Option<Span>,
    /// Relevance in [0, 1] (0 for abstractive key points).
    pub score: f32,
}

/// The result of summarization.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Readable summary text.
    pub summary: String,
    /// Key points in document order (extractive) or generation order (abstractive).
    pub key_points: Vec<KeyPoint>,
    /// The mode actually used (never `Auto`).
    pub mode: Mode,
    /// The model that ranked or wrote the key points.
    pub model: String,
    /// Sentences the article was split into.
    pub sentence_count: usize,
    /// Model tokens of the input.
    pub input_tokens: usize,
    /// True when some of the input was not seen by the model.
    pub truncated: bool,
}

/// The result of entity extraction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entities {
    /// Entities in order of their start offset.
    pub entities: Vec<Entity>,
    /// The NER model used.
    pub model: String,
    /// Model tokens of the input.
    pub input_tokens: usize,
}

/// Summarize one article.
///
/// # Errors
/// [`Error::FailedPrecondition`] for ABSTRACTIVE without a summarization model;
/// [`Error::Unavailable`] without an encoder for extractive mode; model errors.
pub fn summarize(engine: &mut dyn Engine, job: &SummarizeJob) -> Result<Summary> {
    let info = engine.info().clone();
    let mode = match job.mode {
        Mode::Auto if info.summarizer.is_some() => Mode::Abstractive,
        Mode::Auto => Mode::Extractive,
        other => other,
    };
    let all = sentences::split(&job.text);
    if mode == Mode::Abstractive {
        let model = info.summarizer.ok_or_else(|| {
            Error::FailedPrecondition(crate::engine::rust_bert::NO_SUMMARIZER.into())
        })?;
        // Boilerplate and datelines are left out of what the model reads.
        let content: Vec<&str> = all
            .iter()
            .filter(|s| !s.boilerplate)
            .map(|s| s.span.slice(&job.text))
            .collect();
        let input = if content.is_empty() {
            job.text.trim().to_string()
        } else {
            content.join(" ")
        };
        let generated = engine
            .generate(&[&input], &job.generation)?
            .pop()
            .ok_or_else(|| Error::Internal("no summary generated".into()))?;
        let key_points = sentences::split(&generated.text)
            .into_iter()
            .map(|s| KeyPoint {
                text: s.span.slice(&generated.text).to_string(),
                span: None,
                score: 0.0,
            })
            .take(job.max_key_points)
            .collect();
        return Ok(Summary {
            summary: generated.text,
            key_points,
            mode,
            model: model.name,
            sentence_count: all.len(),
            input_tokens: generated.input_tokens,
            truncated: generated.truncated,
        });
    }

    let model = info.encoder.ok_or_else(|| {
        Error::Unavailable(
            "no sentence encoder is configured: add [encoder] to models/models.toml".into(),
        )
    })?;
    let content: Vec<&sentences::Sentence> = all.iter().filter(|s| !s.boilerplate).collect();
    // A text made only of short fragments still gets key points.
    let candidates: Vec<&sentences::Sentence> = if content.is_empty() {
        all.iter().collect()
    } else {
        content
    };
    let texts: Vec<&str> = candidates.iter().map(|s| s.span.slice(&job.text)).collect();
    let embeddings = if texts.is_empty() {
        Vec::new()
    } else {
        engine.embed(&texts)?
    };
    if embeddings.len() != texts.len() {
        return Err(Error::Internal(format!(
            "{} embeddings for {} sentences",
            embeddings.len(),
            texts.len()
        )));
    }
    let ranked: Vec<Candidate> = embeddings
        .iter()
        .zip(&texts)
        .enumerate()
        .map(|(position, (e, t))| Candidate {
            embedding: &e.vector,
            position,
            words: t.split_whitespace().count(),
        })
        .collect();
    let key_points: Vec<KeyPoint> =
        rank::select(&ranked, job.max_key_points, &RankWeights::default())
            .into_iter()
            .map(|(i, score)| KeyPoint {
                text: texts[i].to_string(),
                span: Some(candidates[i].span),
                score,
            })
            .collect();
    Ok(Summary {
        summary: key_points
            .iter()
            .map(|k| k.text.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        key_points,
        mode,
        model: model.name,
        sentence_count: all.len(),
        input_tokens: embeddings.iter().map(|e| e.tokens).sum(),
        truncated: embeddings.iter().any(|e| e.truncated),
    })
}

/// Extract the named entities of one text.
///
/// # Errors
/// [`Error::Unavailable`] without a NER model; model errors.
pub fn extract_entities(engine: &mut dyn Engine, job: &EntitiesJob) -> Result<Entities> {
    extract_entities_many(engine, std::slice::from_ref(job))?
        .pop()
        .ok_or_else(|| Error::Internal("no entities returned".into()))
}

/// Extract the named entities of several texts in shared forward passes.
///
/// # Errors
/// [`Error::Unavailable`] without a NER model; model errors.
pub fn extract_entities_many(
    engine: &mut dyn Engine,
    jobs: &[EntitiesJob],
) -> Result<Vec<Entities>> {
    let model = engine
        .info()
        .ner
        .clone()
        .ok_or_else(|| Error::Unavailable(crate::engine::rust_bert::NO_NER.into()))?;
    let texts: Vec<&str> = jobs.iter().map(|j| j.text.as_str()).collect();
    let tagged = engine.tag(&texts)?;
    if tagged.len() != jobs.len() {
        return Err(Error::Internal(format!(
            "{} tag lists for {} texts",
            tagged.len(),
            jobs.len()
        )));
    }
    Ok(jobs
        .iter()
        .zip(tagged)
        .map(|(job, tagged)| Entities {
            entities: entities::merge(&job.text, &tagged.words)
                .into_iter()
                .filter(|e| e.score >= job.min_score)
                .filter(|e| job.labels.is_empty() || job.labels.contains(&e.label))
                .collect(),
            model: model.name.clone(),
            input_tokens: tagged.tokens,
        })
        .collect())
}
