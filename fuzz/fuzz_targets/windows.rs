//! `text::windows::pieces`: pieces are char-aligned slices of the text, their offsets agree,
//! their keep ranges tile the text, and each keeps only what lies inside it.
#![no_main]

use arbitrary::Arbitrary;
use gist::text::windows;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    text: String,
    pack: u8,
    window: u8,
    overlap: u8,
    context: u8,
}

/// A stand-in tokenizer: one token per word plus one per 4 characters of it.
fn count(text: &str) -> usize {
    text.split_whitespace().map(|w| 1 + w.chars().count() / 4).sum::<usize>()
}

fuzz_target!(|input: Input| {
    let text = input.text.as_str();
    let window = usize::from(input.window) + 2;
    let pack = usize::from(input.pack);
    let overlap = usize::from(input.overlap) % window;
    let context = usize::from(input.context) % 64;
    let pieces = windows::pieces(text, pack, window, overlap, context, &count);
    let n = text.chars().count();
    let mut kept = 0;
    for p in &pieces {
        let slice = text.get(p.bytes.clone()).expect("piece bytes are char boundaries");
        assert_eq!(text[..p.bytes.start].chars().count(), p.char_offset, "{p:?}");
        let end = p.char_offset + slice.chars().count();
        assert_eq!(p.keep.start, kept, "keep ranges tile the text: {p:?}");
        assert!(p.keep.start <= p.keep.end && p.keep.end <= n, "{p:?}");
        // A piece reports the words of its own text only: what it keeps lies inside it.
        assert!(p.keep.is_empty() || (p.keep.start >= p.char_offset && p.keep.end <= end), "{p:?}");
        kept = p.keep.end;
    }
    if !pieces.is_empty() {
        assert_eq!(kept, n, "keep ranges cover the text: {pieces:?}");
    }
});
