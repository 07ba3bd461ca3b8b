//! The one place that blocks: a dedicated model thread that owns the
//! [`crate::engine::Engine`], fed by one
//! bounded queue per task, answering each request on a oneshot channel.
//!
//! Models must not be created or run on the async runtime (they block, and tch tensors are
//! not `Sync`), so the thread loads the models itself and then serves the queues, oldest
//! request first. Concurrent requests of one task are gathered into one batch (dynamic
//! batching: up to `--max-batch` requests and `--max-batch-tokens` estimated tokens,
//! waiting at most `--batch-delay-ms` after the first), and share forward passes.
//!
//! Admission is decided at once: a full queue is [`crate::Error::Overloaded`], a closed worker
//! (shutting down) or a dead thread [`crate::Error::Unavailable`]. Before a batch runs, requests
//! whose deadline has passed are answered [`crate::Error::DeadlineExceeded`] and requests whose
//! caller has gone are dropped; neither reaches the model.
//!
//! - [`handle`]: [`Worker`], the cheap handle the server holds (submit, health, drain);
//! - [`queue`]: the queues as plain data (which task next, how a batch is taken);
//! - [`thread`]: the model thread's loop.
//!
//! The worker knows tasks only through [`crate::tasks::Job`]: a new task needs no change here.

mod handle;
mod queue;
mod thread;

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{oneshot, watch};

pub use handle::Worker;

use crate::engine::{EngineInfo, ModelInfo, Role, Served, Staged};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::tasks::Task;
use queue::Queues;

/// Lifecycle of the model thread, as health checks see it.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerState {
    /// Models are being loaded.
    Loading,
    /// Serving with these models.
    Ready(Arc<EngineInfo>),
    /// Loading failed; the message says why.
    Failed(String),
    /// The thread has ended (after a shutdown drained the queues, or a crash).
    Stopped,
}

/// Settings of the model thread.
#[derive(Debug, Clone, Copy, PartialEq, clap::Args, serde::Serialize)]
pub struct WorkerArgs {
    /// Requests that may wait in each task's queue; more are refused at once with
    /// RESOURCE_EXHAUSTED and a retry hint.
    #[arg(long, env = "GIST_QUEUE_CAPACITY", default_value_t = WorkerArgs::default().queue_capacity)]
    pub queue_capacity: usize,
    /// Most requests gathered into one batch.
    #[arg(long, env = "GIST_MAX_BATCH", default_value_t = WorkerArgs::default().max_batch)]
    pub max_batch: usize,
    /// Most input tokens (estimated as characters / 4) in one batch; a single larger
    /// request still runs alone.
    #[arg(long, env = "GIST_MAX_BATCH_TOKENS", default_value_t = WorkerArgs::default().max_batch_tokens)]
    pub max_batch_tokens: usize,
    /// How long the model thread waits after the first request of a batch for more to
    /// arrive, in milliseconds (0: never wait; batches still form under load).
    #[arg(long, env = "GIST_BATCH_DELAY_MS", default_value_t = WorkerArgs::default().batch_delay_ms)]
    pub batch_delay_ms: u64,
    /// Longest accepted text in model tokens (counted with the tokenizer of the model the
    /// request needs, on the model thread); longer ones get INVALID_ARGUMENT.
    #[arg(long, env = "GIST_MAX_TEXT_TOKENS", default_value_t = WorkerArgs::default().max_text_tokens)]
    pub max_text_tokens: usize,
    /// While interactive and batch work both wait, one batch in this many is taken from
    /// the batch lane (so interactive load never starves a batch job); 1 alternates.
    #[arg(long, env = "GIST_BATCH_LANE_SHARE", default_value_t = WorkerArgs::default().batch_lane_share)]
    pub batch_lane_share: usize,
}

impl Default for WorkerArgs {
    fn default() -> Self {
        WorkerArgs {
            queue_capacity: 64,
            max_batch: 16,
            max_batch_tokens: 16_384,
            batch_delay_ms: 5,
            max_text_tokens: 32_768,
            batch_lane_share: 8,
        }
    }
}

/// The priority lanes of every task's queue. The model thread serves interactive work
/// first, and keeps one batch in `--batch-lane-share` for batch work while both wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    /// A caller waiting for one answer (unary calls, by default).
    Interactive,
    /// Bulk work (stream items, by default).
    Batch,
}

impl Lane {
    /// Both lanes.
    pub const ALL: [Lane; 2] = [Lane::Interactive, Lane::Batch];

    /// Its name in metrics, headers and messages.
    pub fn name(self) -> &'static str {
        match self {
            Lane::Interactive => "interactive",
            Lane::Batch => "batch",
        }
    }

    /// The lane of a name (`x-gist-priority`).
    pub fn from_name(name: &str) -> Option<Lane> {
        Lane::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(name.trim()))
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A model a request names: `name`, or `name@version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelChoice {
    /// The model's name in models.toml.
    pub name: String,
    /// A version it must be at.
    pub version: Option<String>,
}

impl ModelChoice {
    /// Read `name` or `name@version`.
    pub fn parse(text: &str) -> ModelChoice {
        match text.split_once('@') {
            Some((name, version)) => ModelChoice {
                name: name.to_string(),
                version: Some(version.to_string()),
            },
            None => ModelChoice {
                name: text.to_string(),
                version: None,
            },
        }
    }
}

/// How a request is admitted: its deadline, lane and model.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    /// When its answer is no longer wanted.
    pub deadline: Option<Instant>,
    /// Its priority lane.
    pub lane: Lane,
    /// The model it names (else its task's defaults).
    pub model: Option<ModelChoice>,
}

impl Ticket {
    /// An interactive request on the default models.
    pub fn interactive(deadline: Option<Instant>) -> Ticket {
        Ticket {
            deadline,
            lane: Lane::Interactive,
            model: None,
        }
    }
}

/// Where a model stands, as `ListModels` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ModelState {
    /// A reload is loading it.
    Loading,
    /// Serving.
    Ready,
    /// Its last load failed (an older version, if any, still serves).
    Failed,
}

/// One model of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelStatus {
    /// Its role (the models.toml section).
    pub role: Role,
    /// Its name.
    pub name: String,
    /// Its description, once loaded.
    pub info: Option<ModelInfo>,
    /// Where it stands.
    pub state: ModelState,
    /// Why it failed to load.
    pub error: Option<String>,
    /// Serves the requests of its role that name no model.
    pub default: bool,
}

/// Where a request's time went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timing {
    /// Waiting in the queue.
    pub queue: Duration,
    /// Running on the model thread (the whole batch it was part of).
    pub inference: Duration,
    /// Requests in that batch.
    pub batch_size: usize,
    /// The end of `queue` spent forming the batch: from when the model thread began
    /// gathering this task's batch (or the request arrived, if later) until the model ran.
    pub formation: Duration,
    /// When the model started on the batch (trace spans are placed from it).
    pub model_started: Option<std::time::Instant>,
}

/// A result with its timing.
#[derive(Debug, Clone)]
pub struct Done<T> {
    /// The task's result.
    pub value: T,
    /// Where the time went.
    pub timing: Timing,
}

impl<T> Done<T> {
    /// The same timing with the value changed by `f`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Done<U> {
        Done {
            value: f(self.value),
            timing: self.timing,
        }
    }
}

/// The models as admission and `ListModels` see them, kept with the queues (one lock) so
/// that a request is pinned to a version exactly while the engine keeps it.
#[derive(Default)]
struct Catalog {
    /// What the engine serves.
    served: Vec<Served>,
    /// Being loaded by a reload: role and name.
    loading: Vec<(Role, String)>,
    /// The last reload's failures: role, name and why.
    failed: Vec<(Role, String, String)>,
}

impl Catalog {
    fn of(served: Vec<Served>) -> Catalog {
        Catalog {
            served,
            ..Catalog::default()
        }
    }

    /// Every model with where it stands, by role and name.
    fn statuses(&self) -> Vec<ModelStatus> {
        let mut out: Vec<ModelStatus> = self
            .served
            .iter()
            .map(|s| ModelStatus {
                role: s.role,
                name: s.info.name.clone(),
                info: Some(s.info.clone()),
                state: ModelState::Ready,
                error: None,
                default: s.default,
            })
            .collect();
        out.extend(self.loading.iter().map(|(role, name)| ModelStatus {
            role: *role,
            name: name.clone(),
            info: None,
            state: ModelState::Loading,
            error: None,
            default: false,
        }));
        out.extend(self.failed.iter().map(|(role, name, why)| ModelStatus {
            role: *role,
            name: name.clone(),
            info: None,
            state: ModelState::Failed,
            error: Some(why.clone()),
            default: false,
        }));
        out.sort_by(|a, b| (a.role, &a.name).cmp(&(b.role, &b.name)));
        out
    }

    /// The default models of every role.
    fn defaults(&self) -> EngineInfo {
        let mut info = EngineInfo::default();
        for served in self.served.iter().filter(|s| s.default) {
            info.insert(served.role, served.info.clone());
        }
        info
    }

    /// The models a request of `task` runs on: the defaults, but for the role of the model
    /// it names (naming an encoder also leaves the summarizer out, so AUTO summaries
    /// are key points from that encoder).
    ///
    /// # Errors
    /// INVALID_ARGUMENT for an unknown name or a model the task does not read, listing
    /// the names it could use; FAILED_PRECONDITION for a version not served.
    fn pick(&self, task: Task, choice: Option<&ModelChoice>) -> Result<EngineInfo> {
        let mut info = self.defaults();
        let Some(choice) = choice else {
            return Ok(info);
        };
        let readable: Vec<&Served> = self
            .served
            .iter()
            .filter(|s| task.reads().contains(&s.role))
            .collect();
        let known = || {
            let mut names: Vec<String> = readable
                .iter()
                .map(|s| format!("{:?}", s.info.name))
                .collect();
            names.sort();
            names.dedup();
            if names.is_empty() {
                "none is loaded".to_string()
            } else {
                format!("known: {}", names.join(", "))
            }
        };
        let Some(found) = readable.iter().find(|s| s.info.name == choice.name) else {
            let other = self.served.iter().find(|s| s.info.name == choice.name);
            return Err(Error::invalid(
                "model",
                match other {
                    Some(s) => format!(
                        "{:?} is a model of [{}], which {} requests do not read ({})",
                        choice.name,
                        s.role.section(),
                        task.name(),
                        known()
                    ),
                    None => format!(
                        "no model {:?} is served for {} requests ({})",
                        choice.name,
                        task.name(),
                        known()
                    ),
                },
            ));
        };
        if let Some(version) = &choice.version {
            if *version != found.info.version {
                return Err(Error::FailedPrecondition(format!(
                    "model: {:?} is served at version {}, not {version} (a reload replaced it, or the version is wrong): name no version to use the one served",
                    choice.name, found.info.version
                )));
            }
        }
        if found.role == Role::Encoder {
            info.remove(Role::Summarizer);
        }
        info.insert(found.role, found.info.clone());
        Ok(info)
    }
}

/// Reloads asked for and in progress.
#[derive(Default)]
struct Reloads {
    /// Callers waiting for the next reload to finish.
    waiting: Vec<oneshot::Sender<Result<Vec<ModelStatus>>>>,
    /// Callers of the reload in progress.
    running: Option<Vec<oneshot::Sender<Result<Vec<ModelStatus>>>>>,
    /// What the reload in progress loaded, once it is done.
    staged: Option<Result<Staged>>,
}

/// What the handles and the model thread share, under one lock.
struct Board {
    queues: Queues,
    catalog: Catalog,
    reloads: Reloads,
}

/// What the handles and the model thread share.
struct Shared {
    queues: Mutex<Board>,
    wake: Condvar,
    args: WorkerArgs,
    metrics: Arc<Metrics>,
    /// True once the queues are closed (shutting down or the thread ended).
    closed_tx: watch::Sender<bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Board> {
        // A panic never happens while the lock is held (tasks run outside it), but if one
        // did, the queues themselves are still consistent.
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&self) {
        self.lock().queues.closed = true;
        self.wake.notify_all();
        self.closed_tx.send_replace(true);
    }

    fn publish_depths(&self, queues: &Queues) {
        for task in Task::ALL {
            for lane in Lane::ALL {
                self.metrics
                    .set_queue_depth(task.name(), lane.name(), queues.len(task, lane));
            }
        }
    }
}
