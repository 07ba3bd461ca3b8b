//! The generated `gist.v1` protobuf and gRPC code, and its descriptor set for reflection.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("gist.v1");

/// Encoded file descriptor set of `gist.v1`, served by the reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("gist_descriptor");
