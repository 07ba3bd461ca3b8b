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
//! - [`security`]: TLS, mTLS and bearer tokens.

pub mod config;
pub(crate) mod context;
pub mod health;
pub mod rpc;
pub mod security;
pub mod state;
pub(crate) mod stream;

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
use crate::pb::summarizer_server::SummarizerServer;
use rpc::{AnalyzerService, EntityExtractorService, SummarizerService};
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
    if let Ok(address) = listener.local_addr() {
        security.log(address);
    }
    let mut builder = Server::builder();
    if let Some(tls) = security.tls() {
        builder = builder.tls_config(tls)?;
    }
    let auth = security.auth();

    let (reporter, health_service) = tonic_health::server::health_reporter();
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
        health::not_serving(&reporter).await;
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
