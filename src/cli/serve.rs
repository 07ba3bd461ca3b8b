//! `gist serve`, and the in-process server `gist batch --local` talks to.

use std::net::SocketAddr;

use anyhow::Context;

use super::ServeArgs;
use crate::engine::{self, EngineArgs};
use crate::metrics::{self, Metrics};
use crate::server::{self, security::Security, AppState, Limits, ServerArgs};
use crate::tasks::Task;
use crate::worker::{Worker, WorkerArgs};

/// The model thread for `engine`, reporting to `metrics`.
pub(crate) fn spawn_worker(
    engine: EngineArgs,
    args: WorkerArgs,
    metrics: std::sync::Arc<Metrics>,
) -> Worker {
    // What the load will bring, so ListModels says LOADING (then FAILED) from the start.
    let expected = match engine.backend {
        engine::Backend::Fake => Vec::new(),
        _ => engine::manifest::Manifest::load(&engine.models)
            .map(|m| {
                m.iter()
                    .map(|(role, spec)| (role, spec.name.clone()))
                    .collect()
            })
            .unwrap_or_default(),
    };
    Worker::spawn_expecting(move || engine::load(&engine), expected, args, metrics)
}

/// A fresh registry with every task's queue.
pub(crate) fn new_metrics() -> std::sync::Arc<Metrics> {
    Metrics::new(&Task::names())
}

/// `gist serve`: until SIGTERM or Ctrl-C, then drain.
///
/// # Errors
/// When a security file is unusable, a port cannot be bound, or the transport fails.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    tracing::info!(config = %serde_json::to_string(&args)?, "starting gist");
    // Certificate, key and token files are checked before the port is bound.
    let security = Security::load(&args.server.security)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, "listening (models load in the background; health says when each service is SERVING)");
    let metrics = new_metrics();
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(addr) = args.metrics_listen {
        let metrics_listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (--metrics-listen)"))?;
        tracing::info!(address = %metrics_listener.local_addr()?, "metrics at GET /metrics");
        tokio::spawn(metrics::serve(metrics_listener, metrics.clone(), async {
            let _ = metrics_stopped.await;
        }));
    }
    let http_listener = match args.http_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--http-listen)"))?,
        ),
        None => None,
    };
    let worker = spawn_worker(args.engine.clone(), args.worker, metrics);
    reload_on_sighup(worker.clone());
    let state = AppState::new(worker, args.limits, &args.server);
    server::serve_listeners(
        listener,
        http_listener,
        state,
        args.server,
        security,
        shutdown_signal(),
    )
    .await?;
    let _ = stop_metrics.send(());
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP re-reads models.toml (as `gist.v1.Models/Reload` does); the outcome is logged.
fn reload_on_sighup(worker: Worker) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot watch SIGHUP: reload with gist.v1.Models/Reload instead");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading models.toml");
            match worker.reload().await {
                Ok(models) => {
                    let failed = models
                        .iter()
                        .filter(|m| m.state == crate::worker::ModelState::Failed)
                        .count();
                    tracing::info!(models = models.len(), failed, "SIGHUP reload done");
                }
                Err(err) => tracing::error!(cause = %err, "SIGHUP reload failed"),
            }
        }
    });
    #[cfg(not(unix))]
    drop(worker);
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received");
}

/// A gist server in this process on an ephemeral loopback port, with default settings:
/// what `gist batch --local` sends its items to. Stopped (drained) by [`LocalServer::stop`].
pub struct LocalServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop_tx: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), server::ServeError>>,
}

impl LocalServer {
    /// Load the models of `engine` and serve them; returns once they are loaded.
    ///
    /// # Errors
    /// When the models cannot load, or no loopback port can be bound.
    pub async fn start(engine: EngineArgs) -> anyhow::Result<LocalServer> {
        let folder = engine.models.clone();
        let worker = spawn_worker(engine, WorkerArgs::default(), new_metrics());
        worker
            .ready()
            .await
            .with_context(|| format!("cannot load the models from {}", folder.display()))?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("cannot listen on a loopback port for --local")?;
        let addr = listener.local_addr()?;
        let args = ServerArgs::default();
        let state = AppState::new(worker, Limits::default(), &args);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, state, args, async {
            let _ = stop_rx.await;
        }));
        Ok(LocalServer {
            addr,
            stop_tx,
            task,
        })
    }

    /// Its address as a `gist batch` endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shut it down gracefully and wait.
    ///
    /// # Errors
    /// The transport's error, if it failed.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop_tx.send(());
        self.task.await.context("the local server panicked")??;
        Ok(())
    }
}
