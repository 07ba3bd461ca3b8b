//! [`Worker`]: the handle to the model thread that the server, the CLI and the tests hold.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use super::queue::{Pending, Queues};
use super::{
    thread, Board, Catalog, Done, Lane, ModelStatus, Reloads, Shared, Ticket, WorkerArgs,
    WorkerState,
};
use crate::engine::{Engine, EngineInfo, Role};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::tasks::{Task, TaskJob};

/// Closes the queues when the last [`Worker`] handle is dropped, so the thread finishes
/// what was accepted and ends.
struct CloseOnDrop(Arc<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Handle to the model thread; cheap to clone.
#[derive(Clone)]
pub struct Worker {
    shared: Arc<Shared>,
    _close: Arc<CloseOnDrop>,
    state_rx: watch::Receiver<WorkerState>,
}

impl Worker {
    /// Start the model thread; `load` runs on it and builds the engine.
    pub fn spawn<F>(load: F, args: WorkerArgs, metrics: Arc<Metrics>) -> Worker
    where
        F: FnOnce() -> Result<Box<dyn Engine>> + Send + 'static,
    {
        Worker::spawn_expecting(load, Vec::new(), args, metrics)
    }

    /// [`Worker::spawn`], naming the models `load` brings (role and name, from
    /// models.toml): [`Worker::models`] lists them as loading until it ends, and as failed,
    /// with the reason, when it fails.
    pub fn spawn_expecting<F>(
        load: F,
        expected: Vec<(Role, String)>,
        args: WorkerArgs,
        metrics: Arc<Metrics>,
    ) -> Worker
    where
        F: FnOnce() -> Result<Box<dyn Engine>> + Send + 'static,
    {
        let args = WorkerArgs {
            queue_capacity: args.queue_capacity.max(1),
            max_batch: args.max_batch.max(1),
            max_batch_tokens: args.max_batch_tokens.max(1),
            ..args
        };
        let shared = Arc::new(Shared {
            queues: Mutex::new(Board {
                queues: Queues::default(),
                catalog: Catalog {
                    loading: expected,
                    ..Catalog::default()
                },
                reloads: Reloads::default(),
            }),
            wake: Condvar::new(),
            args,
            metrics,
            closed_tx: watch::channel(false).0,
        });
        let (state_tx, state_rx) = watch::channel(WorkerState::Loading);
        let thread_shared = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("gist-model".into())
            .spawn(move || thread::model_thread(load, thread_shared, state_tx));
        if let Err(err) = spawned {
            tracing::error!(cause = %err, "cannot start the model thread");
        }
        Worker {
            _close: Arc::new(CloseOnDrop(shared.clone())),
            shared,
            state_rx,
        }
    }

    /// The metrics this worker reports to.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// Requests waiting in `task`'s queues, both lanes (not counting those the model is
    /// running).
    pub fn queue_depth(&self, task: Task) -> usize {
        let board = self.shared.lock();
        Lane::ALL
            .into_iter()
            .map(|lane| board.queues.len(task, lane))
            .sum()
    }

    /// Requests waiting in one lane of `task`'s queue.
    pub fn lane_depth(&self, task: Task, lane: Lane) -> usize {
        self.shared.lock().queues.len(task, lane)
    }

    /// Every model: served, being loaded, or failed in the last reload.
    pub fn models(&self) -> Vec<ModelStatus> {
        self.shared.lock().catalog.statuses()
    }

    /// Re-read models.toml: load new and changed models beside the old ones, switch new
    /// requests to them once they are ready, and drop the old versions when the requests
    /// pinned to them are done. Returns the catalog after the reload; a model that failed
    /// to load is FAILED in it, and its old version (if any) still serves.
    ///
    /// # Errors
    /// [`Error::FailedPrecondition`] when the engine cannot reload (no models.toml) or the
    /// manifest is unreadable; [`Error::Unavailable`] when the worker stopped.
    pub async fn reload(&self) -> Result<Vec<ModelStatus>> {
        self.check_ready()?;
        let (tx, rx) = oneshot::channel();
        {
            let mut board = self.shared.lock();
            if board.queues.closed {
                return Err(Error::Unavailable(
                    "gist is shutting down and reloads no models".into(),
                ));
            }
            board.reloads.waiting.push(tx);
        }
        self.shared.wake.notify_all();
        rx.await
            .map_err(|_| Error::Unavailable("the model thread stopped before reloading".into()))?
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

    /// Becomes true when the worker stops accepting requests (shutdown, or the model thread
    /// ended); streams stop reading new items then.
    pub fn closed(&self) -> watch::Receiver<bool> {
        self.shared.closed_tx.subscribe()
    }

    /// Stop accepting requests: new ones get UNAVAILABLE; accepted ones still run.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Close, then wait until every accepted request has been answered and the thread has
    /// ended, at most `timeout`. Requests still queued after it are answered UNAVAILABLE.
    /// Returns true when everything finished in time.
    pub async fn drain(&self, timeout: Duration) -> bool {
        self.close();
        let mut state_rx = self.state_rx.clone();
        let finished = tokio::time::timeout(
            timeout,
            state_rx.wait_for(|s| !matches!(s, WorkerState::Ready(_) | WorkerState::Loading)),
        )
        .await;
        if finished.is_ok() {
            return true;
        }
        let left = self.shared.lock().queues.take_all();
        tracing::warn!(
            left = left.len(),
            "drain timeout: answering the requests still queued UNAVAILABLE"
        );
        for pending in left {
            let _ = pending.reply.send(Err(Error::Unavailable(
                "the server shut down before this request ran: retry on another replica".into(),
            )));
        }
        false
    }

    /// Run `job` on the model thread, interactive, on the default models, at most until
    /// `deadline`.
    ///
    /// # Errors
    /// As [`Worker::submit`].
    pub async fn run<J: TaskJob>(
        &self,
        job: J,
        deadline: Option<Instant>,
    ) -> Result<Done<J::Output>> {
        self.submit(job, Ticket::interactive(deadline)).await
    }

    /// Run `job` on the model thread, in the ticket's lane, on the model it names (else
    /// the defaults), at most until its deadline.
    ///
    /// # Errors
    /// [`Error::Overloaded`], [`Error::Unavailable`], [`Error::ModelMissing`] (a model the
    /// task always needs is not configured), [`Error::InvalidArgument`] for an unknown
    /// model, [`Error::DeadlineExceeded`], and the task's own errors.
    pub async fn submit<J: TaskJob>(&self, job: J, ticket: Ticket) -> Result<Done<J::Output>> {
        let job = job.into_job();
        let task = job.task();
        self.check_ready()?;
        let (reply, rx) = oneshot::channel();
        self.enqueue(
            Pending {
                tokens: estimate_tokens(job.text()),
                job,
                reply,
                enqueued: Instant::now(),
                deadline: ticket.deadline,
                pick: Default::default(),
                lane: ticket.lane,
            },
            ticket.model.as_ref(),
        )?;
        let done = rx.await.map_err(|_| {
            Error::Unavailable("the model thread stopped before answering".into())
        })??;
        let Done { value, timing } = done;
        let value = J::unwrap(value).ok_or_else(|| {
            Error::Internal(format!("the {} queue answered another task", task.name()))
        })?;
        Ok(Done { value, timing })
    }

    fn check_ready(&self) -> Result<Arc<EngineInfo>> {
        match &*self.state_rx.borrow() {
            WorkerState::Ready(info) => Ok(info.clone()),
            other => Err(unavailable(other)),
        }
    }

    /// Pin the request to its models and queue it, under one lock with the catalog.
    fn enqueue(&self, mut pending: Pending, model: Option<&super::ModelChoice>) -> Result<()> {
        let task = pending.job.task();
        let lane = pending.lane;
        let mut board = self.shared.lock();
        let info = board.catalog.pick(task, model)?;
        pending
            .job
            .admit(&info, model.map(|choice| choice.name.as_str()))?;
        pending.pick = info.pick();
        let q = &mut board.queues;
        if q.closed {
            return Err(Error::Unavailable(
                "gist is shutting down and accepts no new requests: retry on another replica"
                    .into(),
            ));
        }
        let capacity = self.shared.args.queue_capacity;
        if q.len(task, lane) >= capacity {
            self.shared.metrics.rejected(task.name(), lane.name());
            return Err(Error::Overloaded {
                queue: task.name(),
                lane: lane.name(),
                capacity,
                retry_after: Duration::from_millis(250),
            });
        }
        q.push(pending);
        self.shared.publish_depths(q);
        drop(board);
        self.shared.wake.notify_all();
        Ok(())
    }
}

/// Rough token count used for batch budgets (the real tokenizers run on the model thread).
fn estimate_tokens(text: &str) -> usize {
    text.len() / 4 + 1
}

pub(super) fn unavailable(state: &WorkerState) -> Error {
    Error::Unavailable(match state {
        WorkerState::Loading => "models are still loading: retry shortly".to_string(),
        WorkerState::Failed(why) => format!("models failed to load: {why}"),
        WorkerState::Stopped | WorkerState::Ready(_) => "the model thread stopped".to_string(),
    })
}
