//! `gist models import` through the real binary: tiny checkpoints built here, in the
//! layouts Hugging Face tools write, imported into a temporary models folder and then used
//! by `gist entities` / `gist summarize`.

use std::path::Path;

use crate::common::{gist, outputs};

/// A manifest with comments and a section the import replaces.
const MANIFEST: &str = "# My models.\n\n# The NER model in use.\n[ner]\nname = \"old-ner\"\npath = \"old-ner\"\n\n# [summarizer]\n# name = \"later\"\n";

fn models_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("models.toml"), MANIFEST).unwrap();
    dir
}

fn import(src: &Path, name: &str, task: &str, models: &Path) -> std::process::Output {
    gist(
        &[
            "models",
            "import",
            src.to_str().unwrap(),
            "--as",
            name,
            "--task",
            task,
            "--models",
            models.to_str().unwrap(),
        ],
        &[],
        "",
    )
}

/// Entities of `text` with the models of `models`, as (text, label) pairs.
fn entities(models: &Path, text: &str) -> Vec<(String, String)> {
    let out = gist(
        &["entities", "--models", models.to_str().unwrap()],
        &[],
        text,
    );
    let (stdout, stderr) = outputs(&out);
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    json["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["text"].as_str().unwrap().into(),
                e["label"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// Everything in a folder, hidden entries included, with the manifest's text.
fn snapshot(dir: &Path) -> (Vec<String>, String) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    (
        names,
        std::fs::read_to_string(dir.join("models.toml")).unwrap(),
    )
}

fn located(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn an_imported_token_classifier_is_named_in_the_manifest_and_serves_entities() {
    let src = tempfile::tempdir().unwrap();
    crate::common::tiny_ner(src.path(), Some("B-LOC"));
    let models = models_dir();
    let out = import(src.path(), "tiny-ner", "ner", models.path());
    let (stdout, stderr) = outputs(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("[ner] is now tiny-ner (replaced old-ner at old-ner)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("lower_case = true (from do_lower_case in tokenizer_config.json)"),
        "{stdout}"
    );

    let manifest = std::fs::read_to_string(models.path().join("models.toml")).unwrap();
    assert_eq!(
        manifest,
        MANIFEST.replace("\"old-ner\"", "\"tiny-ner\"").replace(
            "path = \"tiny-ner\"\n",
            "path = \"tiny-ner\"\nlower_case = true\n"
        )
    );
    let dir = models.path().join("tiny-ner");
    for f in [
        "config.json",
        "model.safetensors",
        "vocab.txt",
        "tokenizer_config.json",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    assert_eq!(
        entities(models.path(), "Khan met Li."),
        // Every word is tagged LOC; "met", all lower case, is no name (README, "API").
        located(&[("Khan", "LOC"), ("Li", "LOC"), (".", "LOC")])
    );

    // The name is taken now: refused, unless --force.
    let out = import(src.path(), "tiny-ner", "ner", models.path());
    let (_, stderr) = outputs(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("already exists: pass --force"), "{stderr}");
    let out = gist(
        &[
            "models",
            "import",
            src.path().to_str().unwrap(),
            "--as",
            "tiny-ner",
            "--task",
            "ner",
            "--models",
            models.path().to_str().unwrap(),
            "--force",
        ],
        &[],
        "",
    );
    let (stdout, stderr) = outputs(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("[ner] is now tiny-ner (replaced tiny-ner at tiny-ner)"),
        "{stdout}"
    );
    assert_eq!(snapshot(models.path()).0, ["models.toml", "tiny-ner"]);
}

#[test]
fn legacy_gamma_beta_names_are_renamed() {
    let src = tempfile::tempdir().unwrap();
    crate::common::tiny_ner(src.path(), Some("I-PER"));
    let file = src.path().join("model.safetensors");
    crate::common::rewrite_tensors(&file, |name| {
        Some(
            name.replace("LayerNorm.weight", "LayerNorm.gamma")
                .replace("LayerNorm.bias", "LayerNorm.beta"),
        )
    });
    assert!(
        crate::common::tensor_names(&file).contains(&"bert.embeddings.LayerNorm.gamma".to_string())
    );
    let models = models_dir();
    let out = import(src.path(), "legacy", "ner", models.path());
    let (stdout, stderr) = outputs(&out);
    assert!(out.status.success(), "{stderr}");
    // Embeddings + 2 layers × 2 LayerNorms, each weight and bias.
    assert!(
        stdout.contains("renamed 10 LayerNorm gamma/beta tensors to weight/bias"),
        "{stdout}"
    );
    let names = crate::common::tensor_names(&models.path().join("legacy/model.safetensors"));
    assert!(names.contains(&"bert.embeddings.LayerNorm.weight".to_string()));
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with("gamma") || n.ends_with("beta")),
        "{names:?}"
    );
    assert_eq!(
        entities(models.path(), "Imran Khan met Li"),
        located(&[("Imran Khan met Li", "PER")])
    );
}

#[test]
fn a_tokenizer_json_alone_gives_the_vocabulary() {
    let src = tempfile::tempdir().unwrap();
    crate::common::tiny_ner(src.path(), Some("B-ORG"));
    let vocab = std::fs::read_to_string(src.path().join("vocab.txt")).unwrap();
    crate::common::tokenizer_json_only(src.path());
    let models = models_dir();
    let out = import(src.path(), "from-json", "ner", models.path());
    let (stdout, stderr) = outputs(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("tokenizer: vocab.txt derived from tokenizer.json"),
        "{stdout}"
    );
    assert!(
        stdout.contains("lower_case = true (from the normalizer in tokenizer.json)"),
        "{stdout}"
    );
    let dir = models.path().join("from-json");
    assert_eq!(
        std::fs::read_to_string(dir.join("vocab.txt")).unwrap(),
        vocab
    );
    assert_eq!(
        entities(models.path(), "China and Pakistan"),
        located(&[("China", "ORG"), ("Pakistan", "ORG")])
    );
}

/// Run a failing import: exactly one line on stderr, a non-zero exit, and the models
/// folder exactly as it was. Returns the line.
fn failed_import(src: &Path, task: &str) -> String {
    let models = models_dir();
    let before = snapshot(models.path());
    let out = import(src, "broken", task, models.path());
    let (stdout, stderr) = outputs(&out);
    assert!(!out.status.success(), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(snapshot(models.path()), before);
    stderr
}

#[test]
fn a_missing_vocabulary_is_named() {
    let src = tempfile::tempdir().unwrap();
    crate::common::tiny_ner(src.path(), None);
    std::fs::remove_file(src.path().join("vocab.txt")).unwrap();
    let e = failed_import(src.path(), "ner");
    assert!(
        e.contains(
            "lacks vocab.txt (or a tokenizer.json with a WordPiece model to derive it from)"
        ),
        "{e}"
    );
}

#[test]
fn unsupported_architectures_are_refused_with_the_supported_list() {
    let src = tempfile::tempdir().unwrap();
    crate::common::tiny_ner(src.path(), None);
    let config = src.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"bert\"", "\"gpt2\"")).unwrap();
    let e = failed_import(src.path(), "ner");
    assert!(
        e.contains("ner models of type \"gpt2\" are not supported; supported types: bert, distilbert, electra, roberta"),
        "{e}"
    );
    // A fine token classifier is still not a summarizer.
    let src = tempfile::tempdir().unwrap();
    crate::common::tiny_ner(src.path(), None);
    let e = failed_import(src.path(), "summarize");
    assert!(e.contains("bart, t5, longt5, pegasus, prophetnet"), "{e}");
}

#[test]
fn a_model_that_does_not_load_leaves_nothing_behind() {
    let src = tempfile::tempdir().unwrap();
    crate::common::tiny_ner(src.path(), None);
    crate::common::rewrite_tensors(&src.path().join("model.safetensors"), |name| {
        (name != "classifier.weight").then(|| name.to_string())
    });
    let e = failed_import(src.path(), "ner");
    assert!(e.contains("does not work in gist's engine"), "{e}");
    assert!(e.contains("classifier.weight"), "{e}");
}

#[test]
fn a_bart_file_without_its_shared_embedding_gets_it_from_the_tied_alias() {
    let src = tempfile::tempdir().unwrap();
    crate::common::tiny_bart(src.path());
    // What some tools write: the tied embedding kept only as the LM head.
    crate::common::rewrite_tensors(&src.path().join("model.safetensors"), |name| {
        Some(if name == "model.shared.weight" {
            "lm_head.weight".into()
        } else {
            name.into()
        })
    });
    // A manifest with no [ner] (the old one would not load) and a commented-out example.
    let models = tempfile::tempdir().unwrap();
    let manifest = "# My models.\n\n# [summarizer]\n# name = \"later\"\n";
    std::fs::write(models.path().join("models.toml"), manifest).unwrap();
    let out = import(src.path(), "tiny-bart", "summarize", models.path());
    let (stdout, stderr) = outputs(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("added model.shared.weight (tied to lm_head.weight)"),
        "{stdout}"
    );
    assert!(stdout.contains("added [summarizer] tiny-bart"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(models.path().join("models.toml")).unwrap(),
        format!("{manifest}[summarizer]\nname = \"tiny-bart\"\npath = \"tiny-bart\"\n")
    );
    let out = gist(
        &[
            "summarize",
            "--mode",
            "abstractive",
            "--models",
            models.path().to_str().unwrap(),
        ],
        &[],
        "Imran Khan met Li Keqiang in Islamabad. They talked about trade.",
    );
    let (stdout, stderr) = outputs(&out);
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["mode"], "ABSTRACTIVE");
    assert_eq!(json["model"], "tiny-bart");
}

#[test]
fn a_sentence_encoder_is_imported_with_its_pooling_files() {
    let src = tempfile::tempdir().unwrap();
    crate::common::tiny_encoder(src.path());
    let models = models_dir();
    let out = import(src.path(), "tiny-encoder", "embed", models.path());
    let (stdout, stderr) = outputs(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("added [encoder] tiny-encoder"), "{stdout}");
    let dir = models.path().join("tiny-encoder");
    for f in [
        "modules.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    // Without its pooling files the folder is not a sentence-transformers model.
    std::fs::remove_file(src.path().join("1_Pooling/config.json")).unwrap();
    let e = failed_import(src.path(), "embed");
    assert!(
        e.contains("lacks 1_Pooling/config.json (a sentence-transformers folder)"),
        "{e}"
    );
}

#[test]
fn a_rust_bert_conversion_is_used_as_it_is() {
    let src = tempfile::tempdir().unwrap();
    crate::common::tiny_ner(src.path(), Some("B-MISC"));
    // What older Hub repositories carry for rust-bert: rust_model.ot, next to a .bin
    // that libtorch cannot read.
    let st = src.path().join("model.safetensors");
    let tensors = tch::Tensor::read_safetensors(&st).unwrap();
    tch::Tensor::save_multi(&tensors, src.path().join("rust_model.ot")).unwrap();
    std::fs::remove_file(&st).unwrap();
    std::fs::write(src.path().join("pytorch_model.bin"), b"an old pickle").unwrap();
    let models = models_dir();
    let out = import(src.path(), "from-ot", "ner", models.path());
    let (stdout, stderr) = outputs(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("weights: from rust_model.ot"), "{stdout}");
    assert!(models.path().join("from-ot/rust_model.ot").is_file());
    assert_eq!(entities(models.path(), "Li"), located(&[("Li", "MISC")]));
}
