//! The task endpoints: turn the HTTP request into the gRPC path's request (metadata,
//! credentials, the JSON body as the request message), call the tonic service, and answer
//! its message as JSON with its response metadata as headers; the `:batch` endpoints hand
//! the body to [`super::batch`].

use std::future::Future;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use tonic::service::Interceptor;
use tonic::{Code, Status};

use super::{batch, error, request_id, Http, TIMEOUT_HEADER};
use crate::pb;
use crate::pb::analyzer_server::Analyzer;
use crate::pb::entity_extractor_server::EntityExtractor;
use crate::pb::models_server::Models;
use crate::pb::summarizer_server::Summarizer;
use crate::server::rpc::{
    self, AnalyzerService, EntityExtractorService, ModelsService, SummarizerService,
};
use crate::server::state::AppState;

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
    with_request_id(error::response(&status), headers)
}

/// `response` with the caller's `x-request-id` (or a new one), as every answer has.
fn with_request_id(mut response: Response, headers: &HeaderMap) -> Response {
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

pub(super) fn json(status: StatusCode, body: Vec<u8>) -> Response {
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
    let response = error::with_status(
        rejection.status(),
        Code::OutOfRange,
        &format!(
            "body: {} (the limit is --max-message-bytes)",
            rejection.body_text()
        ),
    );
    with_request_id(response, headers)
}

pub(super) async fn summarize(
    State(http): State<Http>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    call(http, headers, body, |state, request| async move {
        SummarizerService(state).summarize(request).await
    })
    .await
}

pub(super) async fn entities(
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

pub(super) async fn analyze(
    State(http): State<Http>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    call(http, headers, body, |state, request| async move {
        AnalyzerService(state).analyze(request).await
    })
    .await
}

pub(super) async fn list_models(State(http): State<Http>, headers: HeaderMap) -> Response {
    call(
        http,
        headers,
        Ok(Bytes::from_static(b"{}")),
        |state, request| async move { ModelsService(state).list_models(request).await },
    )
    .await
}

pub(super) async fn reload(
    State(http): State<Http>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    // The request message is empty: an empty body is as good as `{}`.
    let body = body.map(|b| {
        if b.iter().all(u8::is_ascii_whitespace) {
            Bytes::from_static(b"{}")
        } else {
            b
        }
    });
    call(http, headers, body, |state, request| async move {
        ModelsService(state).reload(request).await
    })
    .await
}

pub(super) async fn summarize_batch(
    State(http): State<Http>,
    headers: HeaderMap,
    body: Body,
) -> Response {
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

pub(super) async fn entities_batch(
    State(http): State<Http>,
    headers: HeaderMap,
    body: Body,
) -> Response {
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

pub(super) async fn analyze_batch(
    State(http): State<Http>,
    headers: HeaderMap,
    body: Body,
) -> Response {
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
