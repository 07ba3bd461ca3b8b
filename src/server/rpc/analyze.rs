//! `gist.v1.Analyzer`: Analyze and AnalyzeStream.

use tonic::{Request, Response, Status, Streaming};

use super::{entities, summarize, ticket, u32_of};
use crate::error::{Error, Result};
use crate::pb;
use crate::server::config::Limits;
use crate::server::context::{self, Call};
use crate::server::state::AppState;
use crate::server::stream::{self, Answers};
use crate::tasks::{Analysis, AnalyzeJob, EntitiesJob};
use crate::worker::Done;

/// The service.
#[derive(Clone)]
pub struct AnalyzerService(pub AppState);

#[tonic::async_trait]
impl pb::analyzer_server::Analyzer for AnalyzerService {
    async fn analyze(
        &self,
        request: Request<pb::AnalyzeRequest>,
    ) -> Result<Response<pb::AnalyzeResponse>, Status> {
        context::unary(&self.0, "Analyze", request, run).await
    }

    type AnalyzeStreamStream = Answers<pb::AnalyzeStreamResponse>;

    async fn analyze_stream(
        &self,
        request: Request<Streaming<pb::AnalyzeRequest>>,
    ) -> Result<Response<Self::AnalyzeStreamStream>, Status> {
        Ok(Response::new(stream::open(
            &self.0,
            "AnalyzeStream",
            run,
            request,
        )))
    }
}

/// Validate, queue and convert one request (a unary call, or one item of a stream).
pub(crate) async fn run(
    state: AppState,
    req: pb::AnalyzeRequest,
    call: Call,
) -> Result<Done<(pb::AnalyzeResponse, usize)>, Error> {
    let id = req.id.clone();
    let ticket = ticket(&call, &req.model, req.priority)?;
    let job = job(req, &state.limits)?;
    let done = state.worker.submit(job, ticket).await?;
    let tokens = done.value.summary.input_tokens + done.value.entities.input_tokens;
    Ok(done.map(|a| (response(id, a), tokens)))
}

/// Validate an `AnalyzeRequest` with the rules of Summarize and ExtractEntities.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the field and the limit.
pub fn job(req: pb::AnalyzeRequest, limits: &Limits) -> Result<AnalyzeJob> {
    let (min_score, labels) = entities::filter(req.min_score, req.labels)?;
    let summarize = summarize::job(
        pb::SummarizeRequest {
            text: req.text,
            id: req.id,
            mode: req.mode,
            max_key_points: req.max_key_points,
            generation: req.generation,
            ..Default::default()
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
pub fn response(id: String, a: Analysis) -> pb::AnalyzeResponse {
    let unsupported = a.summary_entities.iter().filter(|e| !e.supported).count();
    pb::AnalyzeResponse {
        id,
        summary: Some(summarize::response(String::new(), a.summary)),
        entities: Some(entities::response(String::new(), a.entities)),
        summary_entities: a
            .summary_entities
            .into_iter()
            .map(|e| pb::SummaryEntity {
                entity: Some(entities::entity(e.entity)),
                mentions: e
                    .mentions
                    .into_iter()
                    .map(|m| pb::Mention {
                        start: u32_of(m.start),
                        end: u32_of(m.end),
                        byte_start: u32_of(m.byte_start),
                        byte_end: u32_of(m.byte_end),
                        utf16_start: u32_of(m.utf16_start),
                        utf16_end: u32_of(m.utf16_end),
                    })
                    .collect(),
                supported: e.supported,
            })
            .collect(),
        unsupported_entities: u32_of(unsupported),
    }
}
