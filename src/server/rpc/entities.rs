//! `gist.v1.EntityExtractor`: ExtractEntities and ExtractEntitiesStream.

use tonic::{Request, Response, Status, Streaming};

use super::{check_id, check_text, ticket, u32_of};
use crate::error::{Error, Result};
use crate::pb;
use crate::server::config::Limits;
use crate::server::context::{self, Call};
use crate::server::state::AppState;
use crate::server::stream::{self, Answers};
use crate::tasks::{Entities, EntitiesJob};
use crate::text::entities::Entity;
use crate::text::groups::Group;
use crate::worker::Done;

/// Most labels in an entity filter.
pub const MAX_LABELS: usize = 32;

/// The service.
#[derive(Clone)]
pub struct EntityExtractorService(pub AppState);

#[tonic::async_trait]
impl pb::entity_extractor_server::EntityExtractor for EntityExtractorService {
    async fn extract_entities(
        &self,
        request: Request<pb::ExtractEntitiesRequest>,
    ) -> Result<Response<pb::ExtractEntitiesResponse>, Status> {
        context::unary(&self.0, "ExtractEntities", request, run).await
    }

    type ExtractEntitiesStreamStream = Answers<pb::ExtractEntitiesStreamResponse>;

    async fn extract_entities_stream(
        &self,
        request: Request<Streaming<pb::ExtractEntitiesRequest>>,
    ) -> Result<Response<Self::ExtractEntitiesStreamStream>, Status> {
        Ok(Response::new(stream::open(
            &self.0,
            "ExtractEntitiesStream",
            run,
            request,
        )))
    }
}

/// Validate, queue and convert one request (a unary call, or one item of a stream).
pub(crate) async fn run(
    state: AppState,
    req: pb::ExtractEntitiesRequest,
    call: Call,
) -> Result<Done<(pb::ExtractEntitiesResponse, usize)>, Error> {
    let id = req.id.clone();
    let ticket = ticket(&call, &req.model, req.priority)?;
    let job = job(req, &state.limits)?;
    let done = state.worker.submit(job, ticket).await?;
    let tokens = done.value.input_tokens;
    Ok(done.map(|e| (response(id, e), tokens)))
}

/// Validate an `ExtractEntitiesRequest`.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the field and the limit.
pub fn job(req: pb::ExtractEntitiesRequest, limits: &Limits) -> Result<EntitiesJob> {
    check_text("text", &req.text, limits)?;
    check_id(&req.id)?;
    let (min_score, labels) = filter(req.min_score, req.labels)?;
    Ok(EntitiesJob {
        text: req.text,
        min_score,
        labels,
    })
}

pub(crate) fn filter(min_score: Option<f32>, labels: Vec<String>) -> Result<(f32, Vec<String>)> {
    let min_score = min_score.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&min_score) {
        return Err(Error::invalid(
            "min_score",
            format!("is {min_score}; it must be in [0.0, 1.0]"),
        ));
    }
    if labels.len() > MAX_LABELS {
        return Err(Error::invalid(
            "labels",
            format!("has {} entries; the limit is {MAX_LABELS}", labels.len()),
        ));
    }
    if labels.iter().any(|l| l.trim().is_empty()) {
        return Err(Error::invalid("labels", "must not contain empty labels"));
    }
    Ok((min_score, labels))
}

pub(crate) fn entity(e: Entity) -> pb::Entity {
    pb::Entity {
        text: e.text,
        label: e.label,
        score: e.score,
        start: u32_of(e.span.start),
        end: u32_of(e.span.end),
        byte_start: u32_of(e.span.byte_start),
        byte_end: u32_of(e.span.byte_end),
        utf16_start: u32_of(e.span.utf16_start),
        utf16_end: u32_of(e.span.utf16_end),
    }
}

/// Convert entities to their response message.
pub fn response(id: String, e: Entities) -> pb::ExtractEntitiesResponse {
    pb::ExtractEntitiesResponse {
        id,
        entities: e.entities.into_iter().map(entity).collect(),
        groups: e.groups.into_iter().map(group).collect(),
        model: e.model,
        model_version: e.model_version,
        input_tokens: u32_of(e.input_tokens),
    }
}

fn group(g: Group) -> pb::EntityGroup {
    pb::EntityGroup {
        count: u32_of(g.mentions.len()),
        mentions: g.mentions.into_iter().map(u32_of).collect(),
        name: g.name,
        label: g.label,
        salience: g.salience,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: Error) -> String {
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
        e.to_string()
    }

    #[test]
    fn entity_filters_are_checked() {
        let limits = Limits::default();
        let r = |min_score: Option<f32>, labels: Vec<&str>| pb::ExtractEntitiesRequest {
            text: "Imran Khan".into(),
            min_score,
            labels: labels.into_iter().map(String::from).collect(),
            ..Default::default()
        };
        assert!(message(job(r(Some(1.5), vec![]), &limits).unwrap_err())
            .starts_with("min_score: is 1.5"));
        assert!(
            message(job(r(None, vec![""]), &limits).unwrap_err()).starts_with("labels: must not")
        );
        assert!(message(job(r(None, vec!["PER"; 33]), &limits).unwrap_err())
            .starts_with("labels: has 33"));
        let job = job(r(Some(0.5), vec!["PER"]), &limits).unwrap();
        assert_eq!((job.min_score, job.labels), (0.5, vec!["PER".to_string()]));
    }
}
