//! gist: key points and named entities from articles, served over gRPC.
//!
//! Module map:
//! - [`pb`]: the generated `gist.v1` API and its descriptor set.
//! - [`api`]: request validation against [`api::Limits`], and result → message conversion.
//! - [`service`]: the tonic service impls (validate, enqueue, convert).
//! - [`server`]: `serve(listener, state, args, shutdown)`: health, reflection, limits.
//! - [`security`]: TLS and mTLS from PEM files, bearer tokens; checked at start-up.
//! - [`worker`]: the model thread, its bounded queue and lifecycle.
//! - [`tasks`]: the key-point and entity pipelines the model thread runs.
//! - [`engine`]: the synchronous model trait; rust-bert and fake implementations.
//! - [`manifest`]: `models/models.toml`, the models to load (and its edits).
//! - [`metrics`]: Prometheus metrics and their `GET /metrics` listener.
//! - [`models`]: `gist models import|pull`: Hugging Face checkpoints → model folders.
//! - [`text`]: pure text functions: sentences, offsets, entity merging, ranking.
//! - [`cli`]: command-line flags (clap), each with a `GIST_*` variable.
//! - [`error`]: the error type and its gRPC status mapping.
//! - [`eval`]: evaluation commands: entity-level P/R/F1 on CoNLL files.
#![warn(missing_docs)]

pub mod api;
pub mod batch;
pub mod cli;
pub mod engine;
pub mod error;
pub mod eval;
pub mod manifest;
pub mod metrics;
pub mod models;
pub mod pb;
pub mod security;
pub mod server;
pub mod service;
pub mod stream;
pub mod tasks;
pub mod text;
pub mod worker;

pub use error::{Error, Result};
