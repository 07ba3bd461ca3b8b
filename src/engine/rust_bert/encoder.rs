//! Sentence encoders (sentence-transformers folders) on rust-bert.

use rust_bert::pipelines::common::ModelType;
use rust_bert::pipelines::sentence_embeddings::{
    SentenceEmbeddingsConfig, SentenceEmbeddingsModel,
};
use rust_bert::resources::LocalResource;
use tch::Device;

use super::config::{required, weights, HfConfig, LoadResult};
use crate::engine::manifest::ModelSpec;
use crate::engine::models::SentenceEncoder;
use crate::engine::ModelInfo;
use crate::error::Result;

pub(super) struct Encoder {
    model: SentenceEmbeddingsModel,
    max_tokens: usize,
}

impl Encoder {
    pub(super) fn load(spec: &ModelSpec, device: Device) -> LoadResult<(Self, ModelInfo)> {
        let dir = &spec.path;
        let hf = HfConfig::read(dir)?;
        // Each architecture's own tokenizer file (RoBERTa also reads merges.txt below).
        let (transformer_type, vocab) = match hf.model_type.as_str() {
            "bert" => (ModelType::Bert, "vocab.txt"),
            "distilbert" => (ModelType::DistilBert, "vocab.txt"),
            "roberta" => (ModelType::Roberta, "vocab.json"),
            "albert" => (ModelType::Albert, "spiece.model"),
            "t5" => (ModelType::T5, "spiece.model"),
            other => return Err(format!("sentence encoders of type {other:?} are not supported (bert, distilbert, roberta, albert, t5 are)").into()),
        };
        let local = |file: &str| -> LoadResult<Box<LocalResource>> {
            Ok(Box::new(LocalResource::from(required(dir, file)?)))
        };
        let config = SentenceEmbeddingsConfig {
            modules_config_resource: local("modules.json")?,
            transformer_type,
            transformer_config_resource: local("config.json")?,
            transformer_weights_resource: Box::new(LocalResource::from(weights(dir)?)),
            pooling_config_resource: local("1_Pooling/config.json")?,
            dense_config_resource: None,
            dense_weights_resource: None,
            sentence_bert_config_resource: local("sentence_bert_config.json")?,
            tokenizer_config_resource: local("tokenizer_config.json")?,
            tokenizer_vocab_resource: local(vocab)?,
            tokenizer_merges_resource: dir
                .join("merges.txt")
                .is_file()
                .then(|| Box::new(LocalResource::from(dir.join("merges.txt"))) as _),
            device,
            kind: None,
        };
        let max_tokens = crate::engine::hf::encoder_max_tokens(dir, &hf);
        let model = SentenceEmbeddingsModel::new(config)?;
        let info = ModelInfo {
            name: spec.name.clone(),
            architecture: hf.model_type,
            max_input_tokens: max_tokens,
            ..ModelInfo::default()
        };
        Ok((Encoder { model, max_tokens }, info))
    }
}

impl SentenceEncoder for Encoder {
    fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    fn count_tokens(&self, text: &str) -> usize {
        self.model.get_tokenizer().tokenize(text).len() + 2
    }

    fn encode(&mut self, batch: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(self.model.encode(batch)?)
    }
}
