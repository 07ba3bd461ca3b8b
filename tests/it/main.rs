//! gist's integration tests, one module per area, in one test binary (one link against
//! libtorch instead of one per file). Shared support is in [`common`].

mod common;

mod batch;
mod default_models;
mod grpc;
mod grpcurl;
mod models;
mod models_cli;
mod models_pull;
mod python_client;
mod security;
mod serving;
mod streams;
