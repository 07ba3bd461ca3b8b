//! Token classification from `model.onnx` (output `logits`, `[batch, tokens, labels]`):
//! each piece's sub-word tokens with their most probable label. The engine's shared
//! tagging pipeline cuts, packs and batches the pieces and reads words back.

use ort::session::Session;

use super::tokenizer::TextTokenizer;
use super::{model_file, Batch, GraphInputs, SessionSettings};
use crate::engine::hf::{self, HfConfig, LoadResult};
use crate::engine::manifest::ModelSpec;
use crate::engine::models::{SubToken, TokenClassifier};
use crate::engine::tagging::Packing;
use crate::engine::ModelInfo;
use crate::error::{Error, Result};

pub(super) struct Ner {
    session: Session,
    inputs: GraphInputs,
    tokenizer: TextTokenizer,
    /// Label of each class index (config.json `id2label`).
    labels: Vec<String>,
    max_tokens: usize,
    packing: Packing,
}

impl Ner {
    pub fn load(spec: &ModelSpec, settings: &SessionSettings) -> LoadResult<(Self, ModelInfo)> {
        let dir = &spec.path;
        let config = HfConfig::read(dir)?;
        let labels = config
            .labels()
            .map_err(|reason| format!("{}: {reason}", dir.join("config.json").display()))?;
        let file = model_file(spec)?;
        let tokenizer = TextTokenizer::load(dir, &config.model_type, hf::lower_case(spec))?;
        let session = super::runtime::session(&file, settings)?;
        let inputs = GraphInputs::of(&session)?;
        let max_tokens = config.max_positions.unwrap_or(512);
        let packing = config.packing(spec);
        let info = super::info(spec, config, max_tokens);
        Ok((
            Ner {
                session,
                inputs,
                tokenizer,
                labels,
                max_tokens,
                packing,
            },
            info,
        ))
    }
}

impl TokenClassifier for Ner {
    fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    fn labels(&self) -> &[String] {
        &self.labels
    }

    fn packing(&self) -> Packing {
        self.packing
    }

    fn sub_words(&self, text: &str) -> usize {
        self.tokenizer.count(text)
    }

    fn classify(&mut self, batch: &[&str]) -> Result<Vec<Vec<SubToken>>> {
        let encoded = batch
            .iter()
            .map(|text| self.tokenizer.encode(text, self.max_tokens))
            .collect::<Result<Vec<_>>>()?;
        let rows: Vec<&[i64]> = encoded.iter().map(|e| e.ids.as_slice()).collect();
        let labels = &self.labels;
        Batch::new(&rows, self.tokenizer.pad_id()).run(
            &mut self.session,
            &self.inputs,
            |shape, logits| {
                let &[rows, width, classes] = shape else {
                    return Err(Error::Internal(format!(
                        "the token classifier's output has shape {shape:?}, not [batch, tokens, labels]"
                    )));
                };
                if rows != encoded.len()
                    || classes != labels.len()
                    || logits.len() != rows * width * classes
                {
                    return Err(Error::Internal(format!(
                        "the token classifier's output {shape:?} does not match {} pieces and {} labels",
                        encoded.len(),
                        labels.len()
                    )));
                }
                Ok(encoded
                    .iter()
                    .enumerate()
                    .map(|(r, enc)| {
                        (0..enc.ids.len())
                            .filter(|&j| enc.special[j] == 0)
                            .map(|j| {
                                let at = (r * width + j) * classes;
                                let probs = softmax(&logits[at..at + classes]);
                                let best = argmax(&probs);
                                SubToken {
                                    begin: enc.offsets[j].0,
                                    label: labels[best].clone(),
                                    score: probs[best],
                                    probs,
                                }
                            })
                            .collect()
                    })
                    .collect())
            },
        )?
    }
}

/// The softmax of one row of logits.
fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// The index of the largest value (the first of equals).
fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 {
                (i, x)
            } else {
                best
            }
        })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_and_argmax_pick_the_largest_logit_and_its_probability() {
        let probs = softmax(&[0.0, 2.0, 1.0]);
        assert_eq!(argmax(&probs), 1);
        let want = 2f32.exp() / (1.0 + 2f32.exp() + 1f32.exp());
        assert!((probs[1] - want).abs() < 1e-6, "{probs:?} vs {want}");
        assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(softmax(&[5.0]), [1.0]);
        assert_eq!(argmax(&[0.5, 0.5]), 0);
        // Large logits do not overflow.
        assert_eq!(argmax(&softmax(&[1000.0, 999.0])), 0);
    }
}
