//! `text::entities`: merging tagged words (in order, offsets anywhere, labels any string) gives
//! entities whose text is exactly the slice of their span, in order, never overlapping;
//! the capitalisation rule only shrinks or drops them.
#![no_main]

use arbitrary::Arbitrary;
use gist::text::entities::{self, WordTag};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    text: String,
    words: Vec<(u16, u16, u8, f32)>,
}

const LABELS: [&str; 8] = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-MISC", "weird"];

fuzz_target!(|input: Input| {
    let text = input.text.as_str();
    // Words in input order, never overlapping (what every backend gives), with any gaps,
    // lengths (empty ones too) and offsets past the end of the text.
    let mut at = 0usize;
    let words: Vec<WordTag> = input
        .words
        .iter()
        .map(|&(gap, len, label, score)| {
            let start = at + usize::from(gap % 64);
            at = start + usize::from(len % 64);
            WordTag {
                start,
                end: at,
                label: LABELS[usize::from(label) % LABELS.len()].to_string(),
                score,
            }
        })
        .collect();
    let merged = entities::merge(text, &words);
    let check = |list: &[entities::Entity]| {
        let mut end = 0;
        for e in list {
            assert!(e.span.start >= end && e.span.start < e.span.end, "{e:?}");
            assert_eq!(e.span.slice(text), e.text, "{e:?}");
            assert!(!e.label.is_empty());
            end = e.span.end;
        }
    };
    check(&merged);
    let kept = entities::capitalised(text, merged.clone());
    check(&kept);
    for e in &kept {
        assert!(
            merged.iter().any(|m| m.span.start <= e.span.start && e.span.end <= m.span.end),
            "{e:?} is inside no merged entity"
        );
    }
});
