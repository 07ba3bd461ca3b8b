//! The model thread: load the engine, then take batches (interactive lane first, oldest
//! task first), run them, and answer each caller, until the queues are closed and empty.
//! Between batches it starts reloads (loaded on a thread of their own), installs what
//! they loaded, and drops old model versions once no queued request is pinned to them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::queue::Pending;
use super::{Catalog, Done, Lane, Shared, Timing, WorkerArgs, WorkerState};
use crate::engine::{Engine, EngineInfo, Role, Staged};
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
            {
                let catalog = &mut shared.lock().catalog;
                catalog.failed = std::mem::take(&mut catalog.loading)
                    .into_iter()
                    .map(|(role, name)| (role, name, why.clone()))
                    .collect();
            }
            state.0.send_replace(WorkerState::Failed(why));
            shared.close();
            return;
        }
    };
    shared.metrics.model_loaded(started.elapsed());
    let info = publish_catalog(&shared, Catalog::of(engine.served()));
    tracing::info!(load_ms = started.elapsed().as_millis() as u64, models = ?info, "models loaded");
    state.0.send_replace(WorkerState::Ready(info));

    let mut turns = Turns::default();
    let mut retiring = false;
    loop {
        match next(&shared, &mut turns) {
            Next::Closed => break,
            Next::Batch(task, lane, batch, formed) => {
                run(&shared, task, lane, batch, formed, engine.as_mut());
            }
            Next::StartReload => start_reload(&shared, engine.as_ref()),
            Next::FinishReload(staged) => {
                retiring = true;
                finish_reload(&shared, engine.as_mut(), staged, &state.0);
            }
        }
        if retiring {
            retiring = release(&shared, engine.as_mut());
        }
    }
    tracing::info!("model thread stopped: queues closed and drained");
}

/// Make `catalog` the one admission and `ListModels` see, and label metrics with it;
/// returns the default models (what health follows).
fn publish_catalog(shared: &Shared, catalog: Catalog) -> Arc<EngineInfo> {
    shared.metrics.set_models(
        &catalog
            .served
            .iter()
            .map(|s| {
                (
                    s.role.section(),
                    s.info.name.as_str(),
                    s.info.version.as_str(),
                    s.default,
                )
            })
            .collect::<Vec<_>>(),
    );
    let info = Arc::new(catalog.defaults());
    shared.lock().catalog = catalog;
    info
}

/// Which lane's turn it is: one batch in `--batch-lane-share` goes to batch work while
/// interactive work waits too.
#[derive(Default)]
struct Turns {
    interactive_since_batch: usize,
}

/// What the model thread does next.
enum Next {
    /// Run this batch (forming began at the instant).
    Batch(Task, Lane, Vec<Pending>, Instant),
    /// Start the reload callers asked for.
    StartReload,
    /// Install what a reload loaded.
    FinishReload(Result<Staged>),
    /// Closed and empty: stop.
    Closed,
}

/// Wait for work and say what comes next; batches are taken with their forming time.
fn next(shared: &Shared, turns: &mut Turns) -> Next {
    let args = shared.args;
    let mut board = shared.lock();
    let (task, lane) = loop {
        if let Some(staged) = board.reloads.staged.take() {
            return Next::FinishReload(staged);
        }
        if board.reloads.running.is_none() && !board.reloads.waiting.is_empty() {
            return Next::StartReload;
        }
        let batch_turn = turns.interactive_since_batch + 1 >= args.batch_lane_share.max(1);
        if let Some(next) = board.queues.next(batch_turn) {
            break next;
        }
        if board.queues.closed {
            return Next::Closed;
        }
        board = shared.wake.wait(board).unwrap_or_else(|e| e.into_inner());
    };
    let formed = Instant::now();
    let delay = Duration::from_millis(args.batch_delay_ms);
    if !delay.is_zero() {
        let until = board.queues.head(task, lane).unwrap_or_else(Instant::now) + delay;
        while board.queues.len(task, lane) < args.max_batch && !board.queues.closed {
            let now = Instant::now();
            if now >= until {
                break;
            }
            board = shared
                .wake
                .wait_timeout(board, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
    match lane {
        Lane::Batch => turns.interactive_since_batch = 0,
        Lane::Interactive if board.queues.batch_waiting() => turns.interactive_since_batch += 1,
        Lane::Interactive => turns.interactive_since_batch = 0,
    }
    let batch = board
        .queues
        .take(task, lane, args.max_batch, args.max_batch_tokens);
    shared.publish_depths(&board.queues);
    Next::Batch(task, lane, batch, formed)
}

/// Start loading what changed in models.toml on a thread of its own; the model thread
/// keeps serving meanwhile, and installs the result when it is there.
fn start_reload(shared: &Arc<Shared>, engine: &dyn Engine) {
    let callers = std::mem::take(&mut shared.lock().reloads.waiting);
    let work = match engine.reload_work() {
        Ok(work) => work,
        Err(err) => {
            let why = error_chain(&err);
            for caller in callers {
                let _ = caller.send(Err(Error::FailedPrecondition(why.clone())));
            }
            return;
        }
    };
    shared.lock().reloads.running = Some(callers);
    tracing::info!("reloading models.toml");
    let loader_shared = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("gist-reload".into())
        .spawn(move || {
            let announce_shared = loader_shared.clone();
            let announce = move |loading: &[(Role, String)]| {
                for (role, name) in loading {
                    tracing::info!(role = role.section(), model = %name, "loading a new or changed model");
                }
                announce_shared.lock().catalog.loading = loading.to_vec();
            };
            let staged = guarded(|| work(&announce));
            loader_shared.lock().reloads.staged = Some(staged);
            loader_shared.wake.notify_all();
        });
    if let Err(err) = spawned {
        let callers = shared.lock().reloads.running.take().unwrap_or_default();
        for caller in callers {
            let _ = caller.send(Err(Error::Internal(format!(
                "cannot start the reload thread: {err}"
            ))));
        }
    }
}

/// Install what a reload loaded (new requests run on it from now on), publish the new
/// catalog, and answer the reload's callers.
fn finish_reload(
    shared: &Shared,
    engine: &mut dyn Engine,
    staged: Result<Staged>,
    state: &watch::Sender<WorkerState>,
) {
    let callers = shared.lock().reloads.running.take().unwrap_or_default();
    let result = staged.and_then(|staged| {
        let failed = staged.failed.clone();
        guarded(|| engine.apply_reload(staged))?;
        Ok(failed)
    });
    let answer = match result {
        Ok(failed) => {
            for (role, name, why) in &failed {
                tracing::error!(role = role.section(), model = %name, cause = %why, "model failed to load; its old version (if any) keeps serving");
                shared.metrics.load_failed(role.section(), name);
            }
            let catalog = Catalog {
                served: engine.served(),
                loading: Vec::new(),
                failed,
            };
            let info = publish_catalog(shared, catalog);
            tracing::info!(models = ?info, "reload done");
            state.send_replace(WorkerState::Ready(info));
            Ok(shared.lock().catalog.statuses())
        }
        Err(err) => {
            let why = error_chain(&err);
            tracing::error!(cause = %why, "reload failed; the models loaded before keep serving");
            shared.metrics.load_failed("manifest", "models.toml");
            let mut board = shared.lock();
            board.catalog.loading.clear();
            Err(Error::FailedPrecondition(format!("reload failed: {why}")))
        }
    };
    for caller in callers {
        let _ = caller.send(match &answer {
            Ok(statuses) => Ok(statuses.clone()),
            Err(err) => Err(Error::FailedPrecondition(err.to_string())),
        });
    }
}

/// Drop the replaced versions no queued request is pinned to any more; true while some
/// are still kept.
fn release(shared: &Shared, engine: &mut dyn Engine) -> bool {
    let board = shared.lock();
    let dropped = engine.release(&|role, model| board.queues.pins(role, model));
    drop(board);
    if dropped.dropped > 0 {
        tracing::info!(dropped = dropped.dropped, "old model versions released");
    }
    dropped.kept > 0
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
fn run(
    shared: &Shared,
    task: Task,
    lane: Lane,
    items: Vec<Pending>,
    formed: Instant,
    engine: &mut dyn Engine,
) {
    let metrics = &shared.metrics;
    let queue = task.name();
    let now = Instant::now();
    let Some(pick) = items.first().map(|p| p.pick.clone()) else {
        return;
    };
    if let Err(err) = engine.select(&pick) {
        for item in items {
            let _ = item.reply.send(Err(clone_error(&err)));
        }
        return;
    }
    let info = engine.info().clone();
    let model = items
        .first()
        .and_then(|p| info.get(p.job.reader(&info)))
        .map_or("", |m| m.name.as_str())
        .to_string();
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
    metrics.inference(queue, &model, inference);
    for (item, result) in live.into_iter().zip(results) {
        let timing = Timing {
            queue: started - item.enqueued,
            inference,
            batch_size: size,
            formation: started - formed.max(item.enqueued),
            model_started: Some(started),
        };
        metrics.queued(queue, lane.name(), &model, timing.queue);
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
