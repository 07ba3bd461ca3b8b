//! Cutting long texts into pieces that fit a model window, with exact offsets.
//!
//! Pieces follow sentence boundaries (entities do not cross sentences) and hold up to a
//! token budget. A single sentence over the budget is cut at white space into overlapping
//! windows; each window *keeps* only the words nearest its middle, so that a word in an
//! overlap is tagged with context on both sides and reported exactly once.

use std::ops::Range;

use super::offsets::CharMap;

/// One piece of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Byte range of the piece in the text.
    pub bytes: Range<usize>,
    /// Code point offset of the piece in the text.
    pub char_offset: usize,
    /// Code point range (in the whole text) whose words this piece reports.
    pub keep: Range<usize>,
    /// Model tokens of the piece.
    pub tokens: usize,
}

/// Cut `text` into pieces: whole sentences packed up to `pack` tokens (counted by
/// `count`), and any sentence over `window` tokens cut into windows of at most `window`
/// tokens overlapping by `overlap`. The keep ranges tile the text.
///
/// With `context` > 0, a packed piece also reads whole neighbouring sentences, nearest
/// first, up to `context` tokens on each side and `window` in all, and keeps only its
/// own sentences: document context, as FLERT-style models are trained (an overlong
/// sentence's windows are never context).
pub fn pieces(
    text: &str,
    pack: usize,
    window: usize,
    overlap: usize,
    context: usize,
    count: &dyn Fn(&str) -> usize,
) -> Vec<Piece> {
    let window = window.max(1);
    let pack = pack.clamp(1, window);
    let overlap = overlap.min(window / 2);
    // Sentence segments as contiguous byte ranges covering the whole text.
    let mut cuts: Vec<usize> = sentencex::get_sentence_boundaries("en", text)
        .iter()
        .map(|b| b.start_byte)
        .filter(|&b| b > 0 && b < text.len() && text.is_char_boundary(b))
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts.push(text.len());
    let mut segs: Vec<(Range<usize>, usize)> = Vec::with_capacity(cuts.len());
    let mut seg_start = 0;
    for cut in cuts {
        if cut > seg_start {
            segs.push((seg_start..cut, count(&text[seg_start..cut])));
            seg_start = cut;
        }
    }

    // (bytes, keep bytes, tokens)
    let mut raw: Vec<(Range<usize>, Range<usize>, usize)> = Vec::new();
    let mut first = 0;
    while first < segs.len() {
        let (seg, n) = &segs[first];
        if *n > window {
            raw.extend(windows(text, seg.clone(), window, overlap, count));
            first += 1;
            continue;
        }
        // Sentences first..last are the piece's own.
        let (mut last, mut tokens) = (first + 1, *n);
        while last < segs.len() && segs[last].1 <= window && tokens + segs[last].1 <= pack {
            tokens += segs[last].1;
            last += 1;
        }
        // Whole neighbours as context, one on each side in turn.
        let (mut lo, mut hi, mut left, mut right) = (first, last, 0, 0);
        let fits =
            |side: usize, n: usize, tokens: usize| side + n <= context && tokens + n <= window;
        loop {
            let mut grew = false;
            if lo > 0 && fits(left, segs[lo - 1].1, tokens) {
                lo -= 1;
                left += segs[lo].1;
                tokens += segs[lo].1;
                grew = true;
            }
            if hi < segs.len() && fits(right, segs[hi].1, tokens) {
                right += segs[hi].1;
                tokens += segs[hi].1;
                hi += 1;
                grew = true;
            }
            if !grew {
                break;
            }
        }
        raw.push((
            segs[lo].0.start..segs[hi - 1].0.end,
            segs[first].0.start..segs[last - 1].0.end,
            tokens,
        ));
        first = last;
    }
    let map = CharMap::new(text);
    let char_of = |b: usize| map.char_of(b).unwrap_or(map.char_len());
    raw.into_iter()
        .map(|(bytes, keep, tokens)| Piece {
            char_offset: char_of(bytes.start),
            keep: char_of(keep.start)..char_of(keep.end),
            bytes,
            tokens,
        })
        .collect()
}

/// Overlapping windows (bytes, keep bytes, tokens) over the words of one overlong segment.
fn windows(
    text: &str,
    seg: Range<usize>,
    budget: usize,
    overlap: usize,
    count: &dyn Fn(&str) -> usize,
) -> Vec<(Range<usize>, Range<usize>, usize)> {
    // Word starts; the first word starts at the segment start so that leading white
    // space belongs to it.
    let mut starts: Vec<usize> = Vec::new();
    let mut in_word = false;
    for (b, c) in text[seg.clone()].char_indices() {
        if c.is_whitespace() {
            in_word = false;
        } else if !in_word {
            in_word = true;
            starts.push(if starts.is_empty() {
                seg.start
            } else {
                seg.start + b
            });
        }
    }
    if starts.is_empty() {
        return vec![(seg.clone(), seg, 0)];
    }
    let byte_of = |w: usize| starts.get(w).copied().unwrap_or(seg.end);
    let sizes: Vec<usize> = (0..starts.len())
        .map(|w| count(&text[byte_of(w)..byte_of(w + 1)]).max(1))
        .collect();
    // Windows as word index ranges.
    let mut spans: Vec<Range<usize>> = Vec::new();
    let mut first = 0;
    loop {
        let (mut last, mut used) = (first, 0);
        while last < sizes.len() && (used + sizes[last] <= budget || last == first) {
            used += sizes[last];
            last += 1;
        }
        spans.push(first..last);
        if last >= sizes.len() {
            break;
        }
        // The next window starts `overlap` tokens before this one ends, always moving on.
        let (mut next, mut back) = (last, 0);
        while next > first + 1 && back + sizes[next - 1] <= overlap {
            next -= 1;
            back += sizes[next];
        }
        first = next;
    }
    let mut out = Vec::with_capacity(spans.len());
    let mut keep_from = seg.start;
    for (i, span) in spans.iter().enumerate() {
        // Words in an overlap go to the window whose middle is nearer.
        let keep_to = spans
            .get(i + 1)
            .map_or(seg.end, |next| byte_of((next.start + span.end).div_ceil(2)));
        let tokens = sizes[span.clone()].iter().sum();
        out.push((
            byte_of(span.start)..byte_of(span.end),
            keep_from..keep_to,
            tokens,
        ));
        keep_from = keep_to;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    fn check_tiling(text: &str, pieces: &[Piece]) {
        let total = text.chars().count();
        assert_eq!(pieces.first().unwrap().keep.start, 0);
        assert_eq!(pieces.last().unwrap().keep.end, total);
        for pair in pieces.windows(2) {
            assert_eq!(
                pair[0].keep.end, pair[1].keep.start,
                "keep ranges must tile the text"
            );
        }
        for p in pieces {
            let piece = &text[p.bytes.clone()];
            assert_eq!(p.char_offset, text[..p.bytes.start].chars().count());
            // Each piece contains what it keeps.
            assert!(
                p.keep.start >= p.char_offset
                    && p.keep.end <= p.char_offset + piece.chars().count(),
                "{p:?}"
            );
        }
    }

    #[test]
    fn sentences_are_packed_up_to_the_budget() {
        let text = "One two three. Four five six. Seven eight nine. Ten.";
        let p = pieces(text, 6, 6, 2, 0, &words);
        let got: Vec<&str> = p.iter().map(|p| &text[p.bytes.clone()]).collect();
        assert_eq!(
            got,
            ["One two three. Four five six. ", "Seven eight nine. Ten."]
        );
        check_tiling(text, &p);
    }

    #[test]
    fn a_small_pack_budget_keeps_sentences_apart_but_does_not_window_them() {
        let text = "One two three four. Five six seven eight. Nine.";
        let p = pieces(text, 3, 10, 2, 0, &words);
        let got: Vec<&str> = p.iter().map(|p| &text[p.bytes.clone()]).collect();
        assert_eq!(
            got,
            ["One two three four. ", "Five six seven eight. ", "Nine."]
        );
        check_tiling(text, &p);
    }

    #[test]
    fn an_overlong_sentence_becomes_overlapping_windows() {
        let sentence: Vec<String> = (0..50).map(|i| format!("w{i}")).collect();
        let text = format!("Short one. {} end. Last “one” 🚀.", sentence.join(" "));
        let p = pieces(&text, 10, 10, 4, 0, &words);
        check_tiling(&text, &p);
        assert!(p.len() > 5);
        for w in p.windows(2) {
            // Consecutive windows of the long sentence overlap in the text.
            if w[1].bytes.start < w[0].bytes.end {
                assert!(w[0].tokens <= 10);
            }
        }
        // Every word is kept by exactly one piece.
        let mut kept = 0;
        let mut pos = 0;
        for (i, c) in text.chars().enumerate() {
            let starts_word =
                !c.is_whitespace() && (i == 0 || text.chars().nth(i - 1).unwrap().is_whitespace());
            if starts_word {
                kept += p.iter().filter(|p| p.keep.contains(&i)).count();
                pos += 1;
            }
        }
        assert_eq!(kept, pos);
    }

    #[test]
    fn short_and_empty_texts_are_one_piece() {
        let p = pieces("Hello.", 10, 10, 2, 0, &words);
        assert_eq!(
            p,
            [Piece {
                bytes: 0..6,
                char_offset: 0,
                keep: 0..6,
                tokens: 1
            }]
        );
        assert!(pieces("", 10, 10, 2, 0, &words).is_empty());
        let spaces = pieces("   ", 10, 10, 2, 0, &words);
        assert_eq!(spaces.len(), 1);
    }

    #[test]
    fn context_reads_whole_neighbours_and_keeps_only_its_own_sentences() {
        let text = "One two three. Four five six. Seven eight nine. Ten eleven. Twelve.";
        let p = pieces(text, 3, 10, 2, 3, &words);
        check_tiling(text, &p);
        let got: Vec<(&str, &str)> = p
            .iter()
            .map(|p| {
                let keep_bytes = text
                    .char_indices()
                    .map(|(b, _)| b)
                    .chain([text.len()])
                    .collect::<Vec<_>>();
                (
                    &text[p.bytes.clone()],
                    &text[keep_bytes[p.keep.start]..keep_bytes[p.keep.end]],
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("One two three. Four five six. ", "One two three. "),
                (
                    "One two three. Four five six. Seven eight nine. ",
                    "Four five six. "
                ),
                // Right: "Ten eleven." (2) and then "Twelve." (1) fit in 3.
                (
                    "Four five six. Seven eight nine. Ten eleven. Twelve.",
                    "Seven eight nine. "
                ),
                // Left: "Seven eight nine." (3) fits, "Four five six." would not.
                (
                    "Seven eight nine. Ten eleven. Twelve.",
                    "Ten eleven. Twelve."
                )
            ]
        );
        assert_eq!(p[1].tokens, 9);
        // The window bounds context too: 3 own + 3 left would pass 5.
        let tight = pieces(text, 3, 5, 2, 3, &words);
        check_tiling(text, &tight);
        assert!(tight.iter().all(|p| p.tokens <= 5));
    }

    #[test]
    fn an_overlong_sentence_is_never_context() {
        let long: Vec<String> = (0..30).map(|i| format!("w{i}")).collect();
        let text = format!("Before it. {} end. After it.", long.join(" "));
        let p = pieces(&text, 10, 10, 2, 8, &words);
        check_tiling(&text, &p);
        assert_eq!(&text[p[0].bytes.clone()], "Before it. ");
        assert_eq!(&text[p.last().unwrap().bytes.clone()], "After it.");
    }
}
