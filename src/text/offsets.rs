//! Mapping between the two offset units gist reports: Unicode code points (what rust-bert
//! and Python use) and UTF-8 bytes (what Rust, Go and C slice by).

/// Character ↔ byte offsets of one text, built once and queried many times.
#[derive(Debug, Clone)]
pub struct CharMap {
    /// `bytes[i]` is the byte offset of code point `i`; the last entry is `text.len()`.
    bytes: Vec<usize>,
}

impl CharMap {
    /// Index the code point boundaries of `text`.
    pub fn new(text: &str) -> Self {
        let mut bytes: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        bytes.push(text.len());
        CharMap { bytes }
    }

    /// Number of code points in the text.
    pub fn char_len(&self) -> usize {
        self.bytes.len() - 1
    }

    /// Byte offset of code point `char_idx`; `None` past the end.
    pub fn byte_of(&self, char_idx: usize) -> Option<usize> {
        self.bytes.get(char_idx).copied()
    }

    /// Code point index of byte offset `byte`; `None` if `byte` is not a char boundary.
    pub fn char_of(&self, byte: usize) -> Option<usize> {
        self.bytes.binary_search(&byte).ok()
    }
}

/// A half-open span of a text, in both units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Span {
    /// Start, in code points.
    pub start: usize,
    /// End (exclusive), in code points.
    pub end: usize,
    /// Start, in UTF-8 bytes.
    pub byte_start: usize,
    /// End (exclusive), in UTF-8 bytes.
    pub byte_end: usize,
}

impl Span {
    /// The span of bytes `[byte_start, byte_end)`; `None` unless both are char boundaries.
    pub fn from_bytes(map: &CharMap, byte_start: usize, byte_end: usize) -> Option<Span> {
        Some(Span {
            start: map.char_of(byte_start)?,
            end: map.char_of(byte_end)?,
            byte_start,
            byte_end,
        })
    }

    /// The span of code points `[start, end)`; `None` past the end of the text.
    pub fn from_chars(map: &CharMap, start: usize, end: usize) -> Option<Span> {
        Some(Span {
            start,
            end,
            byte_start: map.byte_of(start)?,
            byte_end: map.byte_of(end)?,
        })
    }

    /// The spanned text.
    pub fn slice<'a>(&self, text: &'a str) -> &'a str {
        &text[self.byte_start..self.byte_end]
    }

    /// The same span with white space at both ends removed (may become empty).
    pub fn trim(&self, text: &str) -> Span {
        let s = self.slice(text);
        let lead = s.len() - s.trim_start().len();
        let trail = s.len() - s.trim_end().len();
        if lead == s.len() {
            return Span {
                start: self.start,
                end: self.start,
                byte_start: self.byte_start,
                byte_end: self.byte_start,
            };
        }
        let lead_chars = s[..lead].chars().count();
        let trail_chars = s[s.len() - trail..].chars().count();
        Span {
            start: self.start + lead_chars,
            end: self.end - trail_chars,
            byte_start: self.byte_start + lead,
            byte_end: self.byte_end - trail,
        }
    }

    /// True when the span covers nothing.
    pub fn is_empty(&self) -> bool {
        self.byte_start == self.byte_end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_and_byte_offsets_agree_on_every_script() {
        // ASCII, curly quotes (3 bytes), emoji (4 bytes), CJK (3 bytes), combining mark.
        let cases = [
            "plain ASCII",
            "“quoted” text’s",
            "rocket 🚀 launch 👩‍🚀",
            "李克强 and 伊姆兰·汗",
            "cafe\u{301} noir",
            "",
        ];
        for text in cases {
            let map = CharMap::new(text);
            assert_eq!(map.char_len(), text.chars().count(), "{text:?}");
            for (i, (b, _)) in text.char_indices().enumerate() {
                assert_eq!(map.byte_of(i), Some(b), "{text:?} char {i}");
                assert_eq!(map.char_of(b), Some(i), "{text:?} byte {b}");
            }
            assert_eq!(map.byte_of(map.char_len()), Some(text.len()));
            assert_eq!(map.byte_of(map.char_len() + 1), None);
        }
    }

    #[test]
    fn byte_inside_a_code_point_is_rejected() {
        let map = CharMap::new("a“b");
        assert_eq!(map.char_of(1), Some(1));
        assert_eq!(map.char_of(2), None);
        assert_eq!(map.char_of(3), None);
        assert_eq!(map.char_of(4), Some(2));
    }

    #[test]
    fn spans_slice_the_same_text_in_both_units() {
        let text = "Xi 习近平 met “Khan” 🚀 today";
        let map = CharMap::new(text);
        let span = Span::from_chars(&map, 3, 6).unwrap();
        assert_eq!(span.slice(text), "习近平");
        assert_eq!(
            span,
            Span::from_bytes(&map, span.byte_start, span.byte_end).unwrap()
        );
        let quoted = Span::from_chars(&map, 11, 17).unwrap();
        assert_eq!(quoted.slice(text), "“Khan”");
    }

    #[test]
    fn trim_moves_both_units() {
        let text = "  \u{3000}“Hi” \n";
        let map = CharMap::new(text);
        let all = Span::from_chars(&map, 0, map.char_len()).unwrap();
        let t = all.trim(text);
        assert_eq!(t.slice(text), "“Hi”");
        assert_eq!((t.start, t.end), (3, 7));
        let blank = Span::from_chars(&map, 0, 2).unwrap().trim(text);
        assert!(blank.is_empty());
    }
}
