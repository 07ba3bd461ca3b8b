//! The rust-bert side of reading a model folder: its weights file and paths as rust-bert
//! takes them (the rest is [`crate::engine::hf`]).

use std::path::{Path, PathBuf};

pub(super) use crate::engine::hf::{lower_case, required, HfConfig, LoadResult};

/// The weights file of a model folder: safetensors preferred, then rust-bert's `.ot`.
pub(super) fn weights(dir: &Path) -> LoadResult<PathBuf> {
    ["model.safetensors", "rust_model.ot"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "no model.safetensors or rust_model.ot in {} (PyTorch .bin files must be converted first)",
                dir.display()
            )
            .into()
        })
}

pub(super) fn path_str(p: &Path) -> LoadResult<&str> {
    p.to_str()
        .ok_or_else(|| format!("path is not UTF-8: {}", p.display()).into())
}
