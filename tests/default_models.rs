//! The real default sentence encoder (all-MiniLM-L6-v2, prepared by `make setup`) on the
//! Khan–Li article: key points are real sentences with exact offsets, no boilerplate.

mod common;

use gist::manifest::Manifest;
use gist::tasks::{self, Mode, SummarizeJob};

#[test]
fn khan_li_key_points_are_clean_sentences_of_the_article() {
    let manifest = Manifest::load(&common::default_models()).unwrap();
    let mut engine = common::engine(&manifest);
    let text = common::khan_li();
    let job = SummarizeJob {
        text: text.clone(),
        mode: Mode::Auto,
        max_key_points: 5,
        generation: gist::api::DEFAULT_GENERATION,
    };
    let summary = tasks::summarize(engine.as_mut(), &job).unwrap();
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
