//! Tokenizer files from a `tokenizer.json`, and the lower-casing of WordPiece models.
//!
//! Many Hub repositories ship only the `tokenizers` library's `tokenizer.json`, while
//! rust-bert reads the older files: `vocab.txt` for WordPiece, `vocab.json` + `merges.txt`
//! for byte-level BPE. Both are plain views of the same vocabulary, so they are derived
//! here (sentencepiece models cannot be: `spiece.model` holds more than the vocabulary).

use std::collections::BTreeMap;

use serde_json::Value;

/// Files derived from a `tokenizer.json`: (file name, contents).
pub type Derived = Vec<(&'static str, String)>;

/// Every token of `tokenizer.json` with its id: the model's vocabulary plus the added
/// tokens (special tokens are sometimes only there).
fn vocabulary(json: &Value) -> Result<BTreeMap<u64, String>, String> {
    let vocab = json["model"]["vocab"]
        .as_object()
        .ok_or("model.vocab is not a token → id map")?;
    let mut by_id = BTreeMap::new();
    let added = json["added_tokens"].as_array().into_iter().flatten();
    let added = added.filter_map(|t| Some((t["content"].as_str()?, &t["id"])));
    for (token, id) in vocab.iter().map(|(t, id)| (t.as_str(), id)).chain(added) {
        let id = id
            .as_u64()
            .ok_or_else(|| format!("token {token:?} has no integer id"))?;
        if let Some(other) = by_id.insert(id, token.to_string()) {
            if other != token {
                return Err(format!("id {id} is both {other:?} and {token:?}"));
            }
        }
    }
    if let Some((i, _)) = by_id.keys().enumerate().find(|(i, id)| *i as u64 != **id) {
        return Err(format!("no token has id {i}: the ids are not contiguous"));
    }
    Ok(by_id)
}

/// `vocab.txt` from a WordPiece `tokenizer.json`: one token per line, in id order.
///
/// # Errors
/// Why the vocabulary cannot be written (wrong model type, gaps in the ids, a token with a
/// line break).
pub fn wordpiece_vocab(json: &Value) -> Result<Derived, String> {
    expect_model(json, "WordPiece")?;
    let by_id = vocabulary(json)?;
    if let Some(t) = by_id.values().find(|t| t.contains(['\n', '\r'])) {
        return Err(format!("token {t:?} contains a line break"));
    }
    let mut text = by_id.into_values().collect::<Vec<_>>().join("\n");
    text.push('\n');
    Ok(vec![("vocab.txt", text)])
}

/// `vocab.json` and `merges.txt` from a BPE `tokenizer.json`. Merges are either
/// `"a b"` strings (tokenizers < 0.20) or `["a", "b"]` pairs.
///
/// # Errors
/// Why the files cannot be written (wrong model type, malformed merges, gaps in the ids).
pub fn bpe_files(json: &Value) -> Result<Derived, String> {
    expect_model(json, "BPE")?;
    let by_id = vocabulary(json)?;
    let vocab: serde_json::Map<String, Value> = by_id
        .into_iter()
        .map(|(id, token)| (token, Value::from(id)))
        .collect();
    let mut merges = String::from("#version: 0.2\n");
    for merge in json["model"]["merges"]
        .as_array()
        .ok_or("model.merges is not a list")?
    {
        let line = match merge {
            Value::String(s) if s.split(' ').count() == 2 => s.clone(),
            Value::Array(pair) if pair.len() == 2 => {
                let part = |i: usize| pair[i].as_str().filter(|p| !p.contains(' '));
                match (part(0), part(1)) {
                    (Some(a), Some(b)) => format!("{a} {b}"),
                    _ => return Err(format!("merge {merge} is not a pair of tokens")),
                }
            }
            _ => return Err(format!("merge {merge} is not a pair of tokens")),
        };
        merges.push_str(&line);
        merges.push('\n');
    }
    let vocab = serde_json::to_string(&vocab).map_err(|e| e.to_string())?;
    Ok(vec![("vocab.json", vocab), ("merges.txt", merges)])
}

fn expect_model(json: &Value, wanted: &str) -> Result<(), String> {
    match json["model"]["type"].as_str() {
        Some(t) if t == wanted => Ok(()),
        Some(t) => Err(format!("model.type is {t:?}, not {wanted:?}")),
        None => Err("no model.type".into()),
    }
}

/// The `model.type` of a `tokenizer.json` ("WordPiece", "BPE", "Unigram", …).
pub fn model_type(json: &Value) -> Option<&str> {
    json["model"]["type"].as_str()
}

/// Whether a WordPiece model lower-cases its input, and what says so: the
/// `do_lower_case` of `tokenizer_config.json`, else the normalizer of `tokenizer.json`,
/// else the vocabulary itself (a vocabulary with upper-case tokens was made for cased
/// text; Hugging Face's own default, lower-casing, would garble such a model's input).
pub fn lower_case(
    tokenizer_config: Option<&Value>,
    tokenizer_json: Option<&Value>,
    vocab_txt: Option<&str>,
) -> Option<(bool, &'static str)> {
    if let Some(b) = tokenizer_config.and_then(|c| c["do_lower_case"].as_bool()) {
        return Some((b, "do_lower_case in tokenizer_config.json"));
    }
    if let Some(b) = tokenizer_json.and_then(|j| normalizer_lowercases(&j["normalizer"])) {
        return Some((b, "the normalizer in tokenizer.json"));
    }
    // Tokens that lower-casing would change ([CLS] and friends aside). Uncased vocabularies
    // still hold a few symbols Unicode calls upper case ("ℝ", unchanged by lower-casing) or
    // stray letters, so it takes more than 1% of the vocabulary to call it cased.
    let tokens: Vec<&str> = vocab_txt?.lines().collect();
    let cased = tokens
        .iter()
        .filter(|t| !(t.starts_with('[') && t.ends_with(']')))
        .filter(|t| t.to_lowercase() != **t)
        .count();
    Some((
        cased * 100 <= tokens.len(),
        "the case of the tokens in vocab.txt",
    ))
}

fn normalizer_lowercases(normalizer: &Value) -> Option<bool> {
    match normalizer["type"].as_str()? {
        "BertNormalizer" => normalizer["lowercase"].as_bool(),
        "Lowercase" => Some(true),
        "Sequence" => {
            let parts = normalizer["normalizers"].as_array()?;
            Some(parts.iter().any(|n| normalizer_lowercases(n) == Some(true)))
        }
        _ => Some(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wordpiece_vocab_is_written_in_id_order_with_added_tokens() {
        let tj = json!({
            "added_tokens": [{"id": 0, "content": "[PAD]"}, {"id": 4, "content": "[MASK]"}],
            "model": {"type": "WordPiece", "vocab": {"[PAD]": 0, "##s": 3, "[UNK]": 1, "the": 2}}
        });
        let files = wordpiece_vocab(&tj).unwrap();
        assert_eq!(
            files,
            vec![("vocab.txt", "[PAD]\n[UNK]\nthe\n##s\n[MASK]\n".to_string())]
        );
    }

    #[test]
    fn broken_vocabularies_say_why() {
        let gap = json!({"model": {"type": "WordPiece", "vocab": {"a": 0, "b": 2}}});
        assert_eq!(
            wordpiece_vocab(&gap).unwrap_err(),
            "no token has id 1: the ids are not contiguous"
        );
        let clash = json!({"added_tokens": [{"id": 0, "content": "x"}],
                           "model": {"type": "WordPiece", "vocab": {"a": 0}}});
        assert!(wordpiece_vocab(&clash).unwrap_err().contains("both"));
        let bpe = json!({"model": {"type": "BPE", "vocab": {}, "merges": []}});
        assert_eq!(
            wordpiece_vocab(&bpe).unwrap_err(),
            "model.type is \"BPE\", not \"WordPiece\""
        );
        let newline = json!({"model": {"type": "WordPiece", "vocab": {"a\nb": 0}}});
        assert!(wordpiece_vocab(&newline)
            .unwrap_err()
            .contains("line break"));
    }

    #[test]
    fn bpe_files_accept_both_merge_formats() {
        for merges in [json!(["Ġ t", "h e"]), json!([["Ġ", "t"], ["h", "e"]])] {
            let tj = json!({
                "added_tokens": [{"id": 5, "content": "<mask>"}],
                "model": {"type": "BPE", "merges": merges,
                          "vocab": {"<s>": 0, "Ġ": 1, "t": 2, "h": 3, "e": 4}}
            });
            let files = bpe_files(&tj).unwrap();
            assert_eq!(files[0].0, "vocab.json");
            let vocab: serde_json::Value = serde_json::from_str(&files[0].1).unwrap();
            assert_eq!(vocab["<mask>"], 5);
            assert_eq!(vocab["Ġ"], 1);
            assert_eq!(files[1], ("merges.txt", "#version: 0.2\nĠ t\nh e\n".into()));
        }
        let bad = json!({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a"]]}});
        assert!(bpe_files(&bad).unwrap_err().contains("not a pair"));
    }

    #[test]
    fn lower_casing_comes_from_the_first_source_that_says() {
        let config = json!({"do_lower_case": false});
        let tj_lower = json!({"normalizer": {"type": "BertNormalizer", "lowercase": true}});
        let seq = json!({"normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFD"}, {"type": "Lowercase"}, {"type": "StripAccents"}]}});
        let cased_vocab = "[PAD]\n[UNK]\nthe\nThe\n##s\n";
        // MiniLM's uncased vocabulary has "ℝ" (upper case, but lower-casing keeps it) and
        // a real one may have a stray capital among thousands of tokens.
        let uncased_vocab = format!("[PAD]\n[UNK]\nℝ\n##ℝ\nAb\n{}", "the\n##s\n".repeat(60));
        let uncased_vocab = uncased_vocab.as_str();
        let cases = [
            (Some(&config), Some(&tj_lower), None, Some(false)),
            (None, Some(&tj_lower), Some(cased_vocab), Some(true)),
            (None, Some(&seq), None, Some(true)),
            (None, None, Some(cased_vocab), Some(false)),
            (None, None, Some(uncased_vocab), Some(true)),
            (None, None, None, None),
        ];
        for (c, t, v, want) in cases {
            assert_eq!(
                lower_case(c, t, v).map(|(b, _)| b),
                want,
                "{c:?} {t:?} {v:?}"
            );
        }
    }
}
