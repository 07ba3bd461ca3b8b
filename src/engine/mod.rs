//! The model side of gist: the synchronous [`Engine`] the model thread drives, its
//! settings ([`EngineArgs`]), and the backends that run models.
//!
//! Engines are plain blocking code owned by one thread (see `worker`), never called from the
//! async runtime. They speak gist's own types, so the tasks above never see a runtime.
//!
//! - [`models`]: [`Models`], the production engine: one model per [`Role`], each loaded by
//!   the backend that runs it, and the per-role traits a backend implements.
//! - [`tagging`] and [`embedding`]: the backend-neutral halves of NER and sentence
//!   embedding (windows, length-sorted batches, word labels from sub-tokens, pooling).
//! - [`manifest`]: `models/models.toml`, which models to load.
//! - `rust_bert` (feature `libtorch`): the rust-bert backend: its runtime settings and errors.
//! - `onnx` (feature `onnx`): the ONNX Runtime backend, for encoders and token classifiers.
//! - [`fake`]: a deterministic engine with no model files, for tests and overhead benchmarks.
//! - `hf`: reading Hugging Face model folders, for every backend.
//!
//! A new backend is one folder with the per-role traits, a [`manifest::Runtime`] and one
//! arm in `load_model`.

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// Name from the manifest.
    pub name: String,
    /// Architecture (config.json `model_type`), e.g. "bert", "bart".
    pub architecture: String,
    /// Longest input the model sees at once, in its tokens.
    pub max_input_tokens: usize,
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
}

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

/// Build the engine the settings ask for. Call it on the model thread.
///
/// # Errors
/// [`Error::Manifest`] or [`Error::ModelLoad`].
pub fn load(args: &EngineArgs) -> Result<Box<dyn Engine>> {
    if args.backend == Backend::Fake {
        return Ok(Box::new(fake::FakeEngine::from_args(args)));
    }
    load_manifest(&manifest::Manifest::load(&args.models)?, args)
}

/// Load the models of `manifest`, each on its runtime (as [`load`] does with the manifest
/// of `--models`).
///
/// # Errors
/// [`Error::ModelLoad`].
pub fn load_manifest(manifest: &manifest::Manifest, args: &EngineArgs) -> Result<Box<dyn Engine>> {
    Ok(Box::new(Models::load(manifest, |role, spec| {
        load_model(role, spec, args)
    })?))
}

/// Load one model on the runtime its manifest entry names, or the one `--engine` forces.
/// A summarizer that no runtime of this build can run is left out with a warning: the
/// server then answers ABSTRACTIVE with FAILED_PRECONDITION, saying how to get it.
fn load_model(
    role: Role,
    spec: &manifest::ModelSpec,
    args: &EngineArgs,
) -> Result<Option<(models::Model, ModelInfo)>> {
    use manifest::Runtime;
    let runtime = match args.backend {
        Backend::RustBert => Runtime::Libtorch,
        Backend::Onnx => Runtime::Onnx,
        Backend::Auto | Backend::Fake => spec.runtime(),
    };
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
