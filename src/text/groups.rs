//! The entities of a document: mentions that name the same thing, grouped, with a
//! canonical name, a label and a salience.
//!
//! Linking rules, applied in this order:
//! 1. mentions equal after normalisation (case, possessive `'s`, hyphens and dashes as
//!    spaces, a leading "the") are one entity;
//! 2. a one-word person mention (a surname or a given name) joins the one multi-word
//!    person whose first or last word it is; when two such names exist ("Imran Khan",
//!    "Ayesha Khan") it stays apart, since it is ambiguous;
//! 3. an acronym ("NIH", "U.N.") joins the entity written just before it with the acronym
//!    in brackets ("National Institute of Health (NIH)"), else the one entity of the
//!    document whose initials it is (capitalised words, hyphenated parts counted:
//!    "China-Pakistan Economic Corridor" → CPEC; "of", "and", "the"… skipped);
//! 4. a name without digits joins the one mention that is it followed by a number
//!    ("COVID" → "COVID-19"); with two such ("Apollo 11", "Apollo 13") it stays apart.
//!
//! A group's label is the majority label of its mentions (ties: its fullest mention's),
//! its name its fullest mention (most characters; ties: the first). Salience, in [0, 1],
//! weighs how often the entity is mentioned against the most mentioned one (0.5), how
//! early its first mention comes (0.3) and whether it appears in the lead (0.2: the first
//! 20% of the text, at least its first 400 characters). Groups come sorted by salience,
//! then by first mention.

use std::collections::BTreeMap;

use serde::Serialize;

use super::entities::Entity;

/// Share of the text (in code points) that counts as its lead.
const LEAD_SHARE: f32 = 0.2;
/// The lead is at least this many code points.
const LEAD_MIN_CHARS: usize = 400;

/// Words an acronym's initials skip.
const MINOR_WORDS: &[&str] = &["of", "and", "the", "for", "in", "on", "at", "to", "&", "de"];

/// One distinct entity of a document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// Its fullest mention's text.
    pub name: String,
    /// The majority label of its mentions.
    pub label: String,
    /// Indices of its mentions in the entity list, ascending.
    pub mentions: Vec<usize>,
    /// In [0, 1]: frequency, first position and presence in the lead.
    pub salience: f32,
}

/// Group the `entities` of `text` (in input order, as [`super::entities::merge`] returns
/// them). Every entity belongs to exactly one group.
pub fn group(text: &str, entities: &[Entity]) -> Vec<Group> {
    if entities.is_empty() {
        return Vec::new();
    }
    let keys: Vec<String> = entities.iter().map(|e| normalise(&e.text)).collect();
    let mut sets = Sets::new(entities.len());

    // 1. The same name, normalised.
    let mut first_of: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, key) in keys.iter().enumerate() {
        if key.is_empty() {
            continue;
        }
        match first_of.get(key.as_str()) {
            Some(&j) => sets.join(i, j),
            None => {
                first_of.insert(key, i);
            }
        }
    }

    // 2. A person's one-word mention → the one multi-word person it names.
    for (i, e) in entities.iter().enumerate() {
        if e.label != "PER" || words(&keys[i]).count() != 1 {
            continue;
        }
        let mut full: Vec<&str> = entities
            .iter()
            .zip(&keys)
            .filter(|(f, k)| {
                f.label == "PER" && words(k).count() > 1 && {
                    let w: Vec<&str> = words(k).collect();
                    w.first() == Some(&keys[i].as_str()) || w.last() == Some(&keys[i].as_str())
                }
            })
            .map(|(_, k)| k.as_str())
            .collect();
        full.sort_unstable();
        full.dedup();
        if let [name] = full.as_slice() {
            sets.join(i, first_of[name]);
        }
    }

    // 3. Acronyms → their expansion.
    for (i, e) in entities.iter().enumerate() {
        let Some(letters) = acronym(&e.text) else {
            continue;
        };
        // Written in brackets after the expansion: "National Institute of Health (NIH)".
        let bracketed = i.checked_sub(1).filter(|&j| {
            let between = text
                .get(entities[j].span.byte_end..e.span.byte_start)
                .unwrap_or("");
            between.trim() == "(" && initials(&entities[j].text) == letters
        });
        let target = bracketed.or_else(|| {
            let mut found: Vec<&str> = entities
                .iter()
                .zip(&keys)
                .filter(|(f, _)| acronym(&f.text).is_none() && initials(&f.text) == letters)
                .map(|(_, k)| k.as_str())
                .collect();
            found.sort_unstable();
            found.dedup();
            match found.as_slice() {
                [name] => Some(first_of[name]),
                _ => None,
            }
        });
        if let Some(j) = target {
            sets.join(i, j);
        }
    }

    // 4. A bare name → its one numbered form ("COVID" → "COVID-19"), when the text has
    // exactly one.
    for (i, key) in keys.iter().enumerate() {
        if key.is_empty() || key.chars().any(|c| c.is_ascii_digit()) {
            continue;
        }
        let mut numbered: Vec<&str> = keys
            .iter()
            .filter(|k| {
                k.strip_prefix(key.as_str())
                    .and_then(|rest| rest.strip_prefix(' '))
                    .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            })
            .map(String::as_str)
            .collect();
        numbered.sort_unstable();
        numbered.dedup();
        if let [name] = numbered.as_slice() {
            sets.join(i, first_of[name]);
        }
    }

    // The groups, in order of their first mention.
    let mut members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..entities.len() {
        members.entry(sets.root(i)).or_default().push(i);
    }
    let mut groups: Vec<Vec<usize>> = members.into_values().collect();
    groups.sort_by_key(|m| m[0]);

    let chars = text.chars().count().max(1);
    let lead = ((chars as f32 * LEAD_SHARE) as usize).max(LEAD_MIN_CHARS);
    let most = groups.iter().map(Vec::len).max().unwrap_or(1) as f32;
    let mut out: Vec<Group> = groups
        .into_iter()
        .map(|mentions| {
            let fullest = *mentions
                .iter()
                .max_by(|&&a, &&b| {
                    let (la, lb) = (
                        entities[a].text.chars().count(),
                        entities[b].text.chars().count(),
                    );
                    la.cmp(&lb).then(b.cmp(&a))
                })
                .expect("a group has a mention");
            let first = entities[mentions[0]].span.start;
            let salience = 0.5 * mentions.len() as f32 / most
                + 0.3 * (1.0 - first as f32 / chars as f32)
                + if first < lead { 0.2 } else { 0.0 };
            Group {
                name: entities[fullest].text.clone(),
                label: majority(entities, &mentions, fullest),
                salience: salience.clamp(0.0, 1.0),
                mentions,
            }
        })
        .collect();
    // Stable: equal salience keeps the order of first mention.
    out.sort_by(|a, b| b.salience.total_cmp(&a.salience));
    out
}

/// The label most of `mentions` carry; ties go to the fullest mention's.
fn majority(entities: &[Entity], mentions: &[usize], fullest: usize) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for &m in mentions {
        *counts.entry(entities[m].label.as_str()).or_default() += 1;
    }
    let best = counts.values().copied().max().unwrap_or(0);
    let fullest_label = entities[fullest].label.as_str();
    if counts.get(fullest_label) == Some(&best) {
        return fullest_label.to_string();
    }
    counts
        .into_iter()
        .find(|&(_, c)| c == best)
        .map(|(l, _)| l.to_string())
        .unwrap_or_default()
}

/// A mention reduced to what identifies it: lower case, possessive dropped, hyphens and
/// dashes as spaces, a leading "the" dropped, white space collapsed.
pub fn normalise(mention: &str) -> String {
    let lower = mention.trim().to_lowercase();
    let lower = ["'s", "’s", "s'", "s’"]
        .iter()
        .find_map(|p| {
            lower.strip_suffix(p).map(|rest| {
                if p.starts_with('s') {
                    format!("{rest}s")
                } else {
                    rest.to_string()
                }
            })
        })
        .unwrap_or(lower);
    let spaced: String = lower
        .chars()
        .map(|c| {
            if matches!(c, '-' | '‐' | '–' | '—') {
                ' '
            } else {
                c
            }
        })
        .collect();
    let mut words: Vec<&str> = spaced.split_whitespace().collect();
    if words.len() > 1 && words[0] == "the" {
        words.remove(0);
    }
    words.join(" ")
}

fn words(key: &str) -> impl Iterator<Item = &str> {
    key.split(' ').filter(|w| !w.is_empty())
}

/// The letters of an acronym mention ("NIH", "U.N.", "CPEC's"), upper case; `None` for
/// anything else (a word with a lower-case letter, one letter, more than 8).
pub fn acronym(mention: &str) -> Option<String> {
    let m = mention.trim();
    let m = ["'s", "’s"]
        .iter()
        .find_map(|p| m.strip_suffix(p))
        .unwrap_or(m);
    if m.chars()
        .any(|c| !(c.is_alphabetic() || c == '.') || c.is_lowercase())
    {
        return None;
    }
    let letters: String = m.chars().filter(|c| c.is_alphabetic()).collect();
    (2..=8)
        .contains(&letters.chars().count())
        .then_some(letters)
}

/// The initials of a multi-word name, upper case: the first letter of each capitalised
/// word or hyphenated part, minor words skipped ("National Institute of Health" → NIH).
pub fn initials(name: &str) -> String {
    name.split(|c: char| c.is_whitespace() || matches!(c, '-' | '‐' | '–'))
        .filter(|w| !w.is_empty() && !MINOR_WORDS.contains(&w.to_lowercase().as_str()))
        .filter_map(|w| w.chars().next())
        .filter(|c| c.is_uppercase())
        .collect()
}

/// Union-find over mention indices.
struct Sets(Vec<usize>);

impl Sets {
    fn new(n: usize) -> Self {
        Sets((0..n).collect())
    }

    fn root(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }

    /// Join the sets of `a` and `b`; the smaller index stays the root.
    fn join(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.root(a), self.root(b));
        let (lo, hi) = (ra.min(rb), ra.max(rb));
        self.0[hi] = lo;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::offsets::{CharMap, Span};

    /// The entities of `text`: each (mention, label) at its first occurrence after the
    /// previous one.
    fn found(text: &str, mentions: &[(&str, &str)]) -> Vec<Entity> {
        let map = CharMap::new(text);
        let mut from = 0;
        mentions
            .iter()
            .map(|(m, label)| {
                let at = from + text[from..].find(m).expect("the mention is in the text");
                from = at + m.len();
                Entity {
                    text: m.to_string(),
                    label: label.to_string(),
                    score: 0.9,
                    span: Span::from_bytes(&map, at, at + m.len()).unwrap(),
                }
            })
            .collect()
    }

    /// The groups as (name, label, mention texts), in salience order.
    fn grouped(text: &str, mentions: &[(&str, &str)]) -> Vec<(String, String, Vec<String>)> {
        let entities = found(text, mentions);
        group(text, &entities)
            .into_iter()
            .map(|g| {
                let texts = g
                    .mentions
                    .iter()
                    .map(|&i| entities[i].text.clone())
                    .collect();
                (g.name, g.label, texts)
            })
            .collect()
    }

    fn g(name: &str, label: &str, mentions: &[&str]) -> (String, String, Vec<String>) {
        (
            name.into(),
            label.into(),
            mentions.iter().map(|m| m.to_string()).collect(),
        )
    }

    #[test]
    fn surnames_join_the_one_full_name_and_acronyms_their_expansion() {
        let text = "Imran Khan spoke to Li Keqiang. Khan said the National Institute of \
                    Health (NIH) and the China-Pakistan Economic Corridor matter. Khan's \
                    aide praised CPEC and the NIH. Li agreed.";
        let got = grouped(
            text,
            &[
                ("Imran Khan", "PER"),
                ("Li Keqiang", "PER"),
                ("Khan", "PER"),
                ("National Institute of Health", "ORG"),
                ("NIH", "ORG"),
                ("China-Pakistan Economic Corridor", "ORG"),
                ("Khan's", "PER"),
                ("CPEC", "ORG"),
                ("NIH", "ORG"),
                ("Li", "PER"),
            ],
        );
        assert_eq!(
            got,
            vec![
                g("Imran Khan", "PER", &["Imran Khan", "Khan", "Khan's"]),
                g(
                    "National Institute of Health",
                    "ORG",
                    &["National Institute of Health", "NIH", "NIH"]
                ),
                g("Li Keqiang", "PER", &["Li Keqiang", "Li"]),
                g(
                    "China-Pakistan Economic Corridor",
                    "ORG",
                    &["China-Pakistan Economic Corridor", "CPEC"]
                ),
            ]
        );
    }

    #[test]
    fn an_ambiguous_surname_stays_apart() {
        let text = "Imran Khan met Ayesha Khan. Khan left.";
        let got = grouped(
            text,
            &[
                ("Imran Khan", "PER"),
                ("Ayesha Khan", "PER"),
                ("Khan", "PER"),
            ],
        );
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got.contains(&g("Khan", "PER", &["Khan"])), "{got:?}");
    }

    #[test]
    fn case_possessive_hyphen_and_the_variants_are_one_entity() {
        let text = "The Pentagon said. the pentagon's view. Al-Qaeda and al Qaeda. \
                    The United States and United States.";
        let got = grouped(
            text,
            &[
                ("Pentagon", "ORG"),
                ("pentagon's", "ORG"),
                ("Al-Qaeda", "ORG"),
                ("al Qaeda", "ORG"),
                ("The United States", "LOC"),
                ("United States", "LOC"),
            ],
        );
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got.iter().all(|(_, _, m)| m.len() == 2), "{got:?}");
    }

    #[test]
    fn a_bare_name_joins_its_one_numbered_form() {
        let text = "COVID-19 spread. The COVID vaccine. Another COVID wave.";
        assert_eq!(
            grouped(
                text,
                &[("COVID-19", "MISC"), ("COVID", "MISC"), ("COVID", "MISC")]
            ),
            vec![g("COVID-19", "MISC", &["COVID-19", "COVID", "COVID"])]
        );
        // Two numbered forms: which one "Apollo" means is not known.
        let text = "Apollo 11 landed; Apollo 13 did not. Apollo ended in 1972.";
        let groups = grouped(
            text,
            &[
                ("Apollo 11", "MISC"),
                ("Apollo 13", "MISC"),
                ("Apollo", "MISC"),
            ],
        );
        assert_eq!(groups.len(), 3, "{groups:?}");
        // Only a number after the name: "Pakistan" is not "Pakistan-China".
        let text = "Pakistan-China ties. Pakistan agreed.";
        let groups = grouped(text, &[("Pakistan-China", "LOC"), ("Pakistan", "LOC")]);
        assert_eq!(groups.len(), 2, "{groups:?}");
    }

    #[test]
    fn the_label_follows_the_majority_of_mentions() {
        let text = "Jordan won. Jordan lost. Jordan drew.";
        let got = grouped(
            text,
            &[("Jordan", "PER"), ("Jordan", "LOC"), ("Jordan", "LOC")],
        );
        assert_eq!(
            got,
            vec![g("Jordan", "LOC", &["Jordan", "Jordan", "Jordan"])]
        );
        // A tie goes to the fullest mention's label (the first, among equals).
        let got = grouped(text, &[("Jordan", "PER"), ("Jordan", "LOC")]);
        assert_eq!(got[0].1, "PER");
    }

    #[test]
    fn an_acronym_with_two_possible_expansions_stays_apart() {
        let text = "Pakistan Cricket and Punjab Council met. PC said no.";
        let got = grouped(
            text,
            &[
                ("Pakistan Cricket", "ORG"),
                ("Punjab Council", "ORG"),
                ("PC", "ORG"),
            ],
        );
        assert_eq!(got.len(), 3, "{got:?}");
    }

    #[test]
    fn salience_prefers_frequent_early_entities_and_stays_in_range() {
        let filler = "Nothing happens here. ".repeat(100);
        let text = format!("Berlin is large. Berlin again. {filler} Paris once.");
        let entities = found(
            &text,
            &[("Berlin", "LOC"), ("Berlin", "LOC"), ("Paris", "LOC")],
        );
        let groups = group(&text, &entities);
        assert_eq!(groups[0].name, "Berlin");
        assert!(groups[0].salience > groups[1].salience);
        for g in &groups {
            assert!((0.0..=1.0).contains(&g.salience), "{g:?}");
        }
        assert!((groups[0].salience - 1.0).abs() < 0.01, "{:?}", groups[0]);
    }

    #[test]
    fn every_mention_is_in_exactly_one_group_and_no_mentions_no_groups() {
        assert!(group("text", &[]).is_empty());
        let text = "A B. A. C D C.";
        let entities = found(
            text,
            &[("A B", "PER"), ("A", "PER"), ("C D", "PER"), ("C", "PER")],
        );
        let groups = group(text, &entities);
        let mut all: Vec<usize> = groups.iter().flat_map(|g| g.mentions.clone()).collect();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3]);
    }

    #[test]
    fn acronyms_and_initials() {
        assert_eq!(acronym("NIH").as_deref(), Some("NIH"));
        assert_eq!(acronym("U.N.").as_deref(), Some("UN"));
        assert_eq!(acronym("CPEC's").as_deref(), Some("CPEC"));
        assert_eq!(acronym("Nih"), None);
        assert_eq!(acronym("I"), None);
        assert_eq!(acronym("COVID-19"), None);
        assert_eq!(initials("National Institute of Health"), "NIH");
        assert_eq!(initials("China-Pakistan Economic Corridor"), "CPEC");
        assert_eq!(initials("Bank of England"), "BE");
        assert_eq!(normalise("The Pentagon's"), "pentagon");
        assert_eq!(normalise("Al-Qaeda"), "al qaeda");
        assert_eq!(normalise("Jones'"), "jones");
    }
}
