//! `text::sentences`: every sentence and furniture span slices the input, in all three
//! units, in document order, without overlap; nothing panics.
#![no_main]

use gist::text::offsets::Span;
use gist::text::sentences;
use libfuzzer_sys::fuzz_target;

fn check(text: &str, span: &Span) {
    let chars: String = text.chars().skip(span.start).take(span.end - span.start).collect();
    assert_eq!(span.slice(text), chars, "{span:?}");
    let utf16: Vec<u16> = text.encode_utf16().collect();
    let units = String::from_utf16(&utf16[span.utf16_start..span.utf16_end]).unwrap();
    assert_eq!(units, chars, "{span:?}");
}

fuzz_target!(|text: &str| {
    let mut end = 0;
    for (i, s) in sentences::split(text).iter().enumerate() {
        assert_eq!(s.index, i);
        assert!(s.span.start >= end && s.span.start < s.span.end, "{s:?} after {end}");
        check(text, &s.span);
        // Trimmed: no sentence starts or ends with white space.
        let slice = s.span.slice(text);
        assert_eq!(slice, slice.trim(), "{s:?}");
        end = s.span.end;
    }
    let mut end = 0;
    for span in sentences::furniture(text) {
        assert!(span.start >= end, "{span:?}");
        check(text, &span);
        end = span.end;
    }
    let _ = sentences::dateline_len(text);
    let _ = sentences::is_boilerplate(text);
});
