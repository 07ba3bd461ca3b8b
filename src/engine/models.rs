//! [`Models`]: the production [`Engine`]: the models of each [`Role`], one of them its
//! default, and reloads that load new versions beside the old ones.
//!
//! A backend implements the narrow trait of each role it can run ([`SentenceEncoder`],
//! [`TokenClassifier`], [`Summarizer`]): tokenizing and running a batch. Everything above
//! that (windows, length-sorted batches, pooling, word labels, missing models) is written
//! once, here and in [`super::embedding`] / [`super::tagging`], so every backend behaves
//! the same way.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::manifest::{Manifest, ModelSpec};
use super::{
    embedding, tagging, Embedding, Engine, EngineInfo, Generated, Generation, ModelInfo, ModelRef,
    Pick, Released, Served, Tagged,
};
use crate::error::{error_chain, Error, Result};
use crate::role::Role;

/// A sentence encoder, as a backend runs it.
pub trait SentenceEncoder {
    /// Longest input the encoder reads, in tokens (longer sentences are cut).
    fn max_tokens(&self) -> usize;
    /// Tokens of `text` as the encoder reads it, special tokens included.
    fn count_tokens(&self, text: &str) -> usize;
    /// The pooled embedding of each sentence of `batch` (not yet normalised).
    ///
    /// # Errors
    /// [`Error::Inference`] when the runtime fails.
    fn encode(&mut self, batch: &[&str]) -> Result<Vec<Vec<f32>>>;
}

/// One sub-word token of a classified text.
#[derive(Debug, Clone, PartialEq)]
pub struct SubToken {
    /// Offset of the token's first character in the text, in code points.
    pub begin: usize,
    /// The label the model gives it.
    pub label: String,
    /// The probability of that label.
    pub score: f32,
    /// The probability of every label, in the order of [`TokenClassifier::labels`]; empty
    /// when the backend gives only the most probable one.
    pub probs: Vec<f32>,
}

/// A token classifier, as a backend runs it.
pub trait TokenClassifier {
    /// Longest input the model reads, in tokens.
    fn max_tokens(&self) -> usize;
    /// Sub-word tokens of `text`, special tokens excluded.
    fn sub_words(&self, text: &str) -> usize;
    /// The model's labels by class index.
    fn labels(&self) -> &[String];
    /// How the model reads a text (sentences packed, document context), as trained.
    fn packing(&self) -> tagging::Packing {
        tagging::Packing::default()
    }
    /// The sub-word tokens of each text of `batch` with their labels, in text order
    /// (special tokens left out). Each text fits the model window.
    ///
    /// # Errors
    /// [`Error::Inference`] when the runtime fails.
    fn classify(&mut self, batch: &[&str]) -> Result<Vec<Vec<SubToken>>>;
}

/// A sequence-to-sequence summarizer, as a backend runs it.
pub trait Summarizer {
    /// Tokens of `text` as the model reads it (task prefix and special tokens included).
    fn count_tokens(&self, text: &str) -> usize;
    /// One summary per text.
    ///
    /// # Errors
    /// [`Error::Inference`] when the runtime fails.
    fn generate(&mut self, texts: &[&str], options: &Generation) -> Result<Vec<Generated>>;
}

/// A model a backend loaded for one role. Models are loaded off the model thread during
/// a reload, so every backend's models are `Send`.
pub enum Model {
    /// For [`Role::Encoder`].
    Encoder(Box<dyn SentenceEncoder + Send>),
    /// For [`Role::Ner`].
    Ner(Box<dyn TokenClassifier + Send>),
    /// For [`Role::Summarizer`].
    Summarizer(Box<dyn Summarizer + Send>),
}

impl Model {
    fn role(&self) -> Role {
        match self {
            Model::Encoder(_) => Role::Encoder,
            Model::Ner(_) => Role::Ner,
            Model::Summarizer(_) => Role::Summarizer,
        }
    }
}

/// How [`Models`] gets its models: the backends, with the server's settings.
pub trait ModelLoader: Send + Sync {
    /// The version `spec`'s model would have (a content hash of its files), without
    /// loading it.
    ///
    /// # Errors
    /// [`Error::ModelLoad`] when its folder cannot be read.
    fn version(&self, role: Role, spec: &ModelSpec) -> Result<String>;
    /// Load `spec`'s model on its backend (`None`: this build cannot run it, and leaves
    /// it out with a warning).
    ///
    /// # Errors
    /// [`Error::ModelLoad`].
    fn load(&self, role: Role, spec: &ModelSpec) -> Result<Option<(Model, ModelInfo)>>;
}

/// A shared [`ModelLoader`].
pub type Loader = Arc<dyn ModelLoader>;

/// The work of a reload, run off the model thread: it reports the models it is about to
/// load (new or changed) through its argument, then loads them.
pub type ReloadWork = Box<dyn FnOnce(&Announce) -> Result<Staged> + Send>;

/// Told the models (role and name) a reload is about to load.
pub type Announce = dyn Fn(&[(Role, String)]);

/// What a reload prepared for [`Engine::apply_reload`].
pub struct Staged {
    manifest: Manifest,
    loaded: Vec<(Model, ModelInfo, bool)>,
    /// Models that failed to load: role, name and why. The version they would replace
    /// (if any) keeps serving.
    pub failed: Vec<(Role, String, String)>,
}

/// One model in memory.
struct Entry {
    role: Role,
    info: ModelInfo,
    model: Model,
    /// Serves new requests (else it is kept only for requests pinned to it).
    serving: bool,
    /// Serves the requests of its role that name no model.
    default: bool,
}

/// The models of one server, each run by its backend: several per role, one of them the
/// role's default, and during a reload the versions being replaced.
#[derive(Default)]
pub struct Models {
    /// The models the next calls run on (see [`Engine::select`]).
    info: EngineInfo,
    selected: BTreeMap<Role, usize>,
    entries: Vec<Entry>,
    /// The manifest folder and the loader, for reloads (none: loaded from a manifest in
    /// memory).
    source: Option<(PathBuf, Loader)>,
}

impl Models {
    /// Load every model of `manifest` with `loader`; `dir` is the folder a reload reads
    /// `models.toml` from again. The default model of each role serves the first calls.
    ///
    /// # Errors
    /// [`Error::ModelLoad`] naming the model and folder when any model fails to load.
    pub fn load_from(manifest: &Manifest, dir: Option<PathBuf>, loader: Loader) -> Result<Models> {
        let mut models = Models::default();
        for (role, spec) in manifest.iter() {
            if let Some((model, info)) = loader.load(role, spec)? {
                models.add(model, info, spec.default)?;
            }
        }
        models.source = dir.map(|dir| (dir, loader));
        let defaults = models.served_pick();
        models.select(&defaults)?;
        Ok(models)
    }

    /// Load every model of `manifest` with `load_one`, which picks the backend (and may
    /// leave a model out, answering `None`); such models cannot be reloaded. Versions and
    /// labels the backend leaves empty are filled in from the model folder.
    ///
    /// # Errors
    /// [`Error::ModelLoad`] naming the model and folder when any model fails to load.
    pub fn load(
        manifest: &Manifest,
        mut load_one: impl FnMut(Role, &ModelSpec) -> Result<Option<(Model, ModelInfo)>>,
    ) -> Result<Models> {
        let mut models = Models::default();
        for (role, spec) in manifest.iter() {
            if let Some((model, mut info)) = load_one(role, spec)? {
                super::describe(role, spec, spec.runtime(), &mut info)?;
                models.add(model, info, spec.default)?;
            }
        }
        let defaults = models.served_pick();
        models.select(&defaults)?;
        Ok(models)
    }

    fn add(&mut self, model: Model, info: ModelInfo, default: bool) -> Result<()> {
        let role = model.role();
        if !matches!(
            (role, &model),
            (Role::Encoder, Model::Encoder(_))
                | (Role::Ner, Model::Ner(_))
                | (Role::Summarizer, Model::Summarizer(_))
        ) {
            return Err(Error::Internal(format!(
                "a backend loaded the wrong kind of model for [{}]",
                role.section()
            )));
        }
        self.entries.push(Entry {
            role,
            info,
            model,
            serving: true,
            default,
        });
        Ok(())
    }

    /// The defaults of every role.
    fn served_pick(&self) -> Pick {
        Pick(
            self.entries
                .iter()
                .filter(|e| e.serving && e.default)
                .map(|e| (e.role, e.info.key()))
                .collect(),
        )
    }

    fn model(&mut self, role: Role) -> Result<&mut Model> {
        let at = *self.selected.get(&role).ok_or(Error::ModelMissing(role))?;
        Ok(&mut self.entries[at].model)
    }
}

fn wrong(role: Role) -> Error {
    Error::Internal(format!(
        "the selected [{}] model is of another role",
        role.section()
    ))
}

impl Engine for Models {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn embed(&mut self, sentences: &[&str]) -> Result<Vec<Embedding>> {
        match self.model(Role::Encoder)? {
            Model::Encoder(m) => embedding::embed(m.as_mut(), sentences),
            _ => Err(wrong(Role::Encoder)),
        }
    }

    fn tag(&mut self, texts: &[&str]) -> Result<Vec<Tagged>> {
        match self.model(Role::Ner)? {
            Model::Ner(m) => tagging::tag(m.as_mut(), texts),
            _ => Err(wrong(Role::Ner)),
        }
    }

    fn generate(&mut self, texts: &[&str], options: &Generation) -> Result<Vec<Generated>> {
        let generated = match self.model(Role::Summarizer)? {
            Model::Summarizer(m) => m.generate(texts, options)?,
            _ => return Err(wrong(Role::Summarizer)),
        };
        if generated.len() != texts.len() {
            return Err(Error::Internal(format!(
                "generated {} summaries for {} inputs",
                generated.len(),
                texts.len()
            )));
        }
        Ok(generated)
    }

    fn count_tokens(&mut self, role: Role, texts: &[&str]) -> Result<Vec<usize>> {
        let count: Box<dyn Fn(&str) -> usize + '_> = match self.model(role)? {
            Model::Encoder(m) => Box::new(move |t| m.count_tokens(t)),
            Model::Ner(m) => Box::new(move |t| m.sub_words(t) + 2),
            Model::Summarizer(m) => Box::new(move |t| m.count_tokens(t)),
        };
        Ok(texts.iter().map(|t| count(t)).collect())
    }

    fn served(&self) -> Vec<Served> {
        self.entries
            .iter()
            .filter(|e| e.serving)
            .map(|e| Served {
                role: e.role,
                info: e.info.clone(),
                default: e.default,
            })
            .collect()
    }

    fn select(&mut self, pick: &Pick) -> Result<()> {
        let mut selected = BTreeMap::new();
        let mut info = EngineInfo::default();
        for (role, key) in &pick.0 {
            let at = self
                .entries
                .iter()
                .position(|e| {
                    e.role == *role && e.info.name == key.name && e.info.version == key.version
                })
                .ok_or_else(|| {
                    Error::Internal(format!(
                        "model {key} of [{}] is not in memory",
                        role.section()
                    ))
                })?;
            selected.insert(*role, at);
            info.insert(*role, self.entries[at].info.clone());
        }
        self.selected = selected;
        self.info = info;
        Ok(())
    }

    fn reload_work(&self) -> Result<ReloadWork> {
        let Some((dir, loader)) = self.source.clone() else {
            return Err(Error::FailedPrecondition(
                "these models were not loaded from a models.toml file, so there is nothing to reload"
                    .into(),
            ));
        };
        let serving: Vec<(Role, ModelRef)> = self
            .entries
            .iter()
            .filter(|e| e.serving)
            .map(|e| (e.role, e.info.key()))
            .collect();
        Ok(Box::new(move |announce: &Announce| {
            let manifest = Manifest::load(&dir)?;
            let mut failed = Vec::new();
            let mut todo = Vec::new();
            for (role, spec) in manifest.iter() {
                match loader.version(role, spec) {
                    Ok(version) => {
                        let current = ModelRef {
                            name: spec.name.clone(),
                            version,
                        };
                        if !serving.contains(&(role, current)) {
                            todo.push((role, spec.clone()));
                        }
                    }
                    Err(err) => failed.push((role, spec.name.clone(), error_chain(&err))),
                }
            }
            let names: Vec<(Role, String)> =
                todo.iter().map(|(r, s)| (*r, s.name.clone())).collect();
            announce(&names);
            let mut loaded = Vec::new();
            for (role, spec) in todo {
                match loader.load(role, &spec) {
                    Ok(Some((model, info))) => loaded.push((model, info, spec.default)),
                    Ok(None) => {}
                    Err(err) => failed.push((role, spec.name.clone(), error_chain(&err))),
                }
            }
            Ok(Staged {
                manifest,
                loaded,
                failed,
            })
        }))
    }

    fn apply_reload(&mut self, staged: Staged) -> Result<()> {
        let Staged {
            manifest,
            loaded,
            failed,
        } = staged;
        // Versions replaced by a new one, and models the manifest no longer names, stop
        // serving; a model that failed to load keeps its old version serving.
        let kept_failing: Vec<(Role, &str)> =
            failed.iter().map(|(r, n, _)| (*r, n.as_str())).collect();
        for entry in &mut self.entries {
            let named = manifest
                .iter()
                .find(|(role, spec)| *role == entry.role && spec.name == entry.info.name);
            let replaced = loaded
                .iter()
                .any(|(m, info, _)| m.role() == entry.role && info.name == entry.info.name);
            let failing = kept_failing.contains(&(entry.role, entry.info.name.as_str()));
            if named.is_none() || (replaced && !failing) {
                entry.serving = false;
            }
            if let Some((_, spec)) = named {
                entry.default = spec.default;
            }
        }
        for (model, info, default) in loaded {
            self.add(model, info, default)?;
        }
        // A role whose default failed to load, or is new and failed, keeps serving its old
        // default, if it had one.
        for role in Role::ALL {
            let serving: Vec<&Entry> = self
                .entries
                .iter()
                .filter(|e| e.serving && e.role == role)
                .collect();
            if !serving.is_empty() && !serving.iter().any(|e| e.default) {
                let name = serving[0].info.name.clone();
                for entry in &mut self.entries {
                    if entry.serving && entry.role == role && entry.info.name == name {
                        entry.default = true;
                    }
                }
            }
        }
        Ok(())
    }

    fn release(&mut self, in_use: &dyn Fn(Role, &ModelRef) -> bool) -> Released {
        let before = self.entries.len();
        let selected: Vec<(Role, ModelRef)> = self
            .selected
            .iter()
            .map(|(role, at)| (*role, self.entries[*at].info.key()))
            .collect();
        self.entries
            .retain(|e| e.serving || in_use(e.role, &e.info.key()));
        let dropped = before - self.entries.len();
        if dropped > 0 {
            // Indices moved: select again what is still there.
            let pick = Pick(
                selected
                    .into_iter()
                    .filter(|(role, key)| {
                        self.entries
                            .iter()
                            .any(|e| e.role == *role && e.info.key() == *key)
                    })
                    .collect(),
            );
            let _ = self.select(&pick);
            release_memory();
        }
        Released {
            dropped,
            kept: self.entries.iter().filter(|e| !e.serving).count(),
        }
    }
}

/// Hand the memory of dropped models back to the system (glibc keeps freed heap pages
/// otherwise, and RSS would stay at old + new after a reload).
fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims glibc's own heap.
    unsafe {
        libc::malloc_trim(0);
    }
}
