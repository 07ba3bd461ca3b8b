//! Sentence segmentation for news text, with exact offsets.
//!
//! Segmentation itself comes from `sentencex` (abbreviations such as U.S., Mr., No. 10,
//! decimals, quotes), which returns byte ranges of the input. On top of it, three small
//! rules for scraped news that no splitter handles:
//! - blank lines always end a sentence (scraped paragraphs often lack final punctuation);
//! - a leading dateline ("date 2021-05-20 Islamabad:", "WASHINGTON (Reuters) -", "(CNN)")
//!   is cut off the first sentence of a paragraph;
//! - boilerplate segments (share-button rows, "Advertisement", agency sign-offs) are
//!   marked so that they never become key points.

use std::sync::LazyLock;

use regex::Regex;

use super::offsets::{CharMap, Span};

/// One sentence of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence {
    /// Where it is in the input, trimmed of white space and of any dateline.
    pub span: Span,
    /// Index of the sentence among all segments of the input (boilerplate included).
    pub index: usize,
    /// True for share-button rows, sign-offs and other non-content segments.
    pub boilerplate: bool,
}

/// Split `text` into sentences with exact offsets, in document order. Empty segments are
/// dropped; boilerplate segments are kept but flagged.
pub fn split(text: &str) -> Vec<Sentence> {
    let map = CharMap::new(text);
    let mut out = Vec::new();
    for (para_start, para_end) in paragraphs(text) {
        let para = &text[para_start..para_end];
        let mut first_in_paragraph = true;
        for boundary in sentencex::get_sentence_boundaries("en", para) {
            let (mut start, end) = (
                para_start + boundary.start_byte,
                para_start + boundary.end_byte,
            );
            if end <= start || text.get(start..end).is_none() {
                continue;
            }
            if first_in_paragraph {
                start += dateline_len(&text[start..end]);
            }
            let Some(span) = Span::from_bytes(&map, start, end) else {
                continue;
            };
            let span = span.trim(text);
            if span.is_empty() || !span.slice(text).chars().any(char::is_alphanumeric) {
                continue;
            }
            first_in_paragraph = false;
            out.push(Sentence {
                span,
                index: out.len(),
                boilerplate: is_boilerplate(span.slice(text)),
            });
        }
    }
    out
}

/// Byte ranges of the paragraphs of `text`: runs of text separated by blank lines.
fn paragraphs(text: &str) -> Vec<(usize, usize)> {
    static BLANK_LINE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\n[ \t\r\u{a0}]*\n").unwrap());
    let mut out = Vec::new();
    let mut start = 0;
    for gap in BLANK_LINE.find_iter(text) {
        out.push((start, gap.start()));
        start = gap.end();
    }
    out.push((start, text.len()));
    out.retain(|(s, e)| !text[*s..*e].trim().is_empty());
    out
}

/// Length in bytes of a news dateline at the start of `s`, 0 when there is none.
pub fn dateline_len(s: &str) -> usize {
    static DATELINE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"^\s*(?:",
            // "date 2021-05-20 Islamabad:" (glued to the next word or not)
            r"(?:date\s+)?\d{4}-\d{2}-\d{2}\s+[A-Z][\p{L}.'’ -]{0,40}?\s*:\s*",
            r"|",
            // "WASHINGTON (Reuters) - ", "LONDON — ", "NEW DELHI, May 3 (AP) -- "
            r"[A-Z][A-Z.'’ -]{1,40}(?:,\s*[A-Z][a-z]{2,8}\.?\s+\d{1,2})?\s*(?:\([A-Za-z. ]{1,20}\))?\s*(?:--|[-—–:])\s+",
            r"|",
            // "London (CNN) -- ", "(CNN)"
            r"(?:[A-Z][\p{L}.'’ ,-]{0,40}\s)?\((?:CNN|AP|AFP|Reuters|PTI|IANS)\)\s*(?:--|[-—–:])?\s*",
            r")"
        ))
        .unwrap()
    });
    match DATELINE.find(s) {
        // Keep the sentence if the "dateline" would swallow all of it.
        Some(m) if s[m.end()..].chars().filter(|c| c.is_alphabetic()).count() >= 3 => m.end(),
        _ => 0,
    }
}

/// The spans of the segments of `text` that are page furniture ([`is_page_furniture`]):
/// share-button rows and the like, whose words are not the article's (entities found
/// there, such as "WhatsApp" in "Facebook Twitter WhatsApp Email Print", are dropped).
pub fn furniture(text: &str) -> Vec<Span> {
    split(text)
        .into_iter()
        .filter(|s| s.boilerplate && is_page_furniture(s.span.slice(text)))
        .map(|s| s.span)
        .collect()
}

/// True for segments that are page furniture rather than article content.
pub fn is_boilerplate(s: &str) -> bool {
    if is_page_furniture(s) {
        return true;
    }
    let words = s
        .split(|c: char| c.is_whitespace() || c == '|' || c == '·' || c == '•')
        .filter(|w| !w.is_empty())
        .count();
    // Agency sign-offs and bylines: a few words with no sentence punctuation ("PTI",
    // "Reporting by Jane Doe"). Real sentences of three words or more end in punctuation.
    let ends_like_sentence = s
        .trim_end()
        .ends_with(['.', '!', '?', '"', '”', '’', '\'', ')']);
    words < 3 || (words <= 6 && !ends_like_sentence)
}

/// True for share-button rows ("Facebook Twitter WhatsApp Email Print"), short lines such
/// as "Advertisement" or "Read more", and empty segments: text of the page, not of the
/// article. Unlike [`is_boilerplate`], a short line of real words (a sign-off, a CoNLL
/// headline such as "SOCCER - JAPAN WIN") is not furniture.
pub fn is_page_furniture(s: &str) -> bool {
    const SHARE_WORDS: &[&str] = &[
        "facebook",
        "twitter",
        "whatsapp",
        "email",
        "e-mail",
        "print",
        "share",
        "linkedin",
        "pinterest",
        "reddit",
        "telegram",
        "tumblr",
        "messenger",
        "copy",
        "link",
        "comments",
        "comment",
        "tweet",
        "x",
        "save",
        "mail",
    ];
    const PHRASES: &[&str] = &[
        "advertisement",
        "read more",
        "click here",
        "follow us",
        "all rights reserved",
        "copyright",
        "subscribe",
        "sign up for",
        "related articles",
        "scroll down for video",
    ];
    let lower = s.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || c == '|' || c == '·' || c == '•')
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return true;
    }
    let share = words
        .iter()
        .filter(|w| SHARE_WORDS.contains(&w.trim_matches(|c: char| !c.is_alphanumeric())))
        .count();
    if words.len() <= 12 && share * 2 > words.len() {
        return true;
    }
    words.len() <= 8 && PHRASES.iter().any(|p| lower.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<&str> {
        split(text).iter().map(|s| s.span.slice(text)).collect()
    }

    #[test]
    fn abbreviations_do_not_end_sentences() {
        let cases: &[(&str, &[&str])] = &[
            (
                "Mr. Smith went to Washington. He met Dr. Jones there.",
                &["Mr. Smith went to Washington.", "He met Dr. Jones there."],
            ),
            (
                "The U.S. Census Bureau reported a 2.5 per cent rise. Prices fell.",
                &[
                    "The U.S. Census Bureau reported a 2.5 per cent rise.",
                    "Prices fell.",
                ],
            ),
            (
                "He lives at No. 10 Downing Street. The meeting ended at 5 p.m. on Friday.",
                &[
                    "He lives at No. 10 Downing Street.",
                    "The meeting ended at 5 p.m. on Friday.",
                ],
            ),
            (
                "Is it true? Yes! It is.",
                &["Is it true?", "Yes!", "It is."],
            ),
        ];
        for (text, want) in cases {
            assert_eq!(texts(text), *want, "{text}");
        }
    }

    #[test]
    fn curly_quotes_stay_with_their_sentence() {
        let text = "He said, “this will help.” Then he left.";
        assert_eq!(texts(text), ["He said, “this will help.”", "Then he left."]);
    }

    #[test]
    fn offsets_slice_the_input_exactly_in_both_units() {
        let text = " date 2021-05-20 Islamabad:Pakistan’s “leader” 🚀 met 李克强. 好的 “quote” here.\n\nFacebook Twitter WhatsApp Email Print";
        let chars: Vec<char> = text.chars().collect();
        for s in split(text) {
            let by_chars: String = chars[s.span.start..s.span.end].iter().collect();
            assert_eq!(by_chars, s.span.slice(text));
            assert_eq!(by_chars, by_chars.trim());
        }
    }

    #[test]
    fn glued_dateline_is_cut_from_the_first_sentence() {
        let text = " date 2021-05-20 Islamabad:Pakistan Prime Minister Imran Khan and Chinese Premier Li Keqiang held telephonic talks on Thursday.\n\nThe two leaders spoke.";
        assert_eq!(
            texts(text),
            [
                "Pakistan Prime Minister Imran Khan and Chinese Premier Li Keqiang held telephonic talks on Thursday.",
                "The two leaders spoke."
            ]
        );
    }

    #[test]
    fn datelines_of_other_styles() {
        let cases = [
            (
                "WASHINGTON (Reuters) - The Senate voted on Tuesday.",
                "The Senate voted on Tuesday.",
            ),
            (
                "LONDON — Britain said on Monday it would act.",
                "Britain said on Monday it would act.",
            ),
            (
                "London (CNN) -- A fire broke out on Friday.",
                "A fire broke out on Friday.",
            ),
            (
                "(CNN)Gary Locke will be confirmed as manager.",
                "Gary Locke will be confirmed as manager.",
            ),
            ("The U.S. said no.", "The U.S. said no."),
            ("NASA launched a probe.", "NASA launched a probe."),
        ];
        for (text, want) in cases {
            assert_eq!(texts(text)[0], want, "{text}");
        }
    }

    #[test]
    fn only_the_first_sentence_of_a_paragraph_loses_a_dateline() {
        let text = "He spoke. WASHINGTON - is a city name here.";
        assert_eq!(
            texts(text),
            ["He spoke.", "WASHINGTON - is a city name here."]
        );
    }

    #[test]
    fn blank_lines_end_sentences_without_punctuation() {
        let text = "The first paragraph has no full stop\n\nThe second does.";
        assert_eq!(
            texts(text),
            ["The first paragraph has no full stop", "The second does."]
        );
    }

    #[test]
    fn boilerplate_is_flagged() {
        let text = "Prime Minister Khan also congratulated China. PTI\n\nFacebook Twitter WhatsApp Email Print";
        let got: Vec<(&str, bool)> = split(text)
            .iter()
            .map(|s| (s.span.slice(text), s.boilerplate))
            .collect();
        assert_eq!(
            got,
            [
                ("Prime Minister Khan also congratulated China.", false),
                ("PTI", true),
                ("Facebook Twitter WhatsApp Email Print", true)
            ]
        );
        for (s, want) in [
            ("Advertisement", true),
            ("Share this article | Facebook | Twitter", true),
            ("Reporting by Jane Doe", true),
            ("Click here to read more.", true),
            ("Prices rose.", true),
            ("Prices rose sharply in May.", false),
            ("“We will win,” he said.", false),
        ] {
            assert_eq!(is_boilerplate(s), want, "{s}");
        }
    }

    #[test]
    fn page_furniture_is_share_rows_and_page_phrases_not_short_lines_of_news() {
        let text = "Khan also congratulated China. PTI\n\nFacebook Twitter WhatsApp Email Print";
        let spans: Vec<&str> = furniture(text).iter().map(|s| s.slice(text)).collect();
        assert_eq!(spans, ["Facebook Twitter WhatsApp Email Print"]);
        for (s, want) in [
            ("Advertisement", true),
            ("Share this article | Facebook | Twitter", true),
            ("PTI", false),
            ("Reporting by Jane Doe", false),
            ("SOCCER - JAPAN GET LUCKY WIN", false),
            ("Germany 2 Russia 1", false),
            ("Prices rose sharply in May.", false),
        ] {
            assert_eq!(is_page_furniture(s), want, "{s}");
        }
    }

    #[test]
    fn empty_and_blank_text_have_no_sentences() {
        assert!(split("").is_empty());
        assert!(split("  \n\n \t ").is_empty());
        assert!(split("... — !!").is_empty());
    }

    #[test]
    fn cjk_and_emoji_text_keeps_exact_offsets() {
        let text = "Xi said 👍 twice. 李克强说了。 Then cafe\u{301} closed.";
        let sentences = split(text);
        assert!(!sentences.is_empty());
        let map = CharMap::new(text);
        for s in &sentences {
            assert_eq!(map.byte_of(s.span.start), Some(s.span.byte_start));
            assert_eq!(map.byte_of(s.span.end), Some(s.span.byte_end));
        }
        assert_eq!(
            sentences.last().unwrap().span.slice(text),
            "Then cafe\u{301} closed."
        );
    }
}
