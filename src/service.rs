//! The gRPC services: validate the request, hand it to the model thread, convert the
//! answer. Nothing here blocks or knows about rust-bert.

use std::time::Instant;

use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::api::{self, Limits};
use crate::pb;
use crate::worker::Worker;

/// What every service needs: the model thread and the request limits.
#[derive(Clone)]
pub struct AppState {
    /// Handle to the model thread.
    pub worker: Worker,
    /// Request limits.
    pub limits: Limits,
}

/// `gist.v1.Summarizer`.
#[derive(Clone)]
pub struct SummarizerService(pub AppState);

/// `gist.v1.EntityExtractor`.
#[derive(Clone)]
pub struct EntityExtractorService(pub AppState);

#[tonic::async_trait]
impl pb::summarizer_server::Summarizer for SummarizerService {
    async fn summarize(
        &self,
        request: Request<pb::SummarizeRequest>,
    ) -> Result<Response<pb::SummarizeResponse>, Status> {
        let req = request.into_inner();
        let span = tracing::info_span!("summarize", id = %req.id, text_chars = req.text.len(), mode = req.mode, infer_ms = tracing::field::Empty);
        async move {
            let started = Instant::now();
            let id = req.id.clone();
            let result = async {
                let job = api::summarize_job(req, &self.0.limits)?;
                self.0.worker.summarize(job).await
            }
            .await;
            tracing::Span::current().record("infer_ms", started.elapsed().as_millis() as u64);
            let summary = result
                .inspect_err(|e| tracing::info!(error = %e, "summarize refused or failed"))?;
            Ok(Response::new(api::summarize_response(id, summary)))
        }
        .instrument(span)
        .await
    }
}

#[tonic::async_trait]
impl pb::entity_extractor_server::EntityExtractor for EntityExtractorService {
    async fn extract_entities(
        &self,
        request: Request<pb::ExtractEntitiesRequest>,
    ) -> Result<Response<pb::ExtractEntitiesResponse>, Status> {
        let req = request.into_inner();
        let span = tracing::info_span!("extract_entities", id = %req.id, text_chars = req.text.len(), infer_ms = tracing::field::Empty);
        async move {
            let started = Instant::now();
            let id = req.id.clone();
            let result = async {
                let job = api::entities_job(req, &self.0.limits)?;
                self.0.worker.extract_entities(job).await
            }
            .await;
            tracing::Span::current().record("infer_ms", started.elapsed().as_millis() as u64);
            let entities = result.inspect_err(
                |e| tracing::info!(error = %e, "extract_entities refused or failed"),
            )?;
            Ok(Response::new(api::entities_response(id, entities)))
        }
        .instrument(span)
        .await
    }
}
