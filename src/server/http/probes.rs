//! Liveness, readiness (from the same health service gRPC probes read), the OpenAPI
//! document, and the JSON answers for unknown paths and methods.

use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use tonic::Code;
use tonic_health::pb::health_server::Health;
use tonic_health::server::HealthService;

use super::handlers::json;
use super::{error, Http};
use crate::server::rpc::SERVICES;

/// Liveness: the process answers.
pub(super) async fn healthz() -> Response {
    json(StatusCode::OK, br#"{"status":"ok"}"#.to_vec())
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct ReadyQuery {
    service: Option<String>,
}

/// Readiness, per service, exactly as `grpc.health.v1` reports it: 200 when the asked
/// service (or, without `?service=`, the server as a whole) is SERVING, else 503; 404 for a
/// service gist does not have.
pub(super) async fn readyz(
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
pub(super) async fn health(health: &HealthService, service: &str) -> &'static str {
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

pub(super) async fn openapi_json(State(http): State<Http>) -> Response {
    json(StatusCode::OK, http.openapi.to_vec())
}

pub(super) async fn not_found(method: Method, uri: Uri) -> Response {
    error::with_status(
        StatusCode::NOT_FOUND,
        Code::NotFound,
        &format!(
            "no endpoint {method} {}: GET /openapi.json lists them",
            uri.path()
        ),
    )
}

pub(super) async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    error::with_status(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::Unimplemented,
        &format!(
            "{} does not take {method}: GET /openapi.json lists the endpoints",
            uri.path()
        ),
    )
}
