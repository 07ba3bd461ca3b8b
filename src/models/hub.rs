//! `gist models pull`: download the files an import needs from the Hugging Face Hub with
//! its own Rust client, `hf-hub`, into the Hub's usual cache (`$HF_HOME/hub`, shared with
//! Python's `huggingface_hub`), then import the snapshot.
//!
//! Only what the engine reads is fetched: `config.json` first (so an unsupported
//! architecture is refused before gigabytes move), then one set of weights (safetensors
//! preferred, shards included), the tokenizer files, and the sentence-transformers files
//! for an encoder. `HF_ENDPOINT` points it at a mirror; `HF_TOKEN` (or the token file in
//! `$HF_HOME`) reads private and gated repositories.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Repo, RepoType};

use super::arch::{self, Arch};
use super::{read_json, weights, Error, Result, Role};

/// Where to pull from.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Repository id, e.g. `dslim/bert-base-NER`.
    pub repo: String,
    /// Branch, tag or commit.
    pub revision: String,
    /// The Hub or a mirror, e.g. `https://huggingface.co`.
    pub endpoint: String,
    /// Access token, if any (else hf-hub reads `$HF_HOME/token`).
    pub token: Option<String>,
    /// Draw download progress bars (on a terminal).
    pub progress: bool,
}

/// Files an import of `arch` for `task` reads, among the repository's `files`: the
/// weights (first choice of [`weights::WEIGHT_FILES`]; shards come from the index), the
/// tokenizer (`tokenizer.json` only when the architecture's own files are absent),
/// configuration, sentence-transformers files for an encoder, and the model card (its
/// licence).
pub fn select(task: Role, arch: Arch, files: &[String]) -> Vec<String> {
    let has = |f: &str| files.iter().any(|x| x == f);
    let mut out: Vec<&str> = vec!["config.json"];
    if let Some(w) = weights::WEIGHT_FILES.iter().find(|f| has(f)) {
        out.push(w);
    }
    let own = arch.tokenizer().files();
    out.extend(own.iter().filter(|f| has(f)));
    if !own.iter().all(|f| has(f)) {
        out.push("tokenizer.json");
    }
    out.extend([
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "generation_config.json",
        "README.md",
    ]);
    if task == Role::Encoder {
        out.extend(arch::SENTENCE_TRANSFORMERS_FILES);
        out.push("config_sentence_transformers.json");
    }
    let mut selected: Vec<String> = Vec::new();
    for f in out {
        if has(f) && !selected.iter().any(|s| s == f) {
            selected.push(f.to_string());
        }
    }
    selected
}

/// The model name a repository id gives by default: its last path segment.
pub fn default_name(repo: &str) -> &str {
    repo.rsplit('/').next().unwrap_or(repo)
}

/// Download what an import of `opts.repo` for `task` needs; `on_file` is told each file
/// before it is fetched. Returns the snapshot folder in the Hub cache.
///
/// # Errors
/// [`Error::Hub`] with one line saying what went wrong (unreachable, access denied, not
/// found); [`Error::Unsupported`] / [`Error::Invalid`] from the architecture check.
pub fn download(opts: &PullOptions, task: Role, mut on_file: impl FnMut(&str)) -> Result<PathBuf> {
    let mut builder = ApiBuilder::from_env()
        .with_endpoint(opts.endpoint.clone())
        .with_progress(opts.progress);
    if let Some(token) = &opts.token {
        builder = builder.with_token(Some(token.clone()));
    }
    let api = builder
        .build()
        .map_err(|e| Error::Hub(format!("cannot set up the Hub client: {e}")))?;
    let repo = api.repo(Repo::with_revision(
        opts.repo.clone(),
        RepoType::Model,
        opts.revision.clone(),
    ));
    let info = repo.info().map_err(|e| describe(opts, None, e))?;
    let files: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
    if !files.iter().any(|f| f == "config.json") {
        return Err(Error::Hub(format!(
            "{} has no config.json at {}: not a transformers model",
            opts.repo, opts.revision
        )));
    }
    let mut get = |file: &str| -> Result<PathBuf> {
        on_file(file);
        fetch(&repo, opts, file)
    };
    let config_path = get("config.json")?;
    let arch = arch::check(task, &read_json(&config_path)?, &config_path)?;
    let snapshot = config_path
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| Error::Hub(format!("{}: no snapshot folder", config_path.display())))?;
    for file in select(task, arch, &files).iter().skip(1) {
        let path = get(file)?;
        if file.ends_with(".index.json") {
            let shards = weights::shards(&read_json(&path)?).map_err(|reason| Error::Invalid {
                path: path.clone(),
                reason,
            })?;
            for shard in shards {
                get(&shard)?;
            }
        }
    }
    Ok(snapshot)
}

fn fetch(repo: &ApiRepo, opts: &PullOptions, file: &str) -> Result<PathBuf> {
    repo.get(file).map_err(|e| describe(opts, Some(file), e))
}

/// One line for a failed Hub request.
fn describe(opts: &PullOptions, file: Option<&str>, err: ApiError) -> Error {
    let what = match file {
        Some(f) => format!("{f} of {}", opts.repo),
        None => opts.repo.clone(),
    };
    let message = match err {
        ApiError::RequestError(e) => match *e {
            ureq::Error::Status(401 | 403, _) if opts.token.is_some() => format!(
                "{what}: access denied with the token in HF_TOKEN (does it have access to the repository? gated models need their terms accepted on the Hub)"
            ),
            ureq::Error::Status(code @ (401 | 403), _) => format!(
                "{what}: access denied (HTTP {code}): the repository is private, gated or does not exist; set HF_TOKEN to a token that can read it"
            ),
            ureq::Error::Status(404, _) => match file {
                None => format!(
                    "{what}: repository or revision {:?} not found at {}",
                    opts.revision, opts.endpoint
                ),
                Some(_) => format!("{what}: not found at revision {:?}", opts.revision),
            },
            ureq::Error::Status(code, _) => format!("{what}: the Hub answered HTTP {code}"),
            ureq::Error::Transport(t) => {
                format!("cannot reach {} for {what}: {}", opts.endpoint, one_line(&t.to_string()))
            }
        },
        ApiError::MissingHeader(header) => format!(
            "{what}: the server's answer has no {header} header (is {} a Hugging Face Hub?)",
            opts.endpoint
        ),
        ApiError::LockAcquisition(path) => format!(
            "{what}: {} is locked by another download",
            path.display()
        ),
        other => format!("{what}: {}", one_line(&other.to_string())),
    };
    Error::Hub(message)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_the_files_an_import_reads_are_selected() {
        let bert_ner = list(&[
            ".gitattributes",
            "README.md",
            "config.json",
            "flax_model.msgpack",
            "model.safetensors",
            "onnx/model.onnx",
            "pytorch_model.bin",
            "special_tokens_map.json",
            "tf_model.h5",
            "tokenizer_config.json",
            "vocab.txt",
            "tokenizer.json",
        ]);
        assert_eq!(
            select(Role::Ner, Arch::Bert, &bert_ner),
            list(&[
                "config.json",
                "model.safetensors",
                "vocab.txt",
                "tokenizer_config.json",
                "special_tokens_map.json",
                "README.md"
            ])
        );
        // No vocab.txt: tokenizer.json replaces it; a sharded .bin is the only weights.
        let sharded = list(&[
            "config.json",
            "pytorch_model.bin.index.json",
            "pytorch_model-00001-of-00002.bin",
            "pytorch_model-00002-of-00002.bin",
            "tokenizer.json",
        ]);
        assert_eq!(
            select(Role::Ner, Arch::Bert, &sharded),
            list(&[
                "config.json",
                "pytorch_model.bin.index.json",
                "tokenizer.json"
            ])
        );
        // rust-bert's own conversion beats a .bin an old transformers may have written.
        let distilbart = list(&[
            "config.json",
            "merges.txt",
            "pytorch_model.bin",
            "rust_model.ot",
            "tf_model.h5",
            "vocab.json",
        ]);
        assert_eq!(
            select(Role::Summarizer, Arch::Bart, &distilbart),
            list(&["config.json", "rust_model.ot", "vocab.json", "merges.txt"])
        );
        let t5 = list(&[
            "config.json",
            "generation_config.json",
            "model.safetensors",
            "spiece.model",
            "tokenizer.json",
            "rust_model.ot",
        ]);
        assert_eq!(
            select(Role::Summarizer, Arch::T5, &t5),
            list(&[
                "config.json",
                "model.safetensors",
                "spiece.model",
                "generation_config.json"
            ])
        );
        let minilm = list(&[
            "1_Pooling/config.json",
            "config.json",
            "config_sentence_transformers.json",
            "model.safetensors",
            "modules.json",
            "sentence_bert_config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "vocab.txt",
            "openvino/openvino_model.xml",
        ]);
        assert_eq!(
            select(Role::Encoder, Arch::Bert, &minilm),
            list(&[
                "config.json",
                "model.safetensors",
                "vocab.txt",
                "tokenizer_config.json",
                "modules.json",
                "sentence_bert_config.json",
                "1_Pooling/config.json",
                "config_sentence_transformers.json",
            ])
        );
    }

    #[test]
    fn default_names_are_the_last_segment() {
        assert_eq!(
            default_name("sshleifer/distilbart-cnn-6-6"),
            "distilbart-cnn-6-6"
        );
        assert_eq!(default_name("t5-small"), "t5-small");
    }
}
