//! `gist models import` and `gist models pull`: turn a Hugging Face checkpoint into a
//! model folder gist's rust-bert engine loads, and name it in `models.toml`.
//!
//! Hugging Face snapshots almost work as they are (see FIELD-NOTES); what breaks is the
//! details this module fixes once, at import time, instead of at every server start:
//! - [`arch`]: is the `model_type` one the engine runs for that task, and which files
//!   does its tokenizer need.
//! - [`tokenizer`]: `vocab.txt` or `vocab.json` + `merges.txt` derived from a
//!   `tokenizer.json`, and whether a WordPiece model lower-cases its input.
//! - [`weights`]: one `model.safetensors` with the tensor names rust-bert looks up, from
//!   safetensors (sharded or not) or PyTorch `.bin` files.
//! - [`import`]: the whole import: check, prepare in a temporary folder, load and run the
//!   result with gist's own engine, then move it into place and edit the manifest.
//! - [`hub`]: download just the files an import needs from the Hub (or a mirror).

pub mod arch;
pub mod hub;
pub mod import;
pub mod tokenizer;
pub mod weights;

use std::path::PathBuf;

pub use crate::role::Role;

/// Why an import for the rust-bert runtime stops in a build without it.
pub const NO_LIBTORCH: &str = "this gist was built without libtorch (cargo feature `libtorch`), which preparing a model for the rust-bert runtime needs: rebuild with `--features libtorch`";

/// Why an import or a pull failed. Each message names the file, field or repository.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file has content gist cannot use.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The architecture is not one gist runs for this task.
    #[error("{task} models of type {model_type:?} are not supported; supported types: {}", .supported.join(", "))]
    Unsupported {
        /// The task asked for.
        task: Role,
        /// `model_type` from config.json.
        model_type: String,
        /// The types the engine runs for the task.
        supported: &'static [&'static str],
    },
    /// Files the architecture needs are not in the folder.
    #[error("{dir} lacks {}", .files.join(", "))]
    MissingFiles {
        /// The snapshot folder.
        dir: PathBuf,
        /// What is missing, each with how it could be supplied.
        files: Vec<String>,
    },
    /// The model name cannot be a folder name.
    #[error("invalid model name {0:?}: use one folder name (letters, digits, '-', '_', '.')")]
    Name(String),
    /// The target folder exists.
    #[error("{0} already exists: pass --force to replace it")]
    Exists(PathBuf),
    /// The prepared folder does not load or run in gist's engine.
    #[error("the prepared model does not work in gist's engine (nothing was imported)")]
    Verify(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Writing the ONNX files failed, or the task has no ONNX Runtime backend.
    #[error("ONNX export: {0}")]
    OnnxExport(String),
    /// The Hub (or the mirror in HF_ENDPOINT) refused or could not be reached.
    #[error("{0}")]
    Hub(String),
    /// The manifest could not be read or written.
    #[error(transparent)]
    Manifest(#[from] crate::Error),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for an [`Error::Io`] on `path`.
pub(crate) fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// Read and parse a JSON file.
pub(crate) fn read_json(path: &std::path::Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    serde_json::from_str(&text).map_err(|e| Error::Invalid {
        path: path.to_path_buf(),
        reason: format!("not valid JSON: {e}"),
    })
}
