//! The gRPC server: gist's services, standard health checking that follows the model
//! thread, server reflection (v1 and v1alpha, so grpcurl 1.8 works with no .proto), and
//! the transport security of [`crate::security`]: TLS on the listener, credentials checked
//! in front of gist's services and reflection, health left open for probes.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::pb;
use crate::pb::analyzer_server::AnalyzerServer;
use crate::pb::entity_extractor_server::EntityExtractorServer;
use crate::pb::summarizer_server::SummarizerServer;
use crate::security::{Security, SecurityError};
use crate::service::{AnalyzerService, AppState, EntityExtractorService, SummarizerService};
use crate::worker::WorkerState;

/// Transport, security and lifecycle settings of the server.
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Serialize)]
pub struct ServerArgs {
    /// Largest request message accepted, in bytes.
    #[arg(long, env = "GIST_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,
    /// Deadline of requests that set none, and the longest one a client may set, in ms.
    #[arg(long, env = "GIST_REQUEST_TIMEOUT_MS", default_value_t = 60_000)]
    pub request_timeout_ms: u64,
    /// On SIGTERM or Ctrl-C, how long accepted requests may take to finish, in seconds.
    #[arg(long, env = "GIST_DRAIN_TIMEOUT_SECS", default_value_t = 30)]
    pub drain_timeout_secs: u64,
    /// Most concurrent requests on one HTTP/2 connection (more wait in the transport).
    #[arg(long, env = "GIST_CONCURRENCY_PER_CONNECTION", default_value_t = 256)]
    pub concurrency_per_connection: usize,
    /// Most items one stream (SummarizeStream, ExtractEntitiesStream, AnalyzeStream) holds
    /// at a time: queued, running, or answered but not yet sent. The next item is read when
    /// one is sent.
    #[arg(long, env = "GIST_STREAM_MAX_IN_FLIGHT", default_value_t = 32)]
    pub stream_max_in_flight: usize,
    /// HTTP/2 keep-alive ping interval, in seconds (a peer silent for 20 s more is dropped).
    #[arg(long, env = "GIST_KEEPALIVE_SECS", default_value_t = 30)]
    pub keepalive_secs: u64,
    /// Serve TLS with this PEM certificate chain (server certificate first); needs --tls-key.
    #[arg(long, env = "GIST_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (PKCS#8, RSA or EC).
    #[arg(long, env = "GIST_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by a CA in this PEM file (mutual TLS) for gist's
    /// services and reflection; health stays open. Needs --tls-cert.
    #[arg(
        long,
        env = "GIST_TLS_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,
    /// Require `authorization: Bearer <token>` with one of the tokens in this file (one per
    /// line; blank lines and # comments skipped) for gist's services and reflection; health
    /// stays open.
    #[arg(long, env = "GIST_AUTH_TOKENS", value_name = "FILE")]
    pub auth_tokens: Option<PathBuf>,
}

impl Default for ServerArgs {
    fn default() -> Self {
        ServerArgs {
            max_message_bytes: 4 * 1024 * 1024,
            request_timeout_ms: 60_000,
            drain_timeout_secs: 30,
            concurrency_per_connection: 256,
            stream_max_in_flight: 32,
            keepalive_secs: 30,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            auth_tokens: None,
        }
    }
}

impl ServerArgs {
    /// `--request-timeout-ms` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A TLS or token setting is unusable.
    #[error(transparent)]
    Security(#[from] SecurityError),
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}

/// Serve gist on an already-bound listener until `shutdown` completes, with the security
/// files named in `args` loaded first; then shut down gracefully: health turns NOT_SERVING
/// at once, new requests are refused UNAVAILABLE, accepted ones finish (at most
/// `--drain-timeout-secs`), and the call returns.
///
/// # Errors
/// [`ServeError::Security`] if a TLS or token file is unusable; the transport's error if
/// the server cannot run.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    args: ServerArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let security = Security::load(&args)?;
    serve_with_security(listener, state, args, security, shutdown).await
}

/// [`serve`] with security already loaded (the binary loads it before binding the port, so
/// a bad file stops it before anything else happens).
///
/// # Errors
/// The transport's error if the server cannot run.
pub async fn serve_with_security(
    listener: TcpListener,
    state: AppState,
    args: ServerArgs,
    security: Security,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    if let Ok(address) = listener.local_addr() {
        security.log(address);
    }
    let mut builder = Server::builder();
    if let Some(tls) = security.tls() {
        builder = builder.tls_config(tls)?;
    }
    let auth = security.auth();

    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    set_health(&reporter, ALL_NOT_SERVING).await;
    let health_task = tokio::spawn(follow_worker(state.worker.state(), reporter.clone()));

    // Reflection describes the API, so it asks for the same credentials as the API does.
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the embedded descriptor sets are valid");
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("the embedded descriptor sets are valid");

    let summarizer = SummarizerServer::new(SummarizerService(state.clone()))
        .max_decoding_message_size(args.max_message_bytes);
    let extractor = EntityExtractorServer::new(EntityExtractorService(state.clone()))
        .max_decoding_message_size(args.max_message_bytes);
    let analyzer = AnalyzerServer::new(AnalyzerService(state.clone()))
        .max_decoding_message_size(args.max_message_bytes);

    let follower = health_task.abort_handle();
    let worker = state.worker.clone();
    let drain_timeout = Duration::from_secs(args.drain_timeout_secs);
    let drained = async move {
        shutdown.await;
        tracing::info!(
            drain_timeout_secs = drain_timeout.as_secs(),
            "shutting down: health NOT_SERVING, new requests refused, finishing accepted ones"
        );
        follower.abort();
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        set_health(&reporter, ALL_NOT_SERVING).await;
        let in_time = worker.drain(drain_timeout).await;
        tracing::info!(in_time, "accepted requests answered");
    };

    let keepalive = Duration::from_secs(args.keepalive_secs.max(1));
    let result = builder
        .http2_keepalive_interval(Some(keepalive))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .concurrency_limit_per_connection(args.concurrency_per_connection.max(1))
        .add_service(health_service)
        .add_service(InterceptedService::new(reflection_v1, auth.clone()))
        .add_service(InterceptedService::new(reflection_v1alpha, auth.clone()))
        .add_service(InterceptedService::new(summarizer, auth.clone()))
        .add_service(InterceptedService::new(extractor, auth.clone()))
        .add_service(InterceptedService::new(analyzer, auth))
        // TCP_NODELAY on every accepted connection: without it, Nagle's algorithm and the
        // client's delayed ACKs held each small response back ~40 ms (bench/: the fake
        // engine's p50 was 48 ms at one stream).
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            drained,
        )
        .await;
    health_task.abort();
    Ok(result?)
}

const SUMMARIZER: &str = "gist.v1.Summarizer";
const EXTRACTOR: &str = "gist.v1.EntityExtractor";
const ANALYZER: &str = "gist.v1.Analyzer";

/// Every gist service NOT_SERVING.
const ALL_NOT_SERVING: Health = Health {
    summarizer: ServingStatus::NotServing,
    extractor: ServingStatus::NotServing,
    analyzer: ServingStatus::NotServing,
};

/// The status of each gist service.
#[derive(Clone, Copy)]
struct Health {
    summarizer: ServingStatus,
    extractor: ServingStatus,
    analyzer: ServingStatus,
}

async fn set_health(reporter: &HealthReporter, health: Health) {
    reporter
        .set_service_status(SUMMARIZER, health.summarizer)
        .await;
    reporter
        .set_service_status(EXTRACTOR, health.extractor)
        .await;
    reporter.set_service_status(ANALYZER, health.analyzer).await;
}

/// Mirror the model thread's state into the health service: each gist service is SERVING
/// once the model it needs is loaded, and NOT_SERVING again if the thread stops.
async fn follow_worker(
    mut state_rx: tokio::sync::watch::Receiver<WorkerState>,
    reporter: HealthReporter,
) {
    use ServingStatus::{NotServing, Serving};
    loop {
        let state = state_rx.borrow_and_update().clone();
        match state {
            WorkerState::Ready(info) => {
                let status = |up: bool| if up { Serving } else { NotServing };
                let summarizes = info.encoder.is_some() || info.summarizer.is_some();
                let health = Health {
                    summarizer: status(summarizes),
                    extractor: status(info.ner.is_some()),
                    analyzer: status(summarizes && info.ner.is_some()),
                };
                set_health(&reporter, health).await;
                reporter.set_service_status("", Serving).await;
            }
            WorkerState::Loading | WorkerState::Failed(_) | WorkerState::Stopped => {
                set_health(&reporter, ALL_NOT_SERVING).await;
                reporter.set_service_status("", NotServing).await;
            }
        }
        if state_rx.changed().await.is_err() {
            // The worker is gone: nothing will be served again.
            set_health(&reporter, ALL_NOT_SERVING).await;
            reporter.set_service_status("", NotServing).await;
            return;
        }
    }
}
