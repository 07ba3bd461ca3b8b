//! The gRPC services: validate the request, hand it to the model thread, convert the
//! answer. Nothing here blocks or knows about rust-bert.
//!
//! Every RPC goes through [`handle`], which gives each request an id (the caller's
//! `x-request-id`, or a new UUID), a deadline (the caller's `grpc-timeout`, capped by the
//! server's `--request-timeout-ms`), a tracing span, metrics, and response metadata with
//! the id and where the time went (`x-queue-time-ms`, `x-inference-time-ms`,
//! `x-total-time-ms`, `x-batch-size`), on errors too.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::api::{self, Limits};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::pb;
use crate::server::ServerArgs;
use crate::stream::{self, Answers, StreamRpc};
use crate::worker::{Done, Timing, Worker};

/// What every service needs.
#[derive(Clone)]
pub struct AppState {
    /// Handle to the model thread.
    pub worker: Worker,
    /// Request limits.
    pub limits: Limits,
    /// Metrics of this server.
    pub metrics: Arc<Metrics>,
    /// Deadline of requests that set none (and the cap of those that set a longer one).
    pub request_timeout: Duration,
    /// Most items one stream holds at a time.
    pub stream_max_in_flight: usize,
}

impl AppState {
    /// The state of a server with these settings.
    pub fn new(worker: Worker, limits: Limits, args: &ServerArgs) -> AppState {
        AppState {
            metrics: worker.metrics(),
            worker,
            limits,
            request_timeout: args.request_timeout(),
            stream_max_in_flight: args.stream_max_in_flight.max(1),
        }
    }
}

/// `gist.v1.Summarizer`.
#[derive(Clone)]
pub struct SummarizerService(pub AppState);

/// `gist.v1.EntityExtractor`.
#[derive(Clone)]
pub struct EntityExtractorService(pub AppState);

/// `gist.v1.Analyzer`.
#[derive(Clone)]
pub struct AnalyzerService(pub AppState);

#[tonic::async_trait]
impl pb::summarizer_server::Summarizer for SummarizerService {
    async fn summarize(
        &self,
        request: Request<pb::SummarizeRequest>,
    ) -> Result<Response<pb::SummarizeResponse>, Status> {
        let state = &self.0;
        handle(state, "Summarize", request, |req, deadline| {
            summarize(state.clone(), req, Some(deadline))
        })
        .await
    }

    type SummarizeStreamStream = Answers<pb::SummarizeStreamResponse>;

    async fn summarize_stream(
        &self,
        request: Request<Streaming<pb::SummarizeRequest>>,
    ) -> Result<Response<Self::SummarizeStreamStream>, Status> {
        let rpc = StreamRpc {
            name: "SummarizeStream",
            id: |req: &pb::SummarizeRequest| &req.id,
            run: summarize,
            answer: |id, outcome| pb::SummarizeStreamResponse {
                id,
                outcome: Some(match outcome {
                    Ok(result) => pb::summarize_stream_response::Outcome::Result(result),
                    Err(error) => pb::summarize_stream_response::Outcome::Error(error),
                }),
            },
        };
        Ok(Response::new(stream::open(&self.0, rpc, request)))
    }
}

#[tonic::async_trait]
impl pb::entity_extractor_server::EntityExtractor for EntityExtractorService {
    async fn extract_entities(
        &self,
        request: Request<pb::ExtractEntitiesRequest>,
    ) -> Result<Response<pb::ExtractEntitiesResponse>, Status> {
        let state = &self.0;
        handle(state, "ExtractEntities", request, |req, deadline| {
            extract_entities(state.clone(), req, Some(deadline))
        })
        .await
    }

    type ExtractEntitiesStreamStream = Answers<pb::ExtractEntitiesStreamResponse>;

    async fn extract_entities_stream(
        &self,
        request: Request<Streaming<pb::ExtractEntitiesRequest>>,
    ) -> Result<Response<Self::ExtractEntitiesStreamStream>, Status> {
        let rpc = StreamRpc {
            name: "ExtractEntitiesStream",
            id: |req: &pb::ExtractEntitiesRequest| &req.id,
            run: extract_entities,
            answer: |id, outcome| pb::ExtractEntitiesStreamResponse {
                id,
                outcome: Some(match outcome {
                    Ok(result) => pb::extract_entities_stream_response::Outcome::Result(result),
                    Err(error) => pb::extract_entities_stream_response::Outcome::Error(error),
                }),
            },
        };
        Ok(Response::new(stream::open(&self.0, rpc, request)))
    }
}

#[tonic::async_trait]
impl pb::analyzer_server::Analyzer for AnalyzerService {
    async fn analyze(
        &self,
        request: Request<pb::AnalyzeRequest>,
    ) -> Result<Response<pb::AnalyzeResponse>, Status> {
        let state = &self.0;
        handle(state, "Analyze", request, |req, deadline| {
            analyze(state.clone(), req, Some(deadline))
        })
        .await
    }

    type AnalyzeStreamStream = Answers<pb::AnalyzeStreamResponse>;

    async fn analyze_stream(
        &self,
        request: Request<Streaming<pb::AnalyzeRequest>>,
    ) -> Result<Response<Self::AnalyzeStreamStream>, Status> {
        let rpc = StreamRpc {
            name: "AnalyzeStream",
            id: |req: &pb::AnalyzeRequest| &req.id,
            run: analyze,
            answer: |id, outcome| pb::AnalyzeStreamResponse {
                id,
                outcome: Some(match outcome {
                    Ok(result) => pb::analyze_stream_response::Outcome::Result(result),
                    Err(error) => pb::analyze_stream_response::Outcome::Error(error),
                }),
            },
        };
        Ok(Response::new(stream::open(&self.0, rpc, request)))
    }
}

/// Validate, queue and convert one Summarize request; also each item of SummarizeStream.
/// The result carries the input token count for metrics.
pub async fn summarize(
    state: AppState,
    req: pb::SummarizeRequest,
    deadline: Option<Instant>,
) -> Result<Done<(pb::SummarizeResponse, usize)>, Error> {
    let id = req.id.clone();
    let job = api::summarize_job(req, &state.limits)?;
    let done = state.worker.summarize(job, deadline).await?;
    let tokens = done.value.input_tokens;
    Ok(done.map(|s| (api::summarize_response(id, s), tokens)))
}

/// One ExtractEntities request, as [`summarize`].
pub async fn extract_entities(
    state: AppState,
    req: pb::ExtractEntitiesRequest,
    deadline: Option<Instant>,
) -> Result<Done<(pb::ExtractEntitiesResponse, usize)>, Error> {
    let id = req.id.clone();
    let job = api::entities_job(req, &state.limits)?;
    let done = state.worker.extract_entities(job, deadline).await?;
    let tokens = done.value.input_tokens;
    Ok(done.map(|e| (api::entities_response(id, e), tokens)))
}

/// One Analyze request, as [`summarize`].
pub async fn analyze(
    state: AppState,
    req: pb::AnalyzeRequest,
    deadline: Option<Instant>,
) -> Result<Done<(pb::AnalyzeResponse, usize)>, Error> {
    let id = req.id.clone();
    let job = api::analyze_job(req, &state.limits)?;
    let done = state.worker.analyze(job, deadline).await?;
    let tokens = done.value.summary.input_tokens + done.value.entities.input_tokens;
    Ok(done.map(|a| (api::analyze_response(id, a), tokens)))
}

impl<T> Done<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Done<U> {
        Done {
            value: f(self.value),
            timing: self.timing,
        }
    }
}

/// Longest accepted `x-request-id`; longer ones are replaced by a new id.
const MAX_REQUEST_ID: usize = 128;

/// The caller's request id when it is short printable ASCII, else a new UUID.
pub(crate) fn request_id(metadata: &MetadataMap) -> String {
    metadata
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|id| {
            !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The `grpc-timeout` header: digits and a unit (H, M, S, m, u, n), per the gRPC spec.
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The request's deadline: the caller's timeout, at most the server's.
///
/// gist answers a moment before the caller's deadline (5 % of it, 1–20 ms): tonic's
/// transport enforces `grpc-timeout` too, and would answer CANCELLED "Timeout expired"
/// where the gRPC spec (and every client's retry policy) expects DEADLINE_EXCEEDED.
fn deadline(metadata: &MetadataMap, server_timeout: Duration, received: Instant) -> Instant {
    let client = metadata
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .map(early);
    received + client.map_or(server_timeout, |c| c.min(server_timeout))
}

/// The deadline of a stream: the caller's timeout (answered early as in [`deadline`]), or
/// none. Streams of batch jobs run as long as they have items, so the server's
/// `--request-timeout-ms` does not apply to them.
pub(crate) fn stream_deadline(metadata: &MetadataMap, received: Instant) -> Option<Instant> {
    metadata
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .map(|c| received + early(c))
}

/// A client's timeout less the margin gist answers early by (5 %, 1–20 ms).
fn early(timeout: Duration) -> Duration {
    timeout
        .saturating_sub((timeout / 20).clamp(Duration::from_millis(1), Duration::from_millis(20)))
}

fn insert(metadata: &mut MetadataMap, key: &'static str, value: &str) {
    if let Ok(value) = MetadataValue::try_from(value) {
        metadata.insert(key, value);
    }
}

fn timing_metadata(metadata: &mut MetadataMap, id: &str, timing: Option<Timing>, total: Duration) {
    insert(metadata, "x-request-id", id);
    insert(metadata, "x-total-time-ms", &total.as_millis().to_string());
    if let Some(t) = timing {
        insert(
            metadata,
            "x-queue-time-ms",
            &t.queue.as_millis().to_string(),
        );
        insert(
            metadata,
            "x-inference-time-ms",
            &t.inference.as_millis().to_string(),
        );
        insert(metadata, "x-batch-size", &t.batch_size.to_string());
    }
}

/// Decrements the in-flight gauge however the request ends (a client that goes away
/// drops the handler's future).
struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight(-1);
    }
}

/// The common path of every RPC; `run` validates, queues and converts.
async fn handle<Req, Msg, F, Fut>(
    state: &AppState,
    rpc: &'static str,
    request: Request<Req>,
    run: F,
) -> Result<Response<Msg>, Status>
where
    F: FnOnce(Req, Instant) -> Fut,
    Fut: Future<Output = Result<Done<(Msg, usize)>, Error>>,
{
    let received = Instant::now();
    let id = request_id(request.metadata());
    let deadline = deadline(request.metadata(), state.request_timeout, received);
    let req = request.into_inner();
    let span = tracing::info_span!("rpc", rpc, request_id = %id, total_ms = tracing::field::Empty, queue_ms = tracing::field::Empty, code = tracing::field::Empty);
    async move {
        state.metrics.in_flight(1);
        let _in_flight = InFlight(&state.metrics);
        let result = match tokio::time::timeout_at(deadline.into(), run(req, deadline)).await {
            Ok(result) => result,
            Err(_) => Err(Error::DeadlineExceeded(format!(
                "the deadline ({} ms) passed before the answer was ready",
                (deadline - received).as_millis()
            ))),
        };
        let total = received.elapsed();
        let span = tracing::Span::current();
        span.record("total_ms", total.as_millis() as u64);
        match result {
            Ok(done) => {
                let (message, tokens) = done.value;
                span.record("queue_ms", done.timing.queue.as_millis() as u64);
                span.record("code", "OK");
                state.metrics.answered(rpc, tonic::Code::Ok, total);
                state.metrics.tokens(rpc, tokens);
                tracing::info!("answered");
                let mut response = Response::new(message);
                timing_metadata(response.metadata_mut(), &id, Some(done.timing), total);
                Ok(response)
            }
            Err(err) => {
                let mut status = Status::from(err);
                span.record("code", crate::metrics::code_name(status.code()));
                state.metrics.answered(rpc, status.code(), total);
                tracing::info!(error = %status.message(), "refused or failed");
                timing_metadata(status.metadata_mut(), &id, None, total);
                Err(status)
            }
        }
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_per_spec() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
        assert_eq!(parse_grpc_timeout(""), None);
    }

    #[test]
    fn request_ids_are_kept_or_made() {
        let mut m = MetadataMap::new();
        m.insert("x-request-id", "abc-123".parse().unwrap());
        assert_eq!(request_id(&m), "abc-123");
        let mut m = MetadataMap::new();
        m.insert("x-request-id", "x".repeat(200).parse().unwrap());
        assert_eq!(request_id(&m).len(), 36);
        assert_eq!(request_id(&MetadataMap::new()).len(), 36);
    }
}
