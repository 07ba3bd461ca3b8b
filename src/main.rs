//! The `gist` binary: parse flags, set up logging, dispatch to a command.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use clap::Parser;
use gist::cli::{
    Cli, Command, EntitiesArgs, EvalCommand, EvalNerArgs, EvalSummarizeArgs, ImportArgs, LogFormat,
    ModelArgs, ModelsCommand, PullArgs, ServeArgs, SummarizeArgs,
};
use gist::{api, pb, server, service, worker};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log.log_format);
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Summarize(args) => summarize(args).await,
        Command::Entities(args) => entities(args).await,
        Command::Batch(args) => batch(args).await,
        Command::Eval(EvalCommand::Ner(args)) => {
            tokio::task::spawn_blocking(move || eval_ner(args)).await?
        }
        Command::Eval(EvalCommand::Summarize(args)) => {
            tokio::task::spawn_blocking(move || eval_summarize(args)).await?
        }
        Command::Models(command) => {
            // rust-bert panics on some malformed checkpoints; the import catches that and
            // reports it as its error, so the default hook's backtrace would only be noise.
            std::panic::set_hook(Box::new(|info| tracing::debug!(panic = %info, "panic")));
            let outcome = tokio::task::spawn_blocking(move || models(command)).await;
            match outcome.map_err(anyhow::Error::from).and_then(|r| r) {
                Ok(()) => Ok(()),
                Err(e) => {
                    // One line, for people and scripts alike.
                    eprintln!("error: {e:#}");
                    std::process::exit(1);
                }
            }
        }
    }
}

/// `gist batch`: the summary line on stderr; exit 1 when any item failed, 2 when the run
/// could not start or stopped on an I/O error.
async fn batch(args: gist::batch::BatchArgs) -> anyhow::Result<()> {
    match gist::batch::run(args).await {
        Ok(report) => {
            eprintln!("{}", report.line());
            if report.counts.failed > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn spawn_worker(
    model: ModelArgs,
    args: worker::WorkerArgs,
    metrics: std::sync::Arc<gist::metrics::Metrics>,
) -> worker::Worker {
    worker::Worker::spawn(move || gist::engine::load(&model), args, metrics)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    tracing::info!(config = %serde_json::to_string(&args)?, "starting gist");
    // Certificate, key and token files are checked before the port is bound.
    let security = gist::security::Security::load(&args.server)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, "listening (models load in the background; health says when each service is SERVING)");
    let metrics = gist::metrics::Metrics::new();
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(addr) = args.metrics_listen {
        let metrics_listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (--metrics-listen)"))?;
        tracing::info!(address = %metrics_listener.local_addr()?, "metrics at GET /metrics");
        tokio::spawn(gist::metrics::serve(
            metrics_listener,
            metrics.clone(),
            async {
                let _ = metrics_stopped.await;
            },
        ));
    }
    let worker = spawn_worker(args.model.clone(), args.worker, metrics.clone());
    let state = service::AppState::new(worker, args.limits, &args.server);
    server::serve_with_security(listener, state, args.server, security, shutdown_signal()).await?;
    let _ = stop_metrics.send(());
    tracing::info!("stopped");
    Ok(())
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

fn read_input(path: Option<&Path>) -> anyhow::Result<String> {
    match path {
        Some(p) if p != Path::new("-") => read_file(p),
        _ => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read stdin")?;
            Ok(text)
        }
    }
}

async fn summarize(args: SummarizeArgs) -> anyhow::Result<()> {
    let text = read_input(args.input.as_deref())?;
    let request = pb::SummarizeRequest {
        text,
        mode: pb::SummaryMode::from(args.mode) as i32,
        max_key_points: args.max_key_points,
        ..Default::default()
    };
    let job = api::summarize_job(request, &api::Limits::default())?;
    let worker = spawn_worker(
        args.model,
        worker::WorkerArgs::default(),
        gist::metrics::Metrics::new(),
    );
    worker.ready().await?;
    let summary = worker.summarize(job, None).await?.value;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

async fn entities(args: EntitiesArgs) -> anyhow::Result<()> {
    let text = read_input(args.input.as_deref())?;
    let request = pb::ExtractEntitiesRequest {
        text,
        min_score: args.min_score,
        labels: args.labels,
        ..Default::default()
    };
    let job = api::entities_job(request, &api::Limits::default())?;
    let worker = spawn_worker(
        args.model,
        worker::WorkerArgs::default(),
        gist::metrics::Metrics::new(),
    );
    worker.ready().await?;
    let entities = worker.extract_entities(job, None).await?.value;
    println!("{}", serde_json::to_string_pretty(&entities)?);
    Ok(())
}

fn eval_ner(args: EvalNerArgs) -> anyhow::Result<()> {
    let text = read_file(&args.conll)?;
    let sentences = gist::eval::ner::parse_conll(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.conll.display()))?;
    let mut engine = gist::engine::load(&args.model)?;
    let model = engine
        .info()
        .ner
        .clone()
        .context("no NER model in the manifest")?;
    tracing::info!(sentences = sentences.len(), model = %model.name, "evaluating");
    let started = std::time::Instant::now();
    let total = sentences.len();
    let report = gist::eval::ner::evaluate(engine.as_mut(), &sentences, args.batch, |done| {
        if done % 640 < args.batch || done == total {
            tracing::info!(done, total, "tagged");
        }
    })?;
    println!(
        "model {}: {} ({} sentences, {:.1} s)\n",
        model.name,
        args.conll.display(),
        total,
        started.elapsed().as_secs_f64()
    );
    print!("{}", report.table());
    write_json(args.json.as_deref(), &report)
}

fn eval_summarize(args: EvalSummarizeArgs) -> anyhow::Result<()> {
    let text = read_file(&args.jsonl)?;
    let mut items = gist::eval::summarize::read_jsonl(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.jsonl.display()))?;
    items.truncate(args.limit.unwrap_or(usize::MAX));
    let mode = args.mode.into();
    let mut engine = gist::engine::load(&args.model)?;
    tracing::info!(items = items.len(), "evaluating");
    let started = std::time::Instant::now();
    let total = items.len();
    let report = gist::eval::summarize::evaluate(
        engine.as_mut(),
        &items,
        mode,
        args.max_key_points,
        |done| {
            if done % 25 == 0 || done == total {
                tracing::info!(done, total, "summarized");
            }
        },
    )?;
    println!(
        "{} ({} items, {:.1} s)\n",
        args.jsonl.display(),
        total,
        started.elapsed().as_secs_f64()
    );
    print!("{}", report.table());
    write_json(args.json.as_deref(), &report)
}

fn read_file(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Write `value` as JSON to `path`, when one was given.
fn write_json(path: Option<&Path>, value: &impl serde::Serialize) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_string_pretty(value)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn models(command: ModelsCommand) -> anyhow::Result<()> {
    match command {
        ModelsCommand::Import(args) => import(args),
        ModelsCommand::Pull(args) => pull(args),
    }
}

fn import(args: ImportArgs) -> anyhow::Result<()> {
    let report = gist::models::import::import(&gist::models::import::ImportOptions {
        source: args.dir,
        name: args.name,
        task: args.target.task.into(),
        models: args.target.models,
        force: args.target.force,
    })?;
    println!("{report}");
    Ok(())
}

fn pull(args: PullArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| gist::models::hub::default_name(&args.repo).to_string());
    gist::models::import::check_name(&name)?;
    let task = args.target.task.into();
    let options = gist::models::hub::PullOptions {
        repo: args.repo,
        revision: args.revision,
        endpoint: args.endpoint,
        token: args.token,
        progress: std::io::stderr().is_terminal(),
    };
    println!(
        "pulling {} ({}) from {}",
        options.repo, options.revision, options.endpoint
    );
    let snapshot = gist::models::hub::download(&options, task, |file| println!("  {file}"))?;
    let report = gist::models::import::import(&gist::models::import::ImportOptions {
        source: snapshot,
        name,
        task,
        models: args.target.models,
        force: args.target.force,
    })?;
    println!("{report}");
    Ok(())
}
