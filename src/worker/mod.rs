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
use std::time::Duration;

use tokio::sync::watch;

pub use handle::Worker;

use crate::engine::EngineInfo;
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
}

impl Default for WorkerArgs {
    fn default() -> Self {
        WorkerArgs {
            queue_capacity: 64,
            max_batch: 16,
            max_batch_tokens: 16_384,
            batch_delay_ms: 5,
            max_text_tokens: 32_768,
        }
    }
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

/// What the handles and the model thread share.
struct Shared {
    queues: Mutex<Queues>,
    wake: Condvar,
    args: WorkerArgs,
    metrics: Arc<Metrics>,
    /// True once the queues are closed (shutting down or the thread ended).
    closed_tx: watch::Sender<bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        // A panic never happens while the lock is held (tasks run outside it), but if one
        // did, the queues themselves are still consistent.
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
        self.closed_tx.send_replace(true);
    }

    fn publish_depths(&self, queues: &Queues) {
        for task in Task::ALL {
            self.metrics.set_queue_depth(task.name(), queues.len(task));
        }
    }
}
