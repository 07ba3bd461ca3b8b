//! The generated `gist.v1` protobuf and gRPC code, its descriptor set for reflection, and
//! the small vocabulary both the server and the client speak about it: status-code names
//! and the `oneof` of the stream answers.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("gist.v1");
// serde::Serialize and Deserialize of every message: the proto3 JSON mapping (pbjson, see
// build.rs), with the proto field names and every field present.
include!(concat!(env!("OUT_DIR"), "/gist.v1.serde.rs"));

/// Encoded file descriptor set of `gist.v1`, served by the reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("gist_descriptor");

/// The canonical upper-case name of a gRPC code, as in the gRPC spec (logs, metrics labels,
/// error files).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// One answer of a stream RPC: the item's id and either its result or its error. The
/// server builds answers with [`StreamAnswer::new`] and the client reads them with
/// [`StreamAnswer::into_parts`], so the `oneof` is mapped in this one place.
pub trait StreamAnswer: Sized {
    /// The unary response message the answer carries on success.
    type Result;
    /// The answer for item `id`.
    fn new(id: String, outcome: Result<Self::Result, ItemError>) -> Self;
    /// The item's id and outcome; an answer with neither a result nor an error is an
    /// INTERNAL item error.
    fn into_parts(self) -> (String, Result<Self::Result, ItemError>);
}

/// One request of a stream RPC: every item carries the client's own id.
pub trait StreamRequest {
    /// The client's id of this item.
    fn id(&self) -> &str;
}

macro_rules! stream_request {
    ($($request:ident),*) => {$(
        impl StreamRequest for $request {
            fn id(&self) -> &str {
                &self.id
            }
        }
    )*};
}

stream_request!(SummarizeRequest, ExtractEntitiesRequest, AnalyzeRequest);

macro_rules! stream_answer {
    ($answer:ident, $module:ident, $result:ident) => {
        impl StreamAnswer for $answer {
            type Result = $result;

            fn new(id: String, outcome: Result<$result, ItemError>) -> Self {
                $answer {
                    id,
                    outcome: Some(match outcome {
                        Ok(result) => $module::Outcome::Result(result),
                        Err(error) => $module::Outcome::Error(error),
                    }),
                }
            }

            fn into_parts(self) -> (String, Result<$result, ItemError>) {
                let outcome = match self.outcome {
                    Some($module::Outcome::Result(result)) => Ok(result),
                    Some($module::Outcome::Error(error)) => Err(error),
                    None => Err(ItemError {
                        code: tonic::Code::Internal as i32,
                        message: "the server's answer had neither a result nor an error".into(),
                        retry_after_ms: 0,
                    }),
                };
                (self.id, outcome)
            }
        }
    };
}

stream_answer!(
    SummarizeStreamResponse,
    summarize_stream_response,
    SummarizeResponse
);
stream_answer!(
    ExtractEntitiesStreamResponse,
    extract_entities_stream_response,
    ExtractEntitiesResponse
);
stream_answer!(
    AnalyzeStreamResponse,
    analyze_stream_response,
    AnalyzeResponse
);
