//! `gist models import`: check a snapshot folder, prepare it in a temporary folder next
//! to its destination, prove that it loads and runs in gist's own engine, and only then
//! move it into place and name it in `models.toml`. A failed import leaves the models
//! folder exactly as it was.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::arch::{self, TokenizerKind, TokenizerSource};
use super::weights::{self, Changes, Source};
use super::{io_error, read_json, tokenizer, Error, Result, Role};
use crate::engine::manifest::{self, ModelSpec, Precision, Replaced, Runtime};

/// Files copied from the snapshot when present (weights are written separately).
const COPIED: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "prophetnet.tokenizer",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
    "README.md",
];

/// The text the imported model is tried on.
const SAMPLE: &str = "Imran Khan met Li Keqiang in Islamabad on Thursday.";

/// What to import, and where.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The snapshot folder (config.json, weights, tokenizer files).
    pub source: PathBuf,
    /// Folder name under `models` and the name in the manifest.
    pub name: String,
    /// The task, which picks the manifest section.
    pub task: Role,
    /// The models folder holding `models.toml`.
    pub models: PathBuf,
    /// Replace an existing folder of the same name.
    pub force: bool,
    /// The runtime named in the manifest; ONNX also gets `model.onnx` / `model.int8.onnx`.
    pub runtime: Runtime,
    /// With ONNX: which of the two files the server loads.
    pub precision: Precision,
}

/// What an import did, for the user.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The model name.
    pub name: String,
    /// The task.
    pub task: Role,
    /// `model_type` of config.json.
    pub model_type: String,
    /// The prepared folder.
    pub dir: PathBuf,
    /// The weight files read.
    pub weights_from: String,
    /// What the weights needed.
    pub weights: Changes,
    /// Tokenizer files derived from `tokenizer.json`.
    pub derived: Vec<&'static str>,
    /// Lower-casing of a WordPiece model, and what said so.
    pub lower_case: Option<(bool, &'static str)>,
    /// With ONNX: what the exporter wrote, and the precision served.
    pub onnx: Option<String>,
    /// The manifest that was edited.
    pub manifest: PathBuf,
    /// What the task's section held before (`None`: the section was added).
    pub replaced: Option<Replaced>,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "imported {} ({}, {}) into {}",
            self.name,
            self.model_type,
            self.task,
            self.dir.display()
        )?;
        let mut weights = vec![format!("from {}", self.weights_from)];
        if self.weights.renamed > 0 {
            weights.push(format!(
                "renamed {} LayerNorm gamma/beta tensors to weight/bias",
                self.weights.renamed
            ));
        }
        for (added, from) in &self.weights.tied {
            weights.push(format!("added {added} (tied to {from})"));
        }
        for name in &self.weights.zeros {
            weights.push(format!("added {name} (zeros)"));
        }
        writeln!(f, "  weights: {}", weights.join("; "))?;
        if !self.derived.is_empty() {
            writeln!(
                f,
                "  tokenizer: {} derived from tokenizer.json",
                self.derived.join(" + ")
            )?;
        }
        if let Some((b, why)) = self.lower_case {
            writeln!(f, "  lower_case = {b} (from {why})")?;
        }
        if let Some(onnx) = &self.onnx {
            writeln!(f, "  onnx: {onnx}")?;
        }
        writeln!(
            f,
            "  checked: loads in gist's engine and runs on a sample (CPU)"
        )?;
        let section = self.task.section();
        match &self.replaced {
            None => write!(
                f,
                "{}: added [{section}] {}",
                self.manifest.display(),
                self.name
            ),
            Some(old) => write!(
                f,
                "{}: [{section}] is now {} (replaced {} at {})",
                self.manifest.display(),
                self.name,
                old.name.as_deref().unwrap_or("no name"),
                old.path.as_deref().unwrap_or("no path"),
            ),
        }
    }
}

/// Check that `name` is one plain folder name.
///
/// # Errors
/// [`Error::Name`].
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Name(name.to_string()))
    }
}

/// The files of `dir` an import looks at, as `/`-separated relative paths.
fn inventory(dir: &Path) -> BTreeSet<String> {
    COPIED
        .iter()
        .chain(weights::WEIGHT_FILES)
        .filter(|f| dir.join(f).is_file())
        .map(|f| f.to_string())
        .collect()
}

/// Import a snapshot folder (see the module docs).
///
/// # Errors
/// Every [`Error`]: the first check that fails, with nothing left behind.
pub fn import(opts: &ImportOptions) -> Result<ImportReport> {
    check_name(&opts.name)?;
    let target = opts.models.join(&opts.name);
    if target.symlink_metadata().is_ok() && !opts.force {
        return Err(Error::Exists(target));
    }
    let src = &opts.source;
    if !src.is_dir() {
        return Err(Error::Io {
            path: src.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a folder"),
        });
    }
    if opts.runtime == Runtime::Onnx && opts.task == Role::Summarizer {
        return Err(Error::OnnxExport(
            "summarizers run on libtorch only (ONNX Runtime serves token classifiers and sentence encoders): leave out --runtime onnx".into(),
        ));
    }
    #[cfg(not(feature = "libtorch"))]
    if opts.runtime == Runtime::Libtorch {
        return Err(Error::Invalid {
            path: src.clone(),
            reason: format!("{} (or import with --runtime onnx)", super::NO_LIBTORCH),
        });
    }
    let config_path = src.join("config.json");
    if !config_path.is_file() {
        return Err(Error::MissingFiles {
            dir: src.clone(),
            files: vec!["config.json".into()],
        });
    }
    let config = read_json(&config_path)?;
    let arch = arch::check(opts.task, &config, &config_path)?;
    let tokenizer_json = optional_json(&src.join("tokenizer.json"))?;
    let files = inventory(src);
    let requirements = arch::requirements(
        opts.task,
        arch,
        &files,
        tokenizer_json.as_ref().and_then(tokenizer::model_type),
    )
    .map_err(|files| Error::MissingFiles {
        dir: src.clone(),
        files,
    })?;
    if opts.task == Role::Encoder {
        let path = src.join("modules.json");
        arch::check_modules(&read_json(&path)?, &path)?;
    }
    let source = weights::find(src)?;

    // The manifest edit is computed first, so that a manifest it cannot edit stops the
    // import before anything is written.
    let manifest_path = opts.models.join(manifest::MANIFEST_FILE);
    let manifest_text = match std::fs::read_to_string(&manifest_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io_error(&manifest_path)(e)),
    };

    std::fs::create_dir_all(&opts.models).map_err(io_error(&opts.models))?;
    // Prepared next to its destination, so that the final rename stays on one file
    // system; removed on drop, whatever fails.
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.import-", opts.name))
        .tempdir_in(&opts.models)
        .map_err(io_error(&opts.models))?;
    let dir = tmp.path();
    for file in files.iter().filter(|f| COPIED.contains(&f.as_str())) {
        let to = dir.join(file);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        std::fs::copy(src.join(file), &to).map_err(io_error(src.join(file)))?;
    }
    let mut derived = Vec::new();
    if requirements.tokenizer == TokenizerSource::TokenizerJson {
        let tj = tokenizer_json
            .as_ref()
            .expect("requirements saw tokenizer.json");
        let made = match arch.tokenizer() {
            TokenizerKind::WordPiece => tokenizer::wordpiece_vocab(tj),
            _ => tokenizer::bpe_files(tj),
        }
        .map_err(|reason| Error::Invalid {
            path: src.join("tokenizer.json"),
            reason,
        })?;
        for (file, text) in made {
            // Only the files the folder lacks: a present vocab.json stays as it is.
            if !files.contains(file) {
                std::fs::write(dir.join(file), text).map_err(io_error(dir.join(file)))?;
                derived.push(file);
            }
        }
    }
    let lower_case = if arch.tokenizer() == TokenizerKind::WordPiece {
        settle_lower_case(dir, tokenizer_json.as_ref())?
    } else {
        None
    };
    let tokenizer_config = dir.join("tokenizer_config.json");
    if opts.task == Role::Encoder && !tokenizer_config.exists() {
        // The encoder reads it (for its casing); its absence means the defaults.
        std::fs::write(&tokenizer_config, "{}\n").map_err(io_error(&tokenizer_config))?;
    }
    let changes = match opts.runtime {
        Runtime::Libtorch => weights::prepare(arch, &config, &source, dir)?,
        // The exporter reads the checkpoint with transformers, names and all.
        Runtime::Onnx => {
            weights::copy_as_is(&source, src, dir)?;
            Changes::default()
        }
    };

    let spec = ModelSpec {
        name: opts.name.clone(),
        path: dir.to_path_buf(),
        lower_case: lower_case
            .filter(|_| opts.task == Role::Ner)
            .map(|(b, _)| b),
        runtime: (opts.runtime == Runtime::Onnx).then_some(Runtime::Onnx),
        precision: (opts.runtime == Runtime::Onnx).then_some(opts.precision),
        default: true,
        context_tokens: None,
    };
    let onnx = match opts.runtime {
        Runtime::Onnx => Some(export_onnx(
            dir,
            opts.task,
            spec.lower_case,
            opts.precision,
        )?),
        Runtime::Libtorch => None,
    };
    verify(opts.task, spec.clone()).map_err(Error::Verify)?;

    let (new_manifest, replaced) = manifest::set_entry(
        &manifest_text,
        opts.task,
        &opts.name,
        &opts.name,
        spec.lower_case,
    )?;
    let new_manifest =
        manifest::set_runtime(&new_manifest, opts.task, opts.runtime, opts.precision)?;
    put_in_place(tmp, &target)?;
    if let Err(e) = write_atomically(&manifest_path, &new_manifest) {
        let _ = std::fs::remove_dir_all(&target);
        return Err(e);
    }
    Ok(ImportReport {
        name: opts.name.clone(),
        task: opts.task,
        model_type: config["model_type"].as_str().unwrap_or_default().into(),
        dir: target,
        weights_from: describe(&source),
        weights: changes,
        derived,
        lower_case,
        onnx,
        manifest: manifest_path,
        replaced,
    })
}

fn optional_json(path: &Path) -> Result<Option<Value>> {
    if path.is_file() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

/// Decide whether a WordPiece model lower-cases, and write it into the prepared
/// `tokenizer_config.json` when that file did not say (the sentence encoder reads it there).
fn settle_lower_case(
    dir: &Path,
    tokenizer_json: Option<&Value>,
) -> Result<Option<(bool, &'static str)>> {
    let config_path = dir.join("tokenizer_config.json");
    let mut config = optional_json(&config_path)?;
    let vocab_path = dir.join("vocab.txt");
    let vocab = std::fs::read_to_string(&vocab_path).map_err(io_error(&vocab_path))?;
    let decided = tokenizer::lower_case(config.as_ref(), tokenizer_json, Some(&vocab));
    if let Some((b, _)) = decided {
        let object = config.get_or_insert_with(|| Value::Object(Default::default()));
        if object["do_lower_case"].as_bool().is_none() {
            if let Some(map) = object.as_object_mut() {
                map.insert("do_lower_case".into(), Value::Bool(b));
                let text = serde_json::to_string_pretty(object).expect("JSON value");
                std::fs::write(&config_path, text).map_err(io_error(&config_path))?;
            }
        }
    }
    Ok(decided)
}

/// Load the prepared folder with gist's engine on the CPU, on the runtime it is imported
/// for, and run it on a sample.
fn verify(
    task: Role,
    spec: ModelSpec,
) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use crate::engine::manifest::Manifest;
    use crate::engine::{Device, EngineArgs, Generation};
    let args = EngineArgs {
        device: Device::Cpu,
        threads: 1,
        ..Default::default()
    };
    let mut engine = crate::engine::load_manifest(&Manifest::one(task, spec), &args)?;
    let run = std::panic::AssertUnwindSafe(|| -> crate::Result<()> {
        match task {
            Role::Ner => engine.tag(&[SAMPLE]).map(drop),
            Role::Summarizer => {
                let options = Generation {
                    min_length: 1,
                    max_length: 8,
                    num_beams: 1,
                    length_penalty: 1.0,
                    no_repeat_ngram_size: 0,
                };
                engine.generate(&[SAMPLE], &options).map(drop)
            }
            Role::Encoder => {
                let embedding = engine.embed(&[SAMPLE])?;
                if embedding
                    .iter()
                    .flat_map(|e| &e.vector)
                    .all(|x| x.is_finite())
                {
                    Ok(())
                } else {
                    Err(crate::Error::Internal(
                        "the sample's embedding is not finite".into(),
                    ))
                }
            }
        }
    });
    match std::panic::catch_unwind(run) {
        Ok(result) => Ok(result?),
        Err(panic) => Err(crate::error::panic_message(&panic).into()),
    }
}

/// Write `model.onnx`, `model.int8.onnx` and `tokenizer.json` into the prepared folder with
/// the project's pinned exporter (`scripts/onnx/prepare.sh`: cached by checksum, builds the
/// exporter venv on first use). Returns a one-line summary for the report.
fn export_onnx(
    dir: &Path,
    task: Role,
    lower_case: Option<bool>,
    precision: Precision,
) -> Result<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/onnx/prepare.sh");
    if !script.is_file() {
        return Err(Error::OnnxExport(format!(
            "the exporter is not at {} (ONNX export needs gist's source tree)",
            script.display()
        )));
    }
    let mut command = std::process::Command::new("bash");
    command
        .arg(&script)
        .arg(dir)
        .arg(if task == Role::Ner { "ner" } else { "embed" });
    if let Some(b) = lower_case {
        command.arg("--lower-case").arg(b.to_string());
    }
    let out = command
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::OnnxExport(format!("cannot run bash {}: {e}", script.display())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(12).collect();
        return Err(Error::OnnxExport(format!(
            "{} failed ({}):\n{}",
            script.display(),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )));
    }
    let record = read_json(&dir.join("export.json"))?;
    let check = |p: &str| {
        record["check"][p]["max_abs_diff"]
            .as_f64()
            .map_or("not checked".to_string(), |d| {
                format!("max |Δ| vs torch {d:.1e}")
            })
    };
    Ok(format!(
        "model.onnx ({}) and model.int8.onnx ({}, {} MatMuls int8) written; serving {}",
        check("fp32"),
        check("int8"),
        record["int8"]["quantized"].as_u64().unwrap_or(0),
        precision.name()
    ))
}

/// Move the prepared folder to `target`, replacing what is there (only reached with
/// `--force`) without a moment where neither exists under a name the user knows.
fn put_in_place(tmp: tempfile::TempDir, target: &Path) -> Result<()> {
    let old = target.with_file_name(format!(
        ".{}.replaced-{}",
        target.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let had_old = target.symlink_metadata().is_ok();
    if had_old {
        std::fs::rename(target, &old).map_err(io_error(target))?;
    }
    let prepared = tmp.keep();
    if let Err(e) = std::fs::rename(&prepared, target) {
        let _ = std::fs::remove_dir_all(&prepared);
        if had_old {
            let _ = std::fs::rename(&old, target);
        }
        return Err(io_error(target)(e));
    }
    if had_old {
        let removed = match old.symlink_metadata() {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&old),
            _ => std::fs::remove_file(&old),
        };
        removed.map_err(io_error(&old))?;
    }
    Ok(())
}

fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).map_err(io_error(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_error(path))
}

fn describe(source: &Source) -> String {
    let names = |files: &[PathBuf]| {
        files
            .iter()
            .map(|f| {
                f.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match source {
        Source::Safetensors(files) | Source::PyTorch(files) => names(files),
        Source::RustBert(file) => names(std::slice::from_ref(file)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_folder_names() {
        for ok in ["bert-base-NER", "distilbart-cnn-6-6", "t5_small.v2"] {
            check_name(ok).unwrap();
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "../x", "a b", "ü"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
