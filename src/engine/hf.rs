//! Reading a Hugging Face model folder, whatever the backend: `config.json`, required
//! files, the tokenizer's casing.

use std::path::{Path, PathBuf};

use super::manifest::ModelSpec;

/// What loading a model can fail with, before it becomes [`crate::Error::ModelLoad`].
pub(crate) type LoadResult<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The parts of a Hugging Face `config.json` gist reads itself.
pub(crate) struct HfConfig {
    /// `model_type`, e.g. "bert".
    pub model_type: String,
    /// `max_position_embeddings` (or `n_positions`).
    pub max_positions: Option<usize>,
    /// The whole file.
    pub json: serde_json::Value,
}

impl HfConfig {
    /// Read `dir/config.json`.
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

    /// The labels by class index, from `id2label`.
    pub fn labels(&self) -> std::result::Result<Vec<String>, String> {
        let map = self.json["id2label"]
            .as_object()
            .filter(|m| !m.is_empty())
            .ok_or("no id2label labels")?;
        let mut labels = vec![None; map.len()];
        for (key, value) in map {
            let index: usize = key
                .parse()
                .map_err(|_| format!("id2label key {key:?} is not a class index"))?;
            let slot = labels
                .get_mut(index)
                .ok_or_else(|| format!("id2label has {} labels but an index {index}", map.len()))?;
            *slot = Some(
                value
                    .as_str()
                    .ok_or_else(|| format!("id2label[{key}] is not a string"))?
                    .to_string(),
            );
        }
        labels
            .into_iter()
            .enumerate()
            .map(|(i, l)| l.ok_or_else(|| format!("id2label has no label for class {i}")))
            .collect()
    }
}

/// `dir/file`, which must exist.
pub(crate) fn required(dir: &Path, file: &str) -> LoadResult<PathBuf> {
    let path = dir.join(file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("missing {file} in {}", dir.display()).into())
    }
}

/// `do_lower_case` from the manifest, else from `tokenizer_config.json`, else true.
pub(crate) fn lower_case(spec: &ModelSpec) -> bool {
    spec.lower_case.unwrap_or_else(|| {
        std::fs::read_to_string(spec.path.join("tokenizer_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|j| j["do_lower_case"].as_bool())
            .unwrap_or(true)
    })
}

/// The longest input of a sentence-transformers encoder: `max_seq_length` of
/// `sentence_bert_config.json`, else the model's positions, else 512.
pub(crate) fn encoder_max_tokens(dir: &Path, config: &HfConfig) -> usize {
    std::fs::read_to_string(dir.join("sentence_bert_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|j| j["max_seq_length"].as_u64())
        .map(|n| n as usize)
        .or(config.max_positions)
        .unwrap_or(512)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> HfConfig {
        HfConfig {
            model_type: "bert".into(),
            max_positions: None,
            json,
        }
    }

    #[test]
    fn labels_come_in_class_order_and_gaps_are_errors() {
        let c = config(serde_json::json!({"id2label": {"1": "B-PER", "0": "O", "2": "I-PER"}}));
        assert_eq!(c.labels().unwrap(), ["O", "B-PER", "I-PER"]);
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"id2label": {}}),
            serde_json::json!({"id2label": {"0": "O", "2": "B-PER"}}),
            serde_json::json!({"id2label": {"x": "O"}}),
            serde_json::json!({"id2label": {"0": 1}}),
        ] {
            assert!(config(bad.clone()).labels().is_err(), "{bad}");
        }
    }
}
