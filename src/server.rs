//! The gRPC server: gist's services, standard health checking that follows the model
//! thread, and server reflection (v1 and v1alpha, so grpcurl 1.8 works with no .proto).

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::pb;
use crate::pb::analyzer_server::AnalyzerServer;
use crate::pb::entity_extractor_server::EntityExtractorServer;
use crate::pb::summarizer_server::SummarizerServer;
use crate::service::{AnalyzerService, AppState, EntityExtractorService, SummarizerService};
use crate::worker::WorkerState;

/// Transport and lifecycle settings of the server.
#[derive(Debug, Clone, Copy, PartialEq, clap::Args, serde::Serialize)]
pub struct ServerArgs {
    /// Largest request message accepted, in bytes.
    #[arg(long, env = "GIST_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,
    /// Deadline of requests that set none, and the longest one a client may set, in ms.
    #[arg(long, env = "GIST_REQUEST_TIMEOUT_MS", default_value_t = 60_000)]
    pub request_timeout_ms: u64,
    /// On SIGTERM or Ctrl-C, how long accepted requests may take to finish, in seconds.
    #[arg(long, env = "GIST_DRAIN_TIMEOUT_SECS", default_value_t = 30)]
    pub drain_timeout_secs: u64,
    /// Most concurrent requests on one HTTP/2 connection (more wait in the transport).
    #[arg(long, env = "GIST_CONCURRENCY_PER_CONNECTION", default_value_t = 256)]
    pub concurrency_per_connection: usize,
    /// HTTP/2 keep-alive ping interval, in seconds (a peer silent for 20 s more is dropped).
    #[arg(long, env = "GIST_KEEPALIVE_SECS", default_value_t = 30)]
    pub keepalive_secs: u64,
}

impl Default for ServerArgs {
    fn default() -> Self {
        ServerArgs {
            max_message_bytes: 4 * 1024 * 1024,
            request_timeout_ms: 60_000,
            drain_timeout_secs: 30,
            concurrency_per_connection: 256,
            keepalive_secs: 30,
        }
    }
}

impl ServerArgs {
    /// `--request-timeout-ms` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }
}

/// Serve gist on an already-bound listener until `shutdown` completes, then shut down
/// gracefully: health turns NOT_SERVING at once, new requests are refused UNAVAILABLE,
/// accepted ones finish (at most `--drain-timeout-secs`), and the call returns.
///
/// # Errors
/// Transport errors.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    args: ServerArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    set_health(&reporter, ALL_NOT_SERVING).await;
    let health_task = tokio::spawn(follow_worker(state.worker.state(), reporter.clone()));

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the embedded descriptor sets are valid");
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("the embedded descriptor sets are valid");

    let summarizer = SummarizerServer::new(SummarizerService(state.clone()))
        .max_decoding_message_size(args.max_message_bytes);
    let extractor = EntityExtractorServer::new(EntityExtractorService(state.clone()))
        .max_decoding_message_size(args.max_message_bytes);
    let analyzer = AnalyzerServer::new(AnalyzerService(state.clone()))
        .max_decoding_message_size(args.max_message_bytes);

    let follower = health_task.abort_handle();
    let worker = state.worker.clone();
    let drain_timeout = Duration::from_secs(args.drain_timeout_secs);
    let drained = async move {
        shutdown.await;
        tracing::info!(
            drain_timeout_secs = drain_timeout.as_secs(),
            "shutting down: health NOT_SERVING, new requests refused, finishing accepted ones"
        );
        follower.abort();
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        set_health(&reporter, ALL_NOT_SERVING).await;
        let in_time = worker.drain(drain_timeout).await;
        tracing::info!(in_time, "accepted requests answered");
    };

    let keepalive = Duration::from_secs(args.keepalive_secs.max(1));
    let result = Server::builder()
        .http2_keepalive_interval(Some(keepalive))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .concurrency_limit_per_connection(args.concurrency_per_connection.max(1))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(summarizer)
        .add_service(extractor)
        .add_service(analyzer)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), drained)
        .await;
    health_task.abort();
    result
}

const SUMMARIZER: &str = "gist.v1.Summarizer";
const EXTRACTOR: &str = "gist.v1.EntityExtractor";
const ANALYZER: &str = "gist.v1.Analyzer";

/// Every gist service NOT_SERVING.
const ALL_NOT_SERVING: Health = Health {
    summarizer: ServingStatus::NotServing,
    extractor: ServingStatus::NotServing,
    analyzer: ServingStatus::NotServing,
};

/// The status of each gist service.
#[derive(Clone, Copy)]
struct Health {
    summarizer: ServingStatus,
    extractor: ServingStatus,
    analyzer: ServingStatus,
}

async fn set_health(reporter: &HealthReporter, health: Health) {
    reporter
        .set_service_status(SUMMARIZER, health.summarizer)
        .await;
    reporter.set_service_status(EXTRACTOR, health.extractor).await;
    reporter.set_service_status(ANALYZER, health.analyzer).await;
}

/// Mirror the model thread's state into the health service: each gist service is SERVING
/// once the model it needs is loaded, and NOT_SERVING again if the thread stops.
async fn follow_worker(
    mut state_rx: tokio::sync::watch::Receiver<WorkerState>,
    reporter: HealthReporter,
) {
    use ServingStatus::{NotServing, Serving};
    loop {
        let state = state_rx.borrow_and_update().clone();
        match state {
            WorkerState::Ready(info) => {
                let status = |up: bool| if up { Serving } else { NotServing };
                let summarizes = info.encoder.is_some() || info.summarizer.is_some();
                let health = Health {
                    summarizer: status(summarizes),
                    extractor: status(info.ner.is_some()),
                    analyzer: status(summarizes && info.ner.is_some()),
                };
                set_health(&reporter, health).await;
                reporter.set_service_status("", Serving).await;
            }
            WorkerState::Loading | WorkerState::Failed(_) | WorkerState::Stopped => {
                set_health(&reporter, ALL_NOT_SERVING).await;
                reporter.set_service_status("", NotServing).await;
            }
        }
        if state_rx.changed().await.is_err() {
            // The worker is gone: nothing will be served again.
            set_health(&reporter, ALL_NOT_SERVING).await;
            reporter.set_service_status("", NotServing).await;
            return;
        }
    }
}
