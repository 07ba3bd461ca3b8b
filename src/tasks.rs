//! What gist does with an article, in gist's own types: the key-point and entity
//! pipelines that run on the model thread, composed from the pure text functions and the
//! [`Engine`]. The gRPC service and the CLI both call exactly these.

use serde::Serialize;

use crate::engine::{Embedding, Engine, EngineInfo, Generation, Role};
use crate::error::{Error, Result};
use crate::text::entities::{self, Entity};
use crate::text::offsets::Span;
use crate::text::rank::{self, Candidate, RankWeights};
use crate::text::{chunks, mentions, sentences};

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

impl EntitiesJob {
    /// Does the request's filter (`min_score`, `labels`) keep this entity?
    pub fn keeps(&self, e: &Entity) -> bool {
        e.score >= self.min_score && (self.labels.is_empty() || self.labels.contains(&e.label))
    }
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
    /// Pieces the input was summarized in (abstractive inputs longer than the model
    /// window are summarized chunk by chunk, then the chunk summaries together); 1 for
    /// extractive summaries.
    pub chunks: usize,
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

/// A validated Analyze request: both tasks on one text.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzeJob {
    /// Summary settings (its `text` is the article).
    pub summarize: SummarizeJob,
    /// Entity settings (same text).
    pub entities: EntitiesJob,
}

/// An entity named in the summary, matched to its mentions in the source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryEntity {
    /// The entity; its offsets are in the summary text.
    pub entity: Entity,
    /// Whole-word occurrences of the entity's text in the source.
    pub mentions: Vec<Span>,
    /// True when the source mentions it at least once.
    pub supported: bool,
}

/// The result of Analyze.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// The summary.
    pub summary: Summary,
    /// The source's entities.
    pub entities: Entities,
    /// Entities named in the summary text, each matched to the source.
    pub summary_entities: Vec<SummaryEntity>,
}

/// Summarize one article.
///
/// # Errors
/// [`Error::FailedPrecondition`] for ABSTRACTIVE without a summarization model;
/// [`Error::Unavailable`] without an encoder for extractive mode; model errors.
pub fn summarize(engine: &mut dyn Engine, job: &SummarizeJob) -> Result<Summary> {
    summarize_many(engine, &[job], &|_| true)
        .pop()
        .unwrap_or_else(|| Err(Error::Internal("no summary returned".into())))
}

/// Summarize several articles: the sentences of every extractive job are embedded in
/// shared forward passes; abstractive jobs run one piece at a time and stop early when
/// `wanted(i)` turns false (deadline passed or caller gone). One result per job.
pub fn summarize_many(
    engine: &mut dyn Engine,
    jobs: &[&SummarizeJob],
    wanted: &dyn Fn(usize) -> bool,
) -> Vec<Result<Summary>> {
    let info = engine.info().clone();
    let mut results: Vec<Option<Result<Summary>>> = (0..jobs.len()).map(|_| None).collect();
    let mut extractive: Vec<(usize, Extractive<'_>)> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let abstractive = match job.mode {
            Mode::Auto => info.summarizer.is_some(),
            Mode::Abstractive => true,
            Mode::Extractive => false,
        };
        if abstractive {
            results[i] = Some(summarize_abstractive(engine, job, &|| wanted(i)));
        } else {
            match Extractive::prepare(job, &info) {
                Ok(prepared) => extractive.push((i, prepared)),
                Err(err) => results[i] = Some(Err(err)),
            }
        }
    }
    if !extractive.is_empty() {
        let texts: Vec<&str> = extractive
            .iter()
            .flat_map(|(_, p)| p.texts.iter().copied())
            .collect();
        let embedded = if texts.is_empty() {
            Ok(Vec::new())
        } else {
            engine.embed(&texts)
        };
        match embedded {
            Ok(all) if all.len() == texts.len() => {
                let mut all = all.into_iter();
                for (i, prepared) in extractive {
                    let mine: Vec<Embedding> = all.by_ref().take(prepared.texts.len()).collect();
                    results[i] = Some(Ok(prepared.rank(jobs[i], mine)));
                }
            }
            Ok(all) => {
                for (i, _) in extractive {
                    results[i] = Some(Err(Error::Internal(format!(
                        "{} embeddings for {} sentences",
                        all.len(),
                        texts.len()
                    ))));
                }
            }
            // A batch that fails runs again one job at a time, so one bad input fails alone.
            Err(_) if extractive.len() > 1 => {
                for (i, prepared) in extractive {
                    results[i] = Some(
                        engine
                            .embed(&prepared.texts)
                            .map(|mine| prepared.rank(jobs[i], mine)),
                    );
                }
            }
            Err(err) => {
                for (i, _) in extractive {
                    results[i] = Some(Err(Error::Internal(crate::error::error_chain(&err))));
                }
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::Internal("job left unanswered".into()))))
        .collect()
}

/// An extractive job split into candidate sentences, ready for the encoder.
struct Extractive<'a> {
    model: String,
    all: Vec<sentences::Sentence>,
    candidates: Vec<sentences::Sentence>,
    texts: Vec<&'a str>,
}

impl<'a> Extractive<'a> {
    fn prepare(job: &'a SummarizeJob, info: &EngineInfo) -> Result<Self> {
        let model = info.encoder.as_ref().ok_or_else(|| {
            Error::Unavailable(
                "no sentence encoder is configured: add [encoder] to models/models.toml".into(),
            )
        })?;
        let all = sentences::split(&job.text);
        let content: Vec<sentences::Sentence> =
            all.iter().filter(|s| !s.boilerplate).cloned().collect();
        // A text made only of short fragments still gets key points.
        let candidates = if content.is_empty() {
            all.clone()
        } else {
            content
        };
        let texts = candidates.iter().map(|s| s.span.slice(&job.text)).collect();
        Ok(Extractive {
            model: model.name.clone(),
            all,
            candidates,
            texts,
        })
    }

    fn rank(self, job: &SummarizeJob, embeddings: Vec<Embedding>) -> Summary {
        let ranked: Vec<Candidate> = embeddings
            .iter()
            .zip(&self.texts)
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
                    text: self.texts[i].to_string(),
                    span: Some(self.candidates[i].span),
                    score,
                })
                .collect();
        Summary {
            summary: key_points
                .iter()
                .map(|k| k.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            key_points,
            mode: Mode::Extractive,
            model: self.model,
            sentence_count: self.all.len(),
            input_tokens: embeddings.iter().map(|e| e.tokens).sum(),
            truncated: embeddings.iter().any(|e| e.truncated),
            chunks: 1,
        }
    }
}

/// Summary rounds before the rest is cut (each round shrinks the text by the ratio of the
/// window to the summary length, so real articles need one or two).
const MAX_REDUCE_ROUNDS: usize = 4;

/// Tokens of the summarizer window kept free for special tokens and task prefixes.
const WINDOW_MARGIN: usize = 8;

/// Abstractive summary; inputs longer than the model window are summarized chunk by chunk
/// (sentence-aligned) and the joined chunk summaries summarized again (map-reduce).
fn summarize_abstractive(
    engine: &mut dyn Engine,
    job: &SummarizeJob,
    wanted: &dyn Fn() -> bool,
) -> Result<Summary> {
    let info = engine.info().clone();
    let model = info
        .summarizer
        .ok_or_else(|| Error::FailedPrecondition(crate::engine::rust_bert::NO_SUMMARIZER.into()))?;
    let all = sentences::split(&job.text);
    // Boilerplate and datelines are left out of what the model reads.
    let mut content: Vec<&str> = all
        .iter()
        .filter(|s| !s.boilerplate)
        .map(|s| s.span.slice(&job.text))
        .collect();
    if content.is_empty() {
        content.push(job.text.trim());
    }
    let window = model
        .max_input_tokens
        .saturating_sub(WINDOW_MARGIN)
        .max(WINDOW_MARGIN);
    let counts = engine.count_tokens(Role::Summarizer, &content)?;
    let input_tokens = counts.iter().sum();
    let mut truncated = counts.iter().any(|&n| n > window);
    let mut pieces = chunks::pack(&content, &counts, window);
    let chunk_count = pieces.len();
    let mut rounds = 0;
    let text = loop {
        if !wanted() {
            return Err(Error::Cancelled(
                "the caller no longer waits for this summary".into(),
            ));
        }
        if pieces.len() == 1 || rounds == MAX_REDUCE_ROUNDS {
            if pieces.len() > 1 {
                truncated = true;
                pieces.truncate(1);
            }
            let generated = generate_one(engine, &pieces[0], &job.generation)?;
            truncated |= generated.truncated;
            break generated.text;
        }
        // Map: one chunk at a time, so the work can stop between chunks.
        let mut summaries: Vec<String> = Vec::with_capacity(pieces.len());
        for piece in &pieces {
            if !wanted() {
                return Err(Error::Cancelled(
                    "the caller no longer waits for this summary".into(),
                ));
            }
            let generated = generate_one(engine, piece, &job.generation)?;
            truncated |= generated.truncated;
            summaries.push(generated.text);
        }
        // Reduce: the chunk summaries, in order, are the next round's input.
        let parts: Vec<&str> = summaries.iter().map(String::as_str).collect();
        let counts = engine.count_tokens(Role::Summarizer, &parts)?;
        pieces = chunks::pack(&parts, &counts, window);
        rounds += 1;
    };
    let key_points = sentences::split(&text)
        .into_iter()
        .map(|s| KeyPoint {
            text: s.span.slice(&text).to_string(),
            span: None,
            score: 0.0,
        })
        .take(job.max_key_points)
        .collect();
    Ok(Summary {
        summary: text,
        key_points,
        mode: Mode::Abstractive,
        model: model.name,
        sentence_count: all.len(),
        input_tokens,
        truncated,
        chunks: chunk_count,
    })
}

fn generate_one(
    engine: &mut dyn Engine,
    text: &str,
    generation: &crate::engine::Generation,
) -> Result<crate::engine::Generated> {
    engine
        .generate(&[text], generation)?
        .pop()
        .ok_or_else(|| Error::Internal("no summary generated".into()))
}

/// Extract the named entities of one text.
///
/// # Errors
/// [`Error::Unavailable`] without a NER model; model errors.
pub fn extract_entities(engine: &mut dyn Engine, job: &EntitiesJob) -> Result<Entities> {
    extract_entities_many(engine, &[job])?
        .pop()
        .ok_or_else(|| Error::Internal("no entities returned".into()))
}

/// Extract the named entities of several texts in shared forward passes.
///
/// # Errors
/// [`Error::Unavailable`] without a NER model; model errors.
pub fn extract_entities_many(
    engine: &mut dyn Engine,
    jobs: &[&EntitiesJob],
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
                .filter(|e| job.keeps(e))
                .collect(),
            model: model.name.clone(),
            input_tokens: tagged.tokens,
        })
        .collect())
}

/// Extract entities for each job: all texts share forward passes; if the batch fails, each
/// job runs alone so that one bad input fails alone.
pub fn extract_entities_each(
    engine: &mut dyn Engine,
    jobs: &[&EntitiesJob],
) -> Vec<Result<Entities>> {
    match extract_entities_many(engine, jobs) {
        Ok(all) => all.into_iter().map(Ok).collect(),
        Err(_) if jobs.len() > 1 => jobs
            .iter()
            .map(|job| extract_entities(engine, job))
            .collect(),
        Err(err) => vec![Err(err)],
    }
}

/// Summarize a text, extract its entities, and check the summary against the source: the
/// source and the summary are tagged in one forward pass, and every entity of the summary
/// is matched to its mentions in the source (none: `supported` is false).
///
/// # Errors
/// As [`summarize`] and [`extract_entities`]; [`Error::Cancelled`] when `wanted` turns
/// false between pieces of the work.
pub fn analyze(
    engine: &mut dyn Engine,
    job: &AnalyzeJob,
    wanted: &dyn Fn() -> bool,
) -> Result<Analysis> {
    let model = engine
        .info()
        .ner
        .clone()
        .ok_or_else(|| Error::Unavailable(crate::engine::rust_bert::NO_NER.into()))?;
    let summary = summarize_many(engine, &[&job.summarize], &|_| wanted())
        .pop()
        .unwrap_or_else(|| Err(Error::Internal("no summary returned".into())))?;
    if !wanted() {
        return Err(Error::Cancelled(
            "the caller no longer waits for this analysis".into(),
        ));
    }
    let source = job.summarize.text.as_str();
    let mut tagged = engine.tag(&[source, summary.summary.as_str()])?;
    if tagged.len() != 2 {
        return Err(Error::Internal(format!(
            "{} tag lists for 2 texts",
            tagged.len()
        )));
    }
    let summary_tags = tagged.pop().unwrap_or_else(|| unreachable!());
    let source_tags = tagged.pop().unwrap_or_else(|| unreachable!());
    let keep = |e: &Entity| job.entities.keeps(e);
    let entities = Entities {
        entities: entities::merge(source, &source_tags.words)
            .into_iter()
            .filter(keep)
            .collect(),
        model: model.name,
        input_tokens: source_tags.tokens,
    };
    let summary_entities = entities::merge(&summary.summary, &summary_tags.words)
        .into_iter()
        .filter(keep)
        .map(|entity| {
            let mentions = mentions::find(source, &entity.text);
            SummaryEntity {
                supported: !mentions.is_empty(),
                entity,
                mentions,
            }
        })
        .collect();
    Ok(Analysis {
        summary,
        entities,
        summary_entities,
    })
}
