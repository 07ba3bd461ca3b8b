//! What a model is for: the one vocabulary of model roles shared by the engine, the
//! manifest (`models.toml` sections), `gist models import --task`, errors and logs.

use std::fmt;

/// The models gist may hold, by what they do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum, serde::Serialize,
)]
pub enum Role {
    /// Sentence encoder for extractive key points (`[encoder]`, `--task embed`).
    #[value(name = "embed")]
    #[serde(rename = "encoder")]
    Encoder,
    /// Token classifier for named entities (`[ner]`, `--task ner`).
    #[value(name = "ner")]
    #[serde(rename = "ner")]
    Ner,
    /// Sequence-to-sequence model for abstractive summaries (`[summarizer]`,
    /// `--task summarize`).
    #[value(name = "summarize")]
    #[serde(rename = "summarizer")]
    Summarizer,
}

impl Role {
    /// Every role, in manifest order.
    pub const ALL: [Role; 3] = [Role::Encoder, Role::Ner, Role::Summarizer];

    /// The section of `models.toml` that names the role's model.
    pub fn section(self) -> &'static str {
        match self {
            Role::Encoder => "encoder",
            Role::Ner => "ner",
            Role::Summarizer => "summarizer",
        }
    }

    /// The role of a `models.toml` section.
    pub fn from_section(section: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.section() == section)
    }

    /// What a request that needs this role's model is told when none is configured.
    pub fn missing(self) -> &'static str {
        match self {
            Role::Encoder => {
                "no sentence encoder is configured: add an [encoder] section to models/models.toml (see README, \"Bringing models\")"
            }
            Role::Ner => {
                "no NER model is configured: add a [ner] section to models/models.toml (see README, \"Bringing models\")"
            }
            #[cfg(feature = "libtorch")]
            Role::Summarizer => {
                "ABSTRACTIVE mode needs a summarization model: add a [summarizer] section to models/models.toml (see README, \"Bringing models\"), or use EXTRACTIVE / AUTO"
            }
            #[cfg(not(feature = "libtorch"))]
            Role::Summarizer => {
                "ABSTRACTIVE mode needs a summarization model, which runs on libtorch, and this build of gist has none: build it with the default features (`cargo build --release`, see README, \"Runtimes\") and add a [summarizer] section to models/models.toml, or use EXTRACTIVE / AUTO"
            }
        }
    }
}

/// The name `gist models import --task` takes: `embed`, `ner`, `summarize`.
impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Encoder => "embed",
            Role::Ner => "ner",
            Role::Summarizer => "summarize",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn one_name_per_place() {
        for role in Role::ALL {
            assert_eq!(Role::from_section(role.section()), Some(role));
            let cli = role.to_possible_value().unwrap();
            assert_eq!(cli.get_name(), role.to_string());
        }
        assert_eq!(Role::from_section("encodr"), None);
    }
}
