//! The boundary between the public API (`gist.v1` messages) and gist's own types:
//! validation of requests against the server limits, and conversion of results.
//! Every rejection names the proto field and the limit.

use crate::engine::Generation;
use crate::error::{Error, Result};
use crate::pb;
use crate::tasks::{Analysis, AnalyzeJob, Entities, EntitiesJob, Mode, SummarizeJob, Summary};
use crate::text::entities::Entity;

/// Server-side limits on requests. Defaults are safe for a 2-core, 24 GiB machine.
#[derive(Debug, Clone, Copy, PartialEq, clap::Args, serde::Serialize)]
pub struct Limits {
    /// Longest accepted text, in Unicode code points.
    #[arg(long, env = "GIST_MAX_TEXT_CHARS", default_value_t = 100_000)]
    pub max_text_chars: usize,
    /// Most key points a request may ask for.
    #[arg(long, env = "GIST_MAX_KEY_POINTS", default_value_t = 20)]
    pub max_key_points: usize,
    /// Longest abstractive summary a request may ask for, in model tokens.
    #[arg(long, env = "GIST_MAX_GENERATION_TOKENS", default_value_t = 512)]
    pub max_generation_tokens: usize,
    /// Widest beam search a request may ask for.
    #[arg(long, env = "GIST_MAX_BEAMS", default_value_t = 8)]
    pub max_beams: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_text_chars: 100_000,
            max_key_points: 20,
            max_generation_tokens: 512,
            max_beams: 8,
        }
    }
}

/// Default number of key points.
pub const DEFAULT_KEY_POINTS: usize = 5;
/// Default decoding settings.
pub const DEFAULT_GENERATION: Generation = Generation {
    min_length: 10,
    max_length: 142,
    num_beams: 3,
    length_penalty: 1.0,
    no_repeat_ngram_size: 3,
};
/// Longest accepted client id, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Most labels in an entity filter.
pub const MAX_LABELS: usize = 32;

fn check_text(field: &'static str, text: &str, limits: &Limits) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    // Count no further than needed: the limit check must stay cheap for huge inputs.
    if text.len() > limits.max_text_chars && text.chars().nth(limits.max_text_chars).is_some() {
        return Err(Error::invalid(
            field,
            format!(
                "is {} characters long; the limit is {} (--max-text-chars)",
                text.chars().count(),
                limits.max_text_chars
            ),
        ));
    }
    Ok(())
}

fn check_id(id: &str) -> Result<()> {
    if id.len() > MAX_ID_BYTES {
        return Err(Error::invalid(
            "id",
            format!("is {} bytes long; the limit is {MAX_ID_BYTES}", id.len()),
        ));
    }
    Ok(())
}

fn in_range(field: &'static str, value: u32, max: usize, flag: &str) -> Result<usize> {
    let value = value as usize;
    if value > max {
        return Err(Error::invalid(
            field,
            format!("is {value}; the limit is {max} ({flag})"),
        ));
    }
    Ok(value)
}

/// Validate a `SummarizeRequest`.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the field and the limit.
pub fn summarize_job(req: pb::SummarizeRequest, limits: &Limits) -> Result<SummarizeJob> {
    check_text("text", &req.text, limits)?;
    check_id(&req.id)?;
    let mode = match pb::SummaryMode::try_from(req.mode) {
        Ok(pb::SummaryMode::Unspecified | pb::SummaryMode::Auto) => Mode::Auto,
        Ok(pb::SummaryMode::Extractive) => Mode::Extractive,
        Ok(pb::SummaryMode::Abstractive) => Mode::Abstractive,
        Err(_) => {
            return Err(Error::invalid(
                "mode",
                format!(
                    "unknown value {}; use AUTO, EXTRACTIVE or ABSTRACTIVE",
                    req.mode
                ),
            ))
        }
    };
    let max_key_points = match in_range(
        "max_key_points",
        req.max_key_points,
        limits.max_key_points,
        "--max-key-points",
    )? {
        0 => DEFAULT_KEY_POINTS.min(limits.max_key_points.max(1)),
        n => n,
    };
    let generation = generation(req.generation.unwrap_or_default(), limits)?;
    Ok(SummarizeJob {
        text: req.text,
        mode,
        max_key_points,
        generation,
    })
}

fn generation(g: pb::GenerationOptions, limits: &Limits) -> Result<Generation> {
    let d = DEFAULT_GENERATION;
    let or = |v: usize, default: usize| if v == 0 { default } else { v };
    let max_length = or(
        in_range(
            "generation.max_length",
            g.max_length,
            limits.max_generation_tokens,
            "--max-generation-tokens",
        )?,
        d.max_length.min(limits.max_generation_tokens),
    );
    let min_length = or(
        in_range(
            "generation.min_length",
            g.min_length,
            max_length,
            "generation.max_length",
        )?,
        d.min_length.min(max_length),
    );
    let num_beams = or(
        in_range(
            "generation.num_beams",
            g.num_beams,
            limits.max_beams,
            "--max-beams",
        )?,
        d.num_beams.min(limits.max_beams),
    );
    let no_repeat_ngram_size = or(
        in_range(
            "generation.no_repeat_ngram_size",
            g.no_repeat_ngram_size,
            10,
            "fixed",
        )?,
        d.no_repeat_ngram_size,
    );
    let length_penalty = g.length_penalty.unwrap_or(d.length_penalty);
    if !(0.0..=5.0).contains(&length_penalty) {
        return Err(Error::invalid(
            "generation.length_penalty",
            format!("is {length_penalty}; it must be in [0.0, 5.0]"),
        ));
    }
    Ok(Generation {
        min_length,
        max_length,
        num_beams,
        length_penalty,
        no_repeat_ngram_size,
    })
}

/// Validate an `ExtractEntitiesRequest`.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the field and the limit.
pub fn entities_job(req: pb::ExtractEntitiesRequest, limits: &Limits) -> Result<EntitiesJob> {
    check_text("text", &req.text, limits)?;
    check_id(&req.id)?;
    let (min_score, labels) = entity_filter(req.min_score, req.labels)?;
    Ok(EntitiesJob {
        text: req.text,
        min_score,
        labels,
    })
}

fn entity_filter(min_score: Option<f32>, labels: Vec<String>) -> Result<(f32, Vec<String>)> {
    let min_score = min_score.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&min_score) {
        return Err(Error::invalid(
            "min_score",
            format!("is {min_score}; it must be in [0.0, 1.0]"),
        ));
    }
    if labels.len() > MAX_LABELS {
        return Err(Error::invalid(
            "labels",
            format!("has {} entries; the limit is {MAX_LABELS}", labels.len()),
        ));
    }
    if labels.iter().any(|l| l.trim().is_empty()) {
        return Err(Error::invalid("labels", "must not contain empty labels"));
    }
    Ok((min_score, labels))
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Convert a summary to its response message.
pub fn summarize_response(id: String, s: Summary) -> pb::SummarizeResponse {
    pb::SummarizeResponse {
        id,
        summary: s.summary,
        key_points: s
            .key_points
            .into_iter()
            .map(|k| pb::KeyPoint {
                text: k.text,
                start: k.span.map(|s| u32_of(s.start)),
                end: k.span.map(|s| u32_of(s.end)),
                byte_start: k.span.map(|s| u32_of(s.byte_start)),
                byte_end: k.span.map(|s| u32_of(s.byte_end)),
                score: k.score,
            })
            .collect(),
        mode: match s.mode {
            Mode::Abstractive => pb::SummaryMode::Abstractive,
            Mode::Extractive | Mode::Auto => pb::SummaryMode::Extractive,
        } as i32,
        model: s.model,
        sentence_count: u32_of(s.sentence_count),
        input_tokens: u32_of(s.input_tokens),
        truncated: s.truncated,
        chunks: u32_of(s.chunks),
    }
}

fn entity_message(e: Entity) -> pb::Entity {
    pb::Entity {
        text: e.text,
        label: e.label,
        score: e.score,
        start: u32_of(e.span.start),
        end: u32_of(e.span.end),
        byte_start: u32_of(e.span.byte_start),
        byte_end: u32_of(e.span.byte_end),
    }
}

/// Validate an `AnalyzeRequest` with the rules of Summarize and ExtractEntities.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the field and the limit.
pub fn analyze_job(req: pb::AnalyzeRequest, limits: &Limits) -> Result<AnalyzeJob> {
    let (min_score, labels) = entity_filter(req.min_score, req.labels)?;
    let summarize = summarize_job(
        pb::SummarizeRequest {
            text: req.text,
            id: req.id,
            mode: req.mode,
            max_key_points: req.max_key_points,
            generation: req.generation,
        },
        limits,
    )?;
    let entities = EntitiesJob {
        text: summarize.text.clone(),
        min_score,
        labels,
    };
    Ok(AnalyzeJob {
        summarize,
        entities,
    })
}

/// Convert an analysis to its response message.
pub fn analyze_response(id: String, a: Analysis) -> pb::AnalyzeResponse {
    let unsupported = a.summary_entities.iter().filter(|e| !e.supported).count();
    pb::AnalyzeResponse {
        id,
        summary: Some(summarize_response(String::new(), a.summary)),
        entities: Some(entities_response(String::new(), a.entities)),
        summary_entities: a
            .summary_entities
            .into_iter()
            .map(|e| pb::SummaryEntity {
                entity: Some(entity_message(e.entity)),
                mentions: e
                    .mentions
                    .into_iter()
                    .map(|m| pb::Mention {
                        start: u32_of(m.start),
                        end: u32_of(m.end),
                        byte_start: u32_of(m.byte_start),
                        byte_end: u32_of(m.byte_end),
                    })
                    .collect(),
                supported: e.supported,
            })
            .collect(),
        unsupported_entities: u32_of(unsupported),
    }
}

/// Convert entities to their response message.
pub fn entities_response(id: String, e: Entities) -> pb::ExtractEntitiesResponse {
    pb::ExtractEntitiesResponse {
        id,
        entities: e.entities.into_iter().map(entity_message).collect(),
        model: e.model,
        input_tokens: u32_of(e.input_tokens),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> pb::SummarizeRequest {
        pb::SummarizeRequest {
            text: text.into(),
            ..Default::default()
        }
    }

    fn message(e: Error) -> String {
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
        e.to_string()
    }

    #[test]
    fn defaults_apply_to_unset_fields() {
        let job = summarize_job(req("Some text."), &Limits::default()).unwrap();
        assert_eq!(job.mode, Mode::Auto);
        assert_eq!(job.max_key_points, 5);
        assert_eq!(job.generation, DEFAULT_GENERATION);
    }

    #[test]
    fn text_limits_name_the_field_and_limit() {
        let limits = Limits {
            max_text_chars: 5,
            ..Default::default()
        };
        assert_eq!(
            message(summarize_job(req(" \n "), &limits).unwrap_err()),
            "text: must not be empty"
        );
        let m = message(summarize_job(req("abcdef"), &limits).unwrap_err());
        assert!(
            m.contains("text") && m.contains("6 characters") && m.contains("limit is 5"),
            "{m}"
        );
        // Five code points of four bytes each are within a five-character limit.
        assert!(summarize_job(req("🚀🚀🚀🚀🚀"), &limits).is_ok());
    }

    #[test]
    fn options_out_of_range_are_rejected() {
        let limits = Limits::default();
        let cases: Vec<(pb::SummarizeRequest, &str)> = vec![
            (
                pb::SummarizeRequest {
                    mode: 9,
                    ..req("t")
                },
                "mode: unknown value 9",
            ),
            (
                pb::SummarizeRequest {
                    max_key_points: 21,
                    ..req("t")
                },
                "max_key_points: is 21; the limit is 20",
            ),
            (
                pb::SummarizeRequest {
                    id: "x".repeat(300),
                    ..req("t")
                },
                "id: is 300 bytes",
            ),
            (
                pb::SummarizeRequest {
                    generation: Some(pb::GenerationOptions {
                        num_beams: 9,
                        ..Default::default()
                    }),
                    ..req("t")
                },
                "generation.num_beams: is 9; the limit is 8",
            ),
            (
                pb::SummarizeRequest {
                    generation: Some(pb::GenerationOptions {
                        max_length: 600,
                        ..Default::default()
                    }),
                    ..req("t")
                },
                "generation.max_length: is 600; the limit is 512",
            ),
            (
                pb::SummarizeRequest {
                    generation: Some(pb::GenerationOptions {
                        min_length: 50,
                        max_length: 40,
                        ..Default::default()
                    }),
                    ..req("t")
                },
                "generation.min_length: is 50; the limit is 40",
            ),
            (
                pb::SummarizeRequest {
                    generation: Some(pb::GenerationOptions {
                        length_penalty: Some(-1.0),
                        ..Default::default()
                    }),
                    ..req("t")
                },
                "generation.length_penalty: is -1",
            ),
            (
                pb::SummarizeRequest {
                    generation: Some(pb::GenerationOptions {
                        no_repeat_ngram_size: 11,
                        ..Default::default()
                    }),
                    ..req("t")
                },
                "generation.no_repeat_ngram_size: is 11; the limit is 10",
            ),
        ];
        for (r, want) in cases {
            let m = message(summarize_job(r, &limits).unwrap_err());
            assert!(m.starts_with(want), "{m:?} should start with {want:?}");
        }
    }

    #[test]
    fn entity_filters_are_checked() {
        let limits = Limits::default();
        let r = |min_score: Option<f32>, labels: Vec<&str>| pb::ExtractEntitiesRequest {
            text: "Imran Khan".into(),
            min_score,
            labels: labels.into_iter().map(String::from).collect(),
            ..Default::default()
        };
        assert!(
            message(entities_job(r(Some(1.5), vec![]), &limits).unwrap_err())
                .starts_with("min_score: is 1.5")
        );
        assert!(
            message(entities_job(r(None, vec![""]), &limits).unwrap_err())
                .starts_with("labels: must not")
        );
        assert!(
            message(entities_job(r(None, vec!["PER"; 33]), &limits).unwrap_err())
                .starts_with("labels: has 33")
        );
        let job = entities_job(r(Some(0.5), vec!["PER"]), &limits).unwrap();
        assert_eq!((job.min_score, job.labels), (0.5, vec!["PER".to_string()]));
    }
}
