//! ExtractEntities: the named entities of a text, with exact offsets.

use serde::Serialize;

use crate::engine::{Engine, ModelInfo, Role};
use crate::error::{Error, Result};
use crate::text::entities::{self, Entity, WordTag};
use crate::text::groups::{self, Group};
use crate::text::sentences;

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
    /// The distinct entities of the text (indices into `entities`), by salience.
    pub groups: Vec<Group>,
    /// The NER model used.
    pub model: String,
    /// Its version.
    pub model_version: String,
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
        .map(|(job, tagged)| of_words(job, &tagged.words, &model, tagged.tokens))
        .collect())
}

/// The entities of `job.text` from its tagged words: merged, without those on page
/// furniture (share-button rows), filtered as the job asks, and grouped.
pub(crate) fn of_words(
    job: &EntitiesJob,
    words: &[WordTag],
    model: &ModelInfo,
    tokens: usize,
) -> Entities {
    let furniture = sentences::furniture(&job.text);
    let entities: Vec<Entity> = entities::capitalised(&job.text, entities::merge(&job.text, words))
        .into_iter()
        .filter(|e| {
            !furniture
                .iter()
                .any(|f| f.start < e.span.end && e.span.start < f.end)
        })
        .filter(|e| job.keeps(e))
        .collect();
    Entities {
        groups: groups::group(&job.text, &entities),
        entities,
        model: model.name.clone(),
        model_version: model.version.clone(),
        input_tokens: tokens,
    }
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
