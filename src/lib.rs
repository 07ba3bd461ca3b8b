//! gist: key points and named entities from articles, served over gRPC.
//!
//! The layers point one way; each imports only those below it (`scripts/layers.sh` checks):
//!
//! ```text
//! text ← engine ← tasks ← worker ← server          eval, models: tools on engine and tasks
//! error, metrics, pb, role: used by any layer       client ← pb only
//! cli (and main.rs) ← nothing: they wire the layers together
//! ```
//!
//! - [`text`]: pure text functions: sentences, words, offsets, entity merging, ranking.
//! - [`engine`]: the synchronous model trait, its settings, and the backends (rust-bert,
//!   fake), one folder each; the models manifest.
//! - [`tasks`]: one module per task (summarize, entities, analyze): job, result, pipeline.
//! - [`worker`]: the model thread, its bounded queues (one per task) and dynamic batching.
//! - [`server`]: gRPC services (one module each), streams, health, reflection, security.
//! - [`client`]: `gist batch`, a batch job over gist servers; imports no server code.
//! - [`eval`]: evaluation commands: entity-level P/R/F1 on CoNLL, ROUGE on CNN/DM.
//! - [`models`]: `gist models import|pull`: Hugging Face checkpoints → model folders.
//! - [`error`], [`metrics`], [`pb`], [`role`]: the error type and its status mapping,
//!   Prometheus metrics, the generated API, the model roles.
//! - [`cli`]: the commands (clap), each setting with a `GIST_*` variable.
#![warn(missing_docs)]

pub mod cli;
pub mod client;
pub mod engine;
pub mod error;
pub mod eval;
pub mod metrics;
pub mod models;
pub mod pb;
pub mod role;
pub mod server;
pub mod tasks;
pub mod text;
pub mod worker;

pub use error::{Error, Result};
