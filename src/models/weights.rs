//! One `model.safetensors` with the tensor names rust-bert looks up.
//!
//! rust-bert's models find every variable by name and fail on the first one missing
//! ("cannot find the tensor named …"); extra tensors are ignored. Hugging Face files
//! differ from those names in two known ways, both fixed here:
//! - old checkpoints (TF-converted BERTs, 2019-era saves) call LayerNorm parameters
//!   `gamma`/`beta`; transformers renames them to `weight`/`bias` on load, so do we;
//! - tied embeddings are stored once, under whichever alias the saving tool kept
//!   (`lm_head.weight`, `model.decoder.embed_tokens.weight`, …), while rust-bert reads one
//!   fixed alias (`model.shared.weight`, `shared.weight`, `prophetnet.word_embeddings.weight`,
//!   ProphetNet's `lm_head.weight`): the missing alias is filled from a present one.
//!
//! The renaming is pure and generic over the tensor type, so it is unit-tested without
//! libtorch; reading and writing the files uses tch. Floating-point types are kept as they
//! are: rust-bert casts the weights to f32 on CPU after loading (FIELD-NOTES), and keeps
//! fp16/bf16 on CUDA.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
#[cfg(feature = "libtorch")]
use tch::{Kind, Tensor};

use super::arch::Arch;
#[cfg(not(feature = "libtorch"))]
use super::NO_LIBTORCH;
use super::{io_error, read_json, Error, Result};

/// The weight files an import reads, in order of preference: safetensors, then
/// rust-bert's own conversion (many older repositories carry one, made for rust-bert's
/// pretrained models), then PyTorch `.bin`, which libtorch reads only when a recent
/// transformers wrote it.
pub const WEIGHT_FILES: &[&str] = &[
    "model.safetensors",
    "model.safetensors.index.json",
    "rust_model.ot",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
];

/// What to say when a folder has no weights.
pub const MISSING: &str =
    "model.safetensors (or its shards with model.safetensors.index.json, rust_model.ot, or pytorch_model.bin)";

/// The file gist writes.
pub const OUTPUT: &str = "model.safetensors";

/// Where a checkpoint keeps its weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// safetensors: one file, or the shards of an index.
    Safetensors(Vec<PathBuf>),
    /// PyTorch `.bin` files (zip format): one, or the shards of an index.
    PyTorch(Vec<PathBuf>),
    /// rust-bert's own `rust_model.ot`, already named for rust-bert: copied as it is.
    RustBert(PathBuf),
}

/// The shard files an index (`*.index.json`) names, each once, in order.
///
/// # Errors
/// When the index has no `weight_map` of file names.
pub fn shards(index: &Value) -> std::result::Result<Vec<String>, String> {
    let map = index["weight_map"]
        .as_object()
        .ok_or("no \"weight_map\" object")?;
    let mut files: Vec<String> = Vec::new();
    for (tensor, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| format!("the file of {tensor} is not a string"))?;
        if !files.iter().any(|f| f == file) {
            files.push(file.to_string());
        }
    }
    files.sort();
    Ok(files)
}

/// Find the weights of the snapshot in `dir`, shards included.
///
/// # Errors
/// [`Error::MissingFiles`] when there are none or an index names a shard that is not
/// there; [`Error::Invalid`] for a malformed index.
pub fn find(dir: &Path) -> Result<Source> {
    let single = |file: &str| dir.join(file).is_file().then(|| vec![dir.join(file)]);
    let sharded = |index: &str| -> Result<Option<Vec<PathBuf>>> {
        let path = dir.join(index);
        if !path.is_file() {
            return Ok(None);
        }
        let names = shards(&read_json(&path)?).map_err(|reason| Error::Invalid {
            path: path.clone(),
            reason,
        })?;
        let missing: Vec<String> = names
            .iter()
            .filter(|n| !dir.join(n).is_file())
            .map(|n| format!("{n} (a shard named in {index})"))
            .collect();
        if !missing.is_empty() {
            return Err(Error::MissingFiles {
                dir: dir.to_path_buf(),
                files: missing,
            });
        }
        Ok(Some(names.iter().map(|n| dir.join(n)).collect()))
    };
    if let Some(files) = single("model.safetensors") {
        return Ok(Source::Safetensors(files));
    }
    if let Some(files) = sharded("model.safetensors.index.json")? {
        return Ok(Source::Safetensors(files));
    }
    if let Some(mut files) = single("rust_model.ot") {
        return Ok(Source::RustBert(files.remove(0)));
    }
    if let Some(files) = single("pytorch_model.bin") {
        return Ok(Source::PyTorch(files));
    }
    if let Some(files) = sharded("pytorch_model.bin.index.json")? {
        return Ok(Source::PyTorch(files));
    }
    Err(Error::MissingFiles {
        dir: dir.to_path_buf(),
        files: vec![MISSING.into()],
    })
}

/// What [`normalize`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// LayerNorm `gamma`/`beta` tensors renamed to `weight`/`bias`.
    pub renamed: usize,
    /// Tied tensors added under the name rust-bert reads: (added, copied from).
    pub tied: Vec<(String, String)>,
    /// Tensors added as zeros (Pegasus' `final_logits_bias`, a constant buffer).
    pub zeros: Vec<String>,
}

impl Changes {
    /// True when the tensors are written exactly as they were read.
    pub fn is_empty(&self) -> bool {
        self.renamed == 0 && self.tied.is_empty() && self.zeros.is_empty()
    }
}

/// The name transformers gives an old `gamma`/`beta` parameter, if it is one.
pub fn modern_name(name: &str) -> Option<String> {
    let (module, last) = name.rsplit_once('.')?;
    let last = match last {
        "gamma" => "weight",
        "beta" => "bias",
        _ => return None,
    };
    Some(format!("{module}.{last}"))
}

/// Tied tensors of an architecture: each name rust-bert reads, with the aliases it may be
/// stored under, in order of preference.
pub fn tied_aliases(arch: Arch, config: &Value) -> Vec<(&'static str, &'static [&'static str])> {
    match arch {
        Arch::Bart | Arch::Pegasus => vec![(
            "model.shared.weight",
            &[
                "model.encoder.embed_tokens.weight",
                "model.decoder.embed_tokens.weight",
                "lm_head.weight",
            ],
        )],
        Arch::T5 | Arch::LongT5 => {
            // An untied lm_head (T5 v1.1) is a tensor of its own, never an alias.
            if config["tie_word_embeddings"].as_bool().unwrap_or(true) {
                vec![(
                    "shared.weight",
                    &[
                        "encoder.embed_tokens.weight",
                        "decoder.embed_tokens.weight",
                        "lm_head.weight",
                    ],
                )]
            } else {
                vec![(
                    "shared.weight",
                    &["encoder.embed_tokens.weight", "decoder.embed_tokens.weight"],
                )]
            }
        }
        Arch::ProphetNet => vec![
            (
                "prophetnet.word_embeddings.weight",
                &[
                    "prophetnet.encoder.word_embeddings.weight",
                    "prophetnet.decoder.word_embeddings.weight",
                    "lm_head.weight",
                ],
            ),
            (
                "lm_head.weight",
                &[
                    "prophetnet.word_embeddings.weight",
                    "prophetnet.encoder.word_embeddings.weight",
                    "prophetnet.decoder.word_embeddings.weight",
                ],
            ),
        ],
        Arch::Bert | Arch::DistilBert | Arch::Electra | Arch::Roberta | Arch::Albert => vec![],
    }
}

/// Rename legacy parameters and fill tied aliases, with `dup` making a second handle on
/// a tensor. A legacy name whose modern name is also present keeps the modern one.
pub fn normalize<T>(
    arch: Arch,
    config: &Value,
    tensors: Vec<(String, T)>,
    dup: impl Fn(&T) -> T,
) -> (BTreeMap<String, T>, Changes) {
    let mut changes = Changes::default();
    let mut out: BTreeMap<String, T> = BTreeMap::new();
    let mut legacy: Vec<(String, T)> = Vec::new();
    for (name, tensor) in tensors {
        match modern_name(&name) {
            Some(modern) => legacy.push((modern, tensor)),
            None => {
                out.insert(name, tensor);
            }
        }
    }
    for (modern, tensor) in legacy {
        if let std::collections::btree_map::Entry::Vacant(slot) = out.entry(modern) {
            slot.insert(tensor);
            changes.renamed += 1;
        }
    }
    for (name, aliases) in tied_aliases(arch, config) {
        if out.contains_key(name) {
            continue;
        }
        if let Some(alias) = aliases.iter().find(|a| out.contains_key(**a)) {
            let copy = dup(&out[*alias]);
            out.insert(name.to_string(), copy);
            changes.tied.push((name.to_string(), alias.to_string()));
        }
    }
    (out, changes)
}

/// Read every tensor of `source`.
#[cfg(feature = "libtorch")]
fn read(source: &Source) -> Result<Vec<(String, Tensor)>> {
    let mut all = Vec::new();
    match source {
        Source::Safetensors(files) => {
            for file in files {
                let tensors = Tensor::read_safetensors(file).map_err(|e| Error::Invalid {
                    path: file.clone(),
                    reason: first_line(&e.to_string()),
                })?;
                all.extend(tensors);
            }
        }
        Source::PyTorch(files) => {
            for file in files {
                let tensors = Tensor::loadz_multi_with_device(file, tch::Device::Cpu).map_err(|e| Error::Invalid {
                    path: file.clone(),
                    reason: format!(
                        "libtorch cannot read this PyTorch file ({}); it was probably written by an older PyTorch or transformers. \
                         Convert it to safetensors once and import again: {CONVERT}",
                        first_line(&e.to_string())
                    ),
                })?;
                all.extend(tensors);
            }
        }
        Source::RustBert(_) => {}
    }
    Ok(all)
}

/// How to convert a `.bin` that libtorch's loader refuses.
pub const CONVERT: &str = "python3 -c \"import torch; from safetensors.torch import save_file; \
save_file({k: v.clone().contiguous() for k, v in torch.load('pytorch_model.bin', map_location='cpu').items()}, 'model.safetensors')\"";

#[cfg(feature = "libtorch")]
fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// Write the weights of `source` into `out_dir` (as [`OUTPUT`], or `rust_model.ot` for a
/// rust-bert file) with the names rust-bert reads for `arch`. A file that needs no change
/// is copied (hard-linked from the Hub cache) rather than rewritten.
///
/// # Errors
/// [`Error::Invalid`] naming the file that cannot be read, [`Error::Io`] when writing fails.
pub fn prepare(arch: Arch, config: &Value, source: &Source, out_dir: &Path) -> Result<Changes> {
    let out = out_dir.join(OUTPUT);
    match source {
        Source::RustBert(file) => {
            link_or_copy(file, &out_dir.join("rust_model.ot"))?;
            return Ok(Changes::default());
        }
        Source::Safetensors(files) if files.len() == 1 => {
            // Most Hub files need nothing: look at the names first and copy the file as
            // it is (a hard link where possible) instead of rewriting gigabytes.
            let names = safetensors_names(&files[0])?;
            let zero_bias = needs_zero_bias(arch, config, &names).is_some();
            let (_, changes) = normalize(arch, config, names, |_| ());
            if changes.is_empty() && !zero_bias {
                link_or_copy(&files[0], &out)?;
                return Ok(changes);
            }
        }
        _ => {}
    }
    rewrite(arch, config, source, &out)
}

/// Read every tensor, rename, add what is missing, and write one safetensors file: this
/// needs libtorch (it reads PyTorch `.bin` files too).
#[cfg(feature = "libtorch")]
fn rewrite(arch: Arch, config: &Value, source: &Source, out: &Path) -> Result<Changes> {
    let tensors = read(source)?;
    let (mut tensors, mut changes) = normalize(arch, config, tensors, Tensor::shallow_clone);
    let names: Vec<(String, ())> = tensors.keys().map(|k| (k.clone(), ())).collect();
    if let Some(vocab) = needs_zero_bias(arch, config, &names) {
        tensors.insert(
            "final_logits_bias".into(),
            Tensor::zeros([1, vocab], (Kind::Float, tch::Device::Cpu)),
        );
        changes.zeros.push("final_logits_bias".into());
    }
    let tensors: Vec<(String, Tensor)> = tensors
        .into_iter()
        .map(|(name, t)| (name, t.contiguous()))
        .collect();
    Tensor::write_safetensors(&tensors, out).map_err(|e| Error::Invalid {
        path: out.to_path_buf(),
        reason: format!("cannot write: {}", first_line(&e.to_string())),
    })?;
    Ok(changes)
}

#[cfg(not(feature = "libtorch"))]
fn rewrite(_: Arch, _: &Value, source: &Source, out: &Path) -> Result<Changes> {
    let _ = source;
    Err(Error::Invalid {
        path: out.to_path_buf(),
        reason: NO_LIBTORCH.into(),
    })
}

/// Pegasus keeps `final_logits_bias` as a variable; a file without it gets zeros (the
/// buffer is zeros in every released checkpoint). Returns the vocabulary size then.
fn needs_zero_bias<T>(arch: Arch, config: &Value, names: &[(String, T)]) -> Option<i64> {
    let present = names.iter().any(|(n, _)| n == "final_logits_bias");
    if arch != Arch::Pegasus || present {
        return None;
    }
    config["vocab_size"].as_i64()
}

/// The tensor names of a safetensors file, from its header only.
fn safetensors_names(path: &Path) -> Result<Vec<(String, ())>> {
    use std::io::Read;
    let invalid = |reason: String| Error::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = std::fs::File::open(path).map_err(io_error(path))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(io_error(path))?;
    let len = u64::from_le_bytes(len);
    if len > 100_000_000 {
        return Err(invalid("not a safetensors file (header too large)".into()));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(io_error(path))?;
    let header: Value = serde_json::from_slice(&header)
        .map_err(|e| invalid(format!("not a safetensors file: {e}")))?;
    let map = header
        .as_object()
        .ok_or_else(|| invalid("not a safetensors file".into()))?;
    Ok(map
        .keys()
        .filter(|k| *k != "__metadata__")
        .map(|k| (k.clone(), ()))
        .collect())
}

/// Copy `from` to `to`; a file of the Hub cache (a symlink into its `blobs/` folder) is
/// hard-linked instead where possible: the cache never rewrites a blob in place (a new
/// version is a new blob), so sharing it is safe and saves the space of a second copy.
/// Any other file is copied, since its owner may rewrite it in place.
/// Copy the checkpoint's weights into `out_dir` as they are, with their shard index: what
/// the ONNX exporter reads (with transformers), which needs no renaming.
///
/// # Errors
/// [`Error::Invalid`] for rust-bert's own `rust_model.ot`, which the exporter cannot read;
/// [`Error::Io`] when copying fails.
pub fn copy_as_is(source: &Source, src_dir: &Path, out_dir: &Path) -> Result<()> {
    let files = match source {
        Source::Safetensors(files) | Source::PyTorch(files) => files,
        Source::RustBert(file) => {
            return Err(Error::Invalid {
                path: file.clone(),
                reason: "rust-bert's own format, which the ONNX exporter cannot read: import model.safetensors or pytorch_model.bin".into(),
            })
        }
    };
    for file in files {
        let name = file.file_name().unwrap_or_default();
        link_or_copy(file, &out_dir.join(name))?;
    }
    for index in [
        "model.safetensors.index.json",
        "pytorch_model.bin.index.json",
    ] {
        let path = src_dir.join(index);
        if path.is_file() {
            link_or_copy(&path, &out_dir.join(index))?;
        }
    }
    Ok(())
}

fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    let is_link = from
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink());
    let real = from.canonicalize().map_err(io_error(from))?;
    let in_blobs = real
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "blobs");
    if is_link && in_blobs && std::fs::hard_link(&real, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(&real, to).map_err(io_error(&real))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(list: &[&str]) -> Vec<(String, String)> {
        list.iter()
            .map(|n| (n.to_string(), n.to_string()))
            .collect()
    }

    #[test]
    fn legacy_layer_norm_names_become_weight_and_bias() {
        assert_eq!(
            modern_name("bert.embeddings.LayerNorm.gamma").as_deref(),
            Some("bert.embeddings.LayerNorm.weight")
        );
        assert_eq!(
            modern_name("bert.encoder.layer.0.output.LayerNorm.beta").as_deref(),
            Some("bert.encoder.layer.0.output.LayerNorm.bias")
        );
        assert_eq!(modern_name("classifier.weight"), None);
        assert_eq!(modern_name("gamma"), None);
        assert_eq!(modern_name("x.gammas"), None);

        let (out, changes) = normalize(
            Arch::Bert,
            &json!({}),
            names(&[
                "a.LayerNorm.gamma",
                "a.LayerNorm.beta",
                "b.LayerNorm.weight",
                "b.LayerNorm.gamma",
            ]),
            Clone::clone,
        );
        // The value says where each tensor came from; a present modern name wins.
        let got: Vec<(&str, &str)> = out.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("a.LayerNorm.bias", "a.LayerNorm.beta"),
                ("a.LayerNorm.weight", "a.LayerNorm.gamma"),
                ("b.LayerNorm.weight", "b.LayerNorm.weight"),
            ]
        );
        assert_eq!(changes.renamed, 2);
        assert!(changes.tied.is_empty());
    }

    #[test]
    fn tied_embeddings_are_filled_from_the_alias_the_file_kept() {
        let config = json!({});
        type Case<'a> = (Arch, &'a [&'a str], &'a [(&'a str, &'a str)]);
        let cases: &[Case] = &[
            // save_pretrained keeps the shared alias: nothing to do.
            (
                Arch::Bart,
                &["model.shared.weight", "final_logits_bias"],
                &[],
            ),
            (
                Arch::Bart,
                &["lm_head.weight", "model.encoder.layers.0.fc1.weight"],
                &[("model.shared.weight", "lm_head.weight")],
            ),
            (
                Arch::Pegasus,
                &[
                    "model.decoder.embed_tokens.weight",
                    "model.encoder.embed_tokens.weight",
                ],
                &[("model.shared.weight", "model.encoder.embed_tokens.weight")],
            ),
            (
                Arch::T5,
                &["encoder.embed_tokens.weight"],
                &[("shared.weight", "encoder.embed_tokens.weight")],
            ),
            (
                Arch::ProphetNet,
                &["prophetnet.decoder.word_embeddings.weight"],
                &[
                    (
                        "prophetnet.word_embeddings.weight",
                        "prophetnet.decoder.word_embeddings.weight",
                    ),
                    ("lm_head.weight", "prophetnet.word_embeddings.weight"),
                ],
            ),
            // BERT-likes have nothing tied that rust-bert reads twice.
            (Arch::Bert, &["bert.embeddings.word_embeddings.weight"], &[]),
        ];
        for (arch, present, want) in cases {
            let (out, changes) = normalize(*arch, &config, names(present), Clone::clone);
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            assert_eq!(changes.tied, want, "{arch:?} {present:?}");
            for (added, from) in &want {
                assert_eq!(&out[added], &out[from]);
            }
        }
        // An untied T5 (v1.1) lm_head is its own tensor, never a source for shared.
        let (_, changes) = normalize(
            Arch::T5,
            &json!({"tie_word_embeddings": false}),
            names(&["lm_head.weight"]),
            Clone::clone,
        );
        assert!(changes.tied.is_empty());
        let (_, changes) = normalize(Arch::T5, &config, names(&["lm_head.weight"]), Clone::clone);
        assert_eq!(
            changes.tied,
            [("shared.weight".to_string(), "lm_head.weight".to_string())]
        );
    }

    #[test]
    fn pegasus_gets_a_zero_bias_only_when_it_lacks_one() {
        let config = json!({"vocab_size": 96});
        let with = names(&["final_logits_bias"]);
        assert_eq!(needs_zero_bias(Arch::Pegasus, &config, &with), None);
        assert_eq!(
            needs_zero_bias(Arch::Pegasus, &config, &names(&["x"])),
            Some(96)
        );
        assert_eq!(needs_zero_bias(Arch::Bart, &config, &names(&["x"])), None);
    }

    #[test]
    fn shard_indexes_list_each_file_once() {
        let index = json!({"metadata": {}, "weight_map": {
            "a": "model-00002-of-00002.safetensors",
            "b": "model-00001-of-00002.safetensors",
            "c": "model-00001-of-00002.safetensors"}});
        assert_eq!(
            shards(&index).unwrap(),
            [
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors"
            ]
        );
        assert!(shards(&json!({})).unwrap_err().contains("weight_map"));
    }

    #[test]
    #[cfg(feature = "libtorch")]
    fn sharded_safetensors_are_merged_with_renames() {
        let dir = tempfile::tempdir().unwrap();
        let t = |v: f32| Tensor::from_slice(&[v, v + 1.0]);
        Tensor::write_safetensors(
            &[("model.encoder.LayerNorm.gamma", t(1.0))],
            dir.path().join("s1.safetensors"),
        )
        .unwrap();
        Tensor::write_safetensors(
            &[("lm_head.weight", t(5.0))],
            dir.path().join("s2.safetensors"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("model.safetensors.index.json"),
            json!({"weight_map": {"model.encoder.LayerNorm.gamma": "s1.safetensors", "lm_head.weight": "s2.safetensors"}}).to_string(),
        )
        .unwrap();
        let source = find(dir.path()).unwrap();
        assert_eq!(
            source,
            Source::Safetensors(vec![
                dir.path().join("s1.safetensors"),
                dir.path().join("s2.safetensors")
            ])
        );
        let out = tempfile::tempdir().unwrap();
        let changes = prepare(
            Arch::Pegasus,
            &json!({"vocab_size": 2}),
            &source,
            out.path(),
        )
        .unwrap();
        assert_eq!(changes.renamed, 1);
        assert_eq!(changes.zeros, ["final_logits_bias"]);
        let written: BTreeMap<String, Tensor> = Tensor::read_safetensors(out.path().join(OUTPUT))
            .unwrap()
            .into_iter()
            .collect();
        let keys: Vec<&str> = written.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "final_logits_bias",
                "lm_head.weight",
                "model.encoder.LayerNorm.weight",
                "model.shared.weight"
            ]
        );
        assert_eq!(
            Vec::<f32>::try_from(&written["model.shared.weight"]).unwrap(),
            [5.0, 6.0]
        );
        assert_eq!(written["final_logits_bias"].size(), [1, 2]);

        std::fs::remove_file(dir.path().join("s2.safetensors")).unwrap();
        let e = find(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("s2.safetensors (a shard named in model.safetensors.index.json)"),
            "{e}"
        );
    }

    #[test]
    fn weights_are_found_in_order_of_preference() {
        let dir = tempfile::tempdir().unwrap();
        assert!(find(dir.path()).unwrap_err().to_string().contains(MISSING));
        for (file, want) in [
            (
                "pytorch_model.bin",
                Source::PyTorch(vec![dir.path().join("pytorch_model.bin")]),
            ),
            (
                "rust_model.ot",
                Source::RustBert(dir.path().join("rust_model.ot")),
            ),
            (
                "model.safetensors",
                Source::Safetensors(vec![dir.path().join("model.safetensors")]),
            ),
        ] {
            std::fs::write(dir.path().join(file), b"x").unwrap();
            assert_eq!(find(dir.path()).unwrap(), want);
        }
    }

    #[test]
    #[cfg(feature = "libtorch")]
    fn a_file_that_needs_nothing_is_copied_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("model.safetensors");
        Tensor::write_safetensors(
            &[("classifier.weight", Tensor::from_slice(&[1.0f32]))],
            &file,
        )
        .unwrap();
        let out = tempfile::tempdir().unwrap();
        let changes = prepare(
            Arch::Bert,
            &json!({}),
            &find(dir.path()).unwrap(),
            out.path(),
        )
        .unwrap();
        assert!(changes.is_empty());
        assert_eq!(
            std::fs::read(&file).unwrap(),
            std::fs::read(out.path().join(OUTPUT)).unwrap()
        );
    }
}
