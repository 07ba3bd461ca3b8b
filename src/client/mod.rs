//! The client side of gist: what runs against a gist server over gRPC, and imports nothing
//! of the server (only the generated API in [`crate::pb`] and tonic).
//!
//! - [`batch_job`]: `gist batch`, a resumable batch job over the streaming RPCs of one or
//!   more servers.

pub mod batch_job;

use clap::ValueEnum;

/// Summary modes on the command line (`gist summarize`, `gist batch`, `gist eval`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Abstractive when the server has a summarization model, else extractive.
    Auto,
    /// Key points are sentences of the text.
    Extractive,
    /// A summarization model writes the summary.
    Abstractive,
}

impl From<ModeArg> for crate::pb::SummaryMode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::Auto => Self::Auto,
            ModeArg::Extractive => Self::Extractive,
            ModeArg::Abstractive => Self::Abstractive,
        }
    }
}
