//! gist's integration tests, one module per area, in one test binary (one link instead of
//! one per file). Shared support is in [`common`]. Tests of the rust-bert backend and of
//! `gist models import` build tiny rust-bert models, and tests with the default models run
//! them on rust-bert, so they need the `libtorch` feature; the server, streams, security,
//! batch and deployment tests run in every build. The deployment tests (image, multihost,
//! spark, python_pool) need root and the tools of scripts/test-tools.sh and
//! scripts/deploy-venv.sh.

mod common;
// Hosts made of network namespaces, for the deployment tests that need more than one.
mod netns;

mod batch;
mod batch_dns;
#[cfg(feature = "libtorch")]
mod default_models;
mod grpc;
#[cfg(feature = "libtorch")]
mod grpcurl;
mod http;
mod http_tools;
#[cfg(feature = "libtorch")]
mod image;
mod kubernetes;
#[cfg(feature = "libtorch")]
mod models;
#[cfg(feature = "libtorch")]
mod models_cli;
#[cfg(feature = "libtorch")]
mod models_pull;
mod multihost;
mod otlp;
#[cfg(feature = "libtorch")]
mod python_client;
mod python_pool;
mod security;
mod serving;
mod spark;
mod streams;
