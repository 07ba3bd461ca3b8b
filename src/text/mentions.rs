//! Where a name from a summary is mentioned in the source: the faithfulness check of
//! Analyze. A summary entity is supported when its words occur in the source as whole
//! words — "Khan" is supported by "Imran Khan" — first matching case exactly, then
//! ignoring case. Curly apostrophes and quotes match straight ones, and runs of white
//! space match any white space.

use super::offsets::{CharMap, Span};

/// Every whole-word occurrence of `name` in `source`, in document order.
pub fn find(source: &str, name: &str) -> Vec<Span> {
    let words: Vec<String> = name.split_whitespace().map(fold_quotes).collect();
    if words.is_empty() {
        return Vec::new();
    }
    let exact = occurrences(source, &words, false);
    if !exact.is_empty() {
        return exact;
    }
    occurrences(source, &words, true)
}

fn fold_quotes(word: &str) -> String {
    word.chars().map(fold_char).collect()
}

fn fold_char(c: char) -> char {
    match c {
        '\u{2018}' | '\u{2019}' | '\u{02BC}' => '\'',
        '\u{201C}' | '\u{201D}' => '"',
        other => other,
    }
}

fn same(a: char, b: char, ignore_case: bool) -> bool {
    let (a, b) = (fold_char(a), fold_char(b));
    a == b || (ignore_case && a.to_lowercase().eq(b.to_lowercase()))
}

/// Byte offsets of whitespace-separated tokens of `source`.
fn tokens(source: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in source.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, source.len()));
    }
    out
}

/// Does `word` occur in `token` at `at` (bytes), bounded by non-alphanumerics? Returns the
/// byte end.
fn match_word(token: &str, at: usize, word: &str, ignore_case: bool) -> Option<usize> {
    let mut chars = token[at..].char_indices();
    let mut end = at;
    for w in word.chars() {
        let (i, c) = chars.next()?;
        if !same(c, w, ignore_case) {
            return None;
        }
        end = at + i + c.len_utf8();
    }
    Some(end)
}

fn occurrences(source: &str, words: &[String], ignore_case: bool) -> Vec<Span> {
    let map = CharMap::new(source);
    let toks = tokens(source);
    let is_word_char = |s: &str, byte: usize, before: bool| {
        if before {
            s[..byte]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric)
        } else {
            s[byte..].chars().next().is_some_and(char::is_alphanumeric)
        }
    };
    let mut out = Vec::new();
    for t in 0..toks.len() {
        let (ts, te) = toks[t];
        let first = &source[ts..te];
        // The first word may start anywhere in its token ("(Khan", "‘Khan").
        for (offset, _) in first.char_indices() {
            if is_word_char(first, offset, true) {
                continue;
            }
            let Some(first_end) = match_word(first, offset, &words[0], ignore_case) else {
                continue;
            };
            let mut end = ts + first_end;
            let mut ok = true;
            let mut token_end = te;
            for (k, word) in words.iter().enumerate().skip(1) {
                // Each later word must end its predecessor's token and start the next one.
                if end != token_end || t + k >= toks.len() {
                    ok = false;
                    break;
                }
                let (ns, ne) = toks[t + k];
                match match_word(&source[ns..ne], 0, word, ignore_case) {
                    Some(e) => {
                        end = ns + e;
                        token_end = ne;
                    }
                    None => {
                        ok = false;
                        break;
                    }
                }
            }
            // Mentions never overlap: a name of symbols ("--") repeated in a run of them
            // ("------") is found once per copy, not at every offset.
            let after_last = out
                .last()
                .is_none_or(|last: &Span| ts + offset >= last.byte_end);
            if ok && after_last && !is_word_char(source, end, false) {
                if let Some(span) = Span::from_bytes(&map, ts + offset, end) {
                    out.push(span);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_never_overlap() {
        // Found by fuzz/fuzz_targets/mentions.rs: "\0\0" matched at every offset of a run.
        let spans = find("~#\0\0\0\0\0\0", "\0\0");
        let starts: Vec<usize> = spans.iter().map(|s| s.start).collect();
        assert_eq!(starts, [2, 4, 6]);
        assert_eq!(find("a -- b ---- c", "--").len(), 3);
    }

    fn found(source: &str, name: &str) -> Vec<&'static str> {
        find(source, name)
            .iter()
            .map(|s| &*Box::leak(s.slice(source).to_string().into_boxed_str()))
            .collect()
    }

    #[test]
    fn whole_words_only() {
        let s = "Imran Khan met Li Keqiang. Khan’s aides and Khanate lit the light.";
        assert_eq!(found(s, "Khan"), ["Khan", "Khan"]);
        assert_eq!(found(s, "Imran Khan"), ["Imran Khan"]);
        assert_eq!(found(s, "Li"), ["Li"]);
        assert_eq!(found(s, "Li Keqiang"), ["Li Keqiang"]);
        assert!(found(s, "Xi Jinping").is_empty());
    }

    #[test]
    fn case_is_ignored_only_when_nothing_matches_exactly() {
        let s = "the White House said. WHITE HOUSE aides agreed.";
        assert_eq!(found(s, "White House"), ["White House"]);
        assert_eq!(found(s, "white house"), ["White House", "WHITE HOUSE"]);
    }

    #[test]
    fn quotes_white_space_and_offsets() {
        let s = "“O’Neill”\n said  O'Neill Jr.";
        let spans = find(s, "O'Neill");
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].start, 1);
        assert_eq!(spans[0].end, 8);
        assert_eq!(spans[0].slice(s), "O’Neill");
        assert_eq!(found(s, "said O'Neill"), ["said  O'Neill"]);
        assert!(find(s, "  ").is_empty());
    }
}
