//! The `gist` binary: parse flags, set up logging, dispatch to a command of [`gist::cli`].

use clap::Parser;
use gist::cli::{self, Cli, Command, EvalCommand, LogFormat};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log.log_format);
    match cli.command {
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
