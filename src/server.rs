//! The gRPC server: gist's services, standard health checking that follows the model
//! thread, and server reflection (v1 and v1alpha, so grpcurl 1.8 works with no .proto).

use std::future::Future;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::pb;
use crate::pb::entity_extractor_server::EntityExtractorServer;
use crate::pb::summarizer_server::SummarizerServer;
use crate::service::{AppState, EntityExtractorService, SummarizerService};
use crate::worker::WorkerState;

/// Transport settings of the server.
#[derive(Debug, Clone, Copy, PartialEq, clap::Args, serde::Serialize)]
pub struct ServerArgs {
    /// Largest request message accepted, in bytes.
    #[arg(long, env = "GIST_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,
}

impl Default for ServerArgs {
    fn default() -> Self {
        ServerArgs {
            max_message_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Serve gist on an already-bound listener until `shutdown` completes.
///
/// # Errors
/// The transport's error if the server cannot run.
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
    set_health(
        &reporter,
        ServingStatus::NotServing,
        ServingStatus::NotServing,
    )
    .await;
    let health_task = tokio::spawn(follow_worker(state.worker.state(), reporter));

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
    let extractor = EntityExtractorServer::new(EntityExtractorService(state))
        .max_decoding_message_size(args.max_message_bytes);

    let result = Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(summarizer)
        .add_service(extractor)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await;
    health_task.abort();
    result
}

const SUMMARIZER: &str = "gist.v1.Summarizer";
const EXTRACTOR: &str = "gist.v1.EntityExtractor";

async fn set_health(
    reporter: &HealthReporter,
    summarizer: ServingStatus,
    extractor: ServingStatus,
) {
    reporter.set_service_status(SUMMARIZER, summarizer).await;
    reporter.set_service_status(EXTRACTOR, extractor).await;
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
                let summarizer = if info.encoder.is_some() || info.summarizer.is_some() {
                    Serving
                } else {
                    NotServing
                };
                let extractor = if info.ner.is_some() {
                    Serving
                } else {
                    NotServing
                };
                set_health(&reporter, summarizer, extractor).await;
                reporter.set_service_status("", Serving).await;
            }
            WorkerState::Loading | WorkerState::Failed(_) | WorkerState::Stopped => {
                set_health(&reporter, NotServing, NotServing).await;
                reporter.set_service_status("", NotServing).await;
            }
        }
        if state_rx.changed().await.is_err() {
            // The worker is gone: nothing will be served again.
            set_health(&reporter, NotServing, NotServing).await;
            reporter.set_service_status("", NotServing).await;
            return;
        }
    }
}
