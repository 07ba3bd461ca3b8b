//! Token classifiers (BERT, DistilBERT, ELECTRA, RoBERTa) on rust-bert.

use rust_bert::pipelines::common::{ModelResource, ModelType, TokenizerOption};
use rust_bert::pipelines::token_classification::{
    LabelAggregationOption, TokenClassificationConfig, TokenClassificationModel,
};
use rust_bert::resources::LocalResource;
use tch::Device;

use super::config::{lower_case, path_str, required, weights, HfConfig, LoadResult};
use crate::engine::manifest::ModelSpec;
use crate::engine::models::{SubToken, TokenClassifier};
use crate::engine::tagging::Packing;
use crate::engine::ModelInfo;
use crate::error::Result;

pub(super) struct Ner {
    model: TokenClassificationModel,
    tokenizer: TokenizerOption,
    max_tokens: usize,
    packing: Packing,
    labels: Vec<String>,
}

impl Ner {
    pub(super) fn load(spec: &ModelSpec, device: Device) -> LoadResult<(Self, ModelInfo)> {
        let dir = &spec.path;
        let hf = HfConfig::read(dir)?;
        let (model_type, vocab, merges) = match hf.model_type.as_str() {
            "bert" => (ModelType::Bert, required(dir, "vocab.txt")?, None),
            "distilbert" => (ModelType::DistilBert, required(dir, "vocab.txt")?, None),
            "electra" => (ModelType::Electra, required(dir, "vocab.txt")?, None),
            "roberta" => (ModelType::Roberta, required(dir, "vocab.json")?, Some(required(dir, "merges.txt")?)),
            other => return Err(format!("token classifiers of type {other:?} are not supported (bert, distilbert, electra, roberta are)").into()),
        };
        let labels = hf
            .labels()
            .map_err(|reason| format!("{}: {reason}", dir.join("config.json").display()))?;
        let lower_case = lower_case(spec);
        let add_prefix_space = merges.as_ref().map(|_| true);
        let mut config = TokenClassificationConfig::new(
            model_type,
            ModelResource::Torch(Box::new(LocalResource::from(weights(dir)?))),
            LocalResource::from(dir.join("config.json")),
            LocalResource::from(vocab.clone()),
            merges.clone().map(LocalResource::from),
            lower_case,
            None,
            add_prefix_space,
            LabelAggregationOption::First,
        );
        config.device = device;
        // rust-bert 0.23 misaligns results when one predict() call spans several of its
        // batches (it indexes features from 0 in every batch): gist hands it at most
        // TAG_BATCH pieces that each fit the window, and a batch size that always covers them.
        config.batch_size = 4096;
        let tokenizer = TokenizerOption::from_file(
            model_type,
            path_str(&vocab)?,
            merges.as_deref().map(path_str).transpose()?,
            lower_case,
            None,
            add_prefix_space,
        )?;
        let model = TokenClassificationModel::new(config)?;
        let max_tokens = hf.max_positions.unwrap_or(512);
        let packing = hf.packing(spec);
        let info = ModelInfo {
            name: spec.name.clone(),
            architecture: hf.model_type,
            max_input_tokens: max_tokens,
            ..ModelInfo::default()
        };
        Ok((
            Ner {
                model,
                tokenizer,
                max_tokens,
                packing,
                labels,
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
        self.tokenizer.tokenize(text).len()
    }

    fn classify(&mut self, batch: &[&str]) -> Result<Vec<Vec<SubToken>>> {
        // Sub-tokens, not rust-bert's consolidated words: its consolidation scores a word by
        // multiplying every sub-token's probability, which is meaningless for models trained
        // on first sub-tokens only (a confident "Gwadar" scored 0.03).
        Ok(self
            .model
            .predict(batch, false, false)
            .into_iter()
            .map(|tokens| {
                tokens
                    .into_iter()
                    .filter_map(|token| {
                        token.offset.map(|o| SubToken {
                            begin: o.begin as usize,
                            label: token.label,
                            score: token.score as f32,
                            probs: token.scores.iter().map(|&p| p as f32).collect(),
                        })
                    })
                    .collect()
            })
            .collect())
    }
}
