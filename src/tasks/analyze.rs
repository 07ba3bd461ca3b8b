//! Analyze: both tasks on one text, and the summary checked against the source.

use serde::Serialize;

use super::entities::{Entities, EntitiesJob};
use super::summarize::{self, SummarizeJob, Summary};
use crate::engine::{Engine, Role};
use crate::error::{Error, Result};
use crate::text::entities::{self, Entity};
use crate::text::mentions;
use crate::text::offsets::Span;

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

/// Summarize a text, extract its entities, and check the summary against the source: the
/// source and the summary are tagged in one forward pass, and every entity of the summary
/// is matched to its mentions in the source (none: `supported` is false).
///
/// # Errors
/// As [`summarize::summarize`] and [`super::entities::extract_entities`]; [`Error::Cancelled`] when `wanted` turns
/// false between pieces of the work.
pub fn analyze(
    engine: &mut dyn Engine,
    job: &AnalyzeJob,
    wanted: &dyn Fn() -> bool,
) -> Result<Analysis> {
    let model = engine.info().require(Role::Ner)?.clone();
    let summary = summarize::run(engine, &[&job.summarize], &|_| wanted())
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
    let entities = super::entities::of_words(
        &job.entities,
        &source_tags.words,
        &model,
        source_tags.tokens,
    );
    let summary_entities = entities::merge(&summary.summary, &summary_tags.words);
    let summary_entities = entities::capitalised(&summary.summary, summary_entities)
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

/// Analyze each job in turn (each tags its source and summary in one forward pass);
/// a job whose caller stopped waiting (`wanted(i)` false) is not run.
pub fn run(
    engine: &mut dyn Engine,
    jobs: &[&AnalyzeJob],
    wanted: &dyn Fn(usize) -> bool,
) -> Vec<Result<Analysis>> {
    jobs.iter()
        .enumerate()
        .map(|(i, job)| {
            if !wanted(i) {
                return Err(Error::Cancelled("dropped".into()));
            }
            analyze(engine, job, &|| wanted(i))
        })
        .collect()
}
