//! [`AppState`]: what every handler needs, cloned into each.

use std::sync::Arc;
use std::time::Duration;

use super::config::{Limits, ServerArgs};
use crate::metrics::Metrics;
use crate::worker::Worker;

/// What every service needs.
#[derive(Clone)]
pub struct AppState {
    /// Handle to the model thread.
    pub worker: Worker,
    /// Request limits.
    pub limits: Limits,
    /// Metrics of this server.
    pub metrics: Arc<Metrics>,
    /// Deadline of requests that set none (and the cap of those that set a longer one).
    pub request_timeout: Duration,
    /// Most items one stream holds at a time.
    pub stream_max_in_flight: usize,
    /// Largest request message (an HTTP body, one NDJSON line), in bytes.
    pub max_message_bytes: usize,
}

impl AppState {
    /// The state of a server with these settings.
    pub fn new(worker: Worker, limits: Limits, args: &ServerArgs) -> AppState {
        AppState {
            metrics: worker.metrics(),
            worker,
            limits,
            request_timeout: args.request_timeout(),
            stream_max_in_flight: args.stream_max_in_flight.max(1),
            max_message_bytes: args.max_message_bytes,
        }
    }
}
