//! gist's integration tests, one module per area, in one test binary (one link instead of
//! one per file). Shared support is in [`common`]. Tests of the rust-bert backend and of
//! `gist models import` build tiny rust-bert models, so they need the `libtorch` feature;
//! the server, streams, security and batch tests run in every build.

mod common;

mod batch;
#[cfg(feature = "libtorch")]
mod default_models;
mod grpc;
#[cfg(feature = "libtorch")]
mod grpcurl;
#[cfg(feature = "libtorch")]
mod models;
#[cfg(feature = "libtorch")]
mod models_cli;
#[cfg(feature = "libtorch")]
mod models_pull;
#[cfg(feature = "libtorch")]
mod python_client;
mod security;
mod serving;
mod streams;
