//! The rust-bert backend: models on libtorch, loaded from local folders of Hugging Face
//! files (`config.json`, `model.safetensors` or `rust_model.ot`, tokenizer files).
//!
//! Everything libtorch-specific stays in this folder: the runtime settings (intra-op
//! threads, the device, glibc's allocator on the model thread) and the conversion of
//! rust-bert's and tch's errors.

mod config;
mod encoder;
mod ner;
mod summarizer;

use crate::engine::manifest::{Manifest, ModelSpec};
use crate::engine::models::{Model, Models};
use crate::engine::{Device, EngineArgs, ModelInfo};
use crate::error::{panic_message, Error, Result};
use crate::role::Role;

impl From<rust_bert::RustBertError> for Error {
    fn from(err: rust_bert::RustBertError) -> Self {
        Error::Inference(Box::new(err))
    }
}

impl From<tch::TchError> for Error {
    fn from(err: tch::TchError) -> Self {
        Error::Inference(Box::new(err))
    }
}

/// Load every model of `manifest` with rust-bert, after applying the runtime settings of
/// `args` (threads, device, allocator).
///
/// # Errors
/// [`Error::ModelLoad`] naming the model and folder when any model fails to load.
pub fn load(manifest: &Manifest, args: &EngineArgs) -> Result<Models> {
    let device = configure(args);
    Models::load(manifest, |role, spec| {
        load_model(role, spec, device).map(Some)
    })
}

/// Load one model of `role` on `device`.
///
/// # Errors
/// [`Error::ModelLoad`] naming the model and folder.
pub fn load_model(role: Role, spec: &ModelSpec, device: tch::Device) -> Result<(Model, ModelInfo)> {
    // rust-bert panics on some malformed files instead of returning an error.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match role {
        Role::Encoder => encoder::Encoder::load(spec, device)
            .map(|(m, info)| (Model::Encoder(Box::new(m)), info)),
        Role::Ner => ner::Ner::load(spec, device).map(|(m, info)| (Model::Ner(Box::new(m)), info)),
        Role::Summarizer => summarizer::Summarizer::load(spec, device)
            .map(|(m, info)| (Model::Summarizer(Box::new(m)), info)),
    }))
    .unwrap_or_else(|panic| Err(panic_message(&panic).into()));
    result.map_err(|source| Error::ModelLoad {
        name: spec.name.clone(),
        path: spec.path.display().to_string(),
        source,
    })
}

/// Apply the runtime settings and pick the device.
pub fn configure(args: &EngineArgs) -> tch::Device {
    if args.threads > 0 {
        tch::set_num_threads(args.threads as i32);
    }
    tune_allocator();
    match args.device {
        Device::Auto => tch::Device::cuda_if_available(),
        Device::Cpu => tch::Device::Cpu,
        Device::Cuda => tch::Device::Cuda(0),
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
