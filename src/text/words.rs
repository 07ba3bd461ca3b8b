//! Word boundaries in the style of the CoNLL / Penn Treebank tokenisation that NER models
//! are trained on: white space separates words; opening and closing punctuation, commas,
//! a sentence-final full stop and the possessive 's are words of their own; initials
//! ("P."), abbreviations ("U.S."), hyphenated words ("China-Pakistan") and numbers
//! ("4-38", "2.5", "10:30") stay whole; a colon between words splits them. Models label the first sub-token of each such word, so
//! gist must group sub-tokens the same way at inference.

const OPENING: &[char] = &['(', '[', '{', '"', '“', '‘', '\'', '«'];
const CLOSING: &[char] = &[
    ')', ']', '}', '"', '”', '’', '\'', '»', ',', ';', ':', '!', '?', '…',
];

/// Code point spans `(start, end)` of the words of `text`, in order.
pub fn spans(text: &str) -> Vec<(usize, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() {
            i += 1;
        }
        // A colon inside a chunk separates words ("Islamabad:Pakistan", a glued dateline),
        // unless it sits between digits ("10:30").
        let mut from = start;
        for k in start + 1..i.saturating_sub(1) {
            if chars[k] == ':' && !(chars[k - 1].is_ascii_digit() && chars[k + 1].is_ascii_digit())
            {
                split_chunk(&chars, from, k, &mut out);
                out.push((k, k + 1));
                from = k + 1;
            }
        }
        split_chunk(&chars, from, i, &mut out);
    }
    out
}

fn split_chunk(chars: &[char], mut start: usize, mut end: usize, out: &mut Vec<(usize, usize)>) {
    let mut tail = Vec::new();
    while start < end && OPENING.contains(&chars[start]) && end - start > 1 {
        out.push((start, start + 1));
        start += 1;
    }
    loop {
        if end - start <= 1 {
            break;
        }
        let last = chars[end - 1];
        let body = &chars[start..end - 1];
        if CLOSING.contains(&last) {
            tail.push((end - 1, end));
            end -= 1;
        } else if last == '.'
            && !body.contains(&'.')
            && !(body.len() == 1 && body[0].is_alphabetic())
        {
            // "Friday." → "Friday" "."; keep "P." and "U.S." whole.
            tail.push((end - 1, end));
            end -= 1;
        } else if end - start > 2
            && matches!(chars[end - 2], '\'' | '’')
            && matches!(last, 's' | 'S')
        {
            tail.push((end - 2, end));
            end -= 2;
        } else {
            break;
        }
    }
    if end > start {
        out.push((start, end));
    }
    out.extend(tail.into_iter().rev());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        spans(text)
            .into_iter()
            .map(|(s, e)| chars[s..e].iter().collect())
            .collect()
    }

    #[test]
    fn conll_style_words() {
        let cases: &[(&str, &[&str])] = &[
            (
                "( P. Simmons 4-38 ) , Leicestershire 296 .",
                &[
                    "(",
                    "P.",
                    "Simmons",
                    "4-38",
                    ")",
                    ",",
                    "Leicestershire",
                    "296",
                    ".",
                ],
            ),
            (
                "The U.S. said on Friday.",
                &["The", "U.S.", "said", "on", "Friday", "."],
            ),
            (
                "Pakistan’s “all-weather” ties, he said:",
                &[
                    "Pakistan",
                    "’s",
                    "“",
                    "all-weather",
                    "”",
                    "ties",
                    ",",
                    "he",
                    "said",
                    ":",
                ],
            ),
            (
                "the China-Pakistan Economic Corridor (CPEC) grew 2.5%",
                &[
                    "the",
                    "China-Pakistan",
                    "Economic",
                    "Corridor",
                    "(",
                    "CPEC",
                    ")",
                    "grew",
                    "2.5%",
                ],
            ),
            (
                "Islamabad:Pakistan Prime at 10:30",
                &["Islamabad", ":", "Pakistan", "Prime", "at", "10:30"],
            ),
            (
                "\"Hello!\" 🚀 李克强.",
                &["\"", "Hello", "!", "\"", "🚀", "李克强", "."],
            ),
            ("", &[]),
        ];
        for (text, want) in cases {
            assert_eq!(words(text), *want, "{text}");
        }
    }
}
