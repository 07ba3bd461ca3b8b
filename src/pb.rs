//! The generated `gist.v1` protobuf and gRPC code, and its descriptor set for reflection.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("gist.v1");

/// Encoded file descriptor set of `gist.v1`, served by the reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("gist_descriptor");

/// A `SummaryMode` field as its proto name (as proto3 JSON writes enums), or the number when
/// it is not a known value.
pub(crate) fn summary_mode_name<S: serde::Serializer>(
    mode: &i32,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match SummaryMode::try_from(*mode) {
        Ok(mode) => serializer.serialize_str(mode.as_str_name()),
        Err(_) => serializer.serialize_i32(*mode),
    }
}
