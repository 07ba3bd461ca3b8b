//! `gist models import` and `gist models pull`.

use super::{ImportArgs, ModelsCommand, PullArgs};

/// `gist models …`.
///
/// # Errors
/// Why the import or pull failed.
pub fn models(command: ModelsCommand) -> anyhow::Result<()> {
    match command {
        ModelsCommand::Import(args) => import(args),
        ModelsCommand::Pull(args) => pull(args),
    }
}

fn import(args: ImportArgs) -> anyhow::Result<()> {
    let report = crate::models::import::import(&crate::models::import::ImportOptions {
        source: args.dir,
        name: args.name,
        task: args.target.task,
        models: args.target.models,
        force: args.target.force,
        runtime: args.target.runtime,
        precision: args.target.precision,
    })?;
    println!("{report}");
    Ok(())
}

fn pull(args: PullArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| crate::models::hub::default_name(&args.repo).to_string());
    crate::models::import::check_name(&name)?;
    let task = args.target.task;
    let options = crate::models::hub::PullOptions {
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
    let snapshot = crate::models::hub::download(&options, task, |file| println!("  {file}"))?;
    let report = crate::models::import::import(&crate::models::import::ImportOptions {
        source: snapshot,
        name,
        task,
        models: args.target.models,
        force: args.target.force,
        runtime: args.target.runtime,
        precision: args.target.precision,
    })?;
    println!("{report}");
    Ok(())
}
