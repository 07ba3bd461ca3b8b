//! Standard gRPC health checking (`grpc.health.v1`): each gist service is SERVING once the
//! models its task needs are loaded, and NOT_SERVING while loading, after a failure, once
//! the model thread stops, and from the first moment of a shutdown. The overall status
//! (service "") is SERVING while the models are loaded.

use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use super::rpc::SERVICES;
use crate::worker::WorkerState;

/// Every service, and the server as a whole, NOT_SERVING.
pub(crate) async fn not_serving(reporter: &HealthReporter) {
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    for (service, _) in SERVICES {
        reporter
            .set_service_status(service, ServingStatus::NotServing)
            .await;
    }
}

/// Mirror the model thread's state into the health service until the worker is gone.
pub(crate) async fn follow_worker(
    mut state_rx: tokio::sync::watch::Receiver<WorkerState>,
    reporter: HealthReporter,
) {
    loop {
        let state = state_rx.borrow_and_update().clone();
        match state {
            WorkerState::Ready(info) => {
                for (service, task) in SERVICES {
                    let status = if task.serves(&info) {
                        ServingStatus::Serving
                    } else {
                        ServingStatus::NotServing
                    };
                    reporter.set_service_status(service, status).await;
                }
                reporter
                    .set_service_status("", ServingStatus::Serving)
                    .await;
            }
            WorkerState::Loading | WorkerState::Failed(_) | WorkerState::Stopped => {
                not_serving(&reporter).await;
            }
        }
        if state_rx.changed().await.is_err() {
            // The worker is gone: nothing will be served again.
            not_serving(&reporter).await;
            return;
        }
    }
}
