//! The ONNX engine's tokenizer: rust_tokenizers over the model folder's own vocabulary
//! files (`vocab.txt` for BERT-style models, `vocab.json` + `merges.txt` for RoBERTa), the
//! same library and settings the rust-bert engine uses, so both engines cut and encode
//! texts identically.
//!
//! Hugging Face `tokenizers` (over `tokenizer.json`) was measured against it on the NER
//! engine's call pattern (`examples/bench_tokenizers.rs`, 100 CNN/DM articles): the same ids
//! for all 1,611 pieces, and 1.9× the time (docs/onnx.md, "Tokenizer"), so it is not used.

use std::path::Path;

use rust_tokenizers::tokenizer::{BertTokenizer, RobertaTokenizer, Tokenizer, TruncationStrategy};
use rust_tokenizers::vocab::Vocab;

use crate::engine::hf::LoadResult;
use crate::error::Result;

#[allow(clippy::large_enum_variant)] // one per loaded model, built once and never moved
enum Inner {
    Bert(BertTokenizer),
    Roberta(RobertaTokenizer),
}

/// A model's tokenizer with what batching needs: special-token count and padding id.
pub(super) struct TextTokenizer {
    inner: Inner,
    /// Special tokens added around one sequence ([CLS] and [SEP] for BERT).
    specials: usize,
    /// Id used to pad a batch.
    pad_id: i64,
}

/// One encoded text, special tokens included.
pub(super) struct Encoded {
    /// Token ids.
    pub ids: Vec<i64>,
    /// Code point offsets `(start, end)` of each token in the text (`(0, 0)` for specials).
    pub offsets: Vec<(usize, usize)>,
    /// 1 for special tokens ([CLS], [SEP]) and tokens without an offset, 0 for the text's own.
    pub special: Vec<u32>,
}

impl TextTokenizer {
    /// The tokenizer of `model_type` from `dir`'s vocabulary files; `lower_case` as the
    /// rust-bert engine decides it (manifest, then `tokenizer_config.json`, then true).
    pub fn load(dir: &Path, model_type: &str, lower_case: bool) -> LoadResult<Self> {
        let file = |name: &str| crate::engine::hf::required(dir, name);
        let inner = match model_type {
            "bert" | "distilbert" | "electra" => Inner::Bert(BertTokenizer::from_file(
                file("vocab.txt")?,
                lower_case,
                lower_case,
            )?),
            "roberta" => Inner::Roberta(RobertaTokenizer::from_file(
                file("vocab.json")?,
                file("merges.txt")?,
                false,
                true,
            )?),
            other => {
                return Err(format!(
                    "the ONNX engine has no tokenizer for models of type {other:?} (bert, distilbert, electra, roberta)"
                )
                .into())
            }
        };
        let (pad, empty) = match &inner {
            Inner::Bert(t) => (
                t.vocab().token_to_id(t.vocab().get_pad_value()),
                t.encode("", None, 16, &TruncationStrategy::LongestFirst, 0),
            ),
            Inner::Roberta(t) => (
                t.vocab().token_to_id(t.vocab().get_pad_value()),
                t.encode("", None, 16, &TruncationStrategy::LongestFirst, 0),
            ),
        };
        Ok(TextTokenizer {
            inner,
            specials: empty.token_ids.len(),
            pad_id: pad,
        })
    }

    /// Special tokens added around one sequence.
    pub fn specials(&self) -> usize {
        self.specials
    }

    /// Id used to pad a batch.
    pub fn pad_id(&self) -> i64 {
        self.pad_id
    }

    /// Tokens of `text` without special tokens.
    pub fn count(&self, text: &str) -> usize {
        match &self.inner {
            Inner::Bert(t) => t.tokenize(text).len(),
            Inner::Roberta(t) => t.tokenize(text).len(),
        }
    }

    /// Encode `text` with special tokens, its own tokens cut to fit `max_tokens` in all.
    ///
    /// # Errors
    /// None today (rust_tokenizers does not fail on text); kept for tokenizers that can.
    pub fn encode(&self, text: &str, max_tokens: usize) -> Result<Encoded> {
        let strategy = TruncationStrategy::LongestFirst;
        let input = match &self.inner {
            Inner::Bert(t) => t.encode(text, None, max_tokens, &strategy, 0),
            Inner::Roberta(t) => t.encode(text, None, max_tokens, &strategy, 0),
        };
        // A token without an offset belongs to no word (rust-bert skips it too).
        Ok(Encoded {
            offsets: input
                .token_offsets
                .iter()
                .map(|o| o.map_or((0, 0), |o| (o.begin as usize, o.end as usize)))
                .collect(),
            special: input
                .special_tokens_mask
                .iter()
                .zip(&input.token_offsets)
                .map(|(&m, o)| u32::from(m != 0 || o.is_none()))
                .collect(),
            ids: input.token_ids,
        })
    }
}
