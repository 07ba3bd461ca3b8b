//! Build script: generates the gRPC code (tonic + prost) with a descriptor set for server
//! reflection, and (with the `libtorch` feature) gives our binaries and tests an rpath to
//! libtorch so that they run with no `LD_LIBRARY_PATH`.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // protoc comes from the protoc-bin-vendored crate unless the caller chose one.
    if env::var_os("PROTOC").is_none() {
        // SAFETY: build scripts are single-threaded.
        unsafe { env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    // Results are also written as JSON Lines by `gist batch`: messages serialize with their
    // proto field names, enums by their proto names.
    let mut config = tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("gist_descriptor.bin"))
        .message_attribute(".gist.v1", "#[derive(serde::Serialize)]")
        .enum_attribute(".gist.v1", "#[derive(serde::Serialize)]");
    for message in ["SummarizeResponse", "AnalyzeRequest", "SummarizeRequest"] {
        config = config.field_attribute(
            format!(".gist.v1.{message}.mode"),
            "#[serde(serialize_with = \"crate::pb::summary_mode_name\")]",
        );
    }
    config.compile_protos(&["proto/gist/v1/gist.proto"], &["proto"])?;
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
