//! Sequence-to-sequence summarizers (BART, T5, LongT5, Pegasus, ProphetNet) on rust-bert.

use rust_bert::bart::BartGenerator;
use rust_bert::longt5::LongT5Generator;
use rust_bert::pegasus::PegasusConditionalGenerator;
use rust_bert::pipelines::common::{ModelResource, ModelType, TokenizerOption};
use rust_bert::pipelines::generation_utils::{GenerateConfig, GenerateOptions, LanguageGenerator};
use rust_bert::pipelines::summarization::SummarizationConfig;
use rust_bert::prophetnet::ProphetNetConditionalGenerator;
use rust_bert::resources::LocalResource;
use rust_bert::t5::T5Generator;
use tch::Device;

use super::config::{required, weights, HfConfig, LoadResult};
use crate::engine::manifest::ModelSpec;
use crate::engine::models;
use crate::engine::{Generated, Generation, ModelInfo};
use crate::error::Result;

pub(super) struct Summarizer {
    generator: Seq2Seq,
    /// Task prefix some models were trained with ("summarize: " for T5).
    prefix: &'static str,
    /// Sentencepiece tokenizers in rust_tokenizers do not collapse white space.
    collapse_whitespace: bool,
    max_tokens: usize,
}

enum Seq2Seq {
    Bart(BartGenerator),
    T5(T5Generator),
    LongT5(LongT5Generator),
    Pegasus(PegasusConditionalGenerator),
    ProphetNet(ProphetNetConditionalGenerator),
}

impl Summarizer {
    pub(super) fn load(spec: &ModelSpec, device: Device) -> LoadResult<(Self, ModelInfo)> {
        let dir = &spec.path;
        let hf = HfConfig::read(dir)?;
        let resource = |file: &str| -> LoadResult<LocalResource> {
            Ok(LocalResource::from(required(dir, file)?))
        };
        let (model_type, vocab, merges) = match hf.model_type.as_str() {
            "bart" => (ModelType::Bart, resource("vocab.json")?, Some(resource("merges.txt")?)),
            "t5" => (ModelType::T5, resource("spiece.model")?, None),
            "longt5" => (ModelType::LongT5, resource("spiece.model")?, None),
            "pegasus" => (ModelType::Pegasus, resource("spiece.model")?, None),
            "prophetnet" => (ModelType::ProphetNet, resource("prophetnet.tokenizer")?, None),
            other => return Err(format!("summarization models of type {other:?} are not supported (bart, t5, longt5, pegasus, prophetnet are)").into()),
        };
        let mut config = SummarizationConfig::new(
            model_type,
            ModelResource::Torch(Box::new(LocalResource::from(weights(dir)?))),
            resource("config.json")?,
            vocab,
            merges,
        );
        let defaults = Generation::default();
        config.device = device;
        config.min_length = defaults.min_length as i64;
        config.max_length = Some(defaults.max_length as i64);
        config.num_beams = defaults.num_beams as i64;
        config.no_repeat_ngram_size = defaults.no_repeat_ngram_size as i64;
        config.early_stopping = true;
        let generate: GenerateConfig = config.into();
        let generator = match model_type {
            ModelType::Bart => Seq2Seq::Bart(BartGenerator::new(generate)?),
            ModelType::T5 => Seq2Seq::T5(T5Generator::new(generate)?),
            ModelType::LongT5 => Seq2Seq::LongT5(LongT5Generator::new(generate)?),
            ModelType::Pegasus => Seq2Seq::Pegasus(PegasusConditionalGenerator::new(generate)?),
            _ => Seq2Seq::ProphetNet(ProphetNetConditionalGenerator::new(generate)?),
        };
        let max_tokens = hf.max_positions.unwrap_or(512);
        let info = ModelInfo {
            name: spec.name.clone(),
            architecture: hf.model_type,
            max_input_tokens: max_tokens,
            ..ModelInfo::default()
        };
        let summarizer = Summarizer {
            generator,
            prefix: if matches!(model_type, ModelType::T5 | ModelType::LongT5) {
                "summarize: "
            } else {
                ""
            },
            collapse_whitespace: !matches!(model_type, ModelType::Bart),
            max_tokens,
        };
        Ok((summarizer, info))
    }

    fn tokenizer(&self) -> &TokenizerOption {
        match &self.generator {
            Seq2Seq::Bart(g) => g.get_tokenizer(),
            Seq2Seq::T5(g) => g.get_tokenizer(),
            Seq2Seq::LongT5(g) => g.get_tokenizer(),
            Seq2Seq::Pegasus(g) => g.get_tokenizer(),
            Seq2Seq::ProphetNet(g) => g.get_tokenizer(),
        }
    }

    /// The text as the model reads it: the task prefix, white space collapsed where the
    /// tokenizer does not do it.
    fn prompt(&self, text: &str) -> String {
        let body = if self.collapse_whitespace {
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        } else {
            text.to_string()
        };
        format!("{}{}", self.prefix, body)
    }
}

impl models::Summarizer for Summarizer {
    /// Input tokens of `text`, end-of-sequence token included.
    fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer().tokenize(&self.prompt(text)).len() + 1
    }

    fn generate(&mut self, texts: &[&str], g: &Generation) -> Result<Vec<Generated>> {
        let prompts: Vec<String> = texts.iter().map(|t| self.prompt(t)).collect();
        let options = GenerateOptions {
            min_length: Some(g.min_length as i64),
            max_length: Some(g.max_length as i64),
            num_beams: Some(g.num_beams as i64),
            length_penalty: Some(g.length_penalty as f64),
            no_repeat_ngram_size: Some(g.no_repeat_ngram_size as i64),
            early_stopping: Some(true),
            ..Default::default()
        };
        // generate_indices + decode is what rust-bert's generate does; the indices also
        // tell how many tokens were generated (benchmarks check equal work with them).
        let outputs = match &self.generator {
            Seq2Seq::Bart(m) => m.generate_indices(Some(&prompts), Some(options))?,
            Seq2Seq::T5(m) => m.generate_indices(Some(&prompts), Some(options))?,
            Seq2Seq::LongT5(m) => m.generate_indices(Some(&prompts), Some(options))?,
            Seq2Seq::Pegasus(m) => m.generate_indices(Some(&prompts), Some(options))?,
            Seq2Seq::ProphetNet(m) => m.generate_indices(Some(&prompts), Some(options))?,
        };
        Ok(outputs
            .into_iter()
            .zip(&prompts)
            .map(|(out, prompt)| {
                let input_tokens = self.tokenizer().tokenize(prompt).len() + 1;
                Generated {
                    text: self
                        .tokenizer()
                        .decode(&out.indices, true, true)
                        .trim()
                        .to_string(),
                    input_tokens,
                    // The first index is the decoder start token, which is given.
                    output_tokens: out.indices.len().saturating_sub(1),
                    truncated: input_tokens > self.max_tokens,
                }
            })
            .collect())
    }
}
