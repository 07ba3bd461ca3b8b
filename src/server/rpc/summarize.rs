//! `gist.v1.Summarizer`: Summarize and SummarizeStream.

use tonic::{Request, Response, Status, Streaming};

use super::{check_id, check_text, in_range, ticket, u32_of};
use crate::engine::Generation;
use crate::error::{Error, Result};
use crate::pb;
use crate::server::config::Limits;
use crate::server::context::{self, Call};
use crate::server::state::AppState;
use crate::server::stream::{self, Answers};
use crate::tasks::{Mode, SummarizeJob, Summary};
use crate::worker::Done;

/// Default number of key points.
pub const DEFAULT_KEY_POINTS: usize = 5;

/// The service.
#[derive(Clone)]
pub struct SummarizerService(pub AppState);

#[tonic::async_trait]
impl pb::summarizer_server::Summarizer for SummarizerService {
    async fn summarize(
        &self,
        request: Request<pb::SummarizeRequest>,
    ) -> Result<Response<pb::SummarizeResponse>, Status> {
        context::unary(&self.0, "Summarize", request, run).await
    }

    type SummarizeStreamStream = Answers<pb::SummarizeStreamResponse>;

    async fn summarize_stream(
        &self,
        request: Request<Streaming<pb::SummarizeRequest>>,
    ) -> Result<Response<Self::SummarizeStreamStream>, Status> {
        Ok(Response::new(stream::open(
            &self.0,
            "SummarizeStream",
            run,
            request,
        )))
    }
}

/// Validate, queue and convert one request (a unary call, or one item of a stream). The
/// result carries the input token count for metrics.
pub(crate) async fn run(
    state: AppState,
    req: pb::SummarizeRequest,
    call: Call,
) -> Result<Done<(pb::SummarizeResponse, usize)>, Error> {
    let id = req.id.clone();
    let ticket = ticket(&call, &req.model, req.priority)?;
    let job = job(req, &state.limits)?;
    let done = state.worker.submit(job, ticket).await?;
    let tokens = done.value.input_tokens;
    Ok(done.map(|s| (response(id, s), tokens)))
}

/// Validate a `SummarizeRequest`.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the field and the limit.
pub fn job(req: pb::SummarizeRequest, limits: &Limits) -> Result<SummarizeJob> {
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
    let d = Generation::default();
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

/// Convert a summary to its response message.
pub fn response(id: String, s: Summary) -> pb::SummarizeResponse {
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
                utf16_start: k.span.map(|s| u32_of(s.utf16_start)),
                utf16_end: k.span.map(|s| u32_of(s.utf16_end)),
                score: k.score,
            })
            .collect(),
        mode: match s.mode {
            Mode::Abstractive => pb::SummaryMode::Abstractive,
            Mode::Extractive | Mode::Auto => pb::SummaryMode::Extractive,
        } as i32,
        model: s.model,
        model_version: s.model_version,
        sentence_count: u32_of(s.sentence_count),
        input_tokens: u32_of(s.input_tokens),
        truncated: s.truncated,
        chunks: u32_of(s.chunks),
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
        let job = job(req("Some text."), &Limits::default()).unwrap();
        assert_eq!(job.mode, Mode::Auto);
        assert_eq!(job.max_key_points, 5);
        assert_eq!(job.generation, Generation::default());
    }

    #[test]
    fn text_limits_name_the_field_and_limit() {
        let limits = Limits {
            max_text_chars: 5,
            ..Default::default()
        };
        assert_eq!(
            message(job(req(" \n "), &limits).unwrap_err()),
            "text: must not be empty"
        );
        let m = message(job(req("abcdef"), &limits).unwrap_err());
        assert!(
            m.contains("text") && m.contains("6 characters") && m.contains("limit is 5"),
            "{m}"
        );
        // Five code points of four bytes each are within a five-character limit.
        assert!(job(req("🚀🚀🚀🚀🚀"), &limits).is_ok());
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
            let m = message(job(r, &limits).unwrap_err());
            assert!(m.starts_with(want), "{m:?} should start with {want:?}");
        }
    }
}
