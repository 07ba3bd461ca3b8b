//! `text::words`: word spans are in bounds, non-empty, in order, never overlapping, and
//! never hold white space.
#![no_main]

use gist::text::words;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let chars: Vec<char> = text.chars().collect();
    let mut end = 0;
    for (start, stop) in words::spans(text) {
        assert!(start >= end && start < stop && stop <= chars.len(), "({start}, {stop}) after {end}");
        assert!(!chars[start..stop].iter().any(|c| c.is_whitespace()), "({start}, {stop})");
        end = stop;
    }
    // Every non-space character is in some word.
    let covered = words::spans(text)
        .iter()
        .map(|(a, b)| b - a)
        .sum::<usize>();
    assert_eq!(covered, chars.iter().filter(|c| !c.is_whitespace()).count());
});
