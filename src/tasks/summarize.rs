//! Summarize: key points of an article, extractive (sentences of the article ranked with
//! the sentence encoder) or abstractive (written by a summarization model, map-reduce over
//! windows for long inputs).

use serde::Serialize;

use crate::engine::{Embedding, Engine, EngineInfo, Generated, Generation, Role};
use crate::error::{Error, Result};
use crate::text::offsets::Span;
use crate::text::rank::{self, Candidate, RankWeights};
use crate::text::{chunks, sentences};

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

impl SummarizeJob {
    /// The model whose tokenizer counts this job's text: the one that will read it.
    pub fn reader(&self, info: &EngineInfo) -> Role {
        match self.mode {
            Mode::Abstractive => Role::Summarizer,
            Mode::Auto if info.has(Role::Summarizer) => Role::Summarizer,
            _ => Role::Encoder,
        }
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
    /// Its version.
    pub model_version: String,
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

/// Summarize one article.
///
/// # Errors
/// [`Error::ModelMissing`] for ABSTRACTIVE without a summarization model, or without an
/// encoder for extractive mode; model errors.
pub fn summarize(engine: &mut dyn Engine, job: &SummarizeJob) -> Result<Summary> {
    run(engine, &[job], &|_| true)
        .pop()
        .unwrap_or_else(|| Err(Error::Internal("no summary returned".into())))
}

/// Summarize several articles: the sentences of every extractive job are embedded in
/// shared forward passes; abstractive jobs run one piece at a time and stop early when
/// `wanted(i)` turns false (deadline passed or caller gone). One result per job.
pub fn run(
    engine: &mut dyn Engine,
    jobs: &[&SummarizeJob],
    wanted: &dyn Fn(usize) -> bool,
) -> Vec<Result<Summary>> {
    let info = engine.info().clone();
    let mut results: Vec<Option<Result<Summary>>> = (0..jobs.len()).map(|_| None).collect();
    let mut extractive: Vec<(usize, Extractive<'_>)> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let abstractive = match job.mode {
            Mode::Auto => info.has(Role::Summarizer),
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
    model_version: String,
    all: Vec<sentences::Sentence>,
    candidates: Vec<sentences::Sentence>,
    texts: Vec<&'a str>,
}

impl<'a> Extractive<'a> {
    fn prepare(job: &'a SummarizeJob, info: &EngineInfo) -> Result<Self> {
        let model = info.require(Role::Encoder)?;
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
            model_version: model.version.clone(),
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
            model_version: self.model_version,
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
    let model = info.require(Role::Summarizer)?.clone();
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
        model_version: model.version,
        sentence_count: all.len(),
        input_tokens,
        truncated,
        chunks: chunk_count,
    })
}

fn generate_one(engine: &mut dyn Engine, text: &str, generation: &Generation) -> Result<Generated> {
    engine
        .generate(&[text], generation)?
        .pop()
        .ok_or_else(|| Error::Internal("no summary generated".into()))
}
