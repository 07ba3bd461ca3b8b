//! A deterministic engine that needs no model files, for fast server tests and for
//! measuring the server's own overhead. Its answers are real functions of the input:
//! - `embed`: hashed character trigrams (similar sentences get similar vectors);
//! - `tag`: runs of capitalised words not starting a sentence are `B-/I-MISC`;
//! - `generate`: the first `max_length` words of the input (its window: 512 words).

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::{
    Embedding, Engine, EngineArgs, EngineInfo, Generated, Generation, ModelInfo, Role, Tagged,
};
use crate::error::Result;
use crate::text::entities::WordTag;
use crate::text::rank::normalize;

const DIM: usize = 64;

/// The fake engine. Each call passes the `gate` (if any), then sleeps `delay`.
#[derive(Debug, Clone)]
pub struct FakeEngine {
    info: EngineInfo,
    /// The models the next calls run on ([`Engine::select`]); all of `info` when none.
    selected: Option<EngineInfo>,
    /// Time each call takes.
    pub delay: Duration,
    /// Held shut by a test that needs the model thread busy; see [`Gate`].
    pub gate: Option<Gate>,
}

impl FakeEngine {
    /// A fake engine with all three models and no delay.
    pub fn new() -> Self {
        let model = |name: &str| ModelInfo {
            name: name.to_string(),
            architecture: "fake".to_string(),
            max_input_tokens: 512,
            version: "000000000000".to_string(),
            runtime: "fake".to_string(),
            precision: "fp32".to_string(),
            labels: if name == "fake-ner" {
                vec!["MISC".to_string()]
            } else {
                Vec::new()
            },
        };
        let mut info = EngineInfo::default();
        info.insert(Role::Encoder, model("fake-encoder"));
        info.insert(Role::Ner, model("fake-ner"));
        info.insert(Role::Summarizer, model("fake-summarizer"));
        FakeEngine {
            info,
            selected: None,
            delay: Duration::ZERO,
            gate: None,
        }
    }

    /// The fake engine `--engine fake` asks for (`--fake-delay-ms`).
    pub fn from_args(args: &EngineArgs) -> Self {
        let mut engine = Self::new();
        engine.delay = Duration::from_millis(args.fake_delay_ms);
        engine
    }

    /// Only the encoder, like a server with the default manifest and no NER model.
    pub fn encoder_only() -> Self {
        let mut engine = Self::new();
        engine.info.remove(Role::Ner);
        engine.info.remove(Role::Summarizer);
        engine
    }

    /// The same engine, its calls held at `gate`.
    pub fn gated(mut self, gate: &Gate) -> Self {
        self.gate = Some(gate.clone());
        self
    }

    fn pause(&self) {
        if let Some(gate) = &self.gate {
            gate.pass();
        }
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

/// A gate in front of every call of a [`FakeEngine`]: while it is shut, the model thread
/// waits at it, so a test can hold the model busy for exactly as long as it needs (queue
/// requests behind it, let one call through, shut the server down) and then open it, with
/// no sleeps.
#[derive(Debug, Clone)]
pub struct Gate(Arc<GateInner>);

#[derive(Debug)]
struct GateInner {
    /// Calls that may still pass: `None` when the gate is open.
    permits: Mutex<Option<usize>>,
    changed: Condvar,
    arrivals: tokio::sync::watch::Sender<usize>,
}

impl Gate {
    /// A shut gate.
    pub fn shut() -> Gate {
        Gate(Arc::new(GateInner {
            permits: Mutex::new(Some(0)),
            changed: Condvar::new(),
            arrivals: tokio::sync::watch::channel(0).0,
        }))
    }

    /// Let every call through, now and from now on.
    pub fn open(&self) {
        *self.permits() = None;
        self.0.changed.notify_all();
    }

    /// Let `n` more calls through (the gate stays shut after them).
    pub fn allow(&self, n: usize) {
        let mut permits = self.permits();
        if let Some(left) = permits.as_mut() {
            *left += n;
        }
        drop(permits);
        self.0.changed.notify_all();
    }

    /// Calls that have reached the gate so far (held or let through).
    pub fn arrivals(&self) -> usize {
        *self.0.arrivals.borrow()
    }

    /// Wait until `n` calls have reached the gate in all.
    pub async fn arrived(&self, n: usize) {
        let mut rx = self.0.arrivals.subscribe();
        // The sender lives as long as the gate, which `self` holds.
        let _ = rx.wait_for(|&arrived| arrived >= n).await;
    }

    fn permits(&self) -> std::sync::MutexGuard<'_, Option<usize>> {
        self.0.permits.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pass(&self) {
        self.0.arrivals.send_modify(|n| *n += 1);
        let mut permits = self.permits();
        while *permits == Some(0) {
            permits = self
                .0
                .changed
                .wait(permits)
                .unwrap_or_else(|e| e.into_inner());
        }
        if let Some(left) = permits.as_mut() {
            *left -= 1;
        }
    }
}

impl Engine for FakeEngine {
    fn info(&self) -> &EngineInfo {
        self.selected.as_ref().unwrap_or(&self.info)
    }

    fn served(&self) -> Vec<super::Served> {
        self.info
            .iter()
            .map(|(role, info)| super::Served {
                role,
                info: info.clone(),
                default: true,
            })
            .collect()
    }

    fn select(&mut self, pick: &super::Pick) -> Result<()> {
        let mut selected = EngineInfo::default();
        for (role, key) in &pick.0 {
            match self.info.get(*role) {
                Some(info) if info.key() == *key => selected.insert(*role, info.clone()),
                _ => {
                    return Err(crate::error::Error::Internal(format!(
                        "the fake engine has no model {key} of [{}]",
                        role.section()
                    )))
                }
            }
        }
        self.selected = Some(selected);
        Ok(())
    }

    fn embed(&mut self, sentences: &[&str]) -> Result<Vec<Embedding>> {
        self.pause();
        self.info().require(Role::Encoder)?;
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
        self.info().require(Role::Ner)?;
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
        let window = self.info().require(Role::Summarizer)?.max_input_tokens;
        Ok(texts
            .iter()
            .map(|t| {
                let words: Vec<&str> = t.split_whitespace().collect();
                // The fake model reads at most its window, like a real one.
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
        self.info().require(model)?;
        // The fake models' tokens are words.
        Ok(texts
            .iter()
            .map(|t| t.split_whitespace().count() + 1)
            .collect())
    }
}
