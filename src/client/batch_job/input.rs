//! Reading a batch: input lines into items, and the ids an earlier run already wrote.
//!
//! Pure functions over lines and files; nothing here knows about gRPC.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::Value;

/// One article to process.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Line number in the input (1-based).
    pub line: usize,
    /// The id as sent to the server and matched in the output: a JSON string's value, or
    /// the JSON text of a number.
    pub id: String,
    /// The id exactly as the input had it (written back unchanged).
    pub id_value: Value,
    /// The text to process.
    pub text: String,
}

/// Why an input line is not processed.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejected {
    /// Not a JSON object with the id and text fields.
    Malformed {
        /// Line number (1-based).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// An id seen on an earlier line.
    Duplicate {
        /// Line number (1-based).
        line: usize,
        /// The id.
        id_value: Value,
        /// The line it was first seen on.
        first: usize,
    },
}

/// What one input line is.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// Work to do.
    Item(Item),
    /// Done by an earlier run (its id is in the output already).
    Skipped,
    /// Not processed; reported.
    Rejected(Rejected),
    /// Blank line: ignored.
    Blank,
}

/// The key an id value is matched by: strings by their value, numbers by their JSON text.
pub fn id_key(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses input lines in order, telling duplicates and lines already done apart.
pub struct Parser {
    id_field: String,
    text_field: String,
    done: HashSet<String>,
    /// Every id seen so far, with its first line.
    seen: std::collections::HashMap<String, usize>,
}

impl Parser {
    /// A parser taking ids from `id_field` and texts from `text_field`; ids in `done` are
    /// skipped.
    pub fn new(id_field: &str, text_field: &str, done: HashSet<String>) -> Parser {
        Parser {
            id_field: id_field.to_string(),
            text_field: text_field.to_string(),
            done,
            seen: Default::default(),
        }
    }

    /// Classify line number `line` (1-based) with content `text`.
    pub fn line(&mut self, line: usize, text: &str) -> Line {
        if text.trim().is_empty() {
            return Line::Blank;
        }
        let malformed = |reason: String| Line::Rejected(Rejected::Malformed { line, reason });
        let mut object = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => object,
            Ok(_) => return malformed("not a JSON object".into()),
            Err(err) => return malformed(format!("not JSON: {err}")),
        };
        let Some(id_value) = object.get(&self.id_field).cloned() else {
            return malformed(format!("no \"{}\" field (--id-field)", self.id_field));
        };
        let Some(id) = id_key(&id_value) else {
            return malformed(format!(
                "\"{}\" must be a non-empty string or a number (--id-field)",
                self.id_field
            ));
        };
        let text = match object.remove(&self.text_field) {
            Some(Value::String(text)) => text,
            Some(_) => {
                return malformed(format!(
                    "\"{}\" must be a string (--text-field)",
                    self.text_field
                ))
            }
            None => return malformed(format!("no \"{}\" field (--text-field)", self.text_field)),
        };
        if let Some(&first) = self.seen.get(&id) {
            return Line::Rejected(Rejected::Duplicate {
                line,
                id_value,
                first,
            });
        }
        self.seen.insert(id.clone(), line);
        if self.done.contains(&id) {
            return Line::Skipped;
        }
        Line::Item(Item {
            line,
            id,
            id_value,
            text,
        })
    }
}

/// The ids already in an output file of an earlier run. A last line cut short by a crash
/// (no final newline) is removed from the file, so its item runs again.
///
/// # Errors
/// When the file cannot be read or a complete line is not a JSON object with an `id`
/// (then it is not gist's output, and nothing should be appended to it).
pub fn done_ids(path: &Path) -> anyhow::Result<HashSet<String>> {
    let mut done = HashSet::new();
    let mut file = match File::options().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(err) => return Err(anyhow::anyhow!("cannot open {}: {err}", path.display())),
    };
    let len = file.metadata()?.len();
    if len > 0 {
        file.seek(SeekFrom::Start(len - 1))?;
        let mut last = [0u8];
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            // Find the end of the last complete line and cut there.
            let mut content = Vec::new();
            file.seek(SeekFrom::Start(0))?;
            file.read_to_end(&mut content)?;
            let keep = content
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            tracing::warn!(
                output = %path.display(),
                bytes = content.len() - keep,
                "the output's last line was cut short (the previous run was killed while writing it): removing it, its item runs again"
            );
            file.set_len(keep as u64)?;
        }
    }
    file.seek(SeekFrom::Start(0))?;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let id = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| v.get("id").and_then(id_key));
        match id {
            Some(id) => {
                done.insert(id);
            }
            None => anyhow::bail!(
                "{} line {}: not a JSON object with an \"id\": is this the output of gist batch? (nothing was appended)",
                path.display(),
                i + 1
            ),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_become_items_duplicates_and_malformed_lines() {
        let done: HashSet<String> = ["7".to_string()].into();
        let mut p = Parser::new("id", "text", done);
        assert_eq!(
            p.line(1, r#"{"id": "a", "text": "Hello."}"#),
            Line::Item(Item {
                line: 1,
                id: "a".into(),
                id_value: json!("a"),
                text: "Hello.".into()
            })
        );
        assert_eq!(p.line(2, "   "), Line::Blank);
        assert_eq!(p.line(3, r#"{"id": 7, "text": "x"}"#), Line::Skipped);
        assert_eq!(
            p.line(4, r#"{"id": "a", "text": "again"}"#),
            Line::Rejected(Rejected::Duplicate {
                line: 4,
                id_value: json!("a"),
                first: 1
            })
        );
        let reason = |line: Line| match line {
            Line::Rejected(Rejected::Malformed { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert!(reason(p.line(5, "{not json")).starts_with("not JSON"));
        assert_eq!(reason(p.line(6, "[1]")), "not a JSON object");
        assert_eq!(
            reason(p.line(7, r#"{"text": "x"}"#)),
            "no \"id\" field (--id-field)"
        );
        assert!(reason(p.line(8, r#"{"id": "", "text": "x"}"#)).contains("non-empty"));
        assert!(reason(p.line(9, r#"{"id": "b", "text": 3}"#)).contains("must be a string"));
        // Other field names.
        let mut p = Parser::new("doc", "article", HashSet::new());
        assert!(matches!(
            p.line(1, r#"{"doc": 1, "article": "A."}"#),
            Line::Item(Item { ref id, .. }) if id == "1"
        ));
    }

    #[test]
    fn done_ids_cut_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        assert!(done_ids(&path).unwrap().is_empty());
        std::fs::write(&path, "{\"id\":\"a\"}\n{\"id\":2}\n{\"id\":\"c\",\"sum").unwrap();
        let done = done_ids(&path).unwrap();
        assert_eq!(done, ["a".to_string(), "2".to_string()].into());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"id\":\"a\"}\n{\"id\":2}\n"
        );
        std::fs::write(&path, "{\"id\":\"a\"}\nnot json\n").unwrap();
        let err = done_ids(&path).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
