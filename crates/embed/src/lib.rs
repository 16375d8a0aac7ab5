//! Text and image encoders (candle BERT/CLIP, tokenizers, image preprocessing),
//! independent of Postgres: a model folder's bytes in ([`ModelFiles`]), vectors
//! out. The architecture comes from `config.json`'s `model_type`.

pub mod bert;
pub mod clip;
pub mod files;
pub mod image;
pub mod text;
pub mod transformer;

pub use files::ModelFiles;

use pgrec_base::error::{Error, ErrorKind, Result};

/// Sets, where the process environment does not already, the two names
/// candle reads its thread counts from. Candle reads `RAYON_NUM_THREADS` at
/// every matrix multiply (how many parts to split it into; the parts run on
/// the caller's pool) and, without it, re-reads the CPU list from /proc and
/// sysfs each time, a measurable share of a short sentence's time: it gets
/// `threads`. Its element-wise ops run on a spinning barrier pool sized once
/// from `CANDLE_NUM_THREADS`; with two cores that spinner competes with the
/// multiplies for a core (a fifth of a 146-token forward pass), while pgrec
/// runs the heavy element-wise work (GELU, softmax) on its own pool: it gets 1.
/// Without this call candle still works, only slower.
///
/// # Safety
/// Writes the process environment: call it while the process has one thread
/// (a Postgres backend's `_PG_init`, a program's `main` before it starts any),
/// so nothing reads the environment at the same time.
pub unsafe fn set_candle_environment(threads: usize) {
    for (name, value) in [("RAYON_NUM_THREADS", threads.max(1).to_string()), ("CANDLE_NUM_THREADS", "1".to_string())] {
        if std::env::var_os(name).is_none() {
            // SAFETY: the caller guarantees no other thread exists.
            unsafe { std::env::set_var(name, value) };
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    Bert,
    Clip,
}

impl Architecture {
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Bert => "bert",
            Architecture::Clip => "clip",
        }
    }

    /// From `config.json`'s `model_type` (BERT-family folders always carry it).
    pub fn detect(files: &ModelFiles) -> Result<Architecture> {
        let config = files.json("config.json")?.unwrap_or_default();
        let model_type = config.get("model_type").and_then(serde_json::Value::as_str).unwrap_or("");
        match model_type {
            "bert" => Ok(Architecture::Bert),
            "clip" => Ok(Architecture::Clip),
            other => Err(Error::new(
                ErrorKind::FeatureNotSupported,
                format!("model_type \"{other}\" in config.json is not a supported encoder architecture"),
            )
            .with_hint("pgrec loads BERT-family models (model_type \"bert\") and CLIP (\"clip\")")),
        }
    }
}

/// Vectors for a batch of inputs, in input order, and which inputs were cut
/// to the model's token limit.
#[derive(Debug)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    pub truncated: Vec<usize>,
}

// One value per loaded encoder, kept in a cache: boxing the larger variant
// would add an indirection to every call for no memory worth saving.
#[allow(clippy::large_enum_variant)]
pub enum Encoder {
    Bert(bert::Bert),
    Clip(clip::Clip),
}

impl Encoder {
    pub fn load(files: &ModelFiles) -> Result<Encoder> {
        files.check_required("the model")?;
        match Architecture::detect(files)? {
            Architecture::Bert => Ok(Encoder::Bert(bert::Bert::load(files)?)),
            Architecture::Clip => Ok(Encoder::Clip(clip::Clip::load(files)?)),
        }
    }

    pub fn architecture(&self) -> Architecture {
        match self {
            Encoder::Bert(_) => Architecture::Bert,
            Encoder::Clip(_) => Architecture::Clip,
        }
    }

    /// Length of the text vectors.
    pub fn dims(&self) -> usize {
        match self {
            Encoder::Bert(b) => b.dims,
            Encoder::Clip(c) => c.dims,
        }
    }

    pub fn tokenizer(&self) -> &text::TextTokenizer {
        match self {
            Encoder::Bert(b) => &b.tokenizer,
            Encoder::Clip(c) => &c.tokenizer,
        }
    }

    pub fn embed_texts(&self, texts: &[&str]) -> Result<Embedded> {
        match self {
            Encoder::Bert(b) => b.embed(texts),
            Encoder::Clip(c) => c.embed_texts(texts),
        }
    }

    /// The CLIP model, for what only it can do (images, zero-shot labels).
    pub fn clip(&self, name: &str) -> Result<&clip::Clip> {
        match self {
            Encoder::Clip(c) => Ok(c),
            other => Err(Error::new(
                ErrorKind::FeatureNotSupported,
                format!("encoder \"{name}\" is a {} text encoder and cannot embed images", other.architecture().name()),
            )
            .with_hint("load a CLIP model folder for images")),
        }
    }
}

/// Transformer sizes from a `config.json`, checked before any tensor is
/// made from them: zero heads would divide by zero at the first text, and
/// absurd sizes would allocate without end.
pub(crate) struct Shape<'a> {
    pub section: &'a str,
    pub hidden: usize,
    pub heads: usize,
    pub layers: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub positions: usize,
}

impl Shape<'_> {
    pub fn check(&self) -> Result<()> {
        let bad = |key: &str, v: usize, rule: &str| {
            Err(Error::new(
                ErrorKind::InvalidParameterValue,
                format!("config.json {}{key} is {v}: {rule}", self.section),
            )
            .with_hint("check that config.json belongs to the model's weights"))
        };
        const MAX: usize = 1 << 20;
        for (key, v) in [
            ("hidden_size", self.hidden),
            ("num_attention_heads", self.heads),
            ("num_hidden_layers", self.layers),
            ("intermediate_size", self.intermediate),
            ("vocab_size", self.vocab),
            ("max_position_embeddings", self.positions),
        ] {
            if v == 0 || v > MAX {
                return bad(key, v, "must be between 1 and 1048576");
            }
        }
        if !self.hidden.is_multiple_of(self.heads) {
            return bad(
                "hidden_size",
                self.hidden,
                &format!("must be a multiple of num_attention_heads ({})", self.heads),
            );
        }
        if self.layers > 256 {
            return bad("num_hidden_layers", self.layers, "must be at most 256");
        }
        Ok(())
    }
}

/// A candle error while loading or running `what`: a damaged or mismatched
/// weights file is the usual cause.
pub(crate) fn candle_err(what: &str, e: candle_core::Error) -> Error {
    let msg = e.to_string();
    let first = msg.lines().next().unwrap_or("").to_lowercase();
    Error::new(ErrorKind::InvalidBinaryRepresentation, format!("{what} could not be used: {first}"))
        .with_hint("check that model.safetensors is complete and matches config.json")
}

#[cfg(test)]
mod tests;
