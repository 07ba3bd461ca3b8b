//! The real default sentence encoder (all-MiniLM-L6-v2, prepared by `make setup`) on the
//! Khan–Li article: key points are real sentences with exact offsets, no boilerplate.

use gist::tasks::{self, Mode, SummarizeJob};

#[test]
fn khan_li_key_points_are_clean_sentences_of_the_article() {
    let mut engine = crate::common::default_engine();
    let text = crate::common::khan_li();
    let job = SummarizeJob {
        text: text.clone(),
        mode: Mode::Auto,
        max_key_points: 5,
        generation: gist::engine::Generation::default(),
    };
    let summary = tasks::summarize::summarize(engine.as_mut(), &job).unwrap();
    assert_eq!(summary.mode, Mode::Extractive);
    assert_eq!(summary.model, "all-MiniLM-L6-v2");
    assert_eq!(summary.key_points.len(), 5);
    assert!(!summary.truncated);
    let chars: Vec<char> = text.chars().collect();
    for k in &summary.key_points {
        let span = k.span.unwrap();
        assert_eq!(&text[span.byte_start..span.byte_end], k.text);
        assert_eq!(
            chars[span.start..span.end].iter().collect::<String>(),
            k.text
        );
        for junk in ["Facebook", "WhatsApp", "date 2021", "Islamabad:"] {
            assert!(
                !k.text.contains(junk),
                "boilerplate {junk:?} in key point {:?}",
                k.text
            );
        }
        assert!(
            k.text.ends_with(['.', '”', '"']),
            "not a whole sentence: {:?}",
            k.text
        );
    }
    // The lead sentence of a news story, without its dateline, is its first key point.
    assert!(
        summary.key_points[0].text.starts_with("Pakistan Prime Minister Imran Khan and Chinese Premier Li Keqiang held telephonic talks"),
        "{:?}",
        summary.key_points[0].text
    );
    // Real embeddings: the lead is more central than the sign-off sentence about Mars.
    assert!(summary.key_points[0].score > 0.5);
}

/// The default NER model (trained by the project, merged by `make setup`) finds the
/// article's people, places and organisation, with offsets that slice the input exactly.
#[test]
fn khan_li_entities_are_found_with_exact_offsets() {
    use gist::tasks::EntitiesJob;
    let mut engine = crate::common::default_engine();
    let text = crate::common::khan_li();
    let job = EntitiesJob {
        text: text.clone(),
        min_score: 0.0,
        labels: vec![],
    };
    let found = tasks::entities::extract_entities(engine.as_mut(), &job).unwrap();
    assert_eq!(found.model, "conll03-minilm-ner");
    let chars: Vec<char> = text.chars().collect();
    for e in &found.entities {
        assert_eq!(&text[e.span.byte_start..e.span.byte_end], e.text);
        assert_eq!(
            chars[e.span.start..e.span.end].iter().collect::<String>(),
            e.text
        );
        assert!((0.0..=1.0).contains(&e.score));
    }
    for pair in found.entities.windows(2) {
        assert!(
            pair[0].span.end <= pair[1].span.start,
            "overlapping entities {pair:?}"
        );
    }
    let has = |label: &str, name: &str| {
        found
            .entities
            .iter()
            .any(|e| e.label == label && e.text == name)
    };
    for name in ["Imran Khan", "Li Keqiang", "Xi Jinping"] {
        assert!(
            has("PER", name),
            "{name} should be PER in {:?}",
            found.entities
        );
    }
    for name in [
        "Islamabad",
        "Pakistan",
        "China",
        "Xinjiang",
        "Gwadar",
        "Balochistan",
    ] {
        assert!(
            has("LOC", name),
            "{name} should be LOC in {:?}",
            found.entities
        );
    }
    assert!(
        has("ORG", "National Institute of Health"),
        "{:?}",
        found.entities
    );
    // No person, place or organisation is made of the share buttons' dateline or dates.
    assert!(!found.entities.iter().any(|e| e.text.contains("2021")));
}

/// The default models include no summarizer: ABSTRACTIVE is refused with
/// FAILED_PRECONDITION, and the message says how to get one: in the ONNX-only build, that
/// summarizers need the libtorch build.
#[test]
fn abstractive_with_the_default_models_says_how_to_get_a_summarizer() {
    let mut engine = crate::common::default_engine();
    let job = SummarizeJob {
        text: crate::common::khan_li(),
        mode: Mode::Abstractive,
        max_key_points: 3,
        generation: gist::engine::Generation::default(),
    };
    let err = tasks::summarize::summarize(engine.as_mut(), &job).unwrap_err();
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("[summarizer]"), "{status:?}");
    if cfg!(feature = "libtorch") {
        assert!(!status.message().contains("this build"), "{status:?}");
    } else {
        assert!(
            status.message().contains("libtorch") && status.message().contains("Runtimes"),
            "{status:?}"
        );
    }
}
