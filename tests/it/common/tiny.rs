//! Tiny rust-bert models built by the tests themselves (random weights from a small config,
//! a small vocabulary written here), and safetensors helpers: they need libtorch.

use std::path::Path;

use gist::engine::manifest::ModelSpec;
use gist::engine::Engine;
use rust_bert::bart::{BartConfig, BartForConditionalGeneration};
use rust_bert::bert::{BertConfig, BertForSentenceEmbeddings, BertForTokenClassification};
use serde_json::json;
use tch::nn::VarStore;
use tch::Device;

use super::{cpu, write_json};

/// The CoNLL-2003 labels in the usual Hugging Face order.
pub const NER_LABELS: [&str; 9] = [
    "O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC",
];

fn bert_vocab() -> Vec<String> {
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for c in "abcdefghijklmnopqrstuvwxyz0123456789".chars() {
        vocab.push(c.to_string());
        vocab.push(format!("##{c}"));
    }
    for p in ".,;:!?'\"()-“”’".chars() {
        vocab.push(p.to_string());
    }
    for w in [
        "the", "and", "of", "to", "in", "khan", "li", "china", "pakistan", "prime", "minister",
        "met", "said",
    ] {
        vocab.push(w.to_string());
    }
    vocab
}

fn bert_config(vocab_size: usize, labels: Option<&[&str]>) -> serde_json::Value {
    bert_config_sized(vocab_size, labels, 32, 2)
}

fn bert_config_sized(
    vocab_size: usize,
    labels: Option<&[&str]>,
    hidden: usize,
    layers: usize,
) -> serde_json::Value {
    let mut config = json!({
        "model_type": "bert",
        "architectures": ["BertForTokenClassification"],
        "hidden_act": "gelu",
        "attention_probs_dropout_prob": 0.1,
        "hidden_dropout_prob": 0.1,
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": 2 * hidden,
        "max_position_embeddings": 128,
        "num_attention_heads": 2,
        "num_hidden_layers": layers,
        "type_vocab_size": 2,
        "vocab_size": vocab_size,
    });
    if let Some(labels) = labels {
        let id2label: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (i.to_string(), json!(l)))
            .collect();
        let label2id: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.to_string(), json!(i)))
            .collect();
        config["id2label"] = json!(id2label);
        config["label2id"] = json!(label2id);
    }
    config
}

fn write_bert_tokenizer(dir: &Path) -> usize {
    let vocab = bert_vocab();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("vocab.txt"), vocab.join("\n") + "\n").unwrap();
    write_json(
        &dir.join("tokenizer_config.json"),
        &json!({"do_lower_case": true, "model_max_length": 128}),
    );
    vocab.len()
}

/// A tiny BERT token classifier with random weights. With `forced_label`, the classifier
/// is set to always predict that label, so tests can know the exact output.
pub fn tiny_ner(dir: &Path, forced_label: Option<&str>) -> ModelSpec {
    ner_with(dir, &NER_LABELS, forced_label, 32, 2)
}

/// A BERT token classifier with random weights, with these labels and this size (hidden
/// width and layers), always predicting `forced_label` when one is given.
pub fn ner_with(
    dir: &Path,
    labels: &[&str],
    forced_label: Option<&str>,
    hidden: usize,
    layers: usize,
) -> ModelSpec {
    let vocab_size = write_bert_tokenizer(dir);
    let config_json = bert_config_sized(vocab_size, Some(labels), hidden, layers);
    write_json(&dir.join("config.json"), &config_json);
    let config: BertConfig = serde_json::from_value(config_json).unwrap();
    tch::manual_seed(7);
    let vs = VarStore::new(Device::Cpu);
    let _model = BertForTokenClassification::new(vs.root(), &config).unwrap();
    if let Some(label) = forced_label {
        let index = labels
            .iter()
            .position(|l| *l == label)
            .expect("one of the labels");
        let vars = vs.variables();
        tch::no_grad(|| {
            let _ = vars["classifier.weight"].shallow_clone().fill_(0.0);
            let mut bias = vars["classifier.bias"].shallow_clone();
            let _ = bias.fill_(0.0);
            let _ = bias.get(index as i64).fill_(10.0);
        });
    }
    vs.save(dir.join("model.safetensors")).unwrap();
    ModelSpec {
        name: "tiny-ner".into(),
        path: dir.to_path_buf(),
        lower_case: None,
        ..Default::default()
    }
}

/// A tiny sentence-transformers BERT encoder (mean pooling) with random weights.
pub fn tiny_encoder(dir: &Path) -> ModelSpec {
    let vocab_size = write_bert_tokenizer(dir);
    let config_json = bert_config(vocab_size, None);
    write_json(&dir.join("config.json"), &config_json);
    write_json(
        &dir.join("modules.json"),
        &json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        ]),
    );
    write_json(
        &dir.join("1_Pooling/config.json"),
        &json!({"word_embedding_dimension": 32, "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true,
                "pooling_mode_max_tokens": false, "pooling_mode_mean_sqrt_len_tokens": false}),
    );
    write_json(
        &dir.join("sentence_bert_config.json"),
        &json!({"max_seq_length": 64, "do_lower_case": false}),
    );
    let config: BertConfig = serde_json::from_value(config_json).unwrap();
    tch::manual_seed(11);
    let vs = VarStore::new(Device::Cpu);
    let _model = BertForSentenceEmbeddings::new(vs.root(), &config);
    vs.save(dir.join("model.safetensors")).unwrap();
    ModelSpec {
        name: "tiny-encoder".into(),
        path: dir.to_path_buf(),
        lower_case: None,
        ..Default::default()
    }
}

/// GPT-2's byte → printable character table, which byte-level BPE vocabularies use.
fn bytes_to_unicode() -> Vec<char> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut table = vec![' '; 256];
    for (b, c) in bs.into_iter().zip(cs) {
        table[b as usize] = char::from_u32(c).unwrap();
    }
    table
}

/// A tiny BART summarizer with random weights and a byte-level vocabulary.
pub fn tiny_bart(dir: &Path) -> ModelSpec {
    std::fs::create_dir_all(dir).unwrap();
    let mut vocab = serde_json::Map::new();
    for (i, t) in ["<s>", "<pad>", "</s>", "<unk>"].iter().enumerate() {
        vocab.insert(t.to_string(), json!(i));
    }
    for c in bytes_to_unicode() {
        let id = vocab.len();
        vocab.insert(c.to_string(), json!(id));
    }
    vocab.insert("<mask>".into(), json!(vocab.len()));
    let vocab_size = vocab.len();
    write_json(&dir.join("vocab.json"), &json!(vocab));
    std::fs::write(dir.join("merges.txt"), "#version: 0.2\n").unwrap();
    let config_json = json!({
        "model_type": "bart",
        "activation_function": "gelu",
        "activation_dropout": 0.0,
        "attention_dropout": 0.0,
        "d_model": 16,
        "decoder_attention_heads": 2,
        "decoder_ffn_dim": 32,
        "decoder_layerdrop": 0.0,
        "decoder_layers": 1,
        "decoder_start_token_id": 2,
        "dropout": 0.0,
        "encoder_attention_heads": 2,
        "encoder_ffn_dim": 32,
        "encoder_layerdrop": 0.0,
        "encoder_layers": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "pad_token_id": 1,
        "forced_bos_token_id": 0,
        "forced_eos_token_id": 2,
        "init_std": 0.02,
        "is_encoder_decoder": true,
        "max_position_embeddings": 256,
        "num_hidden_layers": 1,
        "scale_embedding": false,
        "vocab_size": vocab_size,
    });
    write_json(&dir.join("config.json"), &config_json);
    let config: BartConfig = serde_json::from_value(config_json).unwrap();
    tch::manual_seed(13);
    let vs = VarStore::new(Device::Cpu);
    let _model = BartForConditionalGeneration::new(vs.root(), &config);
    vs.save(dir.join("model.safetensors")).unwrap();
    ModelSpec {
        name: "tiny-bart".into(),
        path: dir.to_path_buf(),
        lower_case: None,
        ..Default::default()
    }
}

/// Load a rust-bert engine from a manifest.
pub fn engine(manifest: &gist::engine::manifest::Manifest) -> Box<dyn Engine> {
    Box::new(gist::engine::rust_bert::load(manifest, &cpu()).unwrap())
}

/// Rewrite the tensors of a safetensors file: `rename` gives each name its new name, or
/// `None` to leave the tensor out. Builds the variants other tools write.
pub fn rewrite_tensors(path: &Path, rename: impl Fn(&str) -> Option<String>) {
    let tensors: Vec<(String, tch::Tensor)> = tch::Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .filter_map(|(name, t)| rename(&name).map(|n| (n, t)))
        .collect();
    tch::Tensor::write_safetensors(&tensors, path).unwrap();
}

/// The tensor names of a safetensors file, sorted.
pub fn tensor_names(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = tch::Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    names.sort();
    names
}
