//! The HTTP/JSON API beside gRPC (`--http-listen`), for browsers, curl and languages
//! without a gRPC toolchain.
//!
//! Handlers are thin: each turns the HTTP request into a `tonic::Request` (headers become
//! metadata, `X-Request-Timeout-Ms` becomes the `grpc-timeout` the gRPC path reads), checks
//! the same credentials as the gRPC interceptor, and calls the same service implementation
//! a gRPC call reaches, so validation, limits, admission, deadlines, metrics and request
//! ids are one code path. Bodies are the proto3 JSON mapping of the messages (pbjson).
//! Errors are gRPC statuses mapped to HTTP ([`error`]). The NDJSON `:batch` endpoints feed
//! the gRPC streams' logic ([`batch`]). [`ROUTES`] is the one table the router and the
//! OpenAPI document ([`openapi`]) are both built from.

mod batch;
pub mod error;
pub mod openapi;

use std::future::Future;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use tonic::service::Interceptor;
use tonic::{Code, Status};
use tonic_health::pb::health_server::Health;
use tonic_health::server::HealthService;

use super::context::request_id;
use super::rpc::{self, AnalyzerService, EntityExtractorService, SummarizerService, SERVICES};
use super::security::Auth;
use super::state::AppState;
use crate::pb;
use crate::pb::analyzer_server::Analyzer;
use crate::pb::entity_extractor_server::EntityExtractor;
use crate::pb::summarizer_server::Summarizer;

/// The request header that carries an HTTP call's deadline, in milliseconds (capped, like a
/// gRPC deadline, by `--request-timeout-ms`).
pub const TIMEOUT_HEADER: &str = "x-request-timeout-ms";

/// What an endpoint does with its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One JSON request message in, one JSON response message out.
    Unary,
    /// NDJSON request messages in, NDJSON stream answers out, in request order.
    Batch,
    /// A GET without a body.
    Get,
}

/// One endpoint of the HTTP API.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// The path.
    pub path: &'static str,
    /// How it is called.
    pub kind: Kind,
    /// The gRPC method it runs (`gist.v1.Summarizer/Summarize`), or what it serves.
    pub rpc: &'static str,
    /// The request message (proto name in `gist.v1`), for POST endpoints.
    pub request: Option<&'static str>,
    /// The response message (proto name in `gist.v1`), or "" for GET endpoints.
    pub response: &'static str,
}

const fn unary(
    path: &'static str,
    rpc: &'static str,
    request: &'static str,
    response: &'static str,
) -> Route {
    Route {
        path,
        kind: Kind::Unary,
        rpc,
        request: Some(request),
        response,
    }
}

const fn batch(
    path: &'static str,
    rpc: &'static str,
    request: &'static str,
    response: &'static str,
) -> Route {
    Route {
        path,
        kind: Kind::Batch,
        rpc,
        request: Some(request),
        response,
    }
}

const fn get_route(path: &'static str, rpc: &'static str) -> Route {
    Route {
        path,
        kind: Kind::Get,
        rpc,
        request: None,
        response: "",
    }
}

/// Every endpoint: the router and the OpenAPI document are built from this table.
pub const ROUTES: [Route; 9] = [
    unary(
        "/v1/summarize",
        "gist.v1.Summarizer/Summarize",
        "SummarizeRequest",
        "SummarizeResponse",
    ),
    unary(
        "/v1/entities",
        "gist.v1.EntityExtractor/ExtractEntities",
        "ExtractEntitiesRequest",
        "ExtractEntitiesResponse",
    ),
    unary(
        "/v1/analyze",
        "gist.v1.Analyzer/Analyze",
        "AnalyzeRequest",
        "AnalyzeResponse",
    ),
    batch(
        "/v1/summarize:batch",
        "gist.v1.Summarizer/SummarizeStream",
        "SummarizeRequest",
        "SummarizeStreamResponse",
    ),
    batch(
        "/v1/entities:batch",
        "gist.v1.EntityExtractor/ExtractEntitiesStream",
        "ExtractEntitiesRequest",
        "ExtractEntitiesStreamResponse",
    ),
    batch(
        "/v1/analyze:batch",
        "gist.v1.Analyzer/AnalyzeStream",
        "AnalyzeRequest",
        "AnalyzeStreamResponse",
    ),
    get_route("/healthz", "liveness"),
    get_route("/readyz", "readiness"),
    get_route("/openapi.json", "openapi"),
];

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
        .route("/v1/summarize", post(summarize))
        .route("/v1/entities", post(entities))
        .route("/v1/analyze", post(analyze))
        .route("/v1/summarize:batch", post(summarize_batch))
        .route("/v1/entities:batch", post(entities_batch))
        .route("/v1/analyze:batch", post(analyze_batch))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi_json))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
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

impl Http {
    /// The call's metadata, as the gRPC path reads it, or the status that refuses it:
    /// credentials checked by the gRPC interceptor itself; the deadline header turned
    /// into `grpc-timeout`.
    fn metadata(&self, headers: &HeaderMap) -> Result<tonic::metadata::MetadataMap, Status> {
        let mut headers = headers.clone();
        // Only the documented header sets an HTTP call's deadline.
        headers.remove("grpc-timeout");
        if let Some(value) = headers.get(TIMEOUT_HEADER) {
            let ms = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .ok_or_else(|| {
                    Status::invalid_argument(
                        "X-Request-Timeout-Ms: must be a positive whole number of milliseconds",
                    )
                })?;
            // grpc-timeout takes at most 8 digits; longer deadlines are capped by the
            // server's --request-timeout-ms anyway.
            let grpc = format!("{}m", ms.min(99_999_999));
            if let Ok(value) = HeaderValue::from_str(&grpc) {
                headers.insert("grpc-timeout", value);
            }
        }
        let metadata = tonic::metadata::MetadataMap::from_headers(headers);
        let request = tonic::Request::from_parts(metadata, tonic::Extensions::default(), ());
        let request = self.auth.clone().call(request)?;
        Ok(request.into_parts().0)
    }
}

/// A refusal before the gRPC path ran, with the request id the gRPC path would have used.
fn refused(status: Status, headers: &HeaderMap) -> Response {
    let mut response = error::response(&status);
    let id = request_id(&tonic::metadata::MetadataMap::from_headers(headers.clone()));
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// A JSON body as request message `Req`: proto3 JSON (field names in either spelling,
/// enums by name or number); unknown fields are refused.
fn parse<Req: DeserializeOwned>(body: &[u8]) -> Result<Req, Status> {
    serde_json::from_slice(body)
        .map_err(|e| Status::invalid_argument(format!("body: not a valid request message: {e}")))
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// The common path of the unary endpoints: metadata and credentials, the body, the
/// service call, and its answer as JSON with the gRPC response metadata as headers.
async fn call<Req, Msg, F, Fut>(
    http: Http,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
    service: F,
) -> Response
where
    Req: DeserializeOwned,
    Msg: serde::Serialize,
    F: FnOnce(AppState, tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Msg>, Status>>,
{
    let metadata = match http.metadata(&headers) {
        Ok(metadata) => metadata,
        Err(status) => return refused(status, &headers),
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return too_large(rejection, &headers),
    };
    let req: Req = match parse(&body) {
        Ok(req) => req,
        Err(status) => return refused(status, &headers),
    };
    let request = tonic::Request::from_parts(metadata, tonic::Extensions::default(), req);
    match service(http.state, request).await {
        Ok(response) => {
            let (metadata, message, _) = response.into_parts();
            let body = match serde_json::to_vec(&message) {
                Ok(body) => body,
                Err(e) => {
                    return error::response(&Status::internal(format!(
                        "cannot write the answer as JSON: {e}"
                    )))
                }
            };
            let mut response = json(StatusCode::OK, body);
            error::copy_metadata(&metadata, response.headers_mut());
            response
        }
        Err(status) => error::response(&status),
    }
}

/// A body the transport refused (over `--max-message-bytes`, or unreadable).
fn too_large(rejection: axum::extract::rejection::BytesRejection, headers: &HeaderMap) -> Response {
    let mut response = error::with_status(
        rejection.status(),
        Code::OutOfRange,
        &format!(
            "body: {} (the limit is --max-message-bytes)",
            rejection.body_text()
        ),
    );
    let id = request_id(&tonic::metadata::MetadataMap::from_headers(headers.clone()));
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

async fn summarize(
    State(http): State<Http>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    call(http, headers, body, |state, request| async move {
        SummarizerService(state).summarize(request).await
    })
    .await
}

async fn entities(
    State(http): State<Http>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    call(http, headers, body, |state, request| async move {
        EntityExtractorService(state)
            .extract_entities(request)
            .await
    })
    .await
}

async fn analyze(
    State(http): State<Http>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    call(http, headers, body, |state, request| async move {
        AnalyzerService(state).analyze(request).await
    })
    .await
}

async fn summarize_batch(State(http): State<Http>, headers: HeaderMap, body: Body) -> Response {
    match http.metadata(&headers) {
        Ok(metadata) => batch::respond::<pb::SummarizeRequest, pb::SummarizeStreamResponse, _>(
            &http.state,
            "SummarizeStream",
            rpc::summarize::run,
            &metadata,
            body,
        ),
        Err(status) => refused(status, &headers),
    }
}

async fn entities_batch(State(http): State<Http>, headers: HeaderMap, body: Body) -> Response {
    match http.metadata(&headers) {
        Ok(metadata) => {
            batch::respond::<pb::ExtractEntitiesRequest, pb::ExtractEntitiesStreamResponse, _>(
                &http.state,
                "ExtractEntitiesStream",
                rpc::entities::run,
                &metadata,
                body,
            )
        }
        Err(status) => refused(status, &headers),
    }
}

async fn analyze_batch(State(http): State<Http>, headers: HeaderMap, body: Body) -> Response {
    match http.metadata(&headers) {
        Ok(metadata) => batch::respond::<pb::AnalyzeRequest, pb::AnalyzeStreamResponse, _>(
            &http.state,
            "AnalyzeStream",
            rpc::analyze::run,
            &metadata,
            body,
        ),
        Err(status) => refused(status, &headers),
    }
}

/// Liveness: the process answers.
async fn healthz() -> Response {
    json(StatusCode::OK, br#"{"status":"ok"}"#.to_vec())
}

#[derive(Debug, serde::Deserialize)]
struct ReadyQuery {
    service: Option<String>,
}

/// Readiness, per service, exactly as `grpc.health.v1` reports it: 200 when the asked
/// service (or, without `?service=`, the server as a whole) is SERVING, else 503; 404 for a
/// service gist does not have.
async fn readyz(
    State(http): State<Http>,
    query: Result<Query<ReadyQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let service = query
        .ok()
        .and_then(|Query(q)| q.service)
        .unwrap_or_default();
    if !service.is_empty() && !SERVICES.iter().any(|(name, _)| *name == service) {
        return error::with_status(
            StatusCode::NOT_FOUND,
            Code::NotFound,
            &format!(
                "service: unknown {service:?}; gist has {}",
                SERVICES.map(|(name, _)| name).join(", ")
            ),
        );
    }
    let mut services = serde_json::Map::new();
    for (name, _) in SERVICES {
        services.insert(name.into(), health(&http.health, name).await.into());
    }
    let status = health(&http.health, &service).await;
    let ready = status == "SERVING";
    let body = serde_json::json!({
        "service": service,
        "status": status,
        "services": services,
    });
    json(
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

/// The health service's answer for `service` ("" is the server as a whole).
async fn health(health: &HealthService, service: &str) -> &'static str {
    use tonic_health::pb::health_check_response::ServingStatus;
    let request = tonic::Request::new(tonic_health::pb::HealthCheckRequest {
        service: service.into(),
    });
    match health.check(request).await {
        Ok(response) => match ServingStatus::try_from(response.into_inner().status) {
            Ok(ServingStatus::Serving) => "SERVING",
            Ok(ServingStatus::NotServing) => "NOT_SERVING",
            _ => "UNKNOWN",
        },
        Err(_) => "SERVICE_UNKNOWN",
    }
}

async fn openapi_json(State(http): State<Http>) -> Response {
    json(StatusCode::OK, http.openapi.to_vec())
}

async fn not_found(method: Method, uri: Uri) -> Response {
    error::with_status(
        StatusCode::NOT_FOUND,
        Code::NotFound,
        &format!(
            "no endpoint {method} {}: GET /openapi.json lists them",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    error::with_status(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::Unimplemented,
        &format!(
            "{} does not take {method}: GET /openapi.json lists the endpoints",
            uri.path()
        ),
    )
}
