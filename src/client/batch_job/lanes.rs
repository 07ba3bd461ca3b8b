//! Lanes: where a batch job's items run. A lane keeps one bidirectional stream open to one
//! endpoint, with up to `window` items outstanding, and reconnects when it breaks. Every
//! lane pulls work from the shared [`Ledger`] when it has room, so faster endpoints take
//! more (client-side load balancing), and an endpoint that goes down simply stops pulling
//! (failover).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status, Streaming};

use super::error_chain;
use super::ledger::{Ledger, Work};
use super::Options;
use crate::pb::{self, StreamAnswer};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One task's streaming RPC.
pub trait Rpc: Send + Sync + 'static {
    /// Request message.
    type Req: Send + 'static;
    /// Stream answer message.
    type Out: StreamAnswer<Result: serde::Serialize + Send + 'static> + Send + 'static;
    /// The request for one item.
    fn request(id: String, text: String, options: &Options) -> Self::Req;
    /// Open the stream.
    fn open(
        channel: Channel,
        requests: Request<ReceiverStream<Self::Req>>,
    ) -> BoxFuture<Result<Streaming<Self::Out>, Status>>;
}

/// `Summarizer/SummarizeStream`.
pub struct Summarize;

impl Rpc for Summarize {
    type Req = pb::SummarizeRequest;
    type Out = pb::SummarizeStreamResponse;

    fn request(id: String, text: String, o: &Options) -> Self::Req {
        pb::SummarizeRequest {
            text,
            id,
            mode: pb::SummaryMode::from(o.mode) as i32,
            max_key_points: o.max_key_points,
            generation: None,
            model: o.model.clone(),
            priority: pb::Priority::Unspecified as i32,
        }
    }

    fn open(
        channel: Channel,
        requests: Request<ReceiverStream<Self::Req>>,
    ) -> BoxFuture<Result<Streaming<Self::Out>, Status>> {
        Box::pin(async move {
            let mut client = pb::summarizer_client::SummarizerClient::new(channel)
                .max_decoding_message_size(usize::MAX);
            Ok(client.summarize_stream(requests).await?.into_inner())
        })
    }
}

/// `EntityExtractor/ExtractEntitiesStream`.
pub struct Entities;

impl Rpc for Entities {
    type Req = pb::ExtractEntitiesRequest;
    type Out = pb::ExtractEntitiesStreamResponse;

    fn request(id: String, text: String, o: &Options) -> Self::Req {
        pb::ExtractEntitiesRequest {
            text,
            id,
            min_score: o.min_score,
            labels: o.labels.clone(),
            model: o.model.clone(),
            priority: pb::Priority::Unspecified as i32,
        }
    }

    fn open(
        channel: Channel,
        requests: Request<ReceiverStream<Self::Req>>,
    ) -> BoxFuture<Result<Streaming<Self::Out>, Status>> {
        Box::pin(async move {
            let mut client = pb::entity_extractor_client::EntityExtractorClient::new(channel)
                .max_decoding_message_size(usize::MAX);
            Ok(client.extract_entities_stream(requests).await?.into_inner())
        })
    }
}

/// `Analyzer/AnalyzeStream`.
pub struct Analyze;

impl Rpc for Analyze {
    type Req = pb::AnalyzeRequest;
    type Out = pb::AnalyzeStreamResponse;

    fn request(id: String, text: String, o: &Options) -> Self::Req {
        pb::AnalyzeRequest {
            text,
            id,
            mode: pb::SummaryMode::from(o.mode) as i32,
            max_key_points: o.max_key_points,
            generation: None,
            min_score: o.min_score,
            labels: o.labels.clone(),
            model: o.model.clone(),
            priority: pb::Priority::Unspecified as i32,
        }
    }

    fn open(
        channel: Channel,
        requests: Request<ReceiverStream<Self::Req>>,
    ) -> BoxFuture<Result<Streaming<Self::Out>, Status>> {
        Box::pin(async move {
            let mut client = pb::analyzer_client::AnalyzerClient::new(channel)
                .max_decoding_message_size(usize::MAX);
            Ok(client.analyze_stream(requests).await?.into_inner())
        })
    }
}

/// A result as its output line (before the id is put back as the input had it).
fn to_json<T: serde::Serialize>(value: T) -> Result<Value, pb::ItemError> {
    // Through text, so that f32 scores keep their short form (0.9, not 0.8999999761581421).
    serde_json::to_string(&value)
        .and_then(|text| serde_json::from_str(&text))
        .map_err(|e| pb::ItemError {
            code: Code::Internal as i32,
            message: format!("cannot write the result as JSON: {e}"),
            retry_after_ms: 0,
        })
}

/// How a remote lane behaves.
#[derive(Debug, Clone)]
pub struct LaneSettings {
    /// Items outstanding on the stream at most.
    pub window: usize,
    /// A stream with items outstanding and no answer for this long is given up and
    /// reconnected (its items go back to the queue).
    pub idle_timeout: Duration,
    /// An endpoint whose streams keep failing (no item answered) for this long is given
    /// up; its items go to the other endpoints.
    pub give_up_after: Duration,
    /// Backoff between reconnections: first wait and cap.
    pub backoff: (Duration, Duration),
    /// `authorization: Bearer …` for servers that require a token.
    pub token: Option<String>,
    /// TLS settings for `https://` endpoints.
    pub tls: ClientTlsConfig,
    /// Set to true when the lane's address left its `dns:///` name: it takes no new
    /// items, finishes those it has, and ends ([`super::resolve`]).
    pub retire: Option<tokio::sync::watch::Receiver<bool>>,
}

impl LaneSettings {
    fn retired(&self) -> bool {
        self.retire.as_ref().is_some_and(|r| *r.borrow())
    }
}

/// Resolves once the lane is retired (never for lanes that cannot be).
async fn retired(retire: &mut Option<tokio::sync::watch::Receiver<bool>>) {
    if let Some(rx) = retire {
        if rx.wait_for(|r| *r).await.is_ok() {
            return;
        }
    }
    // No retirement to wait for (or its sender is gone with the work done).
    std::future::pending().await
}

/// Why a lane stopped.
#[derive(Debug)]
pub enum LaneEnd {
    /// Every item is settled.
    Finished,
    /// The endpoint was given up; the message says why.
    GaveUp(String),
}

/// Run items on `endpoint` until the ledger is finished or the endpoint is given up.
///
/// # Errors
/// Only when the output or errors file cannot be written.
pub async fn remote<R: Rpc>(
    endpoint: String,
    ledger: Arc<Ledger>,
    options: Arc<Options>,
    settings: LaneSettings,
) -> std::io::Result<LaneEnd> {
    let mut failures = 0u32;
    let mut down_since: Option<Instant> = None;
    loop {
        let (progressed, outcome) = match connect(&endpoint, &settings.tls).await {
            Ok(channel) => stream::<R>(&endpoint, channel, &ledger, &options, &settings).await?,
            Err(err) => (false, Err(Broken::Transient(err))),
        };
        let why = match outcome {
            Ok(()) => return Ok(LaneEnd::Finished),
            Err(Broken::Refused(why)) => {
                // Retrying cannot help: a missing token, an unknown RPC (an old server)…
                tracing::warn!(endpoint, "giving up on this endpoint: {why}");
                return Ok(LaneEnd::GaveUp(format!("{endpoint}: {why}")));
            }
            Err(Broken::Transient(why)) => why,
        };
        if settings.retired() {
            // Its items are back in the queue; the address left the name.
            return Ok(LaneEnd::Finished);
        }
        if progressed {
            failures = 0;
            down_since = None;
        }
        failures += 1;
        let since = *down_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= settings.give_up_after {
            tracing::warn!(endpoint, failures, "giving up on this endpoint: {why}");
            return Ok(LaneEnd::GaveUp(format!("{endpoint}: {why}")));
        }
        let (base, cap) = settings.backoff;
        let wait = base.saturating_mul(1 << (failures - 1).min(16)).min(cap);
        tracing::warn!(
            endpoint,
            failures,
            wait_ms = wait.as_millis() as u64,
            "stream failed, reconnecting: {why}"
        );
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            // The other lanes finished the work meanwhile.
            _ = ledger.finished() => return Ok(LaneEnd::Finished),
        }
    }
}

/// Why a stream ended before the work did.
enum Broken {
    /// Worth reconnecting: the server went away, restarted, timed out.
    Transient(String),
    /// The server refused the stream itself (credentials, an RPC it does not have).
    Refused(String),
}

async fn connect(endpoint: &str, tls: &ClientTlsConfig) -> Result<Channel, String> {
    let mut builder = Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| format!("not a valid endpoint address: {e}"))?;
    if endpoint.starts_with("https://") {
        builder = builder
            .tls_config(tls.clone())
            .map_err(|e| format!("TLS settings: {}", error_chain(&e)))?;
    }
    let endpoint = builder
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot connect: {}", error_chain(&e)))
}

/// One stream's life. Returns whether any item was answered, and `Ok` when the ledger is
/// finished (the stream was closed cleanly) or why the stream broke (its outstanding
/// items are back in the queue).
#[allow(clippy::too_many_lines)]
async fn stream<R: Rpc>(
    endpoint: &str,
    channel: Channel,
    ledger: &Ledger,
    options: &Options,
    settings: &LaneSettings,
) -> std::io::Result<(bool, Result<(), Broken>)> {
    let window = settings.window.max(1);
    let (tx, rx) = mpsc::channel(window);
    let mut request = Request::new(ReceiverStream::new(rx));
    if let Some(token) = &settings.token {
        match format!("Bearer {token}").parse() {
            Ok(value) => {
                request.metadata_mut().insert("authorization", value);
            }
            Err(_) => {
                return Ok((
                    false,
                    Err(Broken::Refused("the token is not valid header text".into())),
                ))
            }
        }
    }
    let mut answers = match R::open(channel, request).await {
        Ok(answers) => answers,
        Err(status) if refused(status.code()) => {
            return Ok((false, Err(Broken::Refused(describe(&status)))))
        }
        Err(status) => return Ok((false, Err(Broken::Transient(describe(&status))))),
    };
    let mut outstanding: HashMap<String, Work> = HashMap::new();
    let mut tx = Some(tx);
    let mut changed = ledger.watch();
    let mut progressed = false;
    let mut last_answer = Instant::now();
    let mut retire = settings.retire.clone();
    let broke = loop {
        let idle_deadline = last_answer + settings.idle_timeout;
        tokio::select! {
            work = ledger.next(&mut changed), if tx.is_some() && outstanding.len() < window => {
                match work {
                    Some(work) => {
                        if outstanding.is_empty() {
                            last_answer = Instant::now();
                        }
                        let req = R::request(work.item.id.clone(), work.item.text.clone(), options);
                        outstanding.insert(work.item.id.clone(), work);
                        // The channel holds `window` requests and at most `window` are
                        // outstanding, so there is always room.
                        if tx.as_ref().is_some_and(|tx| tx.try_send(req).is_err()) {
                            break "the request stream closed".to_string();
                        }
                    }
                    // Every item is settled: close our side; the server then ends the stream.
                    None => tx = None,
                }
            }
            // Retired: take nothing more, close our side, and let the server answer (and
            // then end the stream after) what it has.
            _ = retired(&mut retire), if tx.is_some() => tx = None,
            answer = answers.message() => match answer {
                Ok(Some(out)) => {
                    last_answer = Instant::now();
                    let (id, outcome) = out.into_parts();
                    let Some(work) = outstanding.remove(&id) else {
                        tracing::warn!(endpoint, id, "an answer for an id not sent on this stream: ignored");
                        continue;
                    };
                    progressed = true;
                    ledger.settle(work, outcome.and_then(to_json))?;
                }
                Ok(None) if tx.is_none() && outstanding.is_empty() => {
                    return Ok((progressed, Ok(())));
                }
                Ok(None) => break "the server ended the stream before answering every item".to_string(),
                Err(status) => break describe(&status),
            },
            _ = tokio::time::sleep_until(idle_deadline.into()), if !outstanding.is_empty() => {
                break format!(
                    "no answer for {} s with {} items outstanding (--idle-timeout-secs)",
                    settings.idle_timeout.as_secs(),
                    outstanding.len()
                );
            }
        }
    };
    let code = Code::Unavailable;
    for (_, work) in outstanding {
        ledger.requeue(work, code, &broke)?;
    }
    Ok((progressed, Err(Broken::Transient(broke))))
}

/// Codes with which a server refuses a stream for good.
fn refused(code: Code) -> bool {
    matches!(
        code,
        Code::Unauthenticated
            | Code::PermissionDenied
            | Code::Unimplemented
            | Code::InvalidArgument
            | Code::FailedPrecondition
    )
}

fn describe(status: &Status) -> String {
    format!("{}: {}", pb::code_name(status.code()), status.message())
}
