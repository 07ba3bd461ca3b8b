//! What every RPC shares, whatever its task: the request id (the caller's
//! `x-request-id`, or a new UUID), the deadline (the caller's `grpc-timeout`, capped by the
//! server's `--request-timeout-ms`), a tracing span, metrics, and response metadata with
//! the id and where the time went (`x-queue-time-ms`, `x-inference-time-ms`,
//! `x-total-time-ms`, `x-batch-size`), on errors too.

use std::future::Future;
use std::time::{Duration, Instant};

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::state::AppState;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::worker::{Done, Timing};

/// What the transport says about how a request is to be run: its deadline, and the lane
/// it waits in unless its `priority` field says otherwise.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Call {
    /// The call's (or stream's) deadline.
    pub deadline: Option<Instant>,
    /// The default lane: interactive for unary calls, batch for stream items.
    pub lane: crate::worker::Lane,
    /// The `x-gist-priority` header, if sent (checked with the request's fields).
    pub priority_header: Option<String>,
}

impl Call {
    /// A call with this metadata, deadline and default lane.
    pub(crate) fn new(
        metadata: &MetadataMap,
        deadline: Option<Instant>,
        lane: crate::worker::Lane,
    ) -> Call {
        Call {
            deadline,
            lane,
            priority_header: metadata
                .get(super::rpc::PRIORITY_HEADER)
                .map(|v| v.to_str().unwrap_or("(not ASCII)").to_string()),
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
pub(crate) fn parse_grpc_timeout(value: &str) -> Option<Duration> {
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

/// The common path of every unary RPC; `run` validates, queues and converts.
pub(crate) async fn unary<Req, Msg, F, Fut>(
    state: &AppState,
    rpc: &'static str,
    request: Request<Req>,
    run: F,
) -> Result<Response<Msg>, Status>
where
    F: FnOnce(AppState, Req, Call) -> Fut,
    Fut: Future<Output = Result<Done<(Msg, usize)>, Error>>,
{
    let received = Instant::now();
    let id = request_id(request.metadata());
    let deadline = deadline(request.metadata(), state.request_timeout, received);
    let call = Call::new(
        request.metadata(),
        Some(deadline),
        crate::worker::Lane::Interactive,
    );
    let span = tracing::info_span!("rpc", otel.name = rpc, otel.kind = "server", rpc, request_id = %id, total_ms = tracing::field::Empty, queue_ms = tracing::field::Empty, code = tracing::field::Empty);
    super::trace::set_parent(&span, request.metadata());
    let req = request.into_inner();
    async move {
        state.metrics.in_flight(1);
        let _in_flight = InFlight(&state.metrics);
        let work = run(state.clone(), req, call);
        let result = match tokio::time::timeout_at(deadline.into(), work).await {
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
                super::trace::children(&span, &id, &done.timing);
                state.metrics.answered(rpc, tonic::Code::Ok, total);
                state.metrics.tokens(rpc, tokens);
                tracing::info!("answered");
                let mut response = Response::new(message);
                timing_metadata(response.metadata_mut(), &id, Some(done.timing), total);
                Ok(response)
            }
            Err(err) => {
                let mut status = Status::from(err);
                span.record("code", crate::pb::code_name(status.code()));
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
