//! The one place that blocks: a dedicated model thread that owns the [`Engine`], fed by one
//! bounded queue per task, answering each request on a oneshot channel.
//!
//! rust-bert models must not be created or run on the async runtime (they block, and tch
//! tensors are not `Sync`), so the thread loads the models itself and then serves the
//! queues, oldest request first. Concurrent requests of one task are gathered into one
//! batch (up to `--max-batch` requests and `--max-batch-tokens` estimated tokens, waiting
//! at most `--batch-delay-ms` after the first), and share forward passes.
//!
//! Admission is decided at once: a full queue is [`Error::Overloaded`], a closed worker
//! (shutting down) or a dead thread [`Error::Unavailable`]. Before a batch runs, requests
//! whose deadline has passed are answered [`Error::DeadlineExceeded`] and requests whose
//! caller has gone are dropped; neither reaches the model.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use crate::engine::{Engine, EngineInfo, Role};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::tasks::{self, Analysis, AnalyzeJob, Entities, EntitiesJob, SummarizeJob, Summary};

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
    #[arg(long, env = "GIST_QUEUE_CAPACITY", default_value_t = 64)]
    pub queue_capacity: usize,
    /// Most requests gathered into one batch.
    #[arg(long, env = "GIST_MAX_BATCH", default_value_t = 16)]
    pub max_batch: usize,
    /// Most input tokens (estimated as characters / 4) in one batch; a single larger
    /// request still runs alone.
    #[arg(long, env = "GIST_MAX_BATCH_TOKENS", default_value_t = 16_384)]
    pub max_batch_tokens: usize,
    /// How long the model thread waits after the first request of a batch for more to
    /// arrive, in milliseconds (0: never wait; batches still form under load).
    #[arg(long, env = "GIST_BATCH_DELAY_MS", default_value_t = 5)]
    pub batch_delay_ms: u64,
    /// Longest accepted text in model tokens (counted with the tokenizer of the model the
    /// request needs, on the model thread); longer ones get INVALID_ARGUMENT.
    #[arg(long, env = "GIST_MAX_TEXT_TOKENS", default_value_t = 32_768)]
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

/// The task queues. Each task runs on its own model (the encoder or summarizer, the NER
/// model, or both for Analyze), so each has its own bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Summarize.
    Summarize,
    /// ExtractEntities.
    Entities,
    /// Analyze.
    Analyze,
}

impl Queue {
    /// Every queue.
    pub const ALL: [Queue; 3] = [Queue::Summarize, Queue::Entities, Queue::Analyze];

    /// Name used in messages and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Queue::Summarize => "summarize",
            Queue::Entities => "entities",
            Queue::Analyze => "analyze",
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
}

/// A result with its timing.
#[derive(Debug, Clone)]
pub struct Done<T> {
    /// The task's result.
    pub value: T,
    /// Where the time went.
    pub timing: Timing,
}

struct Pending<J, R> {
    job: J,
    reply: oneshot::Sender<Result<Done<R>>>,
    enqueued: Instant,
    deadline: Option<Instant>,
    tokens: usize,
}

#[derive(Default)]
struct Queues {
    summarize: VecDeque<Pending<SummarizeJob, Summary>>,
    entities: VecDeque<Pending<EntitiesJob, Entities>>,
    analyze: VecDeque<Pending<AnalyzeJob, Analysis>>,
    closed: bool,
}

impl Queues {
    fn len(&self, queue: Queue) -> usize {
        match queue {
            Queue::Summarize => self.summarize.len(),
            Queue::Entities => self.entities.len(),
            Queue::Analyze => self.analyze.len(),
        }
    }

    fn head(&self, queue: Queue) -> Option<Instant> {
        match queue {
            Queue::Summarize => self.summarize.front().map(|p| p.enqueued),
            Queue::Entities => self.entities.front().map(|p| p.enqueued),
            Queue::Analyze => self.analyze.front().map(|p| p.enqueued),
        }
    }

    /// The queue whose first request has waited longest.
    fn oldest(&self) -> Option<Queue> {
        Queue::ALL
            .into_iter()
            .filter_map(|q| self.head(q).map(|t| (q, t)))
            .min_by_key(|&(_, t)| t)
            .map(|(q, _)| q)
    }
}

/// Take up to `max` requests and `max_tokens` estimated tokens from the front (always at
/// least one).
fn take<J, R>(
    queue: &mut VecDeque<Pending<J, R>>,
    max: usize,
    max_tokens: usize,
) -> Vec<Pending<J, R>> {
    let mut batch: Vec<Pending<J, R>> = Vec::new();
    let mut tokens = 0;
    while let Some(next) = queue.front() {
        if !batch.is_empty() && (batch.len() >= max || tokens + next.tokens > max_tokens) {
            break;
        }
        tokens += next.tokens;
        batch.extend(queue.pop_front());
    }
    batch
}

enum Batch {
    Summarize(Vec<Pending<SummarizeJob, Summary>>),
    Entities(Vec<Pending<EntitiesJob, Entities>>),
    Analyze(Vec<Pending<AnalyzeJob, Analysis>>),
}

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
        for q in Queue::ALL {
            self.metrics.set_queue_depth(q.name(), queues.len(q));
        }
    }
}

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
        let args = WorkerArgs {
            queue_capacity: args.queue_capacity.max(1),
            max_batch: args.max_batch.max(1),
            max_batch_tokens: args.max_batch_tokens.max(1),
            ..args
        };
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            wake: Condvar::new(),
            args,
            metrics,
            closed_tx: watch::channel(false).0,
        });
        let (state_tx, state_rx) = watch::channel(WorkerState::Loading);
        let thread_shared = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("gist-model".into())
            .spawn(move || model_thread(load, thread_shared, state_tx));
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

    /// Requests waiting in `queue` (not counting those the model is running).
    pub fn queue_depth(&self, queue: Queue) -> usize {
        self.shared.lock().len(queue)
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
        let (summarize, entities, analyze) = {
            let mut q = self.shared.lock();
            (
                std::mem::take(&mut q.summarize),
                std::mem::take(&mut q.entities),
                std::mem::take(&mut q.analyze),
            )
        };
        let left = summarize.len() + entities.len() + analyze.len();
        tracing::warn!(
            left,
            "drain timeout: answering the requests still queued UNAVAILABLE"
        );
        let refuse = || {
            Error::Unavailable(
                "the server shut down before this request ran: retry on another replica".into(),
            )
        };
        summarize
            .into_iter()
            .for_each(|p| drop(p.reply.send(Err(refuse()))));
        entities
            .into_iter()
            .for_each(|p| drop(p.reply.send(Err(refuse()))));
        analyze
            .into_iter()
            .for_each(|p| drop(p.reply.send(Err(refuse()))));
        false
    }

    /// Summarize on the model thread.
    ///
    /// # Errors
    /// [`Error::Overloaded`], [`Error::Unavailable`], [`Error::DeadlineExceeded`], and the
    /// task's own errors.
    pub async fn summarize(
        &self,
        job: SummarizeJob,
        deadline: Option<Instant>,
    ) -> Result<Done<Summary>> {
        self.check_ready()?;
        let tokens = estimate_tokens(&job.text);
        let (reply, rx) = oneshot::channel();
        self.submit(Queue::Summarize, |q| {
            q.summarize.push_back(pending(job, reply, deadline, tokens))
        })?;
        answer(rx).await
    }

    /// Extract entities on the model thread.
    ///
    /// # Errors
    /// [`Error::Overloaded`], [`Error::Unavailable`] (also when no NER model is loaded),
    /// [`Error::DeadlineExceeded`], and the task's own errors.
    pub async fn extract_entities(
        &self,
        job: EntitiesJob,
        deadline: Option<Instant>,
    ) -> Result<Done<Entities>> {
        let info = self.check_ready()?;
        if info.ner.is_none() {
            return Err(Error::Unavailable(crate::engine::rust_bert::NO_NER.into()));
        }
        let tokens = estimate_tokens(&job.text);
        let (reply, rx) = oneshot::channel();
        self.submit(Queue::Entities, |q| {
            q.entities.push_back(pending(job, reply, deadline, tokens))
        })?;
        answer(rx).await
    }

    /// Summarize and extract entities of one text, with the faithfulness check.
    ///
    /// # Errors
    /// As [`Worker::summarize`] and [`Worker::extract_entities`].
    pub async fn analyze(
        &self,
        job: AnalyzeJob,
        deadline: Option<Instant>,
    ) -> Result<Done<Analysis>> {
        let info = self.check_ready()?;
        if info.ner.is_none() {
            return Err(Error::Unavailable(crate::engine::rust_bert::NO_NER.into()));
        }
        let tokens = estimate_tokens(&job.summarize.text);
        let (reply, rx) = oneshot::channel();
        self.submit(Queue::Analyze, |q| {
            q.analyze.push_back(pending(job, reply, deadline, tokens))
        })?;
        answer(rx).await
    }

    fn check_ready(&self) -> Result<Arc<EngineInfo>> {
        match &*self.state_rx.borrow() {
            WorkerState::Ready(info) => Ok(info.clone()),
            other => Err(unavailable(other)),
        }
    }

    fn submit(&self, queue: Queue, push: impl FnOnce(&mut Queues)) -> Result<()> {
        let mut q = self.shared.lock();
        if q.closed {
            return Err(Error::Unavailable(
                "gist is shutting down and accepts no new requests: retry on another replica"
                    .into(),
            ));
        }
        let capacity = self.shared.args.queue_capacity;
        if q.len(queue) >= capacity {
            self.shared.metrics.rejected(queue.name());
            return Err(Error::Overloaded {
                queue: queue.name(),
                capacity,
                retry_after: Duration::from_millis(250),
            });
        }
        push(&mut q);
        self.shared.publish_depths(&q);
        drop(q);
        self.shared.wake.notify_all();
        Ok(())
    }
}

fn pending<J, R>(
    job: J,
    reply: oneshot::Sender<Result<Done<R>>>,
    deadline: Option<Instant>,
    tokens: usize,
) -> Pending<J, R> {
    Pending {
        job,
        reply,
        enqueued: Instant::now(),
        deadline,
        tokens,
    }
}

async fn answer<T>(rx: oneshot::Receiver<Result<Done<T>>>) -> Result<Done<T>> {
    rx.await
        .map_err(|_| Error::Unavailable("the model thread stopped before answering".into()))?
}

/// Rough token count used for batch budgets (the real tokenizers run on the model thread).
fn estimate_tokens(text: &str) -> usize {
    text.len() / 4 + 1
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

fn model_thread<F>(load: F, shared: Arc<Shared>, state_tx: watch::Sender<WorkerState>)
where
    F: FnOnce() -> Result<Box<dyn Engine>>,
{
    let state = StoppedOnDrop(state_tx);
    let started = Instant::now();
    let mut engine = match load() {
        Ok(engine) => engine,
        Err(err) => {
            let why = crate::error::error_chain(&err);
            tracing::error!(cause = %why, "model loading failed");
            state.0.send_replace(WorkerState::Failed(why));
            shared.close();
            return;
        }
    };
    let info = Arc::new(engine.info().clone());
    shared.metrics.model_loaded(started.elapsed());
    tracing::info!(load_ms = started.elapsed().as_millis() as u64, models = ?info, "models loaded");
    state.0.send_replace(WorkerState::Ready(info));

    let engine = engine.as_mut();
    let info = engine.info().clone();
    let summarizer_for = |mode: tasks::Mode| match mode {
        tasks::Mode::Abstractive => Role::Summarizer,
        tasks::Mode::Auto if info.summarizer.is_some() => Role::Summarizer,
        _ => Role::Encoder,
    };
    while let Some(batch) = next_batch(&shared) {
        match batch {
            Batch::Summarize(items) => run(
                &shared,
                Queue::Summarize,
                items,
                engine,
                |engine, job| {
                    within_tokens(engine, summarizer_for(job.mode), &job.text, &shared.args)
                },
                |engine, jobs, live| tasks::summarize_many(engine, jobs, live),
            ),
            Batch::Entities(items) => run(
                &shared,
                Queue::Entities,
                items,
                engine,
                |engine, job| within_tokens(engine, Role::Ner, &job.text, &shared.args),
                |engine, jobs, _| tasks::extract_entities_each(engine, jobs),
            ),
            Batch::Analyze(items) => run(
                &shared,
                Queue::Analyze,
                items,
                engine,
                |engine, job| within_tokens(engine, Role::Ner, &job.summarize.text, &shared.args),
                |engine, jobs, live| {
                    jobs.iter()
                        .enumerate()
                        .map(|(i, job)| {
                            if !live(i) {
                                return Err(Error::Cancelled("dropped".into()));
                            }
                            tasks::analyze(engine, job, &|| live(i))
                        })
                        .collect()
                },
            ),
        }
    }
    tracing::info!("model thread stopped: queues closed and drained");
}

/// Wait for work and take the next batch; `None` once closed and empty.
fn next_batch(shared: &Shared) -> Option<Batch> {
    let mut q = shared.lock();
    let queue = loop {
        if let Some(queue) = q.oldest() {
            break queue;
        }
        if q.closed {
            return None;
        }
        q = shared.wake.wait(q).unwrap_or_else(|e| e.into_inner());
    };
    let args = shared.args;
    let delay = Duration::from_millis(args.batch_delay_ms);
    if !delay.is_zero() {
        let until = q.head(queue).unwrap_or_else(Instant::now) + delay;
        while q.len(queue) < args.max_batch && !q.closed {
            let now = Instant::now();
            if now >= until {
                break;
            }
            q = shared
                .wake
                .wait_timeout(q, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
    let (max, tokens) = (args.max_batch, args.max_batch_tokens);
    let batch = match queue {
        Queue::Summarize => Batch::Summarize(take(&mut q.summarize, max, tokens)),
        Queue::Entities => Batch::Entities(take(&mut q.entities, max, tokens)),
        Queue::Analyze => Batch::Analyze(take(&mut q.analyze, max, tokens)),
    };
    shared.publish_depths(&q);
    Some(batch)
}

/// The `--max-text-tokens` rule, with the tokenizer of the model that will read the text.
fn within_tokens(
    engine: &mut dyn Engine,
    model: Role,
    text: &str,
    args: &WorkerArgs,
) -> Result<()> {
    // Cheap bound first: no tokenizer makes more tokens than bytes plus special tokens.
    if text.len() + 8 <= args.max_text_tokens {
        return Ok(());
    }
    let tokens = engine
        .count_tokens(model, &[text])?
        .first()
        .copied()
        .unwrap_or(0);
    if tokens > args.max_text_tokens {
        return Err(Error::invalid(
            "text",
            format!(
                "is {tokens} model tokens long; the limit is {} (--max-text-tokens)",
                args.max_text_tokens
            ),
        ));
    }
    Ok(())
}

/// Answer expired requests, drop abandoned ones, refuse those over the token limit, run the
/// rest as one batch and send each caller its own result.
fn run<J, R>(
    shared: &Shared,
    queue: Queue,
    items: Vec<Pending<J, R>>,
    engine: &mut dyn Engine,
    mut admit: impl FnMut(&mut dyn Engine, &J) -> Result<()>,
    task: impl FnOnce(&mut dyn Engine, &[&J], &dyn Fn(usize) -> bool) -> Vec<Result<R>>,
) {
    let metrics = &shared.metrics;
    let now = Instant::now();
    let mut live: Vec<Pending<J, R>> = Vec::with_capacity(items.len());
    for item in items {
        if item.reply.is_closed() {
            metrics.dropped(queue.name(), "cancelled");
        } else if item.deadline.is_some_and(|d| d <= now) {
            metrics.dropped(queue.name(), "deadline");
            let waited = now - item.enqueued;
            let _ = item.reply.send(Err(Error::DeadlineExceeded(format!(
                "the deadline passed after {} ms in the {} queue, before the model ran",
                waited.as_millis(),
                queue.name()
            ))));
        } else if let Err(err) = guarded(|| admit(engine, &item.job)) {
            let _ = item.reply.send(Err(err));
        } else {
            live.push(item);
        }
    }
    if live.is_empty() {
        return;
    }
    let size = live.len();
    metrics.batch(queue.name(), size);
    let jobs: Vec<&J> = live.iter().map(|p| &p.job).collect();
    // Between pieces of long work, a task asks whether its caller still waits for it.
    let still_wanted = |i: usize| {
        live.get(i)
            .is_some_and(|p| !p.reply.is_closed() && p.deadline.is_none_or(|d| Instant::now() < d))
    };
    let started = Instant::now();
    let results = guarded(|| Ok(task(engine, &jobs, &still_wanted)))
        .unwrap_or_else(|err| (0..size).map(|_| Err(clone_error(&err))).collect());
    let inference = started.elapsed();
    metrics.inference(queue.name(), inference);
    for (item, result) in live.into_iter().zip(results) {
        let timing = Timing {
            queue: started - item.enqueued,
            inference,
            batch_size: size,
        };
        metrics.queued(queue.name(), timing.queue);
        let result = result.map_err(|err| match err {
            Error::Cancelled(_) if item.deadline.is_some_and(|d| Instant::now() >= d) => {
                Error::DeadlineExceeded(format!(
                    "the deadline passed while the model was working on this request (after {} ms); the rest was not run",
                    (Instant::now() - item.enqueued).as_millis()
                ))
            }
            other => other,
        });
        let _ = item.reply.send(result.map(|value| Done { value, timing }));
    }
}

/// The same error for every request of a batch that failed as a whole.
fn clone_error(err: &Error) -> Error {
    match err {
        Error::Internal(m) => Error::Internal(m.clone()),
        other => Error::Internal(crate::error::error_chain(other)),
    }
}

/// Run a task, turning a panic inside the model runtime into an error instead of killing
/// the thread.
fn guarded<T>(task: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(task)).unwrap_or_else(|panic| {
        let message = crate::engine::rust_bert::panic_message(&panic);
        tracing::error!(cause = %message, "model task panicked");
        Err(Error::Internal(format!(
            "the model failed on this input: {message}"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(tokens: usize) -> Pending<(), ()> {
        let (reply, _) = oneshot::channel();
        Pending {
            job: (),
            reply,
            enqueued: Instant::now(),
            deadline: None,
            tokens,
        }
    }

    #[test]
    fn batches_respect_size_and_token_budget() {
        let mut q: VecDeque<_> = [10, 10, 10, 10, 10].into_iter().map(item).collect();
        assert_eq!(take(&mut q, 3, 1000).len(), 3);
        assert_eq!(take(&mut q, 3, 1000).len(), 2);
        let mut q: VecDeque<_> = [10, 10, 10].into_iter().map(item).collect();
        assert_eq!(take(&mut q, 8, 25).len(), 2);
        // One request over the budget still runs, alone.
        let mut q: VecDeque<_> = [100, 10].into_iter().map(item).collect();
        assert_eq!(take(&mut q, 8, 25).len(), 1);
        assert_eq!(take(&mut q, 8, 25).len(), 1);
        assert!(take(&mut q, 8, 25).is_empty());
    }
}
