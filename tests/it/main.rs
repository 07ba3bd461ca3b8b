//! gist's integration tests, one module per area, in one test binary (one link instead of
//! one per file). Shared support is in [`common`]. `make test` runs them twice: in the
//! default build (both runtimes) and in the ONNX-only build. Tests of the rust-bert backend
//! and of `gist models import` build tiny rust-bert models, so they need the `libtorch`
//! feature; tests with the default models serve them as models.toml says (ONNX Runtime),
//! so they need `onnx`; the image ships the ONNX-only build, so it is built in that pass;
//! the server, streams, security, batch and deployment tests run in every build. The
//! deployment tests (image, multihost, spark, python_pool) need root and the tools of
//! scripts/test-tools.sh and scripts/deploy-venv.sh.

mod common;
// Hosts made of network namespaces, for the deployment tests that need more than one.
mod netns;

mod batch;
mod batch_dns;
#[cfg(feature = "onnx")]
mod default_models;
mod grpc;
#[cfg(feature = "onnx")]
mod grpcurl;
mod http;
mod http_tools;
#[cfg(all(feature = "onnx", not(feature = "libtorch")))]
mod image;
mod kubernetes;
#[cfg(feature = "libtorch")]
mod models;
#[cfg(feature = "libtorch")]
mod models_cli;
#[cfg(feature = "libtorch")]
mod models_pull;
mod multihost;
#[cfg(all(feature = "onnx", feature = "libtorch"))]
mod onnx;
mod otlp;
mod priority;
#[cfg(feature = "onnx")]
mod python_client;
mod python_pool;
mod security;
mod serving;
#[cfg(feature = "libtorch")]
mod several_models;
mod spark;
mod streams;
