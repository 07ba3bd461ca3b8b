//! The model thread: load the engine, then take batches (oldest task first), run them, and
//! answer each caller, until the queues are closed and empty.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::queue::Pending;
use super::{Done, Shared, Timing, WorkerArgs, WorkerState};
use crate::engine::{Engine, Role};
use crate::error::{error_chain, panic_message, Error, Result};
use crate::tasks::{self, Task};

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

pub(super) fn model_thread<F>(load: F, shared: Arc<Shared>, state_tx: watch::Sender<WorkerState>)
where
    F: FnOnce() -> Result<Box<dyn Engine>>,
{
    let state = StoppedOnDrop(state_tx);
    let started = Instant::now();
    let mut engine = match load() {
        Ok(engine) => engine,
        Err(err) => {
            let why = error_chain(&err);
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

    while let Some((task, batch, formed)) = next_batch(&shared) {
        run(&shared, task, batch, formed, engine.as_mut());
    }
    tracing::info!("model thread stopped: queues closed and drained");
}

/// Wait for work and take the next batch, with when its forming began; `None` once closed
/// and empty.
fn next_batch(shared: &Shared) -> Option<(Task, Vec<Pending>, Instant)> {
    let mut q = shared.lock();
    let task = loop {
        if let Some(task) = q.oldest() {
            break task;
        }
        if q.closed {
            return None;
        }
        q = shared.wake.wait(q).unwrap_or_else(|e| e.into_inner());
    };
    let formed = Instant::now();
    let args = shared.args;
    let delay = Duration::from_millis(args.batch_delay_ms);
    if !delay.is_zero() {
        let until = q.head(task).unwrap_or_else(Instant::now) + delay;
        while q.len(task) < args.max_batch && !q.closed {
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
    let batch = q.take(task, args.max_batch, args.max_batch_tokens);
    shared.publish_depths(&q);
    Some((task, batch, formed))
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
fn run(shared: &Shared, task: Task, items: Vec<Pending>, formed: Instant, engine: &mut dyn Engine) {
    let metrics = &shared.metrics;
    let queue = task.name();
    let now = Instant::now();
    let info = engine.info().clone();
    let mut live: Vec<Pending> = Vec::with_capacity(items.len());
    for item in items {
        if item.reply.is_closed() {
            metrics.dropped(queue, "cancelled");
        } else if item.deadline.is_some_and(|d| d <= now) {
            metrics.dropped(queue, "deadline");
            let waited = now - item.enqueued;
            let _ = item.reply.send(Err(Error::DeadlineExceeded(format!(
                "the deadline passed after {} ms in the {queue} queue, before the model ran",
                waited.as_millis(),
            ))));
        } else if let Err(err) = guarded(|| {
            within_tokens(
                engine,
                item.job.reader(&info),
                item.job.text(),
                &shared.args,
            )
        }) {
            let _ = item.reply.send(Err(err));
        } else {
            live.push(item);
        }
    }
    if live.is_empty() {
        return;
    }
    let size = live.len();
    metrics.batch(queue, size);
    let jobs: Vec<&tasks::Job> = live.iter().map(|p| &p.job).collect();
    // Between pieces of long work, a task asks whether its caller still waits for it.
    let still_wanted = |i: usize| {
        live.get(i)
            .is_some_and(|p| !p.reply.is_closed() && p.deadline.is_none_or(|d| Instant::now() < d))
    };
    let started = Instant::now();
    let mut results = guarded(|| Ok(tasks::run(engine, &jobs, &still_wanted)))
        .unwrap_or_else(|err| (0..size).map(|_| Err(clone_error(&err))).collect());
    if results.len() != size {
        results = (0..size)
            .map(|_| {
                Err(Error::Internal(format!(
                    "{} results for {size} jobs",
                    results.len()
                )))
            })
            .collect();
    }
    let inference = started.elapsed();
    metrics.inference(queue, inference);
    for (item, result) in live.into_iter().zip(results) {
        let timing = Timing {
            queue: started - item.enqueued,
            inference,
            batch_size: size,
            formation: started - formed.max(item.enqueued),
            model_started: Some(started),
        };
        metrics.queued(queue, timing.queue);
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
        other => Error::Internal(error_chain(other)),
    }
}

/// Run a task, turning a panic inside the model runtime into an error instead of killing
/// the thread.
fn guarded<T>(task: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(task)).unwrap_or_else(|panic| {
        let message = panic_message(&panic);
        tracing::error!(cause = %message, "model task panicked");
        Err(Error::Internal(format!(
            "the model failed on this input: {message}"
        )))
    })
}
