//! The Porter stemmer exactly as NLTK implements it (`PorterStemmer()`, mode
//! NLTK_EXTENSIONS), which Google's `rouge-score` uses with `use_stemmer=True`. gist's
//! ROUGE must stem the same way to reproduce the field's numbers; the crates on crates.io
//! implement other variants (Porter2, or the 1980 algorithm with its own slips).
//!
//! Works on lower-case ASCII words, the only tokens ROUGE's tokenizer produces.

const VOWELS: &[u8] = b"aeiou";

fn consonant_flags(w: &[u8]) -> Vec<bool> {
    let mut flags: Vec<bool> = Vec::with_capacity(w.len());
    for (i, &c) in w.iter().enumerate() {
        let flag = if VOWELS.contains(&c) {
            false
        } else if c == b'y' {
            i == 0 || !flags[i - 1]
        } else {
            true
        };
        flags.push(flag);
    }
    flags
}

fn is_consonant(w: &[u8], mut i: usize) -> bool {
    if VOWELS.contains(&w[i]) {
        return false;
    }
    if w[i] == b'y' {
        let mut negate = false;
        while i > 0 && w[i] == b'y' {
            negate = !negate;
            i -= 1;
        }
        return VOWELS.contains(&w[i]) == negate;
    }
    true
}

fn measure(stem: &[u8]) -> usize {
    let flags = consonant_flags(stem);
    flags.windows(2).filter(|p| !p[0] && p[1]).count()
}

fn contains_vowel(stem: &[u8]) -> bool {
    consonant_flags(stem).iter().any(|c| !c)
}

fn ends_double_consonant(w: &[u8]) -> bool {
    w.len() >= 2 && w[w.len() - 1] == w[w.len() - 2] && is_consonant(w, w.len() - 1)
}

fn ends_cvc(w: &[u8]) -> bool {
    let n = w.len();
    (n >= 3
        && is_consonant(w, n - 3)
        && !is_consonant(w, n - 2)
        && is_consonant(w, n - 1)
        && !b"wxy".contains(&w[n - 1]))
        || (n == 2 && !is_consonant(w, 0) && is_consonant(w, 1))
}

type Condition<'a> = Option<&'a dyn Fn(&[u8]) -> bool>;

/// NLTK's `_apply_rule_list`: the first rule whose suffix matches decides.
fn apply_rules(w: Vec<u8>, rules: &[(&str, &str, Condition<'_>)]) -> Vec<u8> {
    for (suffix, replacement, condition) in rules {
        if *suffix == "*d" && ends_double_consonant(&w) {
            let stem = &w[..w.len() - 2];
            return if condition.is_none_or(|c| c(stem)) {
                [stem, replacement.as_bytes()].concat()
            } else {
                w
            };
        }
        if w.ends_with(suffix.as_bytes()) {
            let stem = &w[..w.len() - suffix.len()];
            return if condition.is_none_or(|c| c(stem)) {
                [stem, replacement.as_bytes()].concat()
            } else {
                w
            };
        }
    }
    w
}

fn replace(w: &[u8], suffix: &str, replacement: &str) -> Vec<u8> {
    [&w[..w.len() - suffix.len()], replacement.as_bytes()].concat()
}

fn step1a(w: Vec<u8>) -> Vec<u8> {
    if w.ends_with(b"ies") && w.len() == 4 {
        return replace(&w, "ies", "ie");
    }
    apply_rules(
        w,
        &[
            ("sses", "ss", None),
            ("ies", "i", None),
            ("ss", "ss", None),
            ("s", "", None),
        ],
    )
}

fn step1b(w: Vec<u8>) -> Vec<u8> {
    if w.ends_with(b"ied") {
        return if w.len() == 4 {
            replace(&w, "ied", "ie")
        } else {
            replace(&w, "ied", "i")
        };
    }
    if w.ends_with(b"eed") {
        let stem = &w[..w.len() - 3];
        return if measure(stem) > 0 {
            [stem, b"ee"].concat()
        } else {
            w
        };
    }
    let mut intermediate = None;
    for suffix in ["ed", "ing"] {
        if w.ends_with(suffix.as_bytes()) {
            let stem = &w[..w.len() - suffix.len()];
            if contains_vowel(stem) {
                intermediate = Some(stem.to_vec());
                break;
            }
        }
    }
    let Some(stem) = intermediate else { return w };
    let Some(&last) = stem.last() else {
        return stem;
    };
    let last_str = (last as char).to_string();
    let keep_double = move |_: &[u8]| !b"lsz".contains(&last);
    let add_e = |s: &[u8]| measure(s) == 1 && ends_cvc(s);
    apply_rules(
        stem,
        &[
            ("at", "ate", None),
            ("bl", "ble", None),
            ("iz", "ize", None),
            ("*d", &last_str, Some(&keep_double)),
            ("", "e", Some(&add_e)),
        ],
    )
}

fn step1c(w: Vec<u8>) -> Vec<u8> {
    let cond = |s: &[u8]| s.len() > 1 && is_consonant(s, s.len() - 1);
    apply_rules(w, &[("y", "i", Some(&cond))])
}

fn positive(s: &[u8]) -> bool {
    measure(s) > 0
}

fn step2(w: Vec<u8>) -> Vec<u8> {
    if w.ends_with(b"alli") && positive(&w[..w.len() - 4]) {
        return step2(replace(&w, "alli", "al"));
    }
    let word = w.clone();
    let logi = move |_: &[u8]| positive(&word[..word.len().saturating_sub(3)]);
    let p: Condition = Some(&positive);
    apply_rules(
        w,
        &[
            ("ational", "ate", p),
            ("tional", "tion", p),
            ("enci", "ence", p),
            ("anci", "ance", p),
            ("izer", "ize", p),
            ("bli", "ble", p),
            ("alli", "al", p),
            ("entli", "ent", p),
            ("eli", "e", p),
            ("ousli", "ous", p),
            ("ization", "ize", p),
            ("ation", "ate", p),
            ("ator", "ate", p),
            ("alism", "al", p),
            ("iveness", "ive", p),
            ("fulness", "ful", p),
            ("ousness", "ous", p),
            ("aliti", "al", p),
            ("iviti", "ive", p),
            ("biliti", "ble", p),
            ("fulli", "ful", p),
            ("logi", "log", Some(&logi)),
        ],
    )
}

fn step3(w: Vec<u8>) -> Vec<u8> {
    let p: Condition = Some(&positive);
    apply_rules(
        w,
        &[
            ("icate", "ic", p),
            ("ative", "", p),
            ("alize", "al", p),
            ("iciti", "ic", p),
            ("ical", "ic", p),
            ("ful", "", p),
            ("ness", "", p),
        ],
    )
}

fn step4(w: Vec<u8>) -> Vec<u8> {
    let gt1 = |s: &[u8]| measure(s) > 1;
    let ion = |s: &[u8]| measure(s) > 1 && s.last().is_some_and(|c| b"st".contains(c));
    let g: Condition = Some(&gt1);
    apply_rules(
        w,
        &[
            ("al", "", g),
            ("ance", "", g),
            ("ence", "", g),
            ("er", "", g),
            ("ic", "", g),
            ("able", "", g),
            ("ible", "", g),
            ("ant", "", g),
            ("ement", "", g),
            ("ment", "", g),
            ("ent", "", g),
            ("ion", "", Some(&ion)),
            ("ou", "", g),
            ("ism", "", g),
            ("ate", "", g),
            ("iti", "", g),
            ("ous", "", g),
            ("ive", "", g),
            ("ize", "", g),
        ],
    )
}

fn step5a(w: Vec<u8>) -> Vec<u8> {
    if w.ends_with(b"e") {
        let stem = &w[..w.len() - 1];
        if measure(stem) > 1 || (measure(stem) == 1 && !ends_cvc(stem)) {
            return stem.to_vec();
        }
    }
    w
}

fn step5b(w: Vec<u8>) -> Vec<u8> {
    let word = w.clone();
    let cond = move |_: &[u8]| measure(&word[..word.len().saturating_sub(1)]) > 1;
    apply_rules(w, &[("ll", "l", Some(&cond))])
}

/// Stem one lower-case ASCII word as NLTK's `PorterStemmer().stem` does. Other input is
/// returned unchanged.
pub fn stem(word: &str) -> String {
    const IRREGULAR: &[(&str, &str)] = &[
        ("sky", "sky"),
        ("skies", "sky"),
        ("dying", "die"),
        ("lying", "lie"),
        ("tying", "tie"),
        ("news", "news"),
        ("innings", "inning"),
        ("inning", "inning"),
        ("outings", "outing"),
        ("outing", "outing"),
        ("cannings", "canning"),
        ("canning", "canning"),
        ("howe", "howe"),
        ("proceed", "proceed"),
        ("exceed", "exceed"),
        ("succeed", "succeed"),
    ];
    if !word
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return word.to_string();
    }
    if let Some((_, s)) = IRREGULAR.iter().find(|(w, _)| *w == word) {
        return s.to_string();
    }
    if word.len() <= 2 {
        return word.to_string();
    }
    let w = word.as_bytes().to_vec();
    let w = step5b(step5a(step4(step3(step2(step1c(step1b(step1a(w))))))));
    String::from_utf8(w).unwrap_or_else(|_| word.to_string())
}

#[cfg(test)]
mod tests {
    use super::stem;

    /// Words of the BERT uncased vocabulary (every sixth) and hard cases, stemmed once by
    /// NLTK's PorterStemmer: gist must agree on every one.
    #[test]
    fn agrees_with_nltk() {
        let table = include_str!("porter_nltk.txt");
        let mut checked = 0;
        for line in table.lines().filter(|l| !l.starts_with('#')) {
            let (word, want) = line.split_once(' ').unwrap();
            assert_eq!(stem(word), want, "stem({word:?})");
            checked += 1;
        }
        assert!(checked > 2000, "{checked}");
    }

    #[test]
    fn short_digits_and_non_ascii_are_kept() {
        assert_eq!(stem("is"), "is");
        assert_eq!(stem("2021"), "2021");
        assert_eq!(stem("café"), "café");
    }
}
