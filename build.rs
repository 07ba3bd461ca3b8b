//! Build script: generates the gRPC code (tonic + prost) with a descriptor set for server
//! reflection and the messages' proto3 JSON mapping (pbjson), and (with the `libtorch`
//! feature) gives our binaries and tests an rpath to libtorch so that they run with no
//! `LD_LIBRARY_PATH`.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // protoc comes from the protoc-bin-vendored crate unless the caller chose one.
    if env::var_os("PROTOC").is_none() {
        // SAFETY: build scripts are single-threaded.
        unsafe { env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("gist_descriptor.bin");
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        .compile_protos(&["proto/gist/v1/gist.proto"], &["proto"])?;
    // serde impls of every message in the proto3 JSON mapping (pbjson): the HTTP API's
    // bodies and `gist batch`'s result lines. Printed with the proto field names
    // (`key_points`, `byte_start`, one of the two spellings the mapping allows; parsers
    // accept both) and every field present, zero values included; enums by name.
    let descriptors = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .preserve_proto_field_names()
        .emit_fields()
        .build(&[".gist.v1"])?;
    println!("cargo:rerun-if-changed=proto");

    // Only the `libtorch` feature links libtorch.
    if env::var_os("CARGO_FEATURE_LIBTORCH").is_none() {
        return Ok(());
    }
    // LIBTORCH is set by .cargo/config.toml to the folder scripts/setup.sh prepares.
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let libtorch = env::var("LIBTORCH").map_err(|_| {
        "LIBTORCH is not set: run `make setup` (or scripts/setup.sh) to prepare libtorch"
    })?;
    let lib = PathBuf::from(libtorch).join("lib");
    if !lib.join("libtorch_cpu.so").exists() {
        return Err(format!(
            "libtorch not found at {}: run `make setup` (scripts/setup.sh) first",
            lib.display()
        )
        .into());
    }
    let lib = lib.canonicalize()?;
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    Ok(())
}
