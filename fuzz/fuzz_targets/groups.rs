//! `text::groups::group`: every entity is in exactly one group, mentions ascend, names are
//! mentions' texts, labels are mentions' labels, salience is in [0, 1] and groups come by
//! salience.
#![no_main]

use arbitrary::Arbitrary;
use gist::text::entities::{self, WordTag};
use gist::text::groups;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    text: String,
    /// One label choice per word of the text.
    labels: Vec<u8>,
}

const LABELS: [&str; 7] = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "B-MISC"];

fuzz_target!(|input: Input| {
    let text = input.text.as_str();
    // Tag the text's own words, so that entities look like a model's.
    let words: Vec<WordTag> = gist::text::words::spans(text)
        .into_iter()
        .enumerate()
        .map(|(i, (start, end))| WordTag {
            start,
            end,
            label: LABELS[usize::from(input.labels.get(i).copied().unwrap_or(0)) % LABELS.len()]
                .to_string(),
            score: 0.9,
        })
        .collect();
    let found = entities::capitalised(text, entities::merge(text, &words));
    let groups = groups::group(text, &found);
    let mut seen = vec![0usize; found.len()];
    let mut last = f32::INFINITY;
    for g in &groups {
        assert!(!g.mentions.is_empty());
        assert!(g.mentions.windows(2).all(|w| w[0] < w[1]), "{g:?}");
        assert!((0.0..=1.0).contains(&g.salience), "{g:?}");
        assert!(g.salience <= last, "groups by salience");
        last = g.salience;
        assert!(g.mentions.iter().any(|&m| found[m].text == g.name), "{g:?}");
        assert!(g.mentions.iter().any(|&m| found[m].label == g.label), "{g:?}");
        for &m in &g.mentions {
            seen[m] += 1;
        }
    }
    assert!(seen.iter().all(|&n| n == 1), "every entity in exactly one group: {seen:?}");
    for m in ["", text, "U.S.", "the NIH's"] {
        let _ = groups::normalise(m);
        let _ = groups::acronym(m);
        let _ = groups::initials(m);
    }
});
