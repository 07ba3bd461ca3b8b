//! The model side of gist: the synchronous [`Engine`] the model thread drives, its
//! settings ([`EngineArgs`]), and the backends that run models.
//!
//! Engines are plain blocking code owned by one thread (see `worker`), never called from the
//! async runtime. They speak gist's own types, so the tasks above never see a runtime.
//!
//! - [`models`]: [`Models`], the production engine: one model per [`Role`], each loaded by
//!   the backend that runs it, and the per-role traits a backend implements.
//! - [`tagging`] and [`embedding`]: the backend-neutral halves of NER and sentence
//!   embedding (windows, length-sorted batches, word labels from sub-tokens, pooling);
//!   [`batches`] cuts their length-sorted rows into forward passes by cost.
//! - [`manifest`]: `models/models.toml`, which models to load.
//! - `rust_bert` (feature `libtorch`): the rust-bert backend: its runtime settings and errors.
//! - `onnx` (feature `onnx`): the ONNX Runtime backend, for encoders and token classifiers.
//! - [`fake`]: a deterministic engine with no model files, for tests and overhead benchmarks.
//! - `hf`: reading Hugging Face model folders, for every backend.
//!
//! A new backend is one folder with the per-role traits, a [`manifest::Runtime`] and one
//! arm in `load_model`.

pub(crate) mod batches;
pub(crate) mod embedding;
pub mod fake;
pub(crate) mod hf;
pub mod manifest;
pub mod models;
#[cfg(feature = "onnx")]
pub mod onnx;
#[cfg(feature = "libtorch")]
pub mod rust_bert;
pub(crate) mod tagging;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

pub use models::Models;

use crate::error::{Error, Result};
pub use crate::role::Role;
use crate::text::entities::WordTag;

/// A loaded model, as reported to clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// Name from the manifest.
    pub name: String,
    /// Architecture (config.json `model_type`), e.g. "bert", "bart".
    pub architecture: String,
    /// Longest input the model sees at once, in its tokens.
    pub max_input_tokens: usize,
    /// Content hash of the files the runtime reads (12 hex digits): what `name@version`
    /// pins and what a reload compares.
    pub version: String,
    /// The runtime serving it: "onnx", "libtorch" or "fake".
    pub runtime: String,
    /// Weight precision: "fp32" or "int8".
    pub precision: String,
    /// Entity labels a token classifier gives (without B-/I- prefixes); empty for others.
    pub labels: Vec<String>,
}

impl ModelInfo {
    /// `name@version`.
    pub fn key(&self) -> ModelRef {
        ModelRef {
            name: self.name.clone(),
            version: self.version.clone(),
        }
    }
}

/// One version of one model: what a request is pinned to when it is admitted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ModelRef {
    /// Name from the manifest.
    pub name: String,
    /// Its [`ModelInfo::version`].
    pub version: String,
}

impl std::fmt::Display for ModelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// The models a batch runs on: one version per role. Requests with equal picks may share
/// a batch; others never do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Pick(pub BTreeMap<Role, ModelRef>);

/// What [`Engine::release`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Released {
    /// Old versions dropped.
    pub dropped: usize,
    /// Old versions still kept for requests pinned to them.
    pub kept: usize,
}

/// A model an engine serves, for `ListModels` and for choosing a request's models.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Served {
    /// What it does.
    pub role: Role,
    /// Its description.
    pub info: ModelInfo,
    /// Serves the requests of its role that name no model.
    pub default: bool,
}

/// What an engine can do: the model loaded for each role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct EngineInfo(BTreeMap<Role, ModelInfo>);

impl EngineInfo {
    /// The model of `role`, if one is loaded.
    pub fn get(&self, role: Role) -> Option<&ModelInfo> {
        self.0.get(&role)
    }

    /// Is a model of `role` loaded?
    pub fn has(&self, role: Role) -> bool {
        self.0.contains_key(&role)
    }

    /// The model of `role`.
    ///
    /// # Errors
    /// [`Error::ModelMissing`] when none is loaded.
    pub fn require(&self, role: Role) -> Result<&ModelInfo> {
        self.get(role).ok_or(Error::ModelMissing(role))
    }

    /// Record the model of `role`.
    pub fn insert(&mut self, role: Role, info: ModelInfo) {
        self.0.insert(role, info);
    }

    /// Forget the model of `role`.
    pub fn remove(&mut self, role: Role) {
        self.0.remove(&role);
    }

    /// Every model with its role.
    pub fn iter(&self) -> impl Iterator<Item = (Role, &ModelInfo)> {
        self.0.iter().map(|(role, info)| (*role, info))
    }

    /// The pick of exactly these models.
    pub fn pick(&self) -> Pick {
        Pick(self.iter().map(|(role, info)| (role, info.key())).collect())
    }
}

/// A sentence embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// Unit-length vector.
    pub vector: Vec<f32>,
    /// Model tokens of the sentence, special tokens included.
    pub tokens: usize,
    /// True when the sentence was longer than the encoder window and was cut.
    pub truncated: bool,
}

/// The word tags of one text.
#[derive(Debug, Clone, PartialEq)]
pub struct Tagged {
    /// One entry per word, offsets in code points of the text.
    pub words: Vec<WordTag>,
    /// Model tokens of the text (sub-words, without special tokens).
    pub tokens: usize,
}

/// Decoding settings for one abstractive summary, already validated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Generation {
    /// Minimum length in tokens.
    pub min_length: usize,
    /// Maximum length in tokens.
    pub max_length: usize,
    /// Beam width.
    pub num_beams: usize,
    /// Exponential length penalty.
    pub length_penalty: f32,
    /// Size of n-grams that may not repeat (0 allows all).
    pub no_repeat_ngram_size: usize,
}

/// The decoding defaults: what a request gets for every option it leaves unset.
impl Default for Generation {
    fn default() -> Self {
        Generation {
            min_length: 10,
            max_length: 142,
            num_beams: 3,
            length_penalty: 1.0,
            no_repeat_ngram_size: 3,
        }
    }
}

/// One generated summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The generated text, white space trimmed.
    pub text: String,
    /// Model tokens of the input.
    pub input_tokens: usize,
    /// Tokens the model generated (special tokens included, the decoder start excluded).
    pub output_tokens: usize,
    /// True when the input was longer than the model window and was cut.
    pub truncated: bool,
}

/// A set of loaded models. Implementations are synchronous and owned by one thread.
pub trait Engine {
    /// The loaded models.
    fn info(&self) -> &EngineInfo;

    /// Embed sentences with the encoder.
    ///
    /// # Errors
    /// [`Error::ModelMissing`] without an encoder; [`Error::Inference`] when the model fails.
    fn embed(&mut self, sentences: &[&str]) -> Result<Vec<Embedding>>;

    /// Tag the words of texts with the token classifier, covering each text completely.
    ///
    /// # Errors
    /// [`Error::ModelMissing`] without a NER model; [`Error::Inference`].
    fn tag(&mut self, texts: &[&str]) -> Result<Vec<Tagged>>;

    /// Write a summary of each text with the summarization model.
    ///
    /// # Errors
    /// [`Error::ModelMissing`] without a summarization model; [`Error::Inference`].
    fn generate(&mut self, texts: &[&str], options: &Generation) -> Result<Vec<Generated>>;

    /// Tokens each text takes in `model`'s input (special tokens and task prefix
    /// included): for splitting long inputs into pieces that fit the summarizer's window,
    /// and for the `--max-text-tokens` limit.
    ///
    /// # Errors
    /// [`Error::ModelMissing`] when that model is not loaded.
    fn count_tokens(&mut self, model: Role, texts: &[&str]) -> Result<Vec<usize>>;

    /// Every model the engine serves (not those it keeps only for requests already
    /// pinned to an older version). An engine of one model per role serves what
    /// [`Engine::info`] lists.
    fn served(&self) -> Vec<Served> {
        self.info()
            .iter()
            .map(|(role, info)| Served {
                role,
                info: info.clone(),
                default: true,
            })
            .collect()
    }

    /// Run the next calls on the models of `pick` (a batch's): [`Engine::info`] then lists
    /// them, and a role the pick leaves out has no model.
    ///
    /// # Errors
    /// [`Error::Internal`] when the engine holds no such version (a request is pinned to
    /// a version only while the engine holds it).
    fn select(&mut self, pick: &Pick) -> Result<()> {
        if *pick == self.info().pick() {
            Ok(())
        } else {
            Err(Error::Internal(format!(
                "this engine serves only its own models, not {pick:?}"
            )))
        }
    }

    /// The work of a reload, to run off the model thread: re-read the manifest, and load
    /// the models that are new or whose files changed. [`Engine::apply_reload`] then
    /// installs them.
    ///
    /// # Errors
    /// [`Error::FailedPrecondition`] when the engine has no manifest to re-read.
    fn reload_work(&self) -> Result<ReloadWork> {
        Err(Error::FailedPrecondition(
            "this engine has no models.toml to reload (it was not started from --models)".into(),
        ))
    }

    /// Install what a reload loaded: new and changed models serve from now on; the
    /// versions they replace are kept until [`Engine::release`] finds them unused.
    ///
    /// # Errors
    /// As [`Engine::reload_work`].
    fn apply_reload(&mut self, _staged: Staged) -> Result<()> {
        self.reload_work().map(drop)
    }

    /// Drop the models no longer served whose versions `in_use` says no queued request
    /// is pinned to.
    fn release(&mut self, _in_use: &dyn Fn(Role, &ModelRef) -> bool) -> Released {
        Released::default()
    }
}

pub use models::{ReloadWork, Staged};

/// Which runtime serves the models (`--engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum Backend {
    /// Each model on the runtime its models.toml entry names (`runtime`, default libtorch).
    Auto,
    /// Every model on rust-bert (libtorch).
    #[value(alias = "libtorch")]
    RustBert,
    /// Every model on ONNX Runtime (a summarizer is then left out).
    Onnx,
    /// Deterministic stand-in with no model files.
    Fake,
}

/// Devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum Device {
    /// CUDA when available, else CPU.
    Auto,
    /// CPU.
    Cpu,
    /// The first CUDA device.
    Cuda,
}

/// Which models to load and how to run them: the engine's own settings.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize)]
pub struct EngineArgs {
    /// Folder with models.toml and the model folders it names.
    #[arg(long, env = "GIST_MODELS", default_value_os_t = EngineArgs::default().models)]
    pub models: PathBuf,
    /// Model runtime: auto (each model on the runtime models.toml names for it), rust-bert,
    /// onnx, or a deterministic fake for tests and overhead benchmarks.
    #[arg(long = "engine", env = "GIST_ENGINE", value_enum, default_value_t = EngineArgs::default().backend)]
    pub backend: Backend,
    /// Device: auto (CUDA when available), cpu or cuda.
    #[arg(long, env = "GIST_DEVICE", value_enum, default_value_t = EngineArgs::default().device)]
    pub device: Device,
    /// Intra-op threads of the model runtime; 0 keeps the runtime's default (one per core).
    #[arg(long, env = "GIST_THREADS", default_value_t = EngineArgs::default().threads)]
    pub threads: usize,
    /// With `--engine fake`: how long each model call takes, in milliseconds (for tests
    /// and overhead benchmarks that need a model of known speed).
    #[arg(long, env = "GIST_FAKE_DELAY_MS", default_value_t = EngineArgs::default().fake_delay_ms)]
    pub fake_delay_ms: u64,
    /// The ONNX Runtime library file (default: libonnxruntime.so beside the binary or in
    /// ../lib from it, else the one `make setup` prepares in the source tree).
    #[arg(long, env = "ORT_DYLIB_PATH", value_name = "FILE")]
    pub onnxruntime: Option<PathBuf>,
}

impl Default for EngineArgs {
    fn default() -> Self {
        EngineArgs {
            models: PathBuf::from("models"),
            backend: Backend::Auto,
            device: Device::Auto,
            threads: 0,
            fake_delay_ms: 0,
            onnxruntime: None,
        }
    }
}

/// Build the engine the settings ask for. Call it on the model thread. A reload
/// (`SIGHUP`, `Models/Reload`) re-reads the same `models.toml`.
///
/// # Errors
/// [`Error::Manifest`] or [`Error::ModelLoad`].
pub fn load(args: &EngineArgs) -> Result<Box<dyn Engine>> {
    if args.backend == Backend::Fake {
        return Ok(Box::new(fake::FakeEngine::from_args(args)));
    }
    let manifest = manifest::Manifest::load(&args.models)?;
    Ok(Box::new(Models::load_from(
        &manifest,
        Some(args.models.clone()),
        loader(args),
    )?))
}

/// Load the models of `manifest`, each on its runtime (as [`load`] does with the manifest
/// of `--models`; such an engine cannot reload).
///
/// # Errors
/// [`Error::ModelLoad`].
pub fn load_manifest(manifest: &manifest::Manifest, args: &EngineArgs) -> Result<Box<dyn Engine>> {
    Ok(Box::new(Models::load_from(manifest, None, loader(args))?))
}

/// What loads one model of a manifest for [`Models`], with these settings.
fn loader(args: &EngineArgs) -> models::Loader {
    std::sync::Arc::new(ArgsLoader(args.clone()))
}

/// Loads models on the runtimes `--engine` and the manifest name.
struct ArgsLoader(EngineArgs);

impl ArgsLoader {
    fn runtime(&self, spec: &manifest::ModelSpec) -> manifest::Runtime {
        match self.0.backend {
            Backend::RustBert => manifest::Runtime::Libtorch,
            Backend::Onnx => manifest::Runtime::Onnx,
            Backend::Auto | Backend::Fake => spec.runtime(),
        }
    }
}

impl models::ModelLoader for ArgsLoader {
    fn version(&self, _role: Role, spec: &manifest::ModelSpec) -> Result<String> {
        hf::version(spec, self.runtime(spec)).map_err(|source| Error::ModelLoad {
            name: spec.name.clone(),
            path: spec.path.display().to_string(),
            source,
        })
    }

    fn load(
        &self,
        role: Role,
        spec: &manifest::ModelSpec,
    ) -> Result<Option<(models::Model, ModelInfo)>> {
        load_model(role, spec, &self.0, self.runtime(spec))
    }
}

/// Load one model on the runtime its manifest entry names, or the one `--engine` forces.
/// A summarizer that no runtime of this build can run is left out with a warning: the
/// server then answers ABSTRACTIVE with FAILED_PRECONDITION, saying how to get it.
fn load_model(
    role: Role,
    spec: &manifest::ModelSpec,
    args: &EngineArgs,
    runtime: manifest::Runtime,
) -> Result<Option<(models::Model, ModelInfo)>> {
    let loaded = load_on(runtime, role, spec, args)?;
    let Some((model, mut info)) = loaded else {
        return Ok(None);
    };
    describe(role, spec, runtime, &mut info)?;
    Ok(Some((model, info)))
}

/// Fill in what every backend's model info shares: runtime, precision, version, labels.
fn describe(
    role: Role,
    spec: &manifest::ModelSpec,
    runtime: manifest::Runtime,
    info: &mut ModelInfo,
) -> Result<()> {
    info.runtime = runtime.name().to_string();
    info.precision = match runtime {
        manifest::Runtime::Onnx => spec.precision().name(),
        manifest::Runtime::Libtorch => manifest::Precision::Fp32.name(),
    }
    .to_string();
    let err = |source| Error::ModelLoad {
        name: spec.name.clone(),
        path: spec.path.display().to_string(),
        source,
    };
    info.version = hf::version(spec, runtime).map_err(err)?;
    if role == Role::Ner {
        info.labels = hf::entity_labels(&spec.path).map_err(err)?;
    }
    Ok(())
}

fn load_on(
    runtime: manifest::Runtime,
    role: Role,
    spec: &manifest::ModelSpec,
    args: &EngineArgs,
) -> Result<Option<(models::Model, ModelInfo)>> {
    use manifest::Runtime;
    match runtime {
        #[cfg(feature = "libtorch")]
        Runtime::Libtorch => {
            rust_bert::load_model(role, spec, rust_bert::configure(args)).map(Some)
        }
        #[cfg(feature = "onnx")]
        Runtime::Onnx if role != Role::Summarizer => {
            onnx::load_model(role, spec, &onnx::settings(args)).map(Some)
        }
        _ if role == Role::Summarizer => {
            let why = if cfg!(feature = "libtorch") {
                "gist runs summarizers on runtime \"libtorch\" only"
            } else {
                "gist runs summarizers on libtorch, which this build lacks"
            };
            tracing::warn!(
                model = %spec.name,
                runtime = runtime.name(),
                "the summarizer is not loaded ({why}): ABSTRACTIVE summaries are unavailable"
            );
            Ok(None)
        }
        #[allow(unreachable_patterns)] // every runtime is compiled in
        _ => Err(Error::ModelLoad {
            name: spec.name.clone(),
            path: spec.path.display().to_string(),
            source: format!(
                "runtime {:?} is not in this build of gist: rebuild with `--features {}`",
                runtime.name(),
                runtime.name()
            )
            .into(),
        }),
    }
}
