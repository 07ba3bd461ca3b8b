//! ExtractEntities: the named entities of a text, with exact offsets.

use serde::Serialize;

use crate::engine::{Engine, Role};
use crate::error::{Error, Result};
use crate::text::entities::{self, Entity};

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

/// Extract the named entities of one text.
///
/// # Errors
/// [`Error::ModelMissing`] without a NER model; model errors.
pub fn extract_entities(engine: &mut dyn Engine, job: &EntitiesJob) -> Result<Entities> {
    extract_many(engine, &[job])?
        .pop()
        .ok_or_else(|| Error::Internal("no entities returned".into()))
}

/// Extract the named entities of several texts in shared forward passes.
///
/// # Errors
/// [`Error::ModelMissing`] without a NER model; model errors.
fn extract_many(engine: &mut dyn Engine, jobs: &[&EntitiesJob]) -> Result<Vec<Entities>> {
    let model = engine.info().require(Role::Ner)?.clone();
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
pub fn run(engine: &mut dyn Engine, jobs: &[&EntitiesJob]) -> Vec<Result<Entities>> {
    match extract_many(engine, jobs) {
        Ok(all) => all.into_iter().map(Ok).collect(),
        Err(_) if jobs.len() > 1 => jobs
            .iter()
            .map(|job| extract_entities(engine, job))
            .collect(),
        Err(err) => vec![Err(err)],
    }
}
