//! The one place that blocks: a dedicated model thread that owns the [`Engine`], fed by a
//! bounded queue, answering each request on a oneshot channel.
//!
//! rust-bert models must not be created or run on the async runtime (they block, and tch
//! tensors are not `Sync`), so the thread loads the models itself and then serves commands
//! until every sender is gone. A full queue is an immediate [`Error::Overloaded`]; a dead
//! thread turns into [`Error::Unavailable`] for callers and `Stopped` for health checks.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::engine::{Engine, EngineInfo};
use crate::error::{Error, Result};
use crate::tasks::{self, Entities, EntitiesJob, SummarizeJob, Summary};

/// Lifecycle of the model thread, as health checks see it.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerState {
    /// Models are being loaded.
    Loading,
    /// Serving with these models.
    Ready(Arc<EngineInfo>),
    /// Loading failed; the message says why.
    Failed(String),
    /// The thread has ended.
    Stopped,
}

/// A unit of work for the model thread.
enum Command {
    Summarize {
        job: SummarizeJob,
        reply_tx: oneshot::Sender<Result<Summary>>,
    },
    Entities {
        job: EntitiesJob,
        reply_tx: oneshot::Sender<Result<Entities>>,
    },
}

/// Settings of the model thread.
#[derive(Debug, Clone, Copy, PartialEq, clap::Args, serde::Serialize)]
pub struct WorkerArgs {
    /// Requests that may wait for the model thread; more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "GIST_QUEUE_CAPACITY", default_value_t = 64)]
    pub queue_capacity: usize,
}

impl Default for WorkerArgs {
    fn default() -> Self {
        WorkerArgs { queue_capacity: 64 }
    }
}

/// Handle to the model thread; cheap to clone.
#[derive(Clone)]
pub struct Worker {
    command_tx: mpsc::Sender<Command>,
    state_rx: watch::Receiver<WorkerState>,
    capacity: usize,
}

impl Worker {
    /// Start the model thread; `load` runs on it and builds the engine.
    pub fn spawn<F>(load: F, args: WorkerArgs) -> Worker
    where
        F: FnOnce() -> Result<Box<dyn Engine>> + Send + 'static,
    {
        let capacity = args.queue_capacity.max(1);
        let (command_tx, command_rx) = mpsc::channel(capacity);
        let (state_tx, state_rx) = watch::channel(WorkerState::Loading);
        let spawned = std::thread::Builder::new()
            .name("gist-model".into())
            .spawn(move || model_thread(load, command_rx, state_tx));
        if let Err(err) = spawned {
            tracing::error!(cause = %err, "cannot start the model thread");
        }
        Worker {
            command_tx,
            state_rx,
            capacity,
        }
    }

    /// Requests waiting in the queue (not counting the one the model is running).
    pub fn queue_depth(&self) -> usize {
        self.command_tx.max_capacity() - self.command_tx.capacity()
    }

    /// Watch the thread's lifecycle.
    pub fn state(&self) -> watch::Receiver<WorkerState> {
        self.state_rx.clone()
    }

    /// Wait until loading has finished.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when loading failed or the thread stopped.
    pub async fn ready(&self) -> Result<Arc<EngineInfo>> {
        let mut state_rx = self.state_rx.clone();
        let state = state_rx
            .wait_for(|s| !matches!(s, WorkerState::Loading))
            .await
            .map_err(|_| Error::Unavailable("the model thread stopped".into()))?;
        match &*state {
            WorkerState::Ready(info) => Ok(info.clone()),
            other => Err(unavailable(other)),
        }
    }

    /// Summarize on the model thread.
    ///
    /// # Errors
    /// [`Error::Overloaded`], [`Error::Unavailable`], and the task's own errors.
    pub async fn summarize(&self, job: SummarizeJob) -> Result<Summary> {
        self.check_ready()?;
        let (reply_tx, reply_rx) = oneshot::channel();
        self.submit(Command::Summarize { job, reply_tx })?;
        reply_rx
            .await
            .map_err(|_| Error::Unavailable("the model thread stopped before answering".into()))?
    }

    /// Extract entities on the model thread.
    ///
    /// # Errors
    /// [`Error::Overloaded`], [`Error::Unavailable`] (also when no NER model is loaded),
    /// and the task's own errors.
    pub async fn extract_entities(&self, job: EntitiesJob) -> Result<Entities> {
        let info = self.check_ready()?;
        if info.ner.is_none() {
            return Err(Error::Unavailable(crate::engine::rust_bert::NO_NER.into()));
        }
        let (reply_tx, reply_rx) = oneshot::channel();
        self.submit(Command::Entities { job, reply_tx })?;
        reply_rx
            .await
            .map_err(|_| Error::Unavailable("the model thread stopped before answering".into()))?
    }

    fn check_ready(&self) -> Result<Arc<EngineInfo>> {
        match &*self.state_rx.borrow() {
            WorkerState::Ready(info) => Ok(info.clone()),
            other => Err(unavailable(other)),
        }
    }

    fn submit(&self, command: Command) -> Result<()> {
        self.command_tx.try_send(command).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => Error::Overloaded {
                queue: "model",
                capacity: self.capacity,
                retry_after: Duration::from_millis(250),
            },
            mpsc::error::TrySendError::Closed(_) => {
                Error::Unavailable("the model thread stopped".into())
            }
        })
    }
}

fn unavailable(state: &WorkerState) -> Error {
    Error::Unavailable(match state {
        WorkerState::Loading => "models are still loading: retry shortly".to_string(),
        WorkerState::Failed(why) => format!("models failed to load: {why}"),
        WorkerState::Stopped | WorkerState::Ready(_) => "the model thread stopped".to_string(),
    })
}

/// Marks the worker `Stopped` however the thread ends, panics included.
struct StoppedOnDrop(watch::Sender<WorkerState>);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        self.0.send_if_modified(|s| {
            if matches!(s, WorkerState::Failed(_)) {
                return false;
            }
            *s = WorkerState::Stopped;
            true
        });
    }
}

fn model_thread<F>(
    load: F,
    mut command_rx: mpsc::Receiver<Command>,
    state_tx: watch::Sender<WorkerState>,
) where
    F: FnOnce() -> Result<Box<dyn Engine>>,
{
    let state = StoppedOnDrop(state_tx);
    let started = std::time::Instant::now();
    let mut engine = match load() {
        Ok(engine) => engine,
        Err(err) => {
            let why = crate::error::error_chain(&err);
            tracing::error!(cause = %why, "model loading failed");
            state.0.send_replace(WorkerState::Failed(why));
            return;
        }
    };
    let info = Arc::new(engine.info().clone());
    tracing::info!(load_ms = started.elapsed().as_millis() as u64, models = ?info, "models loaded");
    state.0.send_replace(WorkerState::Ready(info));

    while let Some(command) = command_rx.blocking_recv() {
        match command {
            Command::Summarize { job, reply_tx } => {
                if !reply_tx.is_closed() {
                    let _ = reply_tx.send(guarded(|| tasks::summarize(engine.as_mut(), &job)));
                }
            }
            Command::Entities { job, reply_tx } => {
                if !reply_tx.is_closed() {
                    let _ =
                        reply_tx.send(guarded(|| tasks::extract_entities(engine.as_mut(), &job)));
                }
            }
        }
    }
    tracing::info!("model thread stopped: no more senders");
}

/// Run one task, turning a panic inside the model runtime into an error for that request
/// alone instead of killing the thread.
fn guarded<T>(task: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(task)).unwrap_or_else(|panic| {
        let message = crate::engine::rust_bert::panic_message(&panic);
        tracing::error!(cause = %message, "model task panicked");
        Err(Error::Internal(format!(
            "the model failed on this input: {message}"
        )))
    })
}
