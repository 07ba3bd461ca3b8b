//! Reading a Hugging Face model folder: `config.json`, the weights file, tokenizer files.

use std::path::{Path, PathBuf};

use crate::engine::manifest::ModelSpec;

/// What loading a model can fail with, before it becomes [`crate::Error::ModelLoad`].
pub(super) type LoadResult<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The parts of a Hugging Face `config.json` gist reads itself.
pub(super) struct HfConfig {
    pub model_type: String,
    pub max_positions: Option<usize>,
    pub json: serde_json::Value,
}

impl HfConfig {
    pub fn read(dir: &Path) -> LoadResult<Self> {
        let path = dir.join("config.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let model_type = json["model_type"]
            .as_str()
            .ok_or_else(|| format!("{}: no \"model_type\"", path.display()))?
            .to_string();
        let max_positions = ["max_position_embeddings", "n_positions"]
            .iter()
            .find_map(|k| json[k].as_u64())
            .map(|n| n as usize);
        Ok(HfConfig {
            model_type,
            max_positions,
            json,
        })
    }
}

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

/// `dir/file`, which must exist.
pub(super) fn required(dir: &Path, file: &str) -> LoadResult<PathBuf> {
    let path = dir.join(file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("missing {file} in {}", dir.display()).into())
    }
}

/// `do_lower_case` from the manifest, else from `tokenizer_config.json`, else true.
pub(super) fn lower_case(spec: &ModelSpec) -> bool {
    spec.lower_case.unwrap_or_else(|| {
        std::fs::read_to_string(spec.path.join("tokenizer_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|j| j["do_lower_case"].as_bool())
            .unwrap_or(true)
    })
}

pub(super) fn path_str(p: &Path) -> LoadResult<&str> {
    p.to_str()
        .ok_or_else(|| format!("path is not UTF-8: {}", p.display()).into())
}
