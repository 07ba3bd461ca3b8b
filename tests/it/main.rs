//! gist's integration tests, one module per area, in one test binary (one link against
//! libtorch instead of one per file). Shared support is in [`common`].

mod common;
// Hosts made of network namespaces, for the deployment tests that need more than one.
mod netns;

mod batch;
mod batch_dns;
mod default_models;
mod grpc;
mod grpcurl;
// The deployment tests (issue 14): image.rs, multihost.rs, spark.rs and python_pool.rs
// need root, and the tools of scripts/test-tools.sh and scripts/deploy-venv.sh.
mod image;
mod kubernetes;
mod models;
mod models_cli;
mod models_pull;
mod multihost;
mod python_client;
mod python_pool;
mod security;
mod serving;
mod spark;
mod streams;
