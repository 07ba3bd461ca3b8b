//! The ONNX Runtime library, its one environment per process, and how sessions are built.
//!
//! `libonnxruntime.so` is loaded at run time (the `ort` crate's `load-dynamic`), from the
//! first of these that exists:
//! 1. `--onnxruntime FILE` (or `ORT_DYLIB_PATH`, the `ort` crate's own variable);
//! 2. `libonnxruntime.so` beside the executable, or in `../lib` from it (an installed layout);
//! 3. `onnxruntime/lib/` of the source tree the binary was built from, which
//!    `scripts/setup.sh` links to the library it takes out of the PyPI `onnxruntime` wheel.
//!
//! ONNX Runtime allows one environment per process, and the library once loaded stays, so
//! both are kept for the life of the process and shared by every engine in it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

use crate::engine::hf::LoadResult;

/// The library file name on this platform.
const LIBRARY: &str = "libonnxruntime.so";

/// Session settings the engine passes down from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// Intra-op threads; 0 keeps ONNX Runtime's default (one per physical core).
    pub threads: usize,
    /// Let idle intra-op threads spin before they sleep (ONNX Runtime's default is on).
    pub spinning: bool,
    /// The library file, when given (`--onnxruntime`, `ORT_DYLIB_PATH`).
    pub library: Option<PathBuf>,
}

/// A session builder's error, without the builder it carries for recovery.
fn plain(err: ort::Error<ort::session::builder::SessionBuilder>) -> ort::Error {
    err.into()
}

/// Where the library is looked for, in order.
fn candidates(library: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    // Given explicitly (the ort crate would read ORT_DYLIB_PATH itself when no path is
    // given, but then a missing library is a panic; here it is an error that says what to do).
    if let Some(path) = library {
        out.push(path.to_path_buf());
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        out.push(dir.join(LIBRARY));
        out.push(dir.join("../lib").join(LIBRARY));
    }
    out.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("onnxruntime/lib")
            .join(LIBRARY),
    );
    out
}

/// The process's ONNX Runtime environment, loading the library on first use.
///
/// # Errors
/// A message naming where the library was looked for, or why it did not load.
pub(super) fn environment(library: Option<&Path>) -> Result<&'static Environment, String> {
    static ENV: OnceLock<Result<Environment, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let tried = candidates(library);
        let path = tried.iter().find(|p| p.is_file()).ok_or_else(|| {
            let list: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
            format!(
                "the ONNX Runtime library ({LIBRARY}) was not found in {}: run `make setup` \
                 (scripts/setup.sh prepares it), or set ORT_DYLIB_PATH to the library file",
                list.join(", ")
            )
        })?;
        let builder = ort::init_from(path)
            .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", path.display()))?;
        builder
            .with_name("gist")
            .with_telemetry(false)
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// A session on `model` with gist's settings: all graph optimisations, `threads` intra-op
/// threads, operators one after another (BERT-style graphs have no parallel branches
/// worth an inter-op pool).
///
/// # Errors
/// When the library cannot be loaded or the file is not a model ONNX Runtime can run.
pub(super) fn session(model: &Path, settings: &SessionSettings) -> LoadResult<Session> {
    let env = environment(settings.library.as_deref())?;
    let mut builder = Session::builder(env)?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(plain)?
        .with_parallel_execution(false)
        .map_err(plain)?
        .with_intra_op_spinning(settings.spinning)
        .map_err(plain)?;
    if settings.threads > 0 {
        builder = builder
            .with_intra_threads(settings.threads)
            .map_err(plain)?;
    }
    let session = builder
        .commit_from_file(model)
        .map_err(|e| format!("{}: {e}", model.display()))?;
    Ok(session)
}
