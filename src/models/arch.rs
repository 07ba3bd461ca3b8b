//! Which architectures gist's rust-bert engine runs for each task (the `match
//! hf.model_type` arms of `engine::rust_bert`), and which files each one needs.
//!
//! Everything here is pure: it looks at `config.json` and a list of file names, so the
//! checks are table-tested without any model.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Error, Result, Role};

/// `model_type`s of token classifiers the engine loads.
pub const NER_TYPES: &[&str] = &["bert", "distilbert", "electra", "roberta"];
/// `model_type`s of summarization models the engine loads.
pub const SUMMARIZE_TYPES: &[&str] = &["bart", "t5", "longt5", "pegasus", "prophetnet"];
/// `model_type`s of sentence-transformers encoders the engine loads.
pub const EMBED_TYPES: &[&str] = &["bert", "distilbert", "roberta", "albert", "t5"];

/// Files a sentence-transformers folder needs besides the transformer's own.
pub const SENTENCE_TRANSFORMERS_FILES: &[&str] = &[
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
];

/// An architecture the engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// BERT.
    Bert,
    /// DistilBERT.
    DistilBert,
    /// ELECTRA.
    Electra,
    /// RoBERTa.
    Roberta,
    /// ALBERT.
    Albert,
    /// BART (and DistilBART).
    Bart,
    /// T5.
    T5,
    /// LongT5.
    LongT5,
    /// Pegasus.
    Pegasus,
    /// ProphetNet.
    ProphetNet,
}

/// How an architecture's tokenizer is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerKind {
    /// `vocab.txt` (BERT-likes).
    WordPiece,
    /// Byte-level BPE: `vocab.json` + `merges.txt` (RoBERTa, BART).
    Bpe,
    /// `spiece.model` (T5, LongT5, Pegasus, ALBERT).
    SentencePiece,
    /// `prophetnet.tokenizer`.
    ProphetNet,
}

impl TokenizerKind {
    /// The files rust-bert reads for this tokenizer.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            TokenizerKind::WordPiece => &["vocab.txt"],
            TokenizerKind::Bpe => &["vocab.json", "merges.txt"],
            TokenizerKind::SentencePiece => &["spiece.model"],
            TokenizerKind::ProphetNet => &["prophetnet.tokenizer"],
        }
    }

    /// The `tokenizer.json` model type these files can be derived from, if any.
    pub fn derivable_from(self) -> Option<&'static str> {
        match self {
            TokenizerKind::WordPiece => Some("WordPiece"),
            TokenizerKind::Bpe => Some("BPE"),
            TokenizerKind::SentencePiece | TokenizerKind::ProphetNet => None,
        }
    }
}

impl Arch {
    /// The architecture of a `model_type`, if the engine knows it at all.
    pub fn from_model_type(model_type: &str) -> Option<Arch> {
        Some(match model_type {
            "bert" => Arch::Bert,
            "distilbert" => Arch::DistilBert,
            "electra" => Arch::Electra,
            "roberta" => Arch::Roberta,
            "albert" => Arch::Albert,
            "bart" => Arch::Bart,
            "t5" => Arch::T5,
            "longt5" => Arch::LongT5,
            "pegasus" => Arch::Pegasus,
            "prophetnet" => Arch::ProphetNet,
            _ => return None,
        })
    }

    /// The tokenizer files this architecture uses.
    pub fn tokenizer(self) -> TokenizerKind {
        match self {
            Arch::Bert | Arch::DistilBert | Arch::Electra => TokenizerKind::WordPiece,
            Arch::Roberta | Arch::Bart => TokenizerKind::Bpe,
            Arch::Albert | Arch::T5 | Arch::LongT5 | Arch::Pegasus => TokenizerKind::SentencePiece,
            Arch::ProphetNet => TokenizerKind::ProphetNet,
        }
    }
}

/// The `model_type`s the engine runs for `task`.
pub fn supported(task: Role) -> &'static [&'static str] {
    match task {
        Role::Ner => NER_TYPES,
        Role::Summarizer => SUMMARIZE_TYPES,
        Role::Encoder => EMBED_TYPES,
    }
}

/// Check `config.json` (its parsed `json`, read from `path`) for `task`.
///
/// # Errors
/// [`Error::Unsupported`] for a `model_type` the engine does not run for the task;
/// [`Error::Invalid`] without `model_type`, or for a NER model that is not a token
/// classifier or has no labels.
pub fn check(task: Role, json: &Value, path: &std::path::Path) -> Result<Arch> {
    let invalid = |reason: String| Error::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let model_type = json["model_type"]
        .as_str()
        .ok_or_else(|| invalid("no \"model_type\"".into()))?;
    let arch = Arch::from_model_type(model_type)
        .filter(|_| supported(task).contains(&model_type))
        .ok_or_else(|| Error::Unsupported {
            task,
            model_type: model_type.to_string(),
            supported: supported(task),
        })?;
    if task == Role::Ner {
        // Older configs have no "architectures"; a present one must be a token classifier.
        if let Some(archs) = json["architectures"].as_array() {
            let names: Vec<&str> = archs.iter().filter_map(Value::as_str).collect();
            if !names.iter().any(|a| a.ends_with("ForTokenClassification")) {
                return Err(invalid(format!(
                    "architectures {names:?} has no token classifier (*ForTokenClassification)"
                )));
            }
        }
        if json["id2label"].as_object().is_none_or(|m| m.len() < 2) {
            return Err(invalid(
                "no \"id2label\" labels for the token classifier".into(),
            ));
        }
    }
    Ok(arch)
}

/// Where the tokenizer files of an import come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerSource {
    /// The folder has them.
    Files,
    /// They are derived from `tokenizer.json`.
    TokenizerJson,
}

/// The files of a snapshot an import uses, once every requirement is met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirements {
    /// Where the tokenizer comes from.
    pub tokenizer: TokenizerSource,
}

/// Check that `files` (paths relative to the snapshot, `/`-separated) hold everything
/// `arch` needs for `task`. `tokenizer_json_model` is the `model.type` of the folder's
/// `tokenizer.json`, when it has one.
///
/// # Errors
/// The list of what is missing, each entry saying what could replace it.
pub fn requirements(
    task: Role,
    arch: Arch,
    files: &BTreeSet<String>,
    tokenizer_json_model: Option<&str>,
) -> std::result::Result<Requirements, Vec<String>> {
    let has = |f: &str| files.contains(f);
    let mut missing = Vec::new();
    if !has("config.json") {
        missing.push("config.json".to_string());
    }
    if !crate::models::weights::WEIGHT_FILES.iter().any(|f| has(f)) {
        missing.push(crate::models::weights::MISSING.into());
    }
    let kind = arch.tokenizer();
    let absent: Vec<&str> = kind.files().iter().copied().filter(|f| !has(f)).collect();
    let tokenizer = if absent.is_empty() {
        TokenizerSource::Files
    } else {
        match (kind.derivable_from(), tokenizer_json_model) {
            (Some(wanted), Some(model)) if model == wanted => TokenizerSource::TokenizerJson,
            (Some(wanted), Some(model)) => {
                missing.push(format!(
                    "{} (tokenizer.json has a {model} model, not {wanted})",
                    absent.join(" and ")
                ));
                TokenizerSource::Files
            }
            (Some(wanted), None) => {
                missing.push(format!(
                    "{} (or a tokenizer.json with a {wanted} model to derive it from)",
                    absent.join(" and ")
                ));
                TokenizerSource::Files
            }
            (None, _) => {
                missing.push(absent.join(" and "));
                TokenizerSource::Files
            }
        }
    };
    if task == Role::Encoder {
        for f in SENTENCE_TRANSFORMERS_FILES {
            if !has(f) {
                missing.push(format!("{f} (a sentence-transformers folder)"));
            }
        }
    }
    if missing.is_empty() {
        Ok(Requirements { tokenizer })
    } else {
        Err(missing)
    }
}

/// Refuse sentence-transformers pipelines with modules the engine does not load (Dense
/// layers): rust-bert would need their weights, and gist loads only the transformer.
///
/// # Errors
/// [`Error::Invalid`] naming the module.
pub fn check_modules(modules: &Value, path: &std::path::Path) -> Result<()> {
    let list = modules.as_array().ok_or_else(|| Error::Invalid {
        path: path.to_path_buf(),
        reason: "not a list of modules".into(),
    })?;
    for module in list {
        let kind = module["type"].as_str().unwrap_or_default();
        let known = [
            "sentence_transformers.models.Transformer",
            "sentence_transformers.models.Pooling",
            "sentence_transformers.models.Normalize",
        ];
        if !known.contains(&kind) {
            return Err(Error::Invalid {
                path: path.to_path_buf(),
                reason: format!(
                    "module {:?} of type {kind:?} is not supported (gist loads Transformer, Pooling and Normalize)",
                    module["path"].as_str().unwrap_or_default()
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn files(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn model_types_are_checked_per_task() {
        let p = Path::new("config.json");
        let ner = json!({"model_type": "bert", "architectures": ["BertForTokenClassification"],
                         "id2label": {"0": "O", "1": "B-PER"}});
        assert_eq!(check(Role::Ner, &ner, p).unwrap(), Arch::Bert);
        // Old configs have no "architectures".
        let old = json!({"model_type": "bert", "id2label": {"0": "O", "1": "B-PER"}});
        assert_eq!(check(Role::Ner, &old, p).unwrap(), Arch::Bert);
        assert_eq!(
            check(Role::Summarizer, &json!({"model_type": "pegasus"}), p).unwrap(),
            Arch::Pegasus
        );
        assert_eq!(
            check(Role::Encoder, &json!({"model_type": "albert"}), p).unwrap(),
            Arch::Albert
        );

        let cases = [
            (Role::Ner, "gpt2", "bert, distilbert, electra, roberta"),
            (Role::Ner, "bart", "bert, distilbert, electra, roberta"),
            (
                Role::Summarizer,
                "bert",
                "bart, t5, longt5, pegasus, prophetnet",
            ),
            (
                Role::Summarizer,
                "mbart",
                "bart, t5, longt5, pegasus, prophetnet",
            ),
            (
                Role::Encoder,
                "electra",
                "bert, distilbert, roberta, albert, t5",
            ),
        ];
        for (task, model_type, list) in cases {
            let e = check(task, &json!({"model_type": model_type}), p)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("{model_type:?}")) && e.ends_with(list),
                "{task} {model_type}: {e}"
            );
        }
    }

    #[test]
    fn token_classifiers_need_the_head_and_labels() {
        let p = Path::new("x/config.json");
        let e = check(
            Role::Ner,
            &json!({"model_type": "bert", "architectures": ["BertModel"], "id2label": {"0": "a", "1": "b"}}),
            p,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("x/config.json: ") && e.contains("ForTokenClassification"),
            "{e}"
        );
        let e = check(
            Role::Ner,
            &json!({"model_type": "bert", "architectures": ["BertForTokenClassification"]}),
            p,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("id2label"), "{e}");
        let e = check(Role::Ner, &json!({"architectures": []}), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("model_type"), "{e}");
    }

    #[test]
    fn requirements_name_exactly_what_is_missing() {
        let ok = files(&["config.json", "model.safetensors", "vocab.txt"]);
        assert_eq!(
            requirements(Role::Ner, Arch::Bert, &ok, None).unwrap(),
            Requirements {
                tokenizer: TokenizerSource::Files
            }
        );
        let json_only = files(&["config.json", "pytorch_model.bin", "tokenizer.json"]);
        assert_eq!(
            requirements(Role::Ner, Arch::Bert, &json_only, Some("WordPiece"))
                .unwrap()
                .tokenizer,
            TokenizerSource::TokenizerJson
        );
        assert_eq!(
            requirements(Role::Summarizer, Arch::Bart, &json_only, Some("BPE"))
                .unwrap()
                .tokenizer,
            TokenizerSource::TokenizerJson
        );

        // (task, architecture, files present, tokenizer.json model, what is missing)
        type Case<'a> = (Role, Arch, &'a [&'a str], Option<&'a str>, &'a [&'a str]);
        let cases: &[Case] = &[
            (
                Role::Ner,
                Arch::Bert,
                &["config.json", "model.safetensors"],
                None,
                &["vocab.txt (or a tokenizer.json with a WordPiece model to derive it from)"],
            ),
            (
                Role::Ner,
                Arch::Roberta,
                &["config.json", "model.safetensors", "vocab.json"],
                Some("WordPiece"),
                &["merges.txt (tokenizer.json has a WordPiece model, not BPE)"],
            ),
            (
                Role::Summarizer,
                Arch::T5,
                &[
                    "config.json",
                    "model.safetensors.index.json",
                    "tokenizer.json",
                ],
                Some("Unigram"),
                &["spiece.model"],
            ),
            (
                Role::Summarizer,
                Arch::ProphetNet,
                &["model.safetensors"],
                None,
                &["config.json", "prophetnet.tokenizer"],
            ),
            (
                Role::Encoder,
                Arch::Bert,
                &["config.json", "vocab.txt", "modules.json"],
                None,
                &[
                    crate::models::weights::MISSING,
                    "sentence_bert_config.json (a sentence-transformers folder)",
                    "1_Pooling/config.json (a sentence-transformers folder)",
                ],
            ),
        ];
        for (task, arch, present, tj, want) in cases {
            let got = requirements(*task, *arch, &files(present), *tj).unwrap_err();
            assert_eq!(got, *want, "{task} {arch:?} {present:?}");
        }
    }

    #[test]
    fn dense_sentence_transformers_modules_are_refused() {
        let p = Path::new("modules.json");
        let plain = json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        ]);
        check_modules(&plain, p).unwrap();
        let dense = json!([
            {"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
        ]);
        let e = check_modules(&dense, p).unwrap_err().to_string();
        assert!(e.contains("2_Dense") && e.contains("Dense"), "{e}");
    }
}
