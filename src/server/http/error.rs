//! gRPC statuses as HTTP answers: the standard mapping of codes to HTTP statuses, a JSON
//! body `{"code", "message"}` (the shape of `google.rpc.Status`, the code a gRPC number),
//! the response metadata as headers, and `Retry-After` with RESOURCE_EXHAUSTED.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tonic::{Code, Status};

/// The HTTP status of a gRPC code: the mapping of grpc-gateway and Google's APIs, except
/// FAILED_PRECONDITION, which is 412 here (the request needs what this server lacks), and
/// DEADLINE_EXCEEDED, which is 408: the deadline is the caller's own (or the server's cap
/// on it), and a timeout the caller chose is not a server error.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        // 499 "client closed request", as grpc-gateway and nginx use it.
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::REQUEST_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON body of every HTTP error.
#[derive(Debug, serde::Serialize)]
pub struct ErrorBody<'a> {
    /// The gRPC status code, as a number (3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED…).
    pub code: i32,
    /// What went wrong; for invalid input, the field and the limit.
    pub message: &'a str,
}

/// An error answer with an explicit HTTP status (for the transport's own refusals, such
/// as 405 or 413, which have no gRPC status of their own).
pub(crate) fn with_status(http: StatusCode, code: Code, message: &str) -> Response {
    let body = serde_json::to_vec(&ErrorBody {
        code: code as i32,
        message,
    })
    .unwrap_or_default();
    (
        http,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// A status as an HTTP answer, its metadata (`x-request-id`, timings) as headers.
pub(crate) fn response(status: &Status) -> Response {
    let mut response = with_status(http_status(status.code()), status.code(), status.message());
    let headers = response.headers_mut();
    copy_metadata(status.metadata(), headers);
    if status.code() == Code::ResourceExhausted {
        // Retry-After counts whole seconds: round the gRPC pushback up, at least 1.
        let ms: u64 = status
            .metadata()
            .get("grpc-retry-pushback-ms")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(ms.div_ceil(1000).max(1)),
        );
    }
    if status.code() == Code::Unauthenticated {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"gist\""),
        );
    }
    response
}

/// gist's own response metadata (`x-…`, and the pushback hint) as HTTP headers.
pub(crate) fn copy_metadata(metadata: &tonic::metadata::MetadataMap, headers: &mut HeaderMap) {
    for (name, value) in metadata.clone().into_headers() {
        let Some(name) = name else { continue };
        if name.as_str().starts_with("x-")
            || name == HeaderName::from_static("grpc-retry-pushback-ms")
        {
            headers.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_map_to_the_standard_http_statuses() {
        let table = [
            (Code::InvalidArgument, 400),
            (Code::OutOfRange, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::FailedPrecondition, 412),
            (Code::ResourceExhausted, 429),
            (Code::Cancelled, 499),
            (Code::Internal, 500),
            (Code::Unknown, 500),
            (Code::Unimplemented, 501),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 408),
        ];
        for (code, want) in table {
            assert_eq!(http_status(code).as_u16(), want, "{code:?}");
        }
    }

    #[test]
    fn overload_carries_retry_after_in_whole_seconds() {
        let mut status = Status::resource_exhausted("the entities queue is full");
        status
            .metadata_mut()
            .insert("grpc-retry-pushback-ms", "250".parse().unwrap());
        status
            .metadata_mut()
            .insert("x-request-id", "r-1".parse().unwrap());
        let r = response(&status);
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert_eq!(r.headers()["x-request-id"], "r-1");
        assert_eq!(r.headers()["grpc-retry-pushback-ms"], "250");
    }
}
