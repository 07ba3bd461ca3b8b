//! [`Models`]: the production [`Engine`], one model per [`Role`].
//!
//! A backend implements the narrow trait of each role it can run ([`SentenceEncoder`],
//! [`TokenClassifier`], [`Summarizer`]): tokenizing and running a batch. Everything above
//! that (windows, length-sorted batches, pooling, word labels, missing models) is written
//! once, here and in [`super::embedding`] / [`super::tagging`], so every backend behaves
//! the same way.

use super::manifest::{Manifest, ModelSpec};
use super::{
    embedding, tagging, Embedding, Engine, EngineInfo, Generated, Generation, ModelInfo, Tagged,
};
use crate::error::{Error, Result};
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
}

/// A token classifier, as a backend runs it.
pub trait TokenClassifier {
    /// Longest input the model reads, in tokens.
    fn max_tokens(&self) -> usize;
    /// Sub-word tokens of `text`, special tokens excluded.
    fn sub_words(&self, text: &str) -> usize;
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

/// A model a backend loaded for one role.
pub enum Model {
    /// For [`Role::Encoder`].
    Encoder(Box<dyn SentenceEncoder>),
    /// For [`Role::Ner`].
    Ner(Box<dyn TokenClassifier>),
    /// For [`Role::Summarizer`].
    Summarizer(Box<dyn Summarizer>),
}

/// The models of one server, each run by its backend.
#[derive(Default)]
pub struct Models {
    info: EngineInfo,
    encoder: Option<Box<dyn SentenceEncoder>>,
    ner: Option<Box<dyn TokenClassifier>>,
    summarizer: Option<Box<dyn Summarizer>>,
}

impl Models {
    /// Load every model of `manifest` with `load_one`, which picks the backend (and may
    /// leave a model out, answering `None`).
    ///
    /// # Errors
    /// [`Error::ModelLoad`] naming the model and folder when any model fails to load.
    pub fn load(
        manifest: &Manifest,
        mut load_one: impl FnMut(Role, &ModelSpec) -> Result<Option<(Model, ModelInfo)>>,
    ) -> Result<Models> {
        let mut models = Models::default();
        for (role, spec) in manifest.iter() {
            if let Some((model, info)) = load_one(role, spec)? {
                models.insert(role, model, info)?;
            }
        }
        Ok(models)
    }

    fn insert(&mut self, role: Role, model: Model, info: ModelInfo) -> Result<()> {
        match (role, model) {
            (Role::Encoder, Model::Encoder(m)) => self.encoder = Some(m),
            (Role::Ner, Model::Ner(m)) => self.ner = Some(m),
            (Role::Summarizer, Model::Summarizer(m)) => self.summarizer = Some(m),
            _ => {
                return Err(Error::Internal(format!(
                    "a backend loaded the wrong kind of model for [{}]",
                    role.section()
                )))
            }
        }
        self.info.insert(role, info);
        Ok(())
    }
}

fn need<T: ?Sized>(model: &mut Option<Box<T>>, role: Role) -> Result<&mut T> {
    model.as_deref_mut().ok_or(Error::ModelMissing(role))
}

impl Engine for Models {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn embed(&mut self, sentences: &[&str]) -> Result<Vec<Embedding>> {
        embedding::embed(need(&mut self.encoder, Role::Encoder)?, sentences)
    }

    fn tag(&mut self, texts: &[&str]) -> Result<Vec<Tagged>> {
        tagging::tag(need(&mut self.ner, Role::Ner)?, texts)
    }

    fn generate(&mut self, texts: &[&str], options: &Generation) -> Result<Vec<Generated>> {
        let generated = need(&mut self.summarizer, Role::Summarizer)?.generate(texts, options)?;
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
        let count: Box<dyn Fn(&str) -> usize + '_> = match role {
            Role::Encoder => {
                let m = need(&mut self.encoder, role)?;
                Box::new(move |t| m.count_tokens(t))
            }
            Role::Ner => {
                let m = need(&mut self.ner, role)?;
                Box::new(move |t| m.sub_words(t) + 2)
            }
            Role::Summarizer => {
                let m = need(&mut self.summarizer, role)?;
                Box::new(move |t| m.count_tokens(t))
            }
        };
        Ok(texts.iter().map(|t| count(t)).collect())
    }
}
