//! The ONNX Runtime engine on tiny models the tests build (random weights, small
//! vocabularies) and export themselves with the project's exporter
//! (`scripts/onnx/prepare.sh`, cached by checksum), and on the real default models: the ORT
//! and rust-bert engines, both fp32, give the same entities and key points.

use std::path::Path;

use gist::engine::manifest::{Manifest, ModelSpec, Precision};
use gist::engine::models::Models;
use gist::engine::onnx::{self, SessionSettings, SPINNING};
use gist::engine::{Engine, Generation, Role};
use gist::tasks::{self, EntitiesJob, Mode, SummarizeJob};

use crate::common;

fn settings() -> SessionSettings {
    SessionSettings {
        threads: 1,
        spinning: SPINNING,
        library: None,
    }
}

/// The models of `manifest`, every one on ONNX Runtime.
fn onnx_load(manifest: &Manifest) -> gist::Result<Models> {
    Models::load(manifest, |role, spec| {
        onnx::load_model(role, spec, &settings()).map(Some)
    })
}

/// Export a model folder the tests built to ONNX with the project's exporter.
fn export(dir: &Path, task: &str) {
    let out = std::process::Command::new("bash")
        .arg(common::repo().join("scripts/onnx/prepare.sh"))
        .arg(dir)
        .arg(task)
        .output()
        .expect("bash runs scripts/onnx/prepare.sh");
    assert!(
        out.status.success(),
        "exporting {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    for file in [
        "model.onnx",
        "model.int8.onnx",
        "model.onnx.data",
        "tokenizer.json",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing after the export");
    }
}

fn onnx_engine(manifest: &Manifest) -> Box<dyn Engine> {
    Box::new(onnx_load(manifest).unwrap())
}

fn tiny_ner(dir: &Path, forced: Option<&str>) -> ModelSpec {
    let spec = common::tiny_ner(dir, forced);
    export(dir, "ner");
    spec
}

fn ner_manifest(spec: ModelSpec) -> Manifest {
    Manifest::one(Role::Ner, spec)
}

/// The entities the engine's word tags make, merged (the model pipeline's words and
/// offsets, before the entities task's text rules: with a forced label, every word is an
/// entity, lower-case ones too).
fn entities(engine: &mut dyn Engine, text: &str) -> Vec<gist::text::entities::Entity> {
    let tagged = engine.tag(&[text]).unwrap().pop().unwrap();
    gist::text::entities::merge(text, &tagged.words)
}

#[test]
fn onnx_token_classifier_offsets_are_exact_on_every_script() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = onnx_engine(&ner_manifest(tiny_ner(dir.path(), Some("B-LOC"))));
    let cases: &[(&str, &[&str])] = &[
        ("Khan met Li.", &["Khan", "met", "Li", "."]),
        (
            "“Khan” met 李克强 🚀!",
            &["“", "Khan", "”", "met", "李克强", "🚀", "!"],
        ),
        (
            "  Pakistan’s cafe\u{301}  ",
            &["Pakistan", "’s", "cafe\u{301}"],
        ),
        (
            "P. Simmons of the U.S. spoke",
            &["P.", "Simmons", "of", "the", "U.S.", "spoke"],
        ),
    ];
    for (text, want) in cases {
        let got = entities(engine.as_mut(), text);
        let texts: Vec<&str> = got.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, *want, "{text:?}");
        let chars: Vec<char> = text.chars().collect();
        for e in &got {
            assert_eq!(e.label, "LOC");
            assert_eq!(
                chars[e.span.start..e.span.end].iter().collect::<String>(),
                e.text
            );
            assert_eq!(&text[e.span.byte_start..e.span.byte_end], e.text);
            assert!(e.score > 0.99, "{}", e.score);
        }
    }
}

#[test]
fn onnx_long_and_overlong_texts_are_tagged_completely_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = onnx_engine(&ner_manifest(tiny_ner(dir.path(), Some("B-ORG"))));
    // About 3,000 words: far beyond the tiny model's 128 positions and TAG_BATCH pieces.
    let sentence = "Khan met Li in the capital of China and Pakistan said 2021.";
    let text = vec![sentence; 250].join(" ");
    let got = entities(engine.as_mut(), &text);
    assert_eq!(got.len(), 250 * 13);
    for pair in got.windows(2) {
        assert!(pair[0].span.end <= pair[1].span.start, "{pair:?}");
    }
    assert_eq!(got.last().unwrap().span.byte_end, text.len());

    // 5,000 words with no sentence punctuation: overlapping windows, each word once.
    let words: Vec<&str> = (0..5000)
        .map(|i| ["khan", "china", "li", "pakistan", "minister"][i % 5])
        .collect();
    let text = words.join(" ");
    let got = entities(engine.as_mut(), &text);
    assert_eq!(got.len(), 5000);
    let mut pos = 0;
    for (e, w) in got.iter().zip(&words) {
        assert_eq!(&e.text, w);
        assert_eq!(e.span.byte_start, pos, "word {w} at the wrong place");
        pos = e.span.byte_end + 1;
    }
}

/// Random weights, so every word's label depends on the real forward pass: both engines,
/// fp32, read the same weights and must label every word alike, with the same scores.
#[test]
fn onnx_and_rust_bert_tag_the_same_on_random_weights() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = ner_manifest(tiny_ner(dir.path(), None));
    let mut onnx = onnx_engine(&manifest);
    let mut torch = common::engine(&manifest);
    let text = common::khan_li();
    let (a, b) = (
        onnx.tag(&[text.as_str()]).unwrap().remove(0),
        torch.tag(&[text.as_str()]).unwrap().remove(0),
    );
    assert_eq!(a.tokens, b.tokens, "token counts differ");
    assert_eq!(a.words.len(), b.words.len());
    assert!(a.words.len() > 300, "{} words", a.words.len());
    for (x, y) in a.words.iter().zip(&b.words) {
        assert_eq!((x.start, x.end, &x.label), (y.start, y.end, &y.label));
        assert!((x.score - y.score).abs() < 1e-3, "{x:?} vs {y:?}");
    }
    assert_eq!(
        onnx.count_tokens(Role::Ner, &[text.as_str()]).unwrap(),
        torch.count_tokens(Role::Ner, &[text.as_str()]).unwrap()
    );
}

#[test]
fn onnx_sentence_encoder_matches_rust_bert_and_ignores_batch_order() {
    let dir = tempfile::tempdir().unwrap();
    let spec = common::tiny_encoder(dir.path());
    export(dir.path(), "embed");
    let manifest = Manifest::one(Role::Encoder, spec);
    let mut onnx = onnx_engine(&manifest);
    let mut torch = common::engine(&manifest);
    assert_eq!(onnx.info().get(Role::Encoder).unwrap().max_input_tokens, 64);
    let long = "khan ".repeat(100);
    let sentences = [
        "Khan met Li.",
        "The prime minister of Pakistan said the talks went well and will continue.",
        "China",
        long.as_str(),
    ];
    let together = onnx.embed(&sentences).unwrap();
    let reference = torch.embed(&sentences).unwrap();
    for ((s, e), r) in sentences.iter().zip(&together).zip(&reference) {
        assert_eq!(e.vector.len(), 32);
        assert_eq!((e.tokens, e.truncated), (r.tokens, r.truncated), "{s}");
        let norm: f32 = e.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        for (a, b) in e.vector.iter().zip(&r.vector) {
            assert!((a - b).abs() < 1e-4, "{s}: onnx {a} vs rust-bert {b}");
        }
        // Padding in a batch must not change a sentence's embedding.
        let alone = onnx.embed(&[s]).unwrap().pop().unwrap();
        for (a, b) in alone.vector.iter().zip(&e.vector) {
            assert!((a - b).abs() < 1e-4, "{s}: {a} vs {b}");
        }
    }
    assert!(together[3].truncated && together[3].tokens > 64);
    assert!(!together[0].truncated);
}

#[test]
fn onnx_engine_says_what_it_cannot_do_and_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let spec = tiny_ner(dir.path(), None);
    let mut engine = onnx_engine(&ner_manifest(spec.clone()));
    let options = Generation::default();
    let err = engine.generate(&["text"], &options).unwrap_err();
    assert!(
        matches!(err, gist::Error::ModelMissing(Role::Summarizer)),
        "{err}"
    );
    assert_eq!(
        tonic::Status::from(err).code(),
        tonic::Code::FailedPrecondition
    );
    let err = engine
        .count_tokens(Role::Summarizer, &["text"])
        .unwrap_err();
    assert!(
        matches!(err, gist::Error::ModelMissing(Role::Summarizer)),
        "{err}"
    );
    let err = engine.embed(&["text"]).unwrap_err();
    assert!(
        matches!(err, gist::Error::ModelMissing(Role::Encoder)),
        "{err}"
    );
    assert_eq!(tonic::Status::from(err).code(), tonic::Code::Unavailable);
    // A summarizer is not something ONNX Runtime runs: loading one says so.
    let err = onnx_load(&Manifest::one(Role::Summarizer, spec.clone()))
        .err()
        .unwrap();
    assert!(
        gist::error::error_chain(&err).contains("ONNX Runtime does not run"),
        "{err}"
    );

    // ABSTRACTIVE through the task pipeline is refused, not attempted.
    let job = SummarizeJob {
        text: common::khan_li(),
        mode: Mode::Abstractive,
        max_key_points: 3,
        generation: options,
    };
    let err = tasks::summarize::summarize(engine.as_mut(), &job).unwrap_err();
    assert_eq!(
        tonic::Status::from(err).code(),
        tonic::Code::FailedPrecondition
    );

    // The embedding tables live beside the graph (ONNX external data).
    std::fs::remove_file(dir.path().join("model.onnx.data")).unwrap();
    let err = onnx_load(&ner_manifest(spec.clone())).err().unwrap();
    let chain = gist::error::error_chain(&err);
    assert!(
        chain.contains("tiny-ner") && chain.contains("model.onnx.data"),
        "{chain}"
    );
    std::fs::remove_file(dir.path().join("model.onnx")).unwrap();
    let err = onnx_load(&ner_manifest(spec.clone())).err().unwrap();
    let chain = gist::error::error_chain(&err);
    assert!(
        chain.contains("tiny-ner") && chain.contains("model.onnx") && chain.contains("make setup"),
        "{chain}"
    );
    std::fs::write(dir.path().join("model.onnx"), b"not a model").unwrap();
    let err = onnx_load(&ner_manifest(spec)).err().unwrap();
    let chain = gist::error::error_chain(&err);
    assert!(
        chain.contains("tiny-ner") && chain.contains("model.onnx"),
        "{chain}"
    );
}

/// The real default models (prepared by `make setup`): ORT fp32 and rust-bert give the same
/// entities and the same key points on the Khan–Li article.
#[test]
fn onnx_and_rust_bert_agree_on_the_khan_li_article_with_the_default_models() {
    let default = Manifest::load(&common::default_models()).unwrap();
    // Both engines at fp32, whatever precision models.toml serves.
    let mut manifest = Manifest::default();
    for (role, spec) in default.iter().filter(|(r, _)| *r != Role::Summarizer) {
        let mut spec = spec.clone();
        spec.precision = Some(Precision::Fp32);
        manifest.set(role, spec);
    }
    let mut onnx = onnx_engine(&manifest);
    let mut torch = common::engine(&manifest);
    let text = common::khan_li();

    let job = EntitiesJob {
        text: text.clone(),
        min_score: 0.0,
        labels: vec![],
    };
    let a = tasks::entities::extract_entities(onnx.as_mut(), &job).unwrap();
    let b = tasks::entities::extract_entities(torch.as_mut(), &job).unwrap();
    let spans = |r: &tasks::Entities| -> Vec<(String, String, usize, usize)> {
        r.entities
            .iter()
            .map(|e| (e.text.clone(), e.label.clone(), e.span.start, e.span.end))
            .collect()
    };
    assert!(a.entities.len() >= 10, "{:?}", a.entities);
    assert_eq!(spans(&a), spans(&b));
    for (x, y) in a.entities.iter().zip(&b.entities) {
        assert!((x.score - y.score).abs() < 1e-3, "{x:?} vs {y:?}");
    }

    let job = SummarizeJob {
        text: text.clone(),
        mode: Mode::Auto,
        max_key_points: 5,
        generation: Generation::default(),
    };
    let a = tasks::summarize::summarize(onnx.as_mut(), &job).unwrap();
    let b = tasks::summarize::summarize(torch.as_mut(), &job).unwrap();
    assert_eq!(a.mode, Mode::Extractive);
    let points = |s: &tasks::Summary| -> Vec<String> {
        s.key_points.iter().map(|k| k.text.clone()).collect()
    };
    assert_eq!(points(&a), points(&b));
    for (x, y) in a.key_points.iter().zip(&b.key_points) {
        assert!((x.score - y.score).abs() < 1e-3, "{x:?} vs {y:?}");
    }
}

/// `gist eval ner` with each engine on a small CoNLL fixture written here: both engines run
/// the whole command and score the same (the default models, fp32).
#[test]
fn gist_eval_ner_scores_alike_with_each_engine() {
    let dir = tempfile::tempdir().unwrap();
    // The default NER model at fp32 on both engines, whatever precision models.toml serves.
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::write(
        models.join("models.toml"),
        format!(
            "[ner]\nname = \"conll03-minilm-ner\"\npath = {:?}\nruntime = \"onnx\"\nprecision = \"fp32\"\n",
            common::default_models().join("conll03-minilm-ner")
        ),
    )
    .unwrap();
    let fixture = dir.path().join("fixture.conll");
    let sentences: &[&[(&str, &str)]] = &[
        &[
            ("Imran", "B-PER"),
            ("Khan", "I-PER"),
            ("met", "O"),
            ("Li", "B-PER"),
            ("Keqiang", "I-PER"),
            ("in", "O"),
            ("Islamabad", "B-LOC"),
            (".", "O"),
        ],
        &[
            ("The", "O"),
            ("National", "B-ORG"),
            ("Institute", "I-ORG"),
            ("of", "I-ORG"),
            ("Health", "I-ORG"),
            ("is", "O"),
            ("in", "O"),
            ("Pakistan", "B-LOC"),
            (".", "O"),
        ],
        &[
            ("China", "B-LOC"),
            ("will", "O"),
            ("build", "O"),
            ("a", "O"),
            ("port", "O"),
            ("in", "O"),
            ("Gwadar", "B-LOC"),
            ("for", "O"),
            ("Reuters", "B-ORG"),
            (".", "O"),
        ],
    ];
    // A document start line, as CoNLL files have (spelled out here, not copied from data).
    let mut text = format!("-{}- -X- -X- O\n\n", "DOCSTART");
    for sentence in sentences {
        for (token, tag) in *sentence {
            text.push_str(&format!("{token} X X {tag}\n"));
        }
        text.push('\n');
    }
    std::fs::write(&fixture, text).unwrap();
    let mut scores = Vec::new();
    for engine in ["onnx", "rust-bert"] {
        let json = dir.path().join(format!("{engine}.json"));
        let out = common::gist(
            &[
                "eval",
                "ner",
                fixture.to_str().unwrap(),
                "--engine",
                engine,
                "--models",
                models.to_str().unwrap(),
                "--json",
                json.to_str().unwrap(),
            ],
            &[],
            "",
        );
        let (stdout, stderr) = common::outputs(&out);
        assert!(out.status.success(), "{engine}: {stdout}\n{stderr}");
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(report["sentences"], 3, "{report}");
        scores.push(report["micro"].clone());
    }
    assert_eq!(scores[0], scores[1], "onnx vs rust-bert");
    assert!(scores[0]["f1"].as_f64().unwrap() > 0.6, "{}", scores[0]);
}

/// `gist models import --runtime onnx --precision int8` through the real binary: the
/// exporter writes both ONNX files, models.toml names the runtime and precision, and
/// `gist entities` (engine auto) then serves the model on ONNX Runtime. A summarizer is
/// refused for ONNX, naming the flag, and leaves the models folder as it was.
#[test]
fn models_import_for_onnx_exports_and_names_the_runtime_and_precision() {
    let src = tempfile::tempdir().unwrap();
    common::tiny_ner(src.path(), Some("B-LOC"));
    let models = tempfile::tempdir().unwrap();
    std::fs::write(
        models.path().join("models.toml"),
        "# mine\n[ner]\nname = \"old\"\npath = \"old\"\n",
    )
    .unwrap();
    let import = |task: &str| {
        common::gist(
            &[
                "models",
                "import",
                src.path().to_str().unwrap(),
                "--as",
                "tiny",
                "--task",
                task,
                "--models",
                models.path().to_str().unwrap(),
                "--runtime",
                "onnx",
                "--precision",
                "int8",
            ],
            &[],
            "",
        )
    };

    let out = import("summarize");
    let (stdout, stderr) = common::outputs(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("--runtime onnx"), "{stderr}");
    assert!(!models.path().join("tiny").exists());

    let out = import("ner");
    let (stdout, stderr) = common::outputs(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    for file in [
        "model.onnx",
        "model.int8.onnx",
        "model.onnx.data",
        "tokenizer.json",
        "vocab.txt",
    ] {
        assert!(models.path().join("tiny").join(file).is_file(), "{file}");
    }
    let manifest = std::fs::read_to_string(models.path().join("models.toml")).unwrap();
    assert!(manifest.starts_with("# mine\n"), "{manifest}");
    let parsed = Manifest::load(models.path()).unwrap();
    let ner = parsed.get(Role::Ner).unwrap();
    assert_eq!(ner.runtime(), gist::engine::manifest::Runtime::Onnx);
    assert_eq!(ner.precision(), Precision::Int8);

    let out = common::gist(
        &["entities", "--models", models.path().to_str().unwrap()],
        &[],
        "Talks in Lahore and Karachi.",
    );
    let (stdout, stderr) = common::outputs(&out);
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let labels: Vec<&str> = json["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["label"].as_str().unwrap())
        .collect();
    assert!(
        !labels.is_empty() && labels.iter().all(|l| *l == "LOC"),
        "{json}"
    );
}
