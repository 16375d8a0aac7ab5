//! A model folder in Hugging Face layout, as bytes: the files an encoder needs,
//! read from disk or taken from the database, so loading never depends on where
//! they came from (a replica or a restore has the bytes, not the folder).

use std::collections::BTreeMap;
use std::path::Path;

use pgrec_base::error::{Error, ErrorKind, Result};

/// Files an encoder may use, by path inside the model folder. `config.json`,
/// `model.safetensors` and `tokenizer.json` are required; the others are read
/// when present.
pub const FILES: [&str; 8] = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "sentence_bert_config.json",
    "modules.json",
    "1_Pooling/config.json",
    "preprocessor_config.json",
];
pub const REQUIRED: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

#[derive(Clone, Debug, Default)]
pub struct ModelFiles {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl ModelFiles {
    /// Reads the known files of the folder `dir`.
    pub fn from_dir(dir: &Path) -> Result<ModelFiles> {
        if !dir.is_dir() {
            return Err(Error::new(ErrorKind::UndefinedFile, format!("model folder \"{}\" does not exist", dir.display()))
                .with_hint("give the path of a folder on the database server holding config.json, model.safetensors and tokenizer.json"));
        }
        let mut files = BTreeMap::new();
        for name in FILES {
            let path = dir.join(name);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    files.insert(name.to_string(), bytes);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::new(ErrorKind::IoError, format!("could not read \"{}\": {e}", path.display())));
                }
            }
        }
        let m = ModelFiles { files };
        m.check_required(&dir.display().to_string())?;
        Ok(m)
    }

    pub fn check_required(&self, source: &str) -> Result<()> {
        for name in REQUIRED {
            if !self.files.contains_key(name) {
                return Err(Error::new(ErrorKind::UndefinedFile, format!("model folder \"{source}\" has no {name}"))
                    .with_hint("a Hugging Face model folder needs config.json, model.safetensors and tokenizer.json"));
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(Vec::as_slice)
    }

    /// A required file.
    pub fn need(&self, name: &str) -> Result<&[u8]> {
        self.get(name).ok_or_else(|| Error::new(ErrorKind::UndefinedFile, format!("the model has no {name}")))
    }

    /// A JSON file parsed, if present.
    pub fn json(&self, name: &str) -> Result<Option<serde_json::Value>> {
        self.get(name).map(|b| parse_json(name, b)).transpose()
    }

    pub fn total_bytes(&self) -> usize {
        self.files.values().map(Vec::len).sum()
    }
}

pub fn parse_json<T: serde::de::DeserializeOwned>(name: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::new(ErrorKind::InvalidParameterValue, format!("{name} is not valid: {e}")))
}
