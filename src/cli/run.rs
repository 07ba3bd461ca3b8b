//! The commands that run the tasks: `gist summarize` and `gist entities` (in-process, one
//! text), and `gist batch` (a batch job against servers, or against `--local`).

use std::io::Read;
use std::path::Path;

use anyhow::Context;

use super::serve::{new_metrics, spawn_worker, LocalServer};
use super::{BatchArgs, EntitiesArgs, SummarizeArgs};
use crate::pb;
use crate::server::{rpc, Limits};
use crate::worker::WorkerArgs;

/// `gist summarize`: the summary as pretty JSON on stdout.
///
/// # Errors
/// When the input cannot be read, is invalid, or the models cannot run.
pub async fn summarize(args: SummarizeArgs) -> anyhow::Result<()> {
    let text = read_input(args.input.as_deref())?;
    let request = pb::SummarizeRequest {
        text,
        mode: pb::SummaryMode::from(args.mode) as i32,
        max_key_points: args.max_key_points,
        ..Default::default()
    };
    let job = rpc::summarize::job(request, &Limits::default())?;
    let worker = spawn_worker(args.engine, WorkerArgs::default(), new_metrics());
    worker.ready().await?;
    let summary = worker.run(job, None).await?.value;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// `gist entities`: the entities as pretty JSON on stdout.
///
/// # Errors
/// When the input cannot be read, is invalid, or the models cannot run.
pub async fn entities(args: EntitiesArgs) -> anyhow::Result<()> {
    let text = read_input(args.input.as_deref())?;
    let request = pb::ExtractEntitiesRequest {
        text,
        min_score: args.min_score,
        labels: args.labels,
        ..Default::default()
    };
    let job = rpc::entities::job(request, &Limits::default())?;
    let worker = spawn_worker(args.engine, WorkerArgs::default(), new_metrics());
    worker.ready().await?;
    let entities = worker.run(job, None).await?.value;
    println!("{}", serde_json::to_string_pretty(&entities)?);
    Ok(())
}

/// `gist batch`: the summary line on stderr. Returns the exit code: 0, 1 when any item
/// failed, 2 when the run could not start or stopped on an I/O error.
pub async fn batch(args: BatchArgs) -> i32 {
    let BatchArgs {
        mut job,
        local,
        engine,
    } = args;
    let outcome = async {
        // The local models load before any input is read, so a bad model folder fails fast.
        let local = match local {
            true => Some(LocalServer::start(engine).await?),
            false => None,
        };
        if let Some(server) = &local {
            job.endpoints = vec![server.endpoint()];
        }
        let report = crate::client::batch_job::run(job).await;
        if let Some(server) = local {
            server.stop().await?;
        }
        report
    }
    .await;
    match outcome {
        Ok(report) => {
            eprintln!("{}", report.line());
            i32::from(report.counts.failed > 0)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
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

/// A file's text, or an error naming it.
pub(crate) fn read_file(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}
