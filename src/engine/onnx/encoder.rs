//! Sentence embeddings from a transformer's `model.onnx` (output `last_hidden_state`),
//! pooled here as the model's `1_Pooling/config.json` says (sentence-transformers).
//!
//! Pooling stays out of the graph: the file is the plain transformer export that optimum
//! and sentence-transformers' own ONNX backend write too, so such files work as they are,
//! and the pooling mode remains the model's setting. Pooling a batch is one pass over its
//! `[batch, tokens, hidden]` output, small beside the forward pass.

use ort::session::Session;

use super::tokenizer::TextTokenizer;
use super::{model_file, Batch, GraphInputs, SessionSettings};
use crate::engine::hf::{self, HfConfig, LoadResult};
use crate::engine::manifest::ModelSpec;
use crate::engine::models::SentenceEncoder;
use crate::engine::ModelInfo;
use crate::error::{Error, Result};

/// sentence-transformers pooling modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pooling {
    Mean,
    MeanSqrtLen,
    Cls,
    Max,
}

pub(super) struct Encoder {
    session: Session,
    inputs: GraphInputs,
    tokenizer: TextTokenizer,
    pooling: Pooling,
    max_tokens: usize,
}

impl Encoder {
    pub fn load(spec: &ModelSpec, settings: &SessionSettings) -> LoadResult<(Self, ModelInfo)> {
        let dir = &spec.path;
        let config = HfConfig::read(dir)?;
        let pooling = pooling(dir)?;
        let max_tokens = hf::encoder_max_tokens(dir, &config);
        let file = model_file(spec)?;
        let tokenizer = TextTokenizer::load(dir, &config.model_type, hf::lower_case(spec))?;
        let session = super::runtime::session(&file, settings)?;
        let inputs = GraphInputs::of(&session)?;
        let info = super::info(spec, config, max_tokens);
        Ok((
            Encoder {
                session,
                inputs,
                tokenizer,
                pooling,
                max_tokens,
            },
            info,
        ))
    }
}

impl SentenceEncoder for Encoder {
    fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer.count(text) + self.tokenizer.specials()
    }

    fn encode(&mut self, batch: &[&str]) -> Result<Vec<Vec<f32>>> {
        let encoded = batch
            .iter()
            .map(|s| self.tokenizer.encode(s, self.max_tokens))
            .collect::<Result<Vec<_>>>()?;
        let rows: Vec<&[i64]> = encoded.iter().map(|e| e.ids.as_slice()).collect();
        let lengths: Vec<usize> = rows.iter().map(|r| r.len()).collect();
        let pooling = self.pooling;
        Batch::new(&rows, self.tokenizer.pad_id()).run(
            &mut self.session,
            &self.inputs,
            |shape, data| pool(shape, data, &lengths, pooling),
        )?
    }
}

/// The pooling mode of `dir/1_Pooling/config.json` (mean when the folder has none).
fn pooling(dir: &std::path::Path) -> LoadResult<Pooling> {
    let path = dir.join("1_Pooling/config.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(Pooling::Mean);
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let on = |key: &str| json[key].as_bool().unwrap_or(false);
    let modes = [
        ("pooling_mode_mean_tokens", Pooling::Mean),
        ("pooling_mode_mean_sqrt_len_tokens", Pooling::MeanSqrtLen),
        ("pooling_mode_cls_token", Pooling::Cls),
        ("pooling_mode_max_tokens", Pooling::Max),
    ];
    let chosen: Vec<Pooling> = modes.iter().filter(|(k, _)| on(k)).map(|m| m.1).collect();
    match chosen.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!("{}: no pooling mode is on", path.display()).into()),
        _ => Err(format!(
            "{}: several pooling modes at once are not supported",
            path.display()
        )
        .into()),
    }
}

/// Pool `[rows, width, hidden]` hidden states over each row's first `lengths[r]` tokens.
fn pool(
    shape: &[usize],
    data: &[f32],
    lengths: &[usize],
    pooling: Pooling,
) -> Result<Vec<Vec<f32>>> {
    let &[rows, width, hidden] = shape else {
        return Err(Error::Internal(format!(
            "the encoder's output has shape {shape:?}, not [batch, tokens, hidden]"
        )));
    };
    if rows != lengths.len() || data.len() != rows * width * hidden {
        return Err(Error::Internal(format!(
            "the encoder's output {shape:?} does not match a batch of {} texts",
            lengths.len()
        )));
    }
    Ok((0..rows)
        .map(|r| {
            let n = lengths[r].clamp(1, width);
            let token = |t: usize| &data[(r * width + t) * hidden..(r * width + t + 1) * hidden];
            let mut v = vec![0f32; hidden];
            match pooling {
                Pooling::Cls => v.copy_from_slice(token(0)),
                Pooling::Max => {
                    v.fill(f32::NEG_INFINITY);
                    for t in 0..n {
                        for (a, &x) in v.iter_mut().zip(token(t)) {
                            *a = a.max(x);
                        }
                    }
                }
                Pooling::Mean | Pooling::MeanSqrtLen => {
                    for t in 0..n {
                        for (a, &x) in v.iter_mut().zip(token(t)) {
                            *a += x;
                        }
                    }
                    let d = if pooling == Pooling::Mean {
                        n as f32
                    } else {
                        (n as f32).sqrt()
                    };
                    v.iter_mut().for_each(|a| *a /= d);
                }
            }
            v
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_reads_only_each_rows_own_tokens() {
        // Two rows of width 3, hidden 2; row 0 has 2 real tokens, row 1 has 3.
        let data = [
            1.0, 2.0, 3.0, 4.0, 100.0, 100.0, //
            0.0, 1.0, 2.0, 3.0, 4.0, 5.0,
        ];
        let shape = [2, 3, 2];
        let mean = pool(&shape, &data, &[2, 3], Pooling::Mean).unwrap();
        assert_eq!(mean, vec![vec![2.0, 3.0], vec![2.0, 3.0]]);
        let cls = pool(&shape, &data, &[2, 3], Pooling::Cls).unwrap();
        assert_eq!(cls, vec![vec![1.0, 2.0], vec![0.0, 1.0]]);
        let max = pool(&shape, &data, &[2, 3], Pooling::Max).unwrap();
        assert_eq!(max, vec![vec![3.0, 4.0], vec![4.0, 5.0]]);
        let sqrt = pool(&shape, &data, &[2, 3], Pooling::MeanSqrtLen).unwrap();
        assert!((sqrt[0][0] - 4.0 / 2f32.sqrt()).abs() < 1e-6);
        assert!(pool(&[2, 3], &data, &[2, 3], Pooling::Mean).is_err());
        assert!(pool(&shape, &data, &[2], Pooling::Mean).is_err());
    }
}
