//! The endpoints of the HTTP API, as one table: the router serves them and the OpenAPI
//! document describes them.

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
pub const ROUTES: [Route; 11] = [
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
    get_route("/v1/models", "gist.v1.Models/ListModels"),
    unary(
        "/v1/models:reload",
        "gist.v1.Models/Reload",
        "ReloadRequest",
        "ReloadResponse",
    ),
    get_route("/healthz", "liveness"),
    get_route("/readyz", "readiness"),
    get_route("/openapi.json", "openapi"),
];
