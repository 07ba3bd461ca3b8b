//! The one error type of the library and its one mapping to gRPC status codes.
//!
//! Client mistakes carry the field and the limit they broke; model failures keep their
//! source error so logs show the cause chain.

use std::time::Duration;

use crate::role::Role;

/// Every way a gist operation can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request broke a rule: `field` names what the client sent, `reason` the limit.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The request field at fault, as named in the proto.
        field: &'static str,
        /// What is wrong with it, including the limit.
        reason: String,
    },
    /// The request needs something the server was not configured with.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The model queue is full; the client should retry after the hint.
    #[error("the {queue} queue is full ({capacity} {lane} requests waiting): retry later")]
    Overloaded {
        /// Which queue.
        queue: &'static str,
        /// Which of its lanes.
        lane: &'static str,
        /// Its configured capacity.
        capacity: usize,
        /// Suggested wait before retrying.
        retry_after: Duration,
    },
    /// The server is not ready (still loading, failed, shutting down, or the model thread
    /// stopped).
    #[error("{0}")]
    Unavailable(String),
    /// The request needs a model of this role and none is configured. Every engine says
    /// so the same way, and the status is chosen once, in [`From<Error> for tonic::Status`].
    #[error("{}", .0.missing())]
    ModelMissing(Role),
    /// A model could not be loaded from its files.
    #[error("cannot load model {name} from {path}")]
    ModelLoad {
        /// Model name from the manifest.
        name: String,
        /// Folder it was loaded from.
        path: String,
        /// What rust-bert or tch reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The models manifest is missing or malformed.
    #[error("models manifest {path}: {reason}")]
    Manifest {
        /// Manifest path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The request's deadline passed before its work was done; the rest was not run.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The client went away; its remaining work was dropped.
    #[error("{0}")]
    Cancelled(String),
    /// Inference failed inside the model runtime.
    #[error("model inference failed")]
    Inference(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A bug: an invariant of gist itself did not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        use tonic::{Code, Status};
        match &err {
            Error::InvalidArgument { .. } => Status::invalid_argument(err.to_string()),
            Error::FailedPrecondition(_) => Status::failed_precondition(err.to_string()),
            Error::Overloaded { retry_after, .. } => {
                let mut status = Status::resource_exhausted(err.to_string());
                // The standard gRPC retry hint (A6 client retries) for well-behaved clients.
                if let Ok(value) = retry_after.as_millis().to_string().parse() {
                    status
                        .metadata_mut()
                        .insert("grpc-retry-pushback-ms", value);
                }
                status
            }
            Error::Unavailable(_) => Status::unavailable(err.to_string()),
            // A service whose model is missing is NOT_SERVING in health, so its calls are
            // UNAVAILABLE (try another replica); a summarizer is needed only by the
            // ABSTRACTIVE mode a request chose, which this server cannot do at all.
            Error::ModelMissing(Role::Encoder | Role::Ner) => Status::unavailable(err.to_string()),
            Error::ModelMissing(Role::Summarizer) => Status::failed_precondition(err.to_string()),
            Error::DeadlineExceeded(_) => Status::deadline_exceeded(err.to_string()),
            Error::Cancelled(_) => Status::cancelled(err.to_string()),
            Error::ModelLoad { .. } | Error::Manifest { .. } => {
                Status::unavailable(error_chain(&err))
            }
            Error::Inference(_) | Error::Internal(_) => {
                Status::new(Code::Internal, error_chain(&err))
            }
        }
    }
}

/// `err: cause: cause…`, for logs and for statuses whose cause matters to the caller.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// The message of a caught panic (model runtimes panic on some inputs and files).
pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic with a non-string payload".to_string())
}
