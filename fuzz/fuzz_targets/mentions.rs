//! `text::mentions::find`: every mention slices the source, whole words, in order, never
//! overlapping.
#![no_main]

use arbitrary::Arbitrary;
use gist::text::mentions;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    source: String,
    name: String,
}

fuzz_target!(|input: Input| {
    let Input { source, name } = input;
    let chars: Vec<char> = source.chars().collect();
    let mut end = 0;
    for span in mentions::find(&source, &name) {
        assert!(span.start >= end && span.start < span.end, "{span:?} after {end}");
        let text: String = chars[span.start..span.end].iter().collect();
        assert_eq!(span.slice(&source), text);
        end = span.end;
    }
});
