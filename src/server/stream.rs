//! Bidirectional streams: many requests over one call, for batch jobs.
//!
//! Each request carries the client's `id`; the server answers it exactly once, in request
//! order, with the id and either the result or an [`pb::ItemError`]: one bad item never
//! ends the stream. Items enter the model queues through the same path as unary requests
//! (the same validation, the same admission rule: a full queue is an item error with a
//! retry hint).
//!
//! Flow control: a stream holds at most `--stream-max-in-flight` items (queued, running,
//! or answered but not yet sent). The next request is read only when one of those has
//! been sent, so a fast producer is held back by HTTP/2 flow control, not by the server's
//! memory. A client that goes away drops its items: those still queued never run.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures_util::stream::{FuturesOrdered, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Status, Streaming};
use tracing::Instrument;

use super::context::{request_id, stream_deadline, Call};
use super::state::AppState;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::pb::{self, StreamAnswer, StreamRequest};
use crate::worker::Done;

/// The answers of a stream, as tonic sends them.
pub type Answers<T> = ReceiverStream<Result<T, Status>>;

/// Answers computed but not yet taken by the transport; part of the in-flight bound.
const SEND_BUFFER: usize = 2;

/// The unary path of a stream's task: validate, queue, convert (with the stream's
/// deadline, if any); the result carries the input token count for metrics.
pub(crate) type Run<Req, Fut> = fn(AppState, Req, Call) -> Fut;

/// Counts an item in `gist_stream_items` from the moment it is read until its answer has
/// been handed to the transport (or dropped with the stream).
struct Held(Arc<Metrics>);

impl Held {
    fn new(metrics: &Arc<Metrics>) -> Held {
        metrics.stream_items(1);
        metrics.in_flight(1);
        Held(metrics.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.stream_items(-1);
        self.0.in_flight(-1);
    }
}

/// Open a stream: a task reads requests, runs them and sends the answers until the client
/// has closed its side and every item is answered (or the client has gone).
pub(crate) fn open<Req, Out, Fut>(
    state: &AppState,
    name: &'static str,
    run: Run<Req, Fut>,
    request: Request<Streaming<Req>>,
) -> Answers<Out>
where
    Req: StreamRequest + Send + 'static,
    Out: StreamAnswer + Send + 'static,
    Out::Result: Send + 'static,
    Fut: Future<Output = Result<Done<(Out::Result, usize)>, Error>> + Send + 'static,
{
    let (metadata, _, inbound) = request.into_parts();
    open_from(state, name, run, &metadata, inbound)
}

/// [`open`] for requests from any source (the gRPC stream's messages, or the lines of an
/// HTTP NDJSON body): the same ordering, bound, per-item errors and shutdown. A request
/// that cannot be read (an `Err` item) ends the stream with that status once the items
/// before it are answered.
pub(crate) fn open_from<Req, Out, Fut, In>(
    state: &AppState,
    name: &'static str,
    run: Run<Req, Fut>,
    metadata: &MetadataMap,
    inbound: In,
) -> Answers<Out>
where
    Req: StreamRequest + Send + 'static,
    Out: StreamAnswer + Send + 'static,
    Out::Result: Send + 'static,
    Fut: Future<Output = Result<Done<(Out::Result, usize)>, Error>> + Send + 'static,
    In: Stream<Item = Result<Req, Status>> + Send + Unpin + 'static,
{
    let stream_id = request_id(metadata);
    let call = Call::new(
        metadata,
        stream_deadline(metadata, Instant::now()),
        crate::worker::Lane::Batch,
    );
    let bound = state.stream_max_in_flight.max(1);
    let (tx, rx) = mpsc::channel(SEND_BUFFER);
    let span = tracing::info_span!("stream", otel.name = name, otel.kind = "server", rpc = name, request_id = %stream_id);
    super::trace::set_parent(&span, metadata);
    tokio::spawn(serve_items(state.clone(), name, run, inbound, call, bound, tx).instrument(span));
    ReceiverStream::new(rx)
}

async fn serve_items<Req, Out, Fut, In>(
    state: AppState,
    name: &'static str,
    run: Run<Req, Fut>,
    mut inbound: In,
    call: Call,
    bound: usize,
    tx: mpsc::Sender<Result<Out, Status>>,
) where
    Req: StreamRequest + Send + 'static,
    Out: StreamAnswer + Send + 'static,
    Out::Result: Send + 'static,
    Fut: Future<Output = Result<Done<(Out::Result, usize)>, Error>> + Send + 'static,
    In: Stream<Item = Result<Req, Status>> + Send + Unpin + 'static,
{
    let metrics = state.metrics.clone();
    metrics.streams_open(1);
    let mut closed = state.worker.closed();
    let mut pending = FuturesOrdered::new();
    let mut ids: HashSet<String> = HashSet::new();
    let (mut items, mut failed) = (0usize, 0usize);
    let mut reading = true;
    // Why the stream ends with a status instead of OK, once its items are answered.
    let mut end: Option<Status> = None;
    let client_gone = loop {
        if !reading && pending.is_empty() {
            break false;
        }
        tokio::select! {
            biased;
            _ = tx.closed() => break true,
            Some((id, outcome, held)) = pending.next(), if !pending.is_empty() => {
                ids.remove(&id);
                let outcome: Result<Out::Result, pb::ItemError> = outcome;
                failed += usize::from(outcome.is_err());
                let sent = tx.send(Ok(Out::new(id, outcome))).await;
                drop(held);
                if sent.is_err() {
                    break true;
                }
            }
            _ = shutting_down(&mut closed), if reading => {
                reading = false;
                end = Some(Status::unavailable(
                    "gist is shutting down and reads no more items of this stream: send the items not answered to another replica",
                ));
            }
            message = inbound.next(), if reading && pending.len() < bound => match message.transpose() {
                Ok(Some(req)) => {
                    items += 1;
                    let held = Held::new(&metrics);
                    let id = req.id().to_string();
                    let refusal = if id.is_empty() {
                        Some(Error::invalid("id", "is required in streams: every item needs the client's own id"))
                    } else if !ids.insert(id.clone()) {
                        Some(Error::invalid("id", format!("{id:?} is already in flight in this stream: ids must be unique")))
                    } else {
                        None
                    };
                    let (state, metrics, call) = (state.clone(), metrics.clone(), call.clone());
                    pending.push_back(async move {
                        let started = Instant::now();
                        let result = match refusal {
                            Some(err) => Err(err),
                            None => run(state, req, call).await,
                        };
                        let outcome = item_outcome(&metrics, name, &id, started, result);
                        (id, outcome, held)
                    });
                }
                Ok(None) => reading = false,
                Err(status) => {
                    reading = false;
                    end = Some(status);
                }
            },
        }
    };
    metrics.streams_open(-1);
    if client_gone {
        tracing::info!(
            items,
            failed,
            unanswered = pending.len(),
            "client went away: its items still queued are dropped"
        );
        return;
    }
    tracing::info!(items, failed, "stream answered");
    if let Some(status) = end {
        let _ = tx.send(Err(status)).await;
    }
}

/// Resolves once the worker stops accepting requests.
async fn shutting_down(closed: &mut tokio::sync::watch::Receiver<bool>) {
    if closed.wait_for(|closed| *closed).await.is_err() {
        // The worker is gone altogether: that is a shutdown too.
    }
}

/// Metrics and logs of one item, and its outcome as the stream carries it.
fn item_outcome<Res>(
    metrics: &Metrics,
    rpc: &'static str,
    id: &str,
    started: Instant,
    result: Result<Done<(Res, usize)>, Error>,
) -> Result<Res, pb::ItemError> {
    let elapsed = started.elapsed();
    match result {
        Ok(done) => {
            // The item's queue, batch and model spans, under the stream's span.
            super::trace::children(&tracing::Span::current(), id, &done.timing);
            let (value, tokens) = done.value;
            metrics.answered(rpc, tonic::Code::Ok, elapsed);
            metrics.tokens(rpc, tokens);
            Ok(value)
        }
        Err(err) => {
            let error = item_error(err);
            let code = tonic::Code::from_i32(error.code);
            metrics.answered(rpc, code, elapsed);
            tracing::debug!(code = pb::code_name(code), error = %error.message, "item failed");
            Err(error)
        }
    }
}

/// The unary status of an error, as an item error.
pub(crate) fn item_error(err: Error) -> pb::ItemError {
    let retry_after_ms = match &err {
        Error::Overloaded { retry_after, .. } => {
            u32::try_from(retry_after.as_millis()).unwrap_or(u32::MAX)
        }
        _ => 0,
    };
    let status = Status::from(err);
    pb::ItemError {
        code: status.code() as i32,
        message: status.message().to_string(),
        retry_after_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn item_errors_keep_the_unary_code_and_retry_hint() {
        let e = item_error(Error::Overloaded {
            queue: "entities",
            lane: "batch",
            capacity: 4,
            retry_after: Duration::from_millis(250),
        });
        assert_eq!(e.code, tonic::Code::ResourceExhausted as i32);
        assert_eq!(e.retry_after_ms, 250);
        assert!(
            e.message
                .contains("entities queue is full (4 batch requests"),
            "{}",
            e.message
        );
        let e = item_error(Error::invalid("text", "must not be empty"));
        assert_eq!(e.code, tonic::Code::InvalidArgument as i32);
        assert_eq!(e.message, "text: must not be empty");
        assert_eq!(e.retry_after_ms, 0);
    }
}
