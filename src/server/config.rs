//! The server's settings: transport and lifecycle ([`ServerArgs`], with the security
//! settings flattened in) and request limits ([`Limits`]).

use std::time::Duration;

use super::security::SecurityArgs;

/// Transport, security and lifecycle settings of the server.
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Serialize)]
pub struct ServerArgs {
    /// Largest request message accepted, in bytes.
    #[arg(long, env = "GIST_MAX_MESSAGE_BYTES", default_value_t = ServerArgs::default().max_message_bytes)]
    pub max_message_bytes: usize,
    /// Deadline of requests that set none, and the longest one a client may set, in ms.
    #[arg(long, env = "GIST_REQUEST_TIMEOUT_MS", default_value_t = ServerArgs::default().request_timeout_ms)]
    pub request_timeout_ms: u64,
    /// On SIGTERM or Ctrl-C, how long accepted requests may take to finish, in seconds.
    #[arg(long, env = "GIST_DRAIN_TIMEOUT_SECS", default_value_t = ServerArgs::default().drain_timeout_secs)]
    pub drain_timeout_secs: u64,
    /// Most concurrent requests on one HTTP/2 connection (more wait in the transport).
    #[arg(long, env = "GIST_CONCURRENCY_PER_CONNECTION", default_value_t = ServerArgs::default().concurrency_per_connection)]
    pub concurrency_per_connection: usize,
    /// Most items one stream (SummarizeStream, ExtractEntitiesStream, AnalyzeStream) holds
    /// at a time: queued, running, or answered but not yet sent. The next item is read when
    /// one is sent.
    #[arg(long, env = "GIST_STREAM_MAX_IN_FLIGHT", default_value_t = ServerArgs::default().stream_max_in_flight)]
    pub stream_max_in_flight: usize,
    /// HTTP/2 keep-alive ping interval, in seconds (a peer silent for 20 s more is dropped).
    #[arg(long, env = "GIST_KEEPALIVE_SECS", default_value_t = ServerArgs::default().keepalive_secs)]
    pub keepalive_secs: u64,
    /// Transport security.
    #[command(flatten)]
    #[serde(flatten)]
    pub security: SecurityArgs,
}

impl Default for ServerArgs {
    fn default() -> Self {
        ServerArgs {
            max_message_bytes: 4 * 1024 * 1024,
            request_timeout_ms: 60_000,
            drain_timeout_secs: 30,
            concurrency_per_connection: 256,
            stream_max_in_flight: 32,
            keepalive_secs: 30,
            security: SecurityArgs::default(),
        }
    }
}

impl ServerArgs {
    /// `--request-timeout-ms` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }
}

/// Server-side limits on requests. Defaults are safe for a 2-core, 24 GiB machine.
#[derive(Debug, Clone, Copy, PartialEq, clap::Args, serde::Serialize)]
pub struct Limits {
    /// Longest accepted text, in Unicode code points.
    #[arg(long, env = "GIST_MAX_TEXT_CHARS", default_value_t = Limits::default().max_text_chars)]
    pub max_text_chars: usize,
    /// Most key points a request may ask for.
    #[arg(long, env = "GIST_MAX_KEY_POINTS", default_value_t = Limits::default().max_key_points)]
    pub max_key_points: usize,
    /// Longest abstractive summary a request may ask for, in model tokens.
    #[arg(long, env = "GIST_MAX_GENERATION_TOKENS", default_value_t = Limits::default().max_generation_tokens)]
    pub max_generation_tokens: usize,
    /// Widest beam search a request may ask for.
    #[arg(long, env = "GIST_MAX_BEAMS", default_value_t = Limits::default().max_beams)]
    pub max_beams: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_text_chars: 100_000,
            max_key_points: 20,
            max_generation_tokens: 512,
            max_beams: 8,
        }
    }
}
