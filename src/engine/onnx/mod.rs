//! The ONNX Runtime backend: sentence encoders (extractive key points) and token
//! classifiers (entities) from `model.onnx` files, through the `ort` crate, tokenized with
//! rust_tokenizers over the folder's own vocabulary. The pipeline around each forward pass
//! (windows, length-sorted batches, pooling into unit vectors, word labels from first
//! sub-tokens) is the engine's shared one, so this backend and rust-bert give the same
//! answers on the same weights.
//!
//! A model folder holds what `scripts/onnx/export.py` (run by `make setup` and by
//! `gist models import --runtime onnx`) writes beside the Hugging Face files: `model.onnx`
//! (fp32) and `model.int8.onnx`, whose embedding tables both point into `model.onnx.data`
//! (ONNX external data: ONNX Runtime maps the file instead of copying it, so only the rows
//! of the tokens read are ever resident). Sequence-to-sequence summarizers are not run
//! here: they stay on rust-bert.
//!
//! Everything ONNX Runtime-specific stays in this folder: the library and its environment,
//! session settings (threads, spinning), and the conversion of its errors.

mod encoder;
mod ner;
mod runtime;
mod tokenizer;

use ort::session::{Session, SessionInputValue};
use ort::value::Tensor;

pub use runtime::SessionSettings;

use super::hf::{HfConfig, LoadResult};
use super::manifest::ModelSpec;
use super::models::Model;
use super::{EngineArgs, ModelInfo};
use crate::error::{Error, Result};
use crate::role::Role;

/// Whether idle intra-op threads spin before sleeping: off. With the default NER model on
/// an 800-word article and 2 threads on a shared 2-core machine, spinning used 35% more CPU
/// per article (0.61 vs 0.45 s) for no more articles per second (0.15 vs 0.16-0.19); see
/// `docs/onnx.md`, "Threads", and `examples/bench_onnx_threads.rs`.
pub const SPINNING: bool = false;

/// Why a summarizer is not loaded on ONNX Runtime.
pub const NO_GENERATION: &str = "ONNX Runtime does not run gist's sequence-to-sequence summarizers: serve the [summarizer] with runtime = \"libtorch\" (a build with the `libtorch` feature)";

impl From<ort::Error> for Error {
    fn from(err: ort::Error) -> Self {
        Error::Inference(Box::new(err))
    }
}

/// The session settings `args` ask for.
pub fn settings(args: &EngineArgs) -> SessionSettings {
    SessionSettings {
        threads: args.threads,
        spinning: SPINNING,
        library: args.onnxruntime.clone(),
    }
}

/// Load one model of `role`.
///
/// # Errors
/// [`Error::ModelLoad`] naming the model and folder, also when the ONNX Runtime library
/// cannot be found or the role is one this backend does not run.
pub fn load_model(
    role: Role,
    spec: &ModelSpec,
    settings: &SessionSettings,
) -> Result<(Model, ModelInfo)> {
    let loaded: LoadResult<(Model, ModelInfo)> = match role {
        Role::Encoder => encoder::Encoder::load(spec, settings)
            .map(|(m, info)| (Model::Encoder(Box::new(m)), info)),
        Role::Ner => {
            ner::Ner::load(spec, settings).map(|(m, info)| (Model::Ner(Box::new(m)), info))
        }
        Role::Summarizer => Err(NO_GENERATION.into()),
    };
    loaded.map_err(|source| Error::ModelLoad {
        name: spec.name.clone(),
        path: spec.path.display().to_string(),
        source,
    })
}

/// The ONNX file a spec asks for, which must exist.
fn model_file(spec: &ModelSpec) -> LoadResult<std::path::PathBuf> {
    let file = spec.precision().onnx_file(&spec.path);
    if file.is_file() {
        Ok(file)
    } else {
        Err(format!(
            "missing {} (run `make setup`, or `gist models import … --runtime onnx`)",
            file.display()
        )
        .into())
    }
}

/// The model's architecture and longest input, from its config.json.
fn info(spec: &ModelSpec, config: HfConfig, max_tokens: usize) -> ModelInfo {
    ModelInfo {
        name: spec.name.clone(),
        architecture: config.model_type,
        max_input_tokens: max_tokens,
        ..ModelInfo::default()
    }
}

/// The inputs a BERT-style graph takes, by name.
struct GraphInputs {
    /// The graph has a `token_type_ids` input (optimum's exports do; gist's do not).
    token_type_ids: bool,
}

impl GraphInputs {
    fn of(session: &Session) -> LoadResult<Self> {
        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        for required in ["input_ids", "attention_mask"] {
            if !names.contains(&required) {
                return Err(format!(
                    "the model takes inputs {names:?}, not {required:?} (export it with scripts/onnx/export.py)"
                )
                .into());
            }
        }
        if let Some(other) = names
            .iter()
            .find(|n| !["input_ids", "attention_mask", "token_type_ids"].contains(n))
        {
            return Err(format!("the model takes an input gist does not know: {other:?}").into());
        }
        if session.outputs().is_empty() {
            return Err("the model has no outputs".into());
        }
        Ok(GraphInputs {
            token_type_ids: names.contains(&"token_type_ids"),
        })
    }
}

/// Token rows padded into one `[batch, longest]` batch.
struct Batch {
    rows: usize,
    width: usize,
    ids: Vec<i64>,
    mask: Vec<i64>,
}

impl Batch {
    fn new(rows: &[&[i64]], pad_id: i64) -> Batch {
        let width = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![pad_id; rows.len() * width];
        let mut mask = vec![0i64; rows.len() * width];
        for (r, row) in rows.iter().enumerate() {
            ids[r * width..r * width + row.len()].copy_from_slice(row);
            mask[r * width..r * width + row.len()].fill(1);
        }
        Batch {
            rows: rows.len(),
            width,
            ids,
            mask,
        }
    }

    /// Run `session` on the batch and hand the first output's shape and values to `read`
    /// (they live in ONNX Runtime's memory until the run's outputs are dropped).
    fn run<R>(
        self,
        session: &mut Session,
        inputs: &GraphInputs,
        read: impl FnOnce(&[usize], &[f32]) -> R,
    ) -> Result<R> {
        let shape = [self.rows, self.width];
        let mut values: Vec<(&str, SessionInputValue<'_>)> = Vec::with_capacity(3);
        if inputs.token_type_ids {
            let zeros = vec![0i64; self.ids.len()];
            values.push(("token_type_ids", Tensor::from_array((shape, zeros))?.into()));
        }
        values.push(("input_ids", Tensor::from_array((shape, self.ids))?.into()));
        values.push((
            "attention_mask",
            Tensor::from_array((shape, self.mask))?.into(),
        ));
        let outputs = session.run(values)?;
        let (shape, data) = outputs[0].try_extract_tensor::<f32>()?;
        let shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        Ok(read(&shape, data))
    }
}
