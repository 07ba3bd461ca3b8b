//! `gist.v1.Models`: ListModels and Reload.

use tonic::{Request, Response, Status};

use super::u32_of;
use crate::pb;
use crate::server::state::AppState;
use crate::worker::{ModelState, ModelStatus};

/// The service.
#[derive(Clone)]
pub struct ModelsService(pub AppState);

#[tonic::async_trait]
impl pb::models_server::Models for ModelsService {
    async fn list_models(
        &self,
        _request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        Ok(Response::new(pb::ListModelsResponse {
            models: statuses(self.0.worker.models()),
        }))
    }

    async fn reload(
        &self,
        _request: Request<pb::ReloadRequest>,
    ) -> Result<Response<pb::ReloadResponse>, Status> {
        let models = self.0.worker.reload().await.map_err(Status::from)?;
        Ok(Response::new(pb::ReloadResponse {
            models: statuses(models),
        }))
    }
}

/// The catalog as messages.
pub fn statuses(models: Vec<ModelStatus>) -> Vec<pb::ModelStatus> {
    models.into_iter().map(status).collect()
}

fn status(m: ModelStatus) -> pb::ModelStatus {
    let info = m.info.unwrap_or_default();
    pb::ModelStatus {
        task: m.role.section().to_string(),
        name: m.name,
        version: info.version,
        architecture: info.architecture,
        runtime: info.runtime,
        precision: info.precision,
        max_input_tokens: u32_of(info.max_input_tokens),
        labels: info.labels,
        state: match m.state {
            ModelState::Loading => pb::ModelState::Loading,
            ModelState::Ready => pb::ModelState::Ready,
            ModelState::Failed => pb::ModelState::Failed,
        } as i32,
        error: m.error.unwrap_or_default(),
        default: m.default,
    }
}
