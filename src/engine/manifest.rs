//! The models manifest (`models/models.toml`): which model folders the server loads.
//!
//! ```toml
//! [encoder]                       # sentence encoder for extractive key points
//! name = "all-MiniLM-L6-v2"
//! path = "all-MiniLM-L6-v2"       # relative to the manifest's folder
//! runtime = "onnx"                # or "libtorch" (the default when absent)
//! precision = "int8"              # ONNX only: "fp32" (model.onnx) or "int8"
//!
//! [ner]                           # optional token classifier
//! name = "my-ner"
//! path = "my-ner"
//! context_tokens = 32             # document-context models: neighbours read on each side
//!
//! [summarizer]                    # optional BART / T5 / LongT5 / Pegasus / ProphetNet
//! name = "distilbart-cnn-6-6"
//! path = "distilbart-cnn-6-6"
//! ```
//! A role may name several models, as an array of tables; one of them is marked
//! `default = true` and serves the requests that name no model:
//! ```toml
//! [[ner]]
//! name = "conll03-minilm-ner"
//! path = "conll03-minilm-ner"
//! default = true
//!
//! [[ner]]
//! name = "bert-base-NER"
//! path = "bert-base-NER"
//! ```
//! Model names are unique across the manifest (a request names a model without its role)
//! and contain no `@` (`name@version` pins a version).
//! Each folder holds the usual Hugging Face files: `config.json`, `model.safetensors`
//! (or `rust_model.ot`), and the tokenizer files of its architecture; ONNX models also
//! `model.onnx` and/or `model.int8.onnx`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::role::Role;

/// File name of the manifest inside the models folder.
pub const MANIFEST_FILE: &str = "models.toml";

/// One model entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Name reported to clients.
    pub name: String,
    /// Folder of the model files (relative paths are resolved against the manifest folder).
    pub path: PathBuf,
    /// Lower-case input before WordPiece; default: the tokenizer config's `do_lower_case`.
    #[serde(default)]
    pub lower_case: Option<bool>,
    /// The runtime that serves the model; default: libtorch.
    #[serde(default)]
    pub runtime: Option<Runtime>,
    /// The weights ONNX Runtime loads: fp32 (`model.onnx`, the default) or int8
    /// (`model.int8.onnx`).
    #[serde(default)]
    pub precision: Option<Precision>,
    /// Serves the requests that name no model, when the role lists several.
    #[serde(default)]
    pub default: bool,
    /// Token classifiers trained with document context: tokens of whole neighbouring
    /// sentences read on each side of a piece (0: none); default: the `gist_context_tokens`
    /// its config.json was trained with. Fewer is faster and can cost a little accuracy.
    #[serde(default)]
    pub context_tokens: Option<usize>,
}

impl ModelSpec {
    /// The runtime the entry names (libtorch when it names none).
    pub fn runtime(&self) -> Runtime {
        self.runtime.unwrap_or_default()
    }

    /// The precision the entry names (fp32 when it names none).
    pub fn precision(&self) -> Precision {
        self.precision.unwrap_or_default()
    }
}

/// The runtimes a model can be served by.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// rust-bert on libtorch: `model.safetensors` or `rust_model.ot`; every role.
    #[default]
    Libtorch,
    /// ONNX Runtime: `model.onnx` / `model.int8.onnx`; encoders and token classifiers.
    Onnx,
}

impl Runtime {
    /// Its name in `models.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Libtorch => "libtorch",
            Runtime::Onnx => "onnx",
        }
    }
}

/// Weight precisions of an ONNX model.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats: `model.onnx`.
    #[default]
    Fp32,
    /// 8-bit integer weights (dynamic quantization): `model.int8.onnx`.
    Int8,
}

impl Precision {
    /// Its name in `models.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
        }
    }

    /// The file both precisions' ONNX files keep their embedding tables in (ONNX external
    /// data, written by `scripts/onnx/export.py`).
    pub const DATA_FILE: &'static str = "model.onnx.data";

    /// The ONNX file of this precision in a model folder.
    pub fn onnx_file(self, dir: &Path) -> PathBuf {
        dir.join(match self {
            Precision::Fp32 => "model.onnx",
            Precision::Int8 => "model.int8.onnx",
        })
    }
}

/// The parsed manifest: the models of each [`Role`], its default first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    models: BTreeMap<Role, Vec<ModelSpec>>,
}

impl<'de> Deserialize<'de> for Manifest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        /// A section: one table, or an array of tables.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Section {
            One(toml::Table),
            Many(Vec<toml::Table>),
        }
        let sections = BTreeMap::<String, Section>::deserialize(deserializer)?;
        let mut models = BTreeMap::new();
        for (section, entries) in sections {
            let role = Role::from_section(&section).ok_or_else(|| {
                let known: Vec<String> = Role::ALL
                    .iter()
                    .map(|r| format!("`{}`", r.section()))
                    .collect();
                D::Error::custom(format!(
                    "unknown field `{section}`, expected one of {}",
                    known.join(", ")
                ))
            })?;
            let tables = match entries {
                Section::One(table) => vec![table],
                Section::Many(tables) => tables,
            };
            let specs = tables
                .into_iter()
                .map(|t| {
                    ModelSpec::deserialize(toml::Value::Table(t))
                        .map_err(|e| D::Error::custom(format!("[{section}]: {e}")))
                })
                .collect::<Result<Vec<ModelSpec>, D::Error>>()?;
            models.insert(role, specs);
        }
        let manifest = Manifest { models };
        manifest.checked().map_err(D::Error::custom)
    }
}

impl Manifest {
    /// A manifest with just `spec` for `role`.
    pub fn one(role: Role, spec: ModelSpec) -> Manifest {
        let mut manifest = Manifest::default();
        manifest.set(role, spec);
        manifest
    }

    /// Check the rules the format does not say by itself, and put each role's default
    /// first: every role names at least one model, names are unique and free of `@`, and a
    /// role with several models marks exactly one `default = true`.
    fn checked(mut self) -> Result<Manifest, String> {
        let mut names = std::collections::BTreeSet::new();
        for (role, specs) in &mut self.models {
            let section = role.section();
            if specs.is_empty() {
                return Err(format!("[[{section}]] names no model"));
            }
            for spec in specs.iter() {
                if spec.name.trim().is_empty() || spec.name.contains('@') {
                    return Err(format!(
                        "[{section}]: model name {:?} must be non-empty and contain no '@' (name@version pins a version)",
                        spec.name
                    ));
                }
                if !names.insert(spec.name.clone()) {
                    return Err(format!(
                        "model name {:?} is used twice: names are unique across the manifest",
                        spec.name
                    ));
                }
            }
            let defaults = specs.iter().filter(|s| s.default).count();
            if specs.len() > 1 && defaults != 1 {
                return Err(format!(
                    "[[{section}]] lists {} models and marks {defaults} with `default = true`: mark exactly one",
                    specs.len()
                ));
            }
            if let Some(at) = specs.iter().position(|s| s.default) {
                specs[..=at].rotate_right(1);
            }
            for (i, spec) in specs.iter_mut().enumerate() {
                spec.default = i == 0;
            }
        }
        Ok(self)
    }

    /// The default model of `role`.
    pub fn get(&self, role: Role) -> Option<&ModelSpec> {
        self.models.get(&role).and_then(|specs| specs.first())
    }

    /// Name `spec` alone for `role`, replacing what was there.
    pub fn set(&mut self, role: Role, spec: ModelSpec) {
        self.models.insert(
            role,
            vec![ModelSpec {
                default: true,
                ..spec
            }],
        );
    }

    /// Every model with its role, in manifest order (each role's default first).
    pub fn iter(&self) -> impl Iterator<Item = (Role, &ModelSpec)> {
        self.models
            .iter()
            .flat_map(|(role, specs)| specs.iter().map(move |spec| (*role, spec)))
    }

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
        for spec in manifest.models.values_mut().flatten() {
            if spec.path.is_relative() {
                spec.path = dir.join(&spec.path);
            }
        }
        Ok(manifest)
    }
}

/// What [`set_entry`] found in the section before replacing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    /// The previous `name`, if the section had one.
    pub name: Option<String>,
    /// The previous `path`, if the section had one.
    pub path: Option<String>,
}

/// Set `[section]` of a manifest's text to `name`, `path` and `lower_case` (removed when
/// `None`, so a setting of the previous model never sticks to the new one), keeping
/// comments, order and every other section as they are.
/// Returns the new text and what the section held before (`None` if it did not exist).
///
/// # Errors
/// [`Error::Manifest`] when the text is not valid TOML, `[section]` is not a table, or
/// the result would not load.
pub fn set_entry(
    text: &str,
    role: Role,
    name: &str,
    path: &str,
    lower_case: Option<bool>,
) -> Result<(String, Option<Replaced>)> {
    let err = |reason: String| Error::Manifest {
        path: MANIFEST_FILE.into(),
        reason,
    };
    let section = role.section();
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| err(format!("{e}")))?;
    let replaced = match doc.get(section) {
        None => None,
        Some(item) if item.is_array_of_tables() => {
            return Err(err(format!(
                "[[{section}]] lists several models: edit models.toml by hand to add or replace one (see README, \"Several models\")"
            )))
        }
        Some(item) => {
            let table = item
                .as_table()
                .ok_or_else(|| err(format!("[{section}] is not a table")))?;
            let field = |k: &str| table.get(k).and_then(|v| v.as_str()).map(String::from);
            Some(Replaced {
                name: field("name"),
                path: field("path"),
            })
        }
    };
    if replaced.is_none() {
        // Comments at the end of the file belong to the document; keep them above the
        // new section (the default manifest ends with a commented-out example of it).
        let mut trailing = doc.trailing().as_str().unwrap_or_default().to_string();
        doc.set_trailing("");
        if trailing.trim().is_empty() && !text.trim().is_empty() {
            trailing = "\n".into();
        }
        let mut table = toml_edit::Table::new();
        table.decor_mut().set_prefix(trailing);
        doc.insert(section, toml_edit::Item::Table(table));
    }
    let table = doc[section]
        .as_table_mut()
        .ok_or_else(|| err(format!("[{section}] is not a table")))?;
    set_value(table, "name", name.into());
    set_value(table, "path", path.into());
    match lower_case {
        Some(b) => set_value(table, "lower_case", b.into()),
        None => {
            table.remove("lower_case");
        }
    }
    let out = doc.to_string();
    toml::from_str::<Manifest>(&out)
        .map_err(|e| err(format!("the edited manifest is invalid: {e}")))?;
    Ok((out, replaced))
}

/// Set `runtime` and `precision` of `role`'s section in a manifest's text (the section
/// must exist, as [`set_entry`] leaves it); for libtorch both keys are removed (the
/// default).
///
/// # Errors
/// [`Error::Manifest`] when the text is not valid TOML or the section is not a table.
pub fn set_runtime(
    text: &str,
    role: Role,
    runtime: Runtime,
    precision: Precision,
) -> Result<String> {
    let err = |reason: String| Error::Manifest {
        path: MANIFEST_FILE.into(),
        reason,
    };
    let section = role.section();
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| err(format!("{e}")))?;
    let table = doc
        .get_mut(section)
        .and_then(|item| item.as_table_mut())
        .ok_or_else(|| err(format!("[{section}] is not a table")))?;
    match runtime {
        Runtime::Libtorch => {
            table.remove("runtime");
            table.remove("precision");
        }
        Runtime::Onnx => {
            set_value(table, "runtime", runtime.name().into());
            set_value(table, "precision", precision.name().into());
        }
    }
    let out = doc.to_string();
    toml::from_str::<Manifest>(&out)
        .map_err(|e| err(format!("the edited manifest is invalid: {e}")))?;
    Ok(out)
}

/// Set `key` to `value`, keeping the spacing and comment around an existing value.
fn set_value(table: &mut toml_edit::Table, key: &str, mut value: toml_edit::Value) {
    if let Some(old) = table.get(key).and_then(|item| item.as_value()) {
        *value.decor_mut() = old.decor().clone();
    }
    table[key] = toml_edit::Item::Value(value);
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
        assert_eq!(m.get(Role::Encoder).unwrap().path, dir.path().join("enc"));
        let ner = m.get(Role::Ner).unwrap();
        assert_eq!(ner.path, PathBuf::from("/abs/ner"));
        assert_eq!(ner.lower_case, Some(false));
        assert!(m.get(Role::Summarizer).is_none());
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

    const DEFAULT: &str = "# Models gist serves.\n\n# The encoder.\n[encoder]\nname = \"all-MiniLM-L6-v2\"\npath = \"all-MiniLM-L6-v2\"\n\n# NER, trained here.\n[ner]\nname = \"conll03-minilm-ner\"\npath = \"conll03-minilm-ner\"\nlower_case = true # from the tokenizer\n\n# Optional summarizer.\n# [summarizer]\n# name = \"distilbart-cnn-6-6\"\n";

    #[test]
    fn set_entry_replaces_one_section_and_keeps_the_rest() {
        let (out, replaced) = set_entry(
            DEFAULT,
            Role::Ner,
            "bert-base-NER",
            "bert-base-NER",
            Some(false),
        )
        .unwrap();
        assert_eq!(
            replaced,
            Some(Replaced {
                name: Some("conll03-minilm-ner".into()),
                path: Some("conll03-minilm-ner".into())
            })
        );
        assert_eq!(
            out,
            DEFAULT
                .replace("name = \"conll03-minilm-ner\"", "name = \"bert-base-NER\"")
                .replace("path = \"conll03-minilm-ner\"", "path = \"bert-base-NER\"")
                .replace("lower_case = true", "lower_case = false")
        );
        // A setting of the previous model does not stick to the next one.
        let (out, _) = set_entry(&out, Role::Ner, "roberta-ner", "roberta-ner", None).unwrap();
        assert!(!out.contains("lower_case"), "{out}");
        assert!(out.contains("# NER, trained here.\n[ner]\n"), "{out}");
    }

    #[test]
    fn set_entry_adds_a_missing_section_after_the_comments() {
        let (out, replaced) = set_entry(DEFAULT, Role::Summarizer, "d", "d", None).unwrap();
        assert_eq!(replaced, None);
        assert_eq!(
            out,
            format!("{DEFAULT}[summarizer]\nname = \"d\"\npath = \"d\"\n")
        );
        let (out, _) = set_entry(
            "[ner]\nname = \"n\"\npath = \"n\"\n",
            Role::Encoder,
            "e",
            "e",
            None,
        )
        .unwrap();
        assert_eq!(
            out,
            "[ner]\nname = \"n\"\npath = \"n\"\n\n[encoder]\nname = \"e\"\npath = \"e\"\n"
        );
        let (out, _) = set_entry("", Role::Encoder, "e", "e", None).unwrap();
        assert_eq!(out, "[encoder]\nname = \"e\"\npath = \"e\"\n");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), out).unwrap();
        assert_eq!(
            Manifest::load(dir.path())
                .unwrap()
                .get(Role::Encoder)
                .unwrap()
                .name,
            "e"
        );
    }

    #[test]
    fn set_runtime_names_onnx_models_and_forgets_them_for_libtorch() {
        let (text, _) = set_entry(DEFAULT, Role::Ner, "n", "n", None).unwrap();
        let onnx = set_runtime(&text, Role::Ner, Runtime::Onnx, Precision::Int8).unwrap();
        assert!(
            onnx.contains(
                "[ner]\nname = \"n\"\npath = \"n\"\nruntime = \"onnx\"\nprecision = \"int8\"\n"
            ),
            "{onnx}"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), &onnx).unwrap();
        let manifest = Manifest::load(dir.path()).unwrap();
        let ner = manifest.get(Role::Ner).unwrap();
        assert_eq!(
            (ner.runtime(), ner.precision()),
            (Runtime::Onnx, Precision::Int8)
        );
        let back = set_runtime(&onnx, Role::Ner, Runtime::Libtorch, Precision::Fp32).unwrap();
        assert_eq!(back, text);
        assert!(set_runtime(&text, Role::Summarizer, Runtime::Onnx, Precision::Fp32).is_err());
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            "[ner]\nname = \"n\"\npath = \"n\"\nruntime = \"tensorflow\"\n",
        )
        .unwrap();
        let e = Manifest::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("unknown variant") && e.contains("onnx"), "{e}");
    }

    #[test]
    fn a_role_may_list_several_models_with_one_default() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| std::fs::write(dir.path().join(MANIFEST_FILE), text).unwrap();
        write("[[ner]]\nname = \"a\"\npath = \"a\"\n[[ner]]\nname = \"b\"\npath = \"b\"\ndefault = true\n[encoder]\nname = \"e\"\npath = \"e\"\n");
        let m = Manifest::load(dir.path()).unwrap();
        assert_eq!(m.get(Role::Ner).unwrap().name, "b");
        let all: Vec<(Role, &str, bool)> = m
            .iter()
            .map(|(r, s)| (r, s.name.as_str(), s.default))
            .collect();
        assert_eq!(
            all,
            [
                (Role::Encoder, "e", true),
                (Role::Ner, "b", true),
                (Role::Ner, "a", false)
            ]
        );
        let refused = |text: &str| {
            write(text);
            Manifest::load(dir.path()).unwrap_err().to_string()
        };
        let e =
            refused("[[ner]]\nname = \"a\"\npath = \"a\"\n[[ner]]\nname = \"b\"\npath = \"b\"\n");
        assert!(e.contains("marks 0 with `default = true`"), "{e}");
        let e =
            refused("[[ner]]\nname = \"a\"\npath = \"a\"\n[encoder]\nname = \"a\"\npath = \"e\"\n");
        assert!(e.contains("used twice"), "{e}");
        let e = refused("[ner]\nname = \"a@1\"\npath = \"a\"\n");
        assert!(e.contains("no '@'"), "{e}");
        let e = refused("[[ner]]\nname = \"a\"\npath = \"a\"\ncolour = 1\n");
        assert!(e.contains("[ner]: unknown field `colour`"), "{e}");
        // The CLI's editor leaves lists to the user.
        let e = set_entry(
            "[[ner]]\nname = \"a\"\npath = \"a\"\n",
            Role::Ner,
            "n",
            "n",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("edit models.toml by hand"), "{e}");
    }

    #[test]
    fn set_entry_refuses_what_it_cannot_edit() {
        let e = set_entry("[ner", Role::Ner, "n", "n", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("models.toml"), "{e}");
        let e = set_entry("ner = 1\n", Role::Ner, "n", "n", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[ner] is not a table"), "{e}");
        let e = set_entry(
            "[ner]\nname = \"x\"\ncolour = 1\n",
            Role::Ner,
            "n",
            "n",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field"), "{e}");
    }
}
