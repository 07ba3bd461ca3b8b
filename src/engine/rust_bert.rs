//! The production engine: rust-bert pipelines on libtorch, loaded from local folders of
//! Hugging Face files (`config.json`, `model.safetensors` or `rust_model.ot`, tokenizer files).

use std::path::{Path, PathBuf};

use rust_bert::bart::BartGenerator;
use rust_bert::longt5::LongT5Generator;
use rust_bert::pegasus::PegasusConditionalGenerator;
use rust_bert::pipelines::common::{ModelResource, ModelType, TokenizerOption};
use rust_bert::pipelines::generation_utils::{GenerateConfig, GenerateOptions, LanguageGenerator};
use rust_bert::pipelines::sentence_embeddings::{
    SentenceEmbeddingsConfig, SentenceEmbeddingsModel,
};
use rust_bert::pipelines::summarization::SummarizationConfig;
use rust_bert::pipelines::token_classification::{
    LabelAggregationOption, TokenClassificationConfig, TokenClassificationModel,
};
use rust_bert::prophetnet::ProphetNetConditionalGenerator;
use rust_bert::resources::LocalResource;
use rust_bert::t5::T5Generator;
use tch::Device;

use super::{Embedding, Engine, EngineInfo, Generated, Generation, ModelInfo, Role, Tagged};
use crate::error::{Error, Result};
use crate::manifest::{Manifest, ModelSpec};
use crate::text::entities::WordTag;
use crate::text::rank::normalize;
use crate::text::windows::{self, Piece};

/// Sentences embedded per forward pass.
const EMBED_BATCH: usize = 32;
/// Pieces tagged per forward pass.
const TAG_BATCH: usize = 16;
/// Sentences are tagged in pieces of at most this many tokens: token classifiers are
/// trained on single sentences (CoNLL), and context from a neighbouring paragraph can
/// change a label ("Li Keqiang" became ORG next to a second paragraph).
const TAG_PACK_TOKENS: usize = 48;
/// A sentence longer than this many tokens is cut into overlapping windows.
const TAG_WINDOW_TOKENS: usize = 256;

/// rust-bert models behind the [`Engine`] trait.
pub struct RustBertEngine {
    info: EngineInfo,
    encoder: Option<Encoder>,
    ner: Option<Ner>,
    summarizer: Option<Summarizer>,
}

struct Encoder {
    model: SentenceEmbeddingsModel,
    max_tokens: usize,
}

struct Ner {
    model: TokenClassificationModel,
    tokenizer: TokenizerOption,
    max_tokens: usize,
}

struct Summarizer {
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

impl RustBertEngine {
    /// Load every model of the manifest on `device`.
    ///
    /// # Errors
    /// [`Error::ModelLoad`] naming the model and folder when any model fails to load.
    pub fn load(manifest: &Manifest, device: Device) -> Result<Self> {
        let mut engine = RustBertEngine {
            info: EngineInfo::default(),
            encoder: None,
            ner: None,
            summarizer: None,
        };
        if let Some(spec) = &manifest.encoder {
            let (encoder, info) = with_context(spec, || Encoder::load(spec, device))?;
            engine.encoder = Some(encoder);
            engine.info.encoder = Some(info);
        }
        if let Some(spec) = &manifest.ner {
            let (ner, info) = with_context(spec, || Ner::load(spec, device))?;
            engine.ner = Some(ner);
            engine.info.ner = Some(info);
        }
        if let Some(spec) = &manifest.summarizer {
            let (summarizer, info) = with_context(spec, || Summarizer::load(spec, device))?;
            engine.summarizer = Some(summarizer);
            engine.info.summarizer = Some(info);
        }
        Ok(engine)
    }
}

type LoadResult<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn with_context<T>(spec: &ModelSpec, load: impl FnOnce() -> LoadResult<T>) -> Result<T> {
    // rust-bert panics on some malformed files instead of returning an error.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(load))
        .unwrap_or_else(|panic| Err(panic_message(&panic).into()));
    result.map_err(|source| Error::ModelLoad {
        name: spec.name.clone(),
        path: spec.path.display().to_string(),
        source,
    })
}

/// The message of a caught panic.
pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic with a non-string payload".to_string())
}

/// The parts of a Hugging Face `config.json` gist reads itself.
struct HfConfig {
    model_type: String,
    max_positions: Option<usize>,
    json: serde_json::Value,
}

impl HfConfig {
    fn read(dir: &Path) -> LoadResult<Self> {
        let path = dir.join("config.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let model_type = json["model_type"]
            .as_str()
            .ok_or_else(|| format!("{}: no \"model_type\"", path.display()))?
            .to_string();
        let max_positions = ["max_position_embeddings", "n_positions"]
            .iter()
            .find_map(|k| json[k].as_u64())
            .map(|n| n as usize);
        Ok(HfConfig {
            model_type,
            max_positions,
            json,
        })
    }
}

/// The weights file of a model folder: safetensors preferred, then rust-bert's `.ot`.
fn weights(dir: &Path) -> LoadResult<PathBuf> {
    ["model.safetensors", "rust_model.ot"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "no model.safetensors or rust_model.ot in {} (PyTorch .bin files must be converted first)",
                dir.display()
            )
            .into()
        })
}

fn required(dir: &Path, file: &str) -> LoadResult<PathBuf> {
    let path = dir.join(file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("missing {file} in {}", dir.display()).into())
    }
}

/// `do_lower_case` from the manifest, else from `tokenizer_config.json`, else true.
fn lower_case(spec: &ModelSpec) -> bool {
    spec.lower_case.unwrap_or_else(|| {
        std::fs::read_to_string(spec.path.join("tokenizer_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|j| j["do_lower_case"].as_bool())
            .unwrap_or(true)
    })
}

fn path_str(p: &Path) -> LoadResult<&str> {
    p.to_str()
        .ok_or_else(|| format!("path is not UTF-8: {}", p.display()).into())
}

impl Encoder {
    fn load(spec: &ModelSpec, device: Device) -> LoadResult<(Self, ModelInfo)> {
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
        let max_tokens = std::fs::read_to_string(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|j| j["max_seq_length"].as_u64())
            .map(|n| n as usize)
            .or(hf.max_positions)
            .unwrap_or(512);
        let model = SentenceEmbeddingsModel::new(config)?;
        let info = ModelInfo {
            name: spec.name.clone(),
            architecture: hf.model_type,
            max_input_tokens: max_tokens,
        };
        Ok((Encoder { model, max_tokens }, info))
    }

    fn embed(&self, sentences: &[&str]) -> Result<Vec<Embedding>> {
        let tokenizer = self.model.get_tokenizer();
        let tokens: Vec<usize> = sentences
            .iter()
            .map(|s| tokenizer.tokenize(s).len() + 2)
            .collect();
        // Embed in length order so that each batch pads little, then restore the order.
        let mut order: Vec<usize> = (0..sentences.len()).collect();
        order.sort_by_key(|&i| tokens[i]);
        let mut out: Vec<Option<Embedding>> = vec![None; sentences.len()];
        for chunk in order.chunks(EMBED_BATCH) {
            let batch: Vec<&str> = chunk.iter().map(|&i| sentences[i]).collect();
            let vectors = self.model.encode(&batch)?;
            for (&i, mut vector) in chunk.iter().zip(vectors) {
                normalize(&mut vector);
                out[i] = Some(Embedding {
                    vector,
                    tokens: tokens[i],
                    truncated: tokens[i] > self.max_tokens,
                });
            }
        }
        out.into_iter()
            .map(|e| e.ok_or_else(|| Error::Internal("encoder returned too few embeddings".into())))
            .collect()
    }
}

impl Ner {
    fn load(spec: &ModelSpec, device: Device) -> LoadResult<(Self, ModelInfo)> {
        let dir = &spec.path;
        let hf = HfConfig::read(dir)?;
        let (model_type, vocab, merges) = match hf.model_type.as_str() {
            "bert" => (ModelType::Bert, required(dir, "vocab.txt")?, None),
            "distilbert" => (ModelType::DistilBert, required(dir, "vocab.txt")?, None),
            "electra" => (ModelType::Electra, required(dir, "vocab.txt")?, None),
            "roberta" => (ModelType::Roberta, required(dir, "vocab.json")?, Some(required(dir, "merges.txt")?)),
            other => return Err(format!("token classifiers of type {other:?} are not supported (bert, distilbert, electra, roberta are)").into()),
        };
        if hf.json["id2label"].as_object().is_none_or(|m| m.is_empty()) {
            return Err(format!("{}: no id2label labels in config.json", dir.display()).into());
        }
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
        let info = ModelInfo {
            name: spec.name.clone(),
            architecture: hf.model_type,
            max_input_tokens: max_tokens,
        };
        Ok((
            Ner {
                model,
                tokenizer,
                max_tokens,
            },
            info,
        ))
    }

    fn tag(&self, texts: &[&str]) -> Result<Vec<Tagged>> {
        // Each text is cut into sentence-aligned pieces of a few hundred tokens (overlong
        // sentences into overlapping windows), so every piece fits the model window and
        // rust-bert never windows on its own; each piece reports only the words it keeps.
        let window = TAG_WINDOW_TOKENS.min(self.max_tokens.saturating_sub(2).max(8));
        let count = |s: &str| self.tokenizer.tokenize(s).len();
        let mut pieces: Vec<(usize, Piece)> = Vec::new();
        let mut tokens = vec![0usize; texts.len()];
        for (t, text) in texts.iter().enumerate() {
            for piece in windows::pieces(text, TAG_PACK_TOKENS, window, window / 4, &count) {
                tokens[t] += piece.tokens;
                pieces.push((t, piece));
            }
        }
        // Pieces of similar length share a forward pass, so little of it is padding
        // (requests batched together by the worker differ widely in length).
        pieces.sort_by_key(|(_, piece)| piece.tokens);
        let mut words: Vec<Vec<WordTag>> = vec![Vec::new(); texts.len()];
        for chunk in pieces.chunks(TAG_BATCH) {
            let batch: Vec<&str> = chunk
                .iter()
                .map(|(t, p)| &texts[*t][p.bytes.clone()])
                .collect();
            // Sub-tokens, not rust-bert's consolidated words: its consolidation scores a
            // word by multiplying every sub-token's probability, which is meaningless for
            // models trained on first sub-tokens only (a confident "Gwadar" scored 0.03).
            let tagged = self.model.predict(&batch, false, false);
            for ((t, piece), sub_tokens) in chunk.iter().zip(tagged) {
                let piece_text = &texts[*t][piece.bytes.clone()];
                for word in first_sub_token_words(piece_text, &sub_tokens) {
                    let start = piece.char_offset + word.start;
                    if piece.keep.contains(&start) {
                        words[*t].push(WordTag {
                            start,
                            end: piece.char_offset + word.end,
                            ..word
                        });
                    }
                }
            }
        }
        Ok(words
            .into_iter()
            .zip(tokens)
            .map(|(mut words, tokens)| {
                words.sort_by_key(|w| w.start);
                Tagged { words, tokens }
            })
            .collect())
    }
}

/// Label each word of `text` (CoNLL-style words, see [`crate::text::words`]) with its
/// first sub-token's label and probability: token classifiers are trained on the first
/// sub-token of each CoNLL word, so "P." or "U.S." must be one word here too, not the
/// tokenizer's "P" + "." (whose "." was never trained).
fn first_sub_token_words(
    text: &str,
    sub_tokens: &[rust_bert::pipelines::token_classification::Token],
) -> Vec<WordTag> {
    let spans = crate::text::words::spans(text);
    let mut out: Vec<WordTag> = Vec::new();
    let mut last_word = None;
    for token in sub_tokens {
        let Some(o) = token.offset else { continue };
        let begin = o.begin as usize;
        // The word containing the sub-token's first character.
        let i = spans.partition_point(|&(start, _)| start <= begin);
        let Some(&(start, end)) = i.checked_sub(1).and_then(|i| spans.get(i)) else {
            continue;
        };
        if begin >= end || last_word == Some(start) {
            continue;
        }
        last_word = Some(start);
        out.push(WordTag {
            start,
            end,
            label: token.label.clone(),
            score: token.score as f32,
        });
    }
    out
}

impl Summarizer {
    fn load(spec: &ModelSpec, device: Device) -> LoadResult<(Self, ModelInfo)> {
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
        config.device = device;
        config.min_length = 10;
        config.max_length = Some(142);
        config.num_beams = 3;
        config.no_repeat_ngram_size = 3;
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

    /// Input tokens of `text`, end-of-sequence token included.
    fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer().tokenize(&self.prompt(text)).len() + 1
    }

    fn generate(&self, texts: &[&str], g: &Generation) -> Result<Vec<Generated>> {
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
        if outputs.len() != prompts.len() {
            return Err(Error::Internal(format!(
                "generated {} summaries for {} inputs",
                outputs.len(),
                prompts.len()
            )));
        }
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

impl Engine for RustBertEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn embed(&mut self, sentences: &[&str]) -> Result<Vec<Embedding>> {
        let encoder = self.encoder.as_ref().ok_or_else(|| {
            Error::Unavailable(
                "no sentence encoder is configured: add [encoder] to models.toml".into(),
            )
        })?;
        encoder.embed(sentences)
    }

    fn tag(&mut self, texts: &[&str]) -> Result<Vec<Tagged>> {
        let ner = self
            .ner
            .as_ref()
            .ok_or_else(|| Error::Unavailable(NO_NER.into()))?;
        ner.tag(texts)
    }

    fn generate(&mut self, texts: &[&str], options: &Generation) -> Result<Vec<Generated>> {
        let summarizer = self
            .summarizer
            .as_ref()
            .ok_or_else(|| Error::FailedPrecondition(NO_SUMMARIZER.into()))?;
        summarizer.generate(texts, options)
    }

    fn count_tokens(&mut self, model: Role, texts: &[&str]) -> Result<Vec<usize>> {
        match model {
            Role::Summarizer => {
                let summarizer = self
                    .summarizer
                    .as_ref()
                    .ok_or_else(|| Error::FailedPrecondition(NO_SUMMARIZER.into()))?;
                Ok(texts.iter().map(|t| summarizer.count_tokens(t)).collect())
            }
            Role::Ner => {
                let ner = self
                    .ner
                    .as_ref()
                    .ok_or_else(|| Error::Unavailable(NO_NER.into()))?;
                Ok(texts
                    .iter()
                    .map(|t| ner.tokenizer.tokenize(t).len() + 2)
                    .collect())
            }
            Role::Encoder => {
                let encoder = self.encoder.as_ref().ok_or_else(|| {
                    Error::Unavailable("no sentence encoder is configured".into())
                })?;
                let tokenizer = encoder.model.get_tokenizer();
                Ok(texts
                    .iter()
                    .map(|t| tokenizer.tokenize(t).len() + 2)
                    .collect())
            }
        }
    }
}

/// Message for ExtractEntities on a server without a NER model.
pub const NO_NER: &str = "no NER model is configured: add a [ner] section to models/models.toml (see README, \"Bringing models\")";
/// Message for ABSTRACTIVE on a server without a summarization model.
pub const NO_SUMMARIZER: &str = "ABSTRACTIVE mode needs a summarization model: add a [summarizer] section to models/models.toml (see README, \"Bringing models\"), or use EXTRACTIVE / AUTO";
