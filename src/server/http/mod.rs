//! The HTTP/JSON API beside gRPC (`--http-listen`), for browsers, curl and languages
//! without a gRPC toolchain.
//!
//! Handlers are thin: each turns the HTTP request into a `tonic::Request` (headers become
//! metadata, `X-Request-Timeout-Ms` becomes the `grpc-timeout` the gRPC path reads), checks
//! the same credentials as the gRPC interceptor, and calls the same service implementation
//! a gRPC call reaches, so validation, limits, admission, deadlines, metrics and request
//! ids are one code path. Bodies are the proto3 JSON mapping of the messages (pbjson).
//! Errors are gRPC statuses mapped to HTTP ([`error`]). The NDJSON `:batch` endpoints feed
//! the gRPC streams' logic (`batch`). [`ROUTES`] is the one table the router and the
//! OpenAPI document ([`openapi`]) are both built from.
//!
//! - [`routes`]: the endpoint table; `handlers`: the task endpoints; `probes`: health,
//!   readiness, the document, 404 and 405; `batch`: NDJSON; [`error`]: statuses as HTTP.

mod batch;
pub mod error;
mod handlers;
pub mod openapi;
mod probes;
pub mod routes;

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tonic_health::server::HealthService;

use super::context::request_id;
use super::security::Auth;
use super::state::AppState;

pub use routes::{Kind, Route, ROUTES, TIMEOUT_HEADER};

/// What every HTTP handler holds.
#[derive(Clone)]
struct Http {
    state: AppState,
    auth: Auth,
    health: Arc<HealthService>,
    openapi: Bytes,
}

/// The router of the HTTP API over `state`, with the gRPC services' credentials (`auth`)
/// and readiness (`health`, the same statuses `grpc.health.v1` reports).
pub(crate) fn router(
    state: AppState,
    auth: Auth,
    health: HealthService,
    max_body_bytes: usize,
) -> Router {
    let openapi = Bytes::from(
        serde_json::to_vec_pretty(&openapi::document(&state.limits))
            .expect("the OpenAPI document is JSON"),
    );
    let http = Http {
        state,
        auth,
        health: Arc::new(health),
        openapi,
    };
    Router::new()
        .route("/v1/summarize", post(handlers::summarize))
        .route("/v1/entities", post(handlers::entities))
        .route("/v1/analyze", post(handlers::analyze))
        .route("/v1/summarize:batch", post(handlers::summarize_batch))
        .route("/v1/entities:batch", post(handlers::entities_batch))
        .route("/v1/analyze:batch", post(handlers::analyze_batch))
        .route("/v1/models", get(handlers::list_models))
        .route("/v1/models:reload", post(handlers::reload))
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/openapi.json", get(probes::openapi_json))
        .fallback(probes::not_found)
        .method_not_allowed_fallback(probes::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(http)
}

/// Serve `app` on `listener` until `shutdown`; then finish the requests in progress.
///
/// # Errors
/// The listener's I/O error.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // TCP_NODELAY, as on the gRPC port: small JSON answers are not held back by Nagle.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
