//! The model side of gist: a synchronous [`Engine`] trait and its implementations.
//!
//! Engines are plain blocking code owned by one thread (see `worker`), never called from
//! the async runtime. They speak gist's own types, so another runtime (ONNX, candle) could
//! replace rust-bert without touching the service.

pub mod fake;
pub mod rust_bert;

use serde::Serialize;

use crate::error::Result;
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

/// What an engine can do: one entry per loaded model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EngineInfo {
    /// Sentence encoder used for extractive key points.
    pub encoder: Option<ModelInfo>,
    /// Token classifier used for named entities.
    pub ner: Option<ModelInfo>,
    /// Sequence-to-sequence model used for abstractive summaries.
    pub summarizer: Option<ModelInfo>,
}

/// The models an engine may hold, by what they do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sentence encoder (extractive key points).
    Encoder,
    /// Token classifier (entities).
    Ner,
    /// Sequence-to-sequence model (abstractive summaries).
    Summarizer,
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
    /// [`crate::Error::Unavailable`] without an encoder; [`crate::Error::Inference`] when
    /// the model fails.
    fn embed(&mut self, sentences: &[&str]) -> Result<Vec<Embedding>>;

    /// Tag the words of texts with the token classifier, covering each text completely.
    ///
    /// # Errors
    /// [`crate::Error::Unavailable`] without a NER model; [`crate::Error::Inference`].
    fn tag(&mut self, texts: &[&str]) -> Result<Vec<Tagged>>;

    /// Write a summary of each text with the summarization model.
    ///
    /// # Errors
    /// [`crate::Error::FailedPrecondition`] without a summarization model;
    /// [`crate::Error::Inference`].
    fn generate(&mut self, texts: &[&str], options: &Generation) -> Result<Vec<Generated>>;

    /// Tokens each text takes in `model`'s input (special tokens and task prefix
    /// included): for splitting long inputs into pieces that fit the summarizer's window,
    /// and for the `--max-text-tokens` limit.
    ///
    /// # Errors
    /// [`crate::Error::Unavailable`] or [`crate::Error::FailedPrecondition`] when that
    /// model is not loaded.
    fn count_tokens(&mut self, model: Role, texts: &[&str]) -> Result<Vec<usize>>;
}

/// Build the engine the CLI settings ask for. Call it on the model thread.
///
/// # Errors
/// [`crate::Error::Manifest`] or [`crate::Error::ModelLoad`].
pub fn load(args: &crate::cli::ModelArgs) -> Result<Box<dyn Engine>> {
    use crate::cli::{DeviceKind, EngineKind};
    if args.threads > 0 {
        tch::set_num_threads(args.threads as i32);
    }
    match args.engine {
        EngineKind::Fake => {
            let mut engine = fake::FakeEngine::new();
            engine.delay = std::time::Duration::from_millis(args.fake_delay_ms);
            Ok(Box::new(engine))
        }
        EngineKind::RustBert => {
            tune_allocator();
            let manifest = crate::manifest::Manifest::load(&args.models)?;
            let device = match args.device {
                DeviceKind::Auto => tch::Device::cuda_if_available(),
                DeviceKind::Cpu => tch::Device::Cpu,
                DeviceKind::Cuda => tch::Device::Cuda(0),
            };
            Ok(Box::new(rust_bert::RustBertEngine::load(
                &manifest, device,
            )?))
        }
    }
}

/// glibc's malloc, set for libtorch running on a thread of its own.
///
/// The model thread is not the main thread, so glibc gives it a secondary arena, whose
/// free memory at the top is handed back to the kernel (`madvise`) as soon as it passes
/// the trim threshold, and large tensors are `mmap`ed and unmapped on every forward pass
/// until the dynamic threshold catches up. Each forward pass then faults its activations'
/// pages in again: a profile of extractive key points showed 23% of the time in the
/// kernel's page-fault path, and these two settings gave 1.3–1.4× the articles per second
/// for about 40 MB more resident memory (bench/FINDINGS.md). Python's torch runs on the main
/// thread's arena and does not hit this. A user's own `MALLOC_*` environment wins.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            if std::env::vars_os().any(|(k, _)| k.to_string_lossy().starts_with("MALLOC_")) {
                return;
            }
            // SAFETY: mallopt only sets malloc parameters (under malloc's own lock).
            unsafe {
                // Blocks up to 32 MB (the most glibc allows) come from the arenas...
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                // ...which keep up to 256 MB of free memory instead of returning it.
                libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
            }
        });
    }
}
