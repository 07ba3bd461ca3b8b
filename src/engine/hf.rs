//! Reading a Hugging Face model folder, whatever the backend: `config.json`, required
//! files, the tokenizer's casing.

use std::path::{Path, PathBuf};

use super::manifest::{ModelSpec, Precision, Runtime};
use super::tagging::Packing;

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

    /// How a token classifier reads its input: as it was trained, `gist_pack_tokens` and
    /// `gist_context_tokens` (written by `training/train_ner.py` for models trained with
    /// document context; a model without them reads sentences packed as it always did),
    /// with the context the manifest entry asks for, if it names one.
    pub fn packing(&self, spec: &ModelSpec) -> Packing {
        let key = |k: &str| self.json[k].as_u64().map(|n| n as usize);
        let default = Packing::default();
        Packing {
            pack: key("gist_pack_tokens").unwrap_or(default.pack).max(1),
            context: spec
                .context_tokens
                .or_else(|| key("gist_context_tokens"))
                .unwrap_or(default.context),
        }
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

/// Weight files of every runtime; a model's version hashes only those its runtime reads.
const WEIGHTS: [&str; 6] = [
    "model.onnx",
    "model.int8.onnx",
    Precision::DATA_FILE,
    "model.safetensors",
    "rust_model.ot",
    "pytorch_model.bin",
];

/// The version of a model: the first 12 hex digits of a SHA-256 over the manifest settings
/// that change its answers and the names and contents of the files in its folder that
/// `runtime` reads (the other runtimes' weight files are left out, so converting a model
/// for one runtime does not change its version on another).
pub(crate) fn version(spec: &ModelSpec, runtime: Runtime) -> LoadResult<String> {
    use sha2::{Digest, Sha256};
    let read_by_runtime = |name: &str| match runtime {
        Runtime::Onnx => {
            spec.precision().onnx_file(Path::new("")) == Path::new(name)
                || name == Precision::DATA_FILE
        }
        Runtime::Libtorch => ["model.safetensors", "rust_model.ot"].contains(&name),
    };
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(&spec.path)
        .map_err(|e| format!("{}: {e}", spec.path.display()))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_string();
            (!WEIGHTS.contains(&name.as_str()) || read_by_runtime(&name))
                .then(|| (name, entry.path()))
        })
        .collect();
    files.sort();
    let mut hash = Sha256::new();
    hash.update(format!(
        "runtime={} precision={} lower_case={:?}{}\n",
        runtime.name(),
        spec.precision().name(),
        spec.lower_case,
        // Only when named, so the versions of entries without it stay what they were.
        spec.context_tokens
            .map_or(String::new(), |n| format!(" context_tokens={n}"))
    ));
    for (name, path) in files {
        hash.update(name.as_bytes());
        hash.update([0]);
        let mut file =
            std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        std::io::copy(&mut file, &mut hash).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let digest = hash.finalize();
    Ok(digest.iter().take(6).map(|b| format!("{b:02x}")).collect())
}

/// The entity labels of a token classifier (its `id2label` without `O` and the B-/I-
/// prefixes), in class order.
pub(crate) fn entity_labels(dir: &Path) -> LoadResult<Vec<String>> {
    let mut labels: Vec<String> = Vec::new();
    for label in HfConfig::read(dir)?.labels()? {
        let bare = label
            .strip_prefix("B-")
            .or_else(|| label.strip_prefix("I-"))
            .unwrap_or(&label);
        if bare != "O" && !labels.iter().any(|l| l == bare) {
            labels.push(bare.to_string());
        }
    }
    Ok(labels)
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
    fn packing_is_the_trained_one_unless_the_manifest_names_a_context() {
        let trained =
            config(serde_json::json!({"gist_pack_tokens": 192, "gist_context_tokens": 64}));
        let plain = ModelSpec::default();
        let narrowed = ModelSpec {
            context_tokens: Some(32),
            ..ModelSpec::default()
        };
        let packing = |pack, context| Packing { pack, context };
        assert_eq!(trained.packing(&plain), packing(192, 64));
        assert_eq!(trained.packing(&narrowed), packing(192, 32));
        // A model trained on lone sentences: packed as before, context only when asked.
        let sentences = config(serde_json::json!({}));
        assert_eq!(sentences.packing(&plain), Packing::default());
        assert_eq!(sentences.packing(&narrowed).context, 32);
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

    #[test]
    fn versions_follow_the_files_the_runtime_reads() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ModelSpec {
            name: "m".into(),
            path: dir.path().into(),
            runtime: Some(Runtime::Onnx),
            ..Default::default()
        };
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        std::fs::write(dir.path().join("model.onnx"), "a").unwrap();
        let v1 = version(&spec, Runtime::Onnx).unwrap();
        assert_eq!(v1.len(), 12);
        assert_eq!(version(&spec, Runtime::Onnx).unwrap(), v1);
        // Weights another runtime reads do not change it; its own weights do.
        std::fs::write(dir.path().join("model.safetensors"), "b").unwrap();
        assert_eq!(version(&spec, Runtime::Onnx).unwrap(), v1);
        std::fs::write(dir.path().join("model.onnx"), "c").unwrap();
        let v2 = version(&spec, Runtime::Onnx).unwrap();
        assert_ne!(v2, v1);
        // The embedding tables the .onnx files point into count for ONNX, not for libtorch.
        let torch = version(&spec, Runtime::Libtorch).unwrap();
        std::fs::write(dir.path().join("model.onnx.data"), "d").unwrap();
        let v2b = version(&spec, Runtime::Onnx).unwrap();
        assert_ne!(v2b, v2);
        assert_eq!(version(&spec, Runtime::Libtorch).unwrap(), torch);
        std::fs::remove_file(dir.path().join("model.onnx.data")).unwrap();
        // So do the other files, and the settings.
        std::fs::write(dir.path().join("config.json"), "{ }").unwrap();
        assert_ne!(version(&spec, Runtime::Onnx).unwrap(), v2);
        assert_ne!(
            version(&spec, Runtime::Libtorch).unwrap(),
            version(&spec, Runtime::Onnx).unwrap()
        );
        let narrowed = ModelSpec {
            context_tokens: Some(32),
            ..spec.clone()
        };
        assert_ne!(
            version(&narrowed, Runtime::Onnx).unwrap(),
            version(&spec, Runtime::Onnx).unwrap()
        );
    }

    #[test]
    fn entity_labels_drop_prefixes_and_o() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"model_type": "bert", "id2label": {"0": "O", "1": "B-PER", "2": "I-PER", "3": "B-LOC", "4": "I-LOC"}}"#,
        )
        .unwrap();
        assert_eq!(entity_labels(dir.path()).unwrap(), ["PER", "LOC"]);
    }
}
