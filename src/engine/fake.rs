//! A deterministic engine that needs no model files, for fast server tests and for
//! measuring the server's own overhead. Its answers are real functions of the input:
//! - `embed`: hashed character trigrams (similar sentences get similar vectors);
//! - `tag`: runs of capitalised words not starting a sentence are `B-/I-MISC`;
//! - `generate`: the first `max_length` words of the input (its window: 512 words).

use std::time::Duration;

use super::{Embedding, Engine, EngineInfo, Generated, Generation, ModelInfo, Role, Tagged};
use crate::error::Result;
use crate::text::entities::WordTag;
use crate::text::rank::normalize;

const DIM: usize = 64;

/// The fake engine. `delay` is slept once per call to let tests control timing.
#[derive(Debug, Clone)]
pub struct FakeEngine {
    info: EngineInfo,
    /// Time each call takes.
    pub delay: Duration,
}

impl FakeEngine {
    /// A fake engine with all three models and no delay.
    pub fn new() -> Self {
        let model = |name: &str, architecture: &str| ModelInfo {
            name: name.to_string(),
            architecture: architecture.to_string(),
            max_input_tokens: 512,
        };
        FakeEngine {
            info: EngineInfo {
                encoder: Some(model("fake-encoder", "fake")),
                ner: Some(model("fake-ner", "fake")),
                summarizer: Some(model("fake-summarizer", "fake")),
            },
            delay: Duration::ZERO,
        }
    }

    /// Only the encoder, like a server with the default manifest and no NER model.
    pub fn encoder_only() -> Self {
        let mut engine = Self::new();
        engine.info.ner = None;
        engine.info.summarizer = None;
        engine
    }

    fn pause(&self) {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
    }
}

impl Default for FakeEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine for FakeEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn embed(&mut self, sentences: &[&str]) -> Result<Vec<Embedding>> {
        self.pause();
        if self.info.encoder.is_none() {
            return Err(crate::Error::Unavailable(
                "no sentence encoder is configured".into(),
            ));
        }
        Ok(sentences
            .iter()
            .map(|s| {
                let chars: Vec<char> = s.to_lowercase().chars().collect();
                let mut vector = vec![0f32; DIM];
                for w in chars.windows(3) {
                    let h = w
                        .iter()
                        .fold(2166136261u32, |h, c| (h ^ *c as u32).wrapping_mul(16777619));
                    vector[h as usize % DIM] += 1.0;
                }
                normalize(&mut vector);
                Embedding {
                    vector,
                    tokens: s.split_whitespace().count() + 2,
                    truncated: false,
                }
            })
            .collect())
    }

    fn tag(&mut self, texts: &[&str]) -> Result<Vec<Tagged>> {
        self.pause();
        if self.info.ner.is_none() {
            return Err(crate::Error::Unavailable(super::rust_bert::NO_NER.into()));
        }
        Ok(texts
            .iter()
            .map(|text| {
                let mut words = Vec::new();
                let mut sentence_start = true;
                let mut previous_entity = false;
                let mut word: Option<(usize, String)> = None;
                for (i, c) in text.chars().chain(std::iter::once(' ')).enumerate() {
                    if c.is_alphanumeric() {
                        word.get_or_insert((i, String::new())).1.push(c);
                        continue;
                    }
                    if let Some((start, w)) = word.take() {
                        let capital = w.chars().next().is_some_and(char::is_uppercase);
                        let label = match (capital && !sentence_start, previous_entity) {
                            (true, true) => "I-MISC",
                            (true, false) => "B-MISC",
                            _ => "O",
                        };
                        previous_entity = label != "O";
                        words.push(WordTag {
                            start,
                            end: start + w.chars().count(),
                            label: label.into(),
                            score: 0.9,
                        });
                        sentence_start = false;
                    }
                    if matches!(c, '.' | '!' | '?') {
                        sentence_start = true;
                    }
                }
                Tagged {
                    tokens: words.len(),
                    words,
                }
            })
            .collect())
    }

    fn generate(&mut self, texts: &[&str], options: &Generation) -> Result<Vec<Generated>> {
        self.pause();
        if self.info.summarizer.is_none() {
            return Err(crate::Error::FailedPrecondition(
                super::rust_bert::NO_SUMMARIZER.into(),
            ));
        }
        Ok(texts
            .iter()
            .map(|t| {
                let words: Vec<&str> = t.split_whitespace().collect();
                // The fake model reads at most its window, like a real one.
                let window = self
                    .info
                    .summarizer
                    .as_ref()
                    .map_or(512, |m| m.max_input_tokens);
                let seen = &words[..words.len().min(window)];
                let out = &seen[..seen.len().min(options.max_length)];
                Generated {
                    text: out.join(" "),
                    input_tokens: words.len(),
                    output_tokens: out.len(),
                    truncated: words.len() > window,
                }
            })
            .collect())
    }

    fn count_tokens(&mut self, model: Role, texts: &[&str]) -> Result<Vec<usize>> {
        let loaded = match model {
            Role::Encoder => self.info.encoder.is_some(),
            Role::Ner => self.info.ner.is_some(),
            Role::Summarizer => self.info.summarizer.is_some(),
        };
        if !loaded {
            return Err(crate::Error::FailedPrecondition(format!(
                "no {model:?} model is loaded"
            )));
        }
        // The fake models' tokens are words.
        Ok(texts
            .iter()
            .map(|t| t.split_whitespace().count() + 1)
            .collect())
    }
}
