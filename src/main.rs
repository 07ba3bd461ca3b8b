//! The `gist` binary: parse flags, set up logging, dispatch to a command of [`gist::cli`].

use clap::Parser;
use gist::cli::{self, Cli, Command, EvalCommand};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let telemetry = cli::telemetry::init(&cli.log)?;
    let result = run(cli.command).await;
    // The last spans are sent before the process exits.
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
    result
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => cli::serve::serve(args).await,
        Command::Summarize(args) => cli::run::summarize(args).await,
        Command::Entities(args) => cli::run::entities(args).await,
        Command::Batch(args) => match cli::run::batch(args).await {
            0 => Ok(()),
            code => std::process::exit(code),
        },
        Command::Eval(EvalCommand::Ner(args)) => {
            tokio::task::spawn_blocking(move || cli::eval::ner(args)).await?
        }
        Command::Eval(EvalCommand::Summarize(args)) => {
            tokio::task::spawn_blocking(move || cli::eval::summarize(args)).await?
        }
        Command::Models(command) => {
            // rust-bert panics on some malformed checkpoints; the import catches that and
            // reports it as its error, so the default hook's backtrace would only be noise.
            std::panic::set_hook(Box::new(|info| tracing::debug!(panic = %info, "panic")));
            let outcome = tokio::task::spawn_blocking(move || cli::models::models(command)).await;
            if let Err(e) = outcome.map_err(anyhow::Error::from).and_then(|r| r) {
                // One line, for people and scripts alike.
                eprintln!("error: {e:#}");
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
