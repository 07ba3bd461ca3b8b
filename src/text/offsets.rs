//! Mapping between the three offset units gist reports: Unicode code points (what rust-bert
//! and Python use), UTF-8 bytes (what Rust, Go and C slice by) and UTF-16 code units (what
//! JavaScript, Java and C# strings index by: a code point above U+FFFF, such as most
//! emoji, is two of them).

/// Character ↔ byte ↔ UTF-16 offsets of one text, built once and queried many times.
#[derive(Debug, Clone)]
pub struct CharMap {
    /// `bytes[i]` is the byte offset of code point `i`; the last entry is `text.len()`.
    bytes: Vec<usize>,
    /// `utf16[i]` is the UTF-16 offset of code point `i`; the last entry is the text's
    /// length in UTF-16 code units.
    utf16: Vec<usize>,
}

impl CharMap {
    /// Index the code point boundaries of `text`.
    pub fn new(text: &str) -> Self {
        let mut bytes = Vec::with_capacity(text.len() + 1);
        let mut utf16 = Vec::with_capacity(text.len() + 1);
        let mut units = 0;
        for (b, c) in text.char_indices() {
            bytes.push(b);
            utf16.push(units);
            units += c.len_utf16();
        }
        bytes.push(text.len());
        utf16.push(units);
        CharMap { bytes, utf16 }
    }

    /// UTF-16 offset of code point `char_idx`; `None` past the end.
    pub fn utf16_of(&self, char_idx: usize) -> Option<usize> {
        self.utf16.get(char_idx).copied()
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

/// A half-open span of a text, in all three units.
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
    /// Start, in UTF-16 code units.
    pub utf16_start: usize,
    /// End (exclusive), in UTF-16 code units.
    pub utf16_end: usize,
}

impl Span {
    /// The span of bytes `[byte_start, byte_end)`; `None` unless both are char boundaries.
    pub fn from_bytes(map: &CharMap, byte_start: usize, byte_end: usize) -> Option<Span> {
        let (start, end) = (map.char_of(byte_start)?, map.char_of(byte_end)?);
        Some(Span {
            start,
            end,
            byte_start,
            byte_end,
            utf16_start: map.utf16_of(start)?,
            utf16_end: map.utf16_of(end)?,
        })
    }

    /// The span of code points `[start, end)`; `None` past the end of the text.
    pub fn from_chars(map: &CharMap, start: usize, end: usize) -> Option<Span> {
        Some(Span {
            start,
            end,
            byte_start: map.byte_of(start)?,
            byte_end: map.byte_of(end)?,
            utf16_start: map.utf16_of(start)?,
            utf16_end: map.utf16_of(end)?,
        })
    }

    /// This span's start joined with `other`'s end (both of the same text).
    pub fn to(self, other: Span) -> Span {
        Span {
            end: other.end,
            byte_end: other.byte_end,
            utf16_end: other.utf16_end,
            ..self
        }
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
                utf16_start: self.utf16_start,
                utf16_end: self.utf16_start,
            };
        }
        let (head, tail) = (&s[..lead], &s[s.len() - trail..]);
        Span {
            start: self.start + head.chars().count(),
            end: self.end - tail.chars().count(),
            byte_start: self.byte_start + lead,
            byte_end: self.byte_end - trail,
            utf16_start: self.utf16_start + head.encode_utf16().count(),
            utf16_end: self.utf16_end - tail.encode_utf16().count(),
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

    /// The UTF-16 code units of `text` in `[start, end)`, as JavaScript's
    /// `String.prototype.slice` takes them.
    fn utf16_slice(text: &str, start: usize, end: usize) -> String {
        let units: Vec<u16> = text.encode_utf16().collect();
        String::from_utf16(&units[start..end]).expect("a span never splits a surrogate pair")
    }

    #[test]
    fn utf16_offsets_count_astral_code_points_twice() {
        // (text, code point, its UTF-16 offset): emoji and other astral characters (U+1F680
        // rocket, U+1D400 math bold A, U+20BB7 a CJK extension B ideograph) are surrogate
        // pairs; BMP characters (é, “, 李) are one unit whatever their UTF-8 length.
        let cases: [(&str, usize, usize); 8] = [
            ("ab", 2, 2),
            ("🚀x", 1, 2),
            ("🚀x", 2, 3),
            ("a👩‍🚀b", 4, 6),
            ("𝐀𝐁", 1, 2),
            ("𠮷野家", 1, 2),
            ("“é”李", 4, 4),
            ("", 0, 0),
        ];
        for (text, char_idx, want) in cases {
            let map = CharMap::new(text);
            assert_eq!(
                map.utf16_of(char_idx),
                Some(want),
                "{text:?} char {char_idx}"
            );
            assert_eq!(
                map.utf16_of(map.char_len()),
                Some(text.encode_utf16().count()),
                "{text:?}"
            );
        }
        assert_eq!(CharMap::new("🚀").utf16_of(2), None);
    }

    #[test]
    fn spans_slice_the_same_text_in_all_three_units() {
        let text = "🚀 Imran Khan 👩‍🚀 met 𠮷 Li Keqiang in “Islamabad” 🇵🇰.";
        let map = CharMap::new(text);
        for name in ["Imran Khan", "Li Keqiang", "“Islamabad”", "🇵🇰", "𠮷", "👩‍🚀"]
        {
            let byte_start = text.find(name).unwrap();
            let span = Span::from_bytes(&map, byte_start, byte_start + name.len()).unwrap();
            assert_eq!(span.slice(text), name);
            let chars: String = text
                .chars()
                .skip(span.start)
                .take(span.end - span.start)
                .collect();
            assert_eq!(chars, name);
            assert_eq!(utf16_slice(text, span.utf16_start, span.utf16_end), name);
            assert_eq!(Span::from_chars(&map, span.start, span.end), Some(span));
        }
        // After one astral code point, UTF-16 offsets run one ahead of code points; before
        // "Li" there are four (🚀, the two astral halves of 👩‍🚀 around a BMP joiner, 𠮷).
        let khan = Span::from_bytes(&map, text.find("Imran").unwrap(), text.find(" 👩").unwrap());
        let khan = khan.unwrap();
        assert_eq!((khan.start, khan.utf16_start), (2, 3));
        let li = text.find("Li").unwrap();
        let li = Span::from_bytes(&map, li, li + 2).unwrap();
        assert_eq!(li.utf16_start - li.start, 4);
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
        assert_eq!((t.utf16_start, t.utf16_end), (3, 7));
        let blank = Span::from_chars(&map, 0, 2).unwrap().trim(text);
        assert!(blank.is_empty());
        let text = " 🚀 lift-off 🚀 ";
        let map = CharMap::new(text);
        let t = Span::from_chars(&map, 0, map.char_len())
            .unwrap()
            .trim(text);
        assert_eq!((t.start, t.end, t.utf16_start, t.utf16_end), (1, 13, 1, 15));
        assert_eq!(
            utf16_slice(text, t.utf16_start, t.utf16_end),
            "🚀 lift-off 🚀"
        );
    }

    #[test]
    fn spans_join_in_every_unit() {
        let text = "COVID-19 🦠-free";
        let map = CharMap::new(text);
        let (a, b) = (
            Span::from_chars(&map, 0, 5).unwrap(),
            Span::from_chars(&map, 9, 15).unwrap(),
        );
        let joined = a.to(b);
        assert_eq!(joined, Span::from_chars(&map, 0, 15).unwrap());
        assert_eq!(
            utf16_slice(text, joined.utf16_start, joined.utf16_end),
            text
        );
    }
}
