//! The gRPC server: gist's services, standard health checking that follows the model
//! thread, server reflection (v1 and v1alpha, so grpcurl 1.8 works with no .proto), and
//! the transport security of [`security`]: TLS on the listener, credentials checked in
//! front of gist's services and reflection, health left open for probes.
//!
//! - [`config`]: the server's settings ([`ServerArgs`], [`Limits`]);
//! - [`state`]: [`AppState`], what every handler holds;
//! - [`context`]: request ids, deadlines, timing metadata: what every RPC shares;
//! - [`rpc`]: one module per service: validate, queue, convert;
//! - [`stream`]: the bidirectional streams of every task;
//! - [`health`]: the health service, from one table of services and their tasks;
//! - [`security`]: TLS, mTLS and bearer tokens;
//! - [`http`]: the HTTP/JSON API beside gRPC (`--http-listen`), through the same services;
//! - [`trace`]: OpenTelemetry spans of requests (`--otlp-endpoint`), free when off.
//!
//! gRPC-Web (tonic-web) is served on the gRPC port too, for browsers.

pub mod config;
pub(crate) mod context;
pub mod health;
pub mod http;
pub mod rpc;
pub mod security;
pub mod state;
pub(crate) mod stream;
pub mod trace;

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

pub use config::{Limits, ServerArgs};
pub use state::AppState;

use crate::pb;
use crate::pb::analyzer_server::AnalyzerServer;
use crate::pb::entity_extractor_server::EntityExtractorServer;
use crate::pb::models_server::ModelsServer;
use crate::pb::summarizer_server::SummarizerServer;
use rpc::{AnalyzerService, EntityExtractorService, ModelsService, SummarizerService};
use security::{Security, SecurityError};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A TLS or token setting is unusable.
    #[error(transparent)]
    Security(#[from] SecurityError),
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    /// The HTTP listener failed.
    #[error("the HTTP listener failed: {0}")]
    Http(#[source] std::io::Error),
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
    let security = Security::load(&args.security)?;
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
    serve_listeners(listener, None, state, args, security, shutdown).await
}

/// [`serve_with_security`], and with `http` the HTTP/JSON API on that listener, over the
/// same state, credentials and health; shut down together (HTTP stops taking connections
/// once the accepted requests are drained, as gRPC does).
///
/// # Errors
/// [`ServeError::Security`] when `http` is given with TLS on (the HTTP listener serves
/// plain HTTP only); the transport's or the HTTP listener's error if either cannot run.
pub async fn serve_listeners(
    listener: TcpListener,
    http: Option<TcpListener>,
    state: AppState,
    args: ServerArgs,
    security: Security,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    if http.is_some() && security.tls().is_some() {
        return Err(SecurityError::Usage(
            "--http-listen serves plain HTTP and cannot be combined with --tls-cert: put a TLS-terminating proxy in front of it, or use gRPC-Web on the TLS gRPC port",
        )
        .into());
    }
    if let Ok(address) = listener.local_addr() {
        security.log(address);
    }
    let mut builder = Server::builder();
    if let Some(tls) = security.tls() {
        builder = builder.tls_config(tls)?;
    }
    let auth = security.auth();

    let reporter = tonic_health::server::HealthReporter::new();
    let health_service = tonic_health::pb::health_server::HealthServer::new(
        tonic_health::server::HealthService::from_health_reporter(reporter.clone()),
    );
    health::not_serving(&reporter).await;
    let health_task = tokio::spawn(health::follow_worker(
        state.worker.state(),
        reporter.clone(),
    ));

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
    let models = ModelsServer::new(ModelsService(state.clone()));

    // The HTTP API: the same state, credentials and health statuses.
    let (drained_tx, drained_rx) = tokio::sync::watch::channel(false);
    let drained_tx = std::sync::Arc::new(drained_tx);
    let http_task = match http {
        Some(http_listener) => {
            if let Ok(address) = http_listener.local_addr() {
                tracing::info!(%address, "HTTP/JSON API (GET /openapi.json describes it)");
            }
            let app = http::router(
                state.clone(),
                auth.clone(),
                tonic_health::server::HealthService::from_health_reporter(reporter.clone()),
                args.max_message_bytes,
            );
            let mut drained_rx = drained_rx;
            Some(tokio::spawn(http::serve(http_listener, app, async move {
                let _ = drained_rx.wait_for(|drained| *drained).await;
            })))
        }
        None => None,
    };

    let follower = health_task.abort_handle();
    let worker = state.worker.clone();
    let drain_timeout = Duration::from_secs(args.drain_timeout_secs);
    let http_stop = drained_tx.clone();
    let drained = async move {
        shutdown.await;
        tracing::info!(
            drain_timeout_secs = drain_timeout.as_secs(),
            "shutting down: health NOT_SERVING, new requests refused, finishing accepted ones"
        );
        follower.abort();
        // Refuse new requests before health says NOT_SERVING: a client that sees
        // NOT_SERVING and calls again must be refused, not queued (the other order left a
        // window in which such a call was accepted).
        worker.close();
        health::not_serving(&reporter).await;
        let in_time = worker.drain(drain_timeout).await;
        tracing::info!(in_time, "accepted requests answered");
        let _ = http_stop.send(true);
    };

    let keepalive = Duration::from_secs(args.keepalive_secs.max(1));
    let result = builder
        .http2_keepalive_interval(Some(keepalive))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .concurrency_limit_per_connection(args.concurrency_per_connection.max(1))
        // gRPC-Web (HTTP/1.1 and HTTP/2, binary and text) for browsers, beside plain gRPC:
        // the layer translates it into ordinary gRPC calls of the same services.
        .accept_http1(true)
        .layer(tonic_web::GrpcWebLayer::new())
        .add_service(health_service)
        .add_service(InterceptedService::new(reflection_v1, auth.clone()))
        .add_service(InterceptedService::new(reflection_v1alpha, auth.clone()))
        .add_service(InterceptedService::new(summarizer, auth.clone()))
        .add_service(InterceptedService::new(extractor, auth.clone()))
        .add_service(InterceptedService::new(analyzer, auth.clone()))
        .add_service(InterceptedService::new(models, auth))
        // TCP_NODELAY on every accepted connection: without it, Nagle's algorithm and the
        // client's delayed ACKs held each small response back ~40 ms (bench/: the fake
        // engine's p50 was 48 ms at one stream).
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            drained,
        )
        .await;
    health_task.abort();
    // Should gRPC stop on its own error, HTTP stops too.
    let _ = drained_tx.send(true);
    result?;
    if let Some(task) = http_task {
        match task.await {
            Ok(result) => result.map_err(ServeError::Http)?,
            Err(e) => return Err(ServeError::Http(std::io::Error::other(e))),
        }
    }
    Ok(())
}
