//! The real rust-bert pipelines on tiny models the tests build themselves (random weights,
//! small vocabularies). They prove loading, batching and offsets, not quality.

use gist::engine::manifest::Manifest;
use gist::engine::Engine;
use gist::engine::Role;
use gist::tasks::{self, Mode, SummarizeJob};

fn ner_engine(dir: &std::path::Path, forced: Option<&str>) -> Box<dyn Engine> {
    let ner = crate::common::tiny_ner(dir, forced);
    crate::common::engine(&Manifest::one(Role::Ner, ner))
}

/// The entities the engine's word tags make, merged (the model pipeline's words and
/// offsets, before the entities task's text rules: with a forced label, every word is an
/// entity, lower-case ones too).
fn entities(engine: &mut dyn Engine, text: &str) -> Vec<gist::text::entities::Entity> {
    let tagged = engine.tag(&[text]).unwrap().pop().unwrap();
    gist::text::entities::merge(text, &tagged.words)
}

#[test]
fn token_classifier_offsets_are_exact_on_every_script() {
    let dir = tempfile::tempdir().unwrap();
    // Every sub-token is tagged B-LOC, so every word (CoNLL-style words: punctuation and a
    // possessive 's are words of their own, a CJK run is one word) comes back as an entity.
    let mut engine = ner_engine(dir.path(), Some("B-LOC"));
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
fn inside_tags_merge_into_one_entity_per_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = ner_engine(dir.path(), Some("I-PER"));
    let got = entities(engine.as_mut(), "Imran Khan met Li Keqiang");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text, "Imran Khan met Li Keqiang");
    assert_eq!(got[0].label, "PER");
}

#[test]
fn long_texts_are_tagged_completely_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = ner_engine(dir.path(), Some("B-ORG"));
    // About 3,000 words: far beyond the 128-position window of the tiny model and beyond
    // rust-bert's own batch size in windows, so piece cutting and batching both matter.
    let sentence = "Khan met Li in the capital of China and Pakistan said 2021.";
    let text = vec![sentence; 250].join(" ");
    let got = entities(engine.as_mut(), &text);
    let words_per_sentence = 13; // 12 words + the full stop
    assert_eq!(got.len(), 250 * words_per_sentence);
    for pair in got.windows(2) {
        assert!(
            pair[0].span.end <= pair[1].span.start,
            "entities overlap or repeat: {pair:?}"
        );
    }
    for e in &got {
        assert_eq!(&text[e.span.byte_start..e.span.byte_end], e.text);
    }
    assert_eq!(got.last().unwrap().span.byte_end, text.len());
}

#[test]
fn random_weights_still_give_well_formed_entities() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = ner_engine(dir.path(), None);
    let text = crate::common::khan_li();
    let got = entities(engine.as_mut(), &text);
    let labels = ["PER", "ORG", "LOC", "MISC"];
    for e in &got {
        assert!(labels.contains(&e.label.as_str()), "{}", e.label);
        assert!((0.0..=1.0).contains(&e.score));
        assert_eq!(&text[e.span.byte_start..e.span.byte_end], e.text);
    }
}

#[test]
fn sentence_encoder_embeds_in_batches_independent_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let encoder = crate::common::tiny_encoder(dir.path());
    let mut engine = crate::common::engine(&Manifest::one(Role::Encoder, encoder));
    assert_eq!(
        engine.info().get(Role::Encoder).unwrap().max_input_tokens,
        64
    );
    let sentences = [
        "Khan met Li.",
        "The prime minister of Pakistan said the talks went well and will continue.",
        "China",
    ];
    let together = engine.embed(&sentences).unwrap();
    assert_eq!(together.len(), 3);
    for (s, e) in sentences.iter().zip(&together) {
        assert_eq!(e.vector.len(), 32);
        let norm: f32 = e.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        // Padding in a batch must not change a sentence's embedding.
        let alone = engine.embed(&[s]).unwrap().pop().unwrap();
        for (a, b) in alone.vector.iter().zip(&e.vector) {
            assert!((a - b).abs() < 1e-4, "{s}: {a} vs {b}");
        }
    }
    assert!(!together[0].truncated);
    let long = "khan ".repeat(100);
    let e = engine.embed(&[long.as_str()]).unwrap().pop().unwrap();
    assert!(e.truncated && e.tokens > 64);
}

#[test]
fn extractive_key_points_with_a_real_encoder_slice_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let encoder = crate::common::tiny_encoder(dir.path());
    let mut engine = crate::common::engine(&Manifest::one(Role::Encoder, encoder));
    let text = crate::common::khan_li();
    let job = SummarizeJob {
        text: text.clone(),
        mode: Mode::Auto,
        max_key_points: 4,
        generation: gist::engine::Generation::default(),
    };
    let summary = tasks::summarize::summarize(engine.as_mut(), &job).unwrap();
    assert_eq!(summary.mode, Mode::Extractive);
    assert_eq!(summary.key_points.len(), 4);
    for k in &summary.key_points {
        let span = k.span.unwrap();
        assert_eq!(&text[span.byte_start..span.byte_end], k.text);
    }
}

#[test]
fn bart_summarizer_generates_with_request_options() {
    let dir = tempfile::tempdir().unwrap();
    let bart = crate::common::tiny_bart(dir.path());
    let mut engine = crate::common::engine(&Manifest::one(Role::Summarizer, bart));
    let info = engine.info().get(Role::Summarizer).cloned().unwrap();
    assert_eq!(
        (info.architecture.as_str(), info.max_input_tokens),
        ("bart", 256)
    );
    let options = gist::engine::Generation {
        min_length: 4,
        max_length: 8,
        num_beams: 2,
        length_penalty: 1.0,
        no_repeat_ngram_size: 0,
    };
    let out = engine
        .generate(
            &[
                "Imran Khan met Li Keqiang.",
                "A second, longer article about trade and vaccines.",
            ],
            &options,
        )
        .unwrap();
    assert_eq!(out.len(), 2);
    // Byte-level BPE with no merges: one token per byte, plus the start token.
    assert_eq!(out[0].input_tokens, "Imran Khan met Li Keqiang.".len() + 1);
    assert!(!out[0].truncated);
    for generated in &out {
        // Lengths count the given decoder start token, which output_tokens leaves out.
        assert!(
            (options.min_length - 1..options.max_length).contains(&generated.output_tokens),
            "{} tokens generated for lengths {}..={}",
            generated.output_tokens,
            options.min_length,
            options.max_length
        );
    }
    // min = max fixes the work, whatever the random weights predict (the benchmark's rule).
    let fixed = gist::engine::Generation {
        min_length: 6,
        max_length: 6,
        ..options
    };
    let out = engine
        .generate(&["Imran Khan met Li Keqiang."], &fixed)
        .unwrap();
    assert_eq!(out[0].output_tokens, 5);
    let long = "word ".repeat(100);
    let out = engine.generate(&[long.as_str()], &options).unwrap();
    assert!(
        out[0].truncated,
        "a 500-token input exceeds the 256-position window"
    );

    let job = SummarizeJob {
        text: crate::common::khan_li(),
        mode: Mode::Auto,
        max_key_points: 5,
        generation: options,
    };
    let summary = tasks::summarize::summarize(engine.as_mut(), &job).unwrap();
    assert_eq!(summary.mode, Mode::Abstractive);
    assert_eq!(summary.model, "tiny-bart");
    assert!(summary.truncated);
}

/// The token ids the tiny BART generates for [`GENERATION_INPUTS`], recorded with rust-bert
/// 0.23.0 as published, before patches/rust-bert (its PATCH.md): the patch must not change a
/// token. Per beam count, the ids of each input (decoder start, forced BOS, ..., forced EOS).
/// At 4 beams the third input's best sequence differs from the greedy one, so the beams were
/// reordered along the way.
const RECORDED_GENERATIONS: &[(i64, &[&[i64]])] = &[
    (
        1,
        &[
            &[
                2, 0, 259, 259, 147, 147, 147, 210, 210, 233, 147, 147, 147, 2,
            ],
            &[2, 0, 208, 94, 94, 94, 259, 147, 147, 233, 147, 147, 147, 2],
            &[
                2, 0, 259, 259, 259, 259, 147, 165, 165, 147, 147, 233, 94, 2,
            ],
        ],
    ),
    (
        4,
        &[
            &[
                2, 0, 259, 259, 147, 147, 147, 210, 210, 233, 147, 147, 147, 2,
            ],
            &[
                2, 0, 259, 259, 147, 147, 147, 210, 210, 233, 147, 147, 147, 2,
            ],
            &[
                2, 0, 259, 147, 147, 147, 147, 147, 147, 210, 259, 147, 147, 2,
            ],
        ],
    ),
];

const GENERATION_INPUTS: [&str; 3] = [
    "Imran Khan met Li Keqiang.",
    "A second, longer article about trade, vaccines and the corridor between the two.",
    "Short.",
];

#[test]
fn bart_generates_the_tokens_rust_bert_0_23_0_generated_at_1_and_4_beams() {
    use rust_bert::bart::BartGenerator;
    use rust_bert::pipelines::common::{ModelResource, ModelType};
    use rust_bert::pipelines::generation_utils::{
        GenerateConfig, GenerateOptions, LanguageGenerator,
    };
    use rust_bert::pipelines::summarization::SummarizationConfig;
    use rust_bert::resources::LocalResource;

    let dir = tempfile::tempdir().unwrap();
    crate::common::tiny_bart(dir.path());
    let resource = |file: &str| LocalResource::from(dir.path().join(file));
    let config = SummarizationConfig::new(
        ModelType::Bart,
        ModelResource::Torch(Box::new(resource("model.safetensors"))),
        resource("config.json"),
        resource("vocab.json"),
        Some(resource("merges.txt")),
    );
    // The ids themselves, not decoded text: the random model emits bytes that are not UTF-8.
    let generator = BartGenerator::new(GenerateConfig::from(config)).unwrap();
    for (num_beams, want) in RECORDED_GENERATIONS {
        let options = GenerateOptions {
            min_length: Some(2),
            max_length: Some(14),
            num_beams: Some(*num_beams),
            length_penalty: Some(1.0),
            no_repeat_ngram_size: Some(0),
            early_stopping: Some(true),
            ..Default::default()
        };
        let got: Vec<Vec<i64>> = generator
            .generate_indices(Some(&GENERATION_INPUTS), Some(options))
            .unwrap()
            .into_iter()
            .map(|o| o.indices)
            .collect();
        assert_eq!(got, *want, "{num_beams} beams");
    }
}

#[test]
fn broken_model_folders_fail_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let spec = crate::common::tiny_ner(dir.path(), None);
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let err = gist::engine::rust_bert::load(
        &Manifest::one(Role::Ner, spec.clone()),
        &crate::common::cpu(),
    )
    .err()
    .unwrap();
    let chain = gist::error::error_chain(&err);
    assert!(
        chain.contains("tiny-ner") && chain.contains("no model.safetensors"),
        "{chain}"
    );

    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "gpt2"}"#).unwrap();
    let err = gist::engine::rust_bert::load(&Manifest::one(Role::Ner, spec), &crate::common::cpu())
        .err()
        .unwrap();
    assert!(gist::error::error_chain(&err).contains("\"gpt2\" are not supported"));
}

/// rust-bert reads a model.safetensors one tensor at a time (patches/rust-bert, PATCH.md,
/// "Loading"). A file cut short, or one without a tensor the model has, fails naming the
/// file and what is wrong; it never leaves a variable with its random initial values.
#[test]
fn safetensors_cut_short_or_missing_a_tensor_fail_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let spec = crate::common::tiny_ner(dir.path(), Some("B-PER"));
    let file = dir.path().join("model.safetensors");
    let whole = std::fs::read(&file).unwrap();
    let load = || {
        gist::engine::rust_bert::load(
            &Manifest::one(Role::Ner, spec.clone()),
            &crate::common::cpu(),
        )
        .map(|_| ())
        .map_err(|e| gist::error::error_chain(&e))
    };
    load().expect("the whole file loads");

    std::fs::write(&file, &whole[..whole.len() - 100]).unwrap();
    let chain = load().expect_err("a file cut short");
    assert!(
        chain.contains("model.safetensors") && chain.contains("within the file"),
        "{chain}"
    );

    std::fs::write(&file, &whole).unwrap();
    let kept: Vec<(String, tch::Tensor)> = tch::Tensor::read_safetensors(&file)
        .unwrap()
        .into_iter()
        .filter(|(name, _)| name != "classifier.bias")
        .collect();
    tch::Tensor::write_safetensors(&kept, &file).unwrap();
    let chain = load().expect_err("a file without classifier.bias");
    assert!(
        chain.contains("classifier.bias") && chain.contains("model.safetensors"),
        "{chain}"
    );
}

/// 5,000 words with no sentence punctuation: one overlong "sentence" that must be cut into
/// overlapping windows. Every word is reported exactly once, in order, with exact offsets.
#[test]
fn overlong_sentences_are_covered_by_overlapping_windows_without_duplicates() {
    let words: Vec<String> = (0..5000)
        .map(|i| ["khan", "china", "li", "pakistan", "minister"][i % 5].to_string())
        .collect();
    let text = words.join(" ");

    let dir = tempfile::tempdir().unwrap();
    let mut engine = ner_engine(dir.path(), Some("B-LOC"));
    let got = entities(engine.as_mut(), &text);
    assert_eq!(got.len(), 5000);
    let mut pos = 0;
    for (e, w) in got.iter().zip(&words) {
        assert_eq!(&e.text, w);
        assert_eq!(e.span.byte_start, pos, "word {w} at the wrong place");
        pos = e.span.byte_end + 1;
    }

    // With every word tagged I-PER, the windows' words must join into one entity: a
    // duplicated or missing word at a window boundary would split it.
    let dir = tempfile::tempdir().unwrap();
    let mut engine = ner_engine(dir.path(), Some("I-PER"));
    let got = entities(engine.as_mut(), &text);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text, text);
}
