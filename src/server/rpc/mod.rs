//! The gRPC services, one module per service (validate the request, hand the job to the
//! worker, convert the answer), and the validation rules they share. Every rejection names
//! the proto field and the limit. Nothing here blocks or knows about a model runtime.

pub mod analyze;
pub mod entities;
pub mod models;
pub mod summarize;

pub use analyze::AnalyzerService;
pub use entities::EntityExtractorService;
pub use models::ModelsService;
pub use summarize::SummarizerService;

use super::config::Limits;
use super::context::Call;
use crate::error::{Error, Result};
use crate::pb;
use crate::tasks::Task;
use crate::worker::{Lane, ModelChoice, Ticket};

/// Each gist service and the task it runs: the one table health follows.
pub(crate) const SERVICES: [(&str, Task); 3] = [
    (pb::summarizer_server::SERVICE_NAME, Task::Summarize),
    (pb::entity_extractor_server::SERVICE_NAME, Task::Entities),
    (pb::analyzer_server::SERVICE_NAME, Task::Analyze),
];

/// Longest accepted `model` field, in bytes.
pub const MAX_MODEL_BYTES: usize = 256;

/// The header that sets the lane of a call or stream.
pub const PRIORITY_HEADER: &str = "x-gist-priority";

/// How a request is admitted: its `model` and `priority` fields, else the call's
/// `x-gist-priority` header, else the call's default lane.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the field (or header) at fault.
pub(crate) fn ticket(call: &Call, model: &str, priority: i32) -> Result<Ticket> {
    if model.len() > MAX_MODEL_BYTES {
        return Err(Error::invalid(
            "model",
            format!(
                "is {} bytes long; the limit is {MAX_MODEL_BYTES}",
                model.len()
            ),
        ));
    }
    let model = model.trim();
    let model = if model.is_empty() {
        None
    } else {
        let choice = ModelChoice::parse(model);
        if choice.name.is_empty() || choice.version.as_deref() == Some("") {
            return Err(Error::invalid(
                "model",
                format!("{model:?} is not a model name or name@version"),
            ));
        }
        Some(choice)
    };
    let lane = match pb::Priority::try_from(priority) {
        Ok(pb::Priority::Interactive) => Lane::Interactive,
        Ok(pb::Priority::Batch) => Lane::Batch,
        Ok(pb::Priority::Unspecified) => match &call.priority_header {
            None => call.lane,
            Some(value) => Lane::from_name(value).ok_or_else(|| {
                Error::invalid(
                    PRIORITY_HEADER,
                    format!("is {value:?}; it must be \"interactive\" or \"batch\""),
                )
            })?,
        },
        Err(_) => {
            return Err(Error::invalid(
                "priority",
                format!("{priority} is not a Priority value (0, 1 or 2)"),
            ))
        }
    };
    Ok(Ticket {
        deadline: call.deadline,
        lane,
        model,
    })
}

/// Longest accepted client id, in bytes.
pub const MAX_ID_BYTES: usize = 256;

pub(crate) fn check_text(field: &'static str, text: &str, limits: &Limits) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    // Count no further than needed: the limit check must stay cheap for huge inputs.
    if text.len() > limits.max_text_chars && text.chars().nth(limits.max_text_chars).is_some() {
        return Err(Error::invalid(
            field,
            format!(
                "is {} characters long; the limit is {} (--max-text-chars)",
                text.chars().count(),
                limits.max_text_chars
            ),
        ));
    }
    Ok(())
}

pub(crate) fn check_id(id: &str) -> Result<()> {
    if id.len() > MAX_ID_BYTES {
        return Err(Error::invalid(
            "id",
            format!("is {} bytes long; the limit is {MAX_ID_BYTES}", id.len()),
        ));
    }
    Ok(())
}

pub(crate) fn in_range(field: &'static str, value: u32, max: usize, flag: &str) -> Result<usize> {
    let value = value as usize;
    if value > max {
        return Err(Error::invalid(
            field,
            format!("is {value}; the limit is {max} ({flag})"),
        ));
    }
    Ok(value)
}

pub(crate) fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
