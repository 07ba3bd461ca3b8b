//! `text::offsets`: the three units agree at every code point, and spans built from bytes
//! and from code points are the same span.
#![no_main]

use gist::text::offsets::{CharMap, Span};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let map = CharMap::new(text);
    let n = text.chars().count();
    assert_eq!(map.char_len(), n);
    let mut byte = 0;
    let mut units = 0;
    for (i, c) in text.chars().chain(std::iter::once('\0')).enumerate() {
        assert_eq!(map.byte_of(i), Some(byte), "byte of {i}");
        assert_eq!(map.utf16_of(i), Some(units), "utf16 of {i}");
        assert_eq!(map.char_of(byte), Some(i), "char of byte {byte}");
        if i == n {
            break;
        }
        byte += c.len_utf8();
        units += c.len_utf16();
    }
    assert_eq!(map.byte_of(n + 1), None);
    // Inside a multi-byte character there is no code point.
    for b in 0..text.len() {
        assert_eq!(map.char_of(b).is_some(), text.is_char_boundary(b), "byte {b}");
    }
    // Spans: the same from either unit, slicing what they say, trimming within themselves.
    for start in (0..=n).step_by(1 + n / 8) {
        for end in (start..=n).step_by(1 + n / 8) {
            let span = Span::from_chars(&map, start, end).unwrap();
            let same = Span::from_bytes(&map, span.byte_start, span.byte_end).unwrap();
            assert_eq!(span, same);
            let chars: String = text.chars().skip(start).take(end - start).collect();
            assert_eq!(span.slice(text), chars);
            let trimmed = span.trim(text);
            assert!(trimmed.start >= span.start && trimmed.end <= span.end, "{trimmed:?}");
            assert_eq!(trimmed.slice(text), chars.trim());
        }
    }
    assert!(Span::from_chars(&map, 0, n + 1).is_none());
});
