//! The models manifest (`models/models.toml`): which model folders the server loads.
//!
//! ```toml
//! [encoder]                       # sentence encoder for extractive key points
//! name = "all-MiniLM-L6-v2"
//! path = "all-MiniLM-L6-v2"       # relative to the manifest's folder
//!
//! [ner]                           # optional token classifier
//! name = "my-ner"
//! path = "my-ner"
//!
//! [summarizer]                    # optional BART / T5 / LongT5 / Pegasus / ProphetNet
//! name = "distilbart-cnn-6-6"
//! path = "distilbart-cnn-6-6"
//! ```
//! Each folder holds the usual Hugging Face files: `config.json`, `model.safetensors`
//! (or `rust_model.ot`), and the tokenizer files of its architecture.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// File name of the manifest inside the models folder.
pub const MANIFEST_FILE: &str = "models.toml";

/// One model entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Name reported to clients.
    pub name: String,
    /// Folder of the model files (relative paths are resolved against the manifest folder).
    pub path: PathBuf,
    /// Lower-case input before WordPiece; default: the tokenizer config's `do_lower_case`.
    #[serde(default)]
    pub lower_case: Option<bool>,
}

/// The parsed manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Sentence encoder (extractive key points).
    pub encoder: Option<ModelSpec>,
    /// Token classifier (named entities).
    pub ner: Option<ModelSpec>,
    /// Sequence-to-sequence summarizer (abstractive summaries).
    pub summarizer: Option<ModelSpec>,
}

impl Manifest {
    /// Read `dir/models.toml`, resolving model paths against `dir`.
    ///
    /// # Errors
    /// [`Error::Manifest`] when the file is missing or not valid.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        let err = |reason: String| Error::Manifest {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            err(format!(
                "{e} (run `make setup` to prepare the default models, or pass --models DIR)"
            ))
        })?;
        let mut manifest: Manifest = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        for spec in [
            &mut manifest.encoder,
            &mut manifest.ner,
            &mut manifest.summarizer,
        ]
        .into_iter()
        .flatten()
        {
            if spec.path.is_relative() {
                spec.path = dir.join(&spec.path);
            }
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_against_the_manifest_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            "[encoder]\nname = \"e\"\npath = \"enc\"\n[ner]\nname = \"n\"\npath = \"/abs/ner\"\nlower_case = false\n",
        )
        .unwrap();
        let m = Manifest::load(dir.path()).unwrap();
        assert_eq!(m.encoder.unwrap().path, dir.path().join("enc"));
        let ner = m.ner.unwrap();
        assert_eq!(ner.path, PathBuf::from("/abs/ner"));
        assert_eq!(ner.lower_case, Some(false));
        assert!(m.summarizer.is_none());
    }

    #[test]
    fn missing_and_malformed_manifests_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let e = Manifest::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("models.toml") && e.contains("make setup"), "{e}");
        std::fs::write(dir.path().join(MANIFEST_FILE), "[encoder]\nname = 1\n").unwrap();
        let e = Manifest::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("invalid type"), "{e}");
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            "[encodr]\nname = \"x\"\npath = \"y\"\n",
        )
        .unwrap();
        let e = Manifest::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("unknown field"), "{e}");
    }
}
