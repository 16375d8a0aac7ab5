//! BERT-family sentence encoders (the `transformer` forward pass): token embeddings pooled and
//! normalised as the model folder's sentence-transformers configuration says
//! (`1_Pooling/config.json`, a `Normalize` module in `modules.json`, the
//! `max_seq_length` of `sentence_bert_config.json`); a plain BERT folder gets
//! mean pooling without normalisation, as sentence-transformers gives it.

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;

use super::files::{ModelFiles, parse_json};
use super::text::{BATCH_TOKENS, TextTokenizer, embed_in_batches, pad};
use super::transformer::BertEncoder;
use super::{Embedded, candle_err};
use pgrec_base::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    Mean,
    Cls,
    Max,
    MeanSqrtLen,
}

pub struct Bert {
    model: BertEncoder,
    pub tokenizer: TextTokenizer,
    pub pooling: Pooling,
    pub normalize: bool,
    pub dims: usize,
    pad_id: u32,
}

/// Texts per forward pass. Inputs are sorted by length first, so a batch
/// pads little.
const BATCH: usize = 32;

impl Bert {
    pub fn load(files: &ModelFiles) -> Result<Bert> {
        let config: Config = parse_json("config.json", files.need("config.json")?)?;
        super::Shape {
            section: "",
            hidden: config.hidden_size,
            heads: config.num_attention_heads,
            layers: config.num_hidden_layers,
            intermediate: config.intermediate_size,
            vocab: config.vocab_size,
            positions: config.max_position_embeddings,
        }
        .check()?;
        let pooling = match files.json("1_Pooling/config.json")? {
            None => Pooling::Mean,
            Some(p) => {
                let on = |k: &str| p.get(k).and_then(serde_json::Value::as_bool).unwrap_or(false);
                if on("pooling_mode_cls_token") {
                    Pooling::Cls
                } else if on("pooling_mode_max_tokens") {
                    Pooling::Max
                } else if on("pooling_mode_mean_sqrt_len_tokens") {
                    Pooling::MeanSqrtLen
                } else {
                    Pooling::Mean
                }
            }
        };
        let normalize = files.json("modules.json")?.is_some_and(|m| {
            m.as_array().is_some_and(|mods| {
                mods.iter().any(|x| x.get("type").and_then(|t| t.as_str()).is_some_and(|t| t.ends_with(".Normalize")))
            })
        });
        let max_tokens = files
            .json("sentence_bert_config.json")?
            .and_then(|c| c.get("max_seq_length").and_then(serde_json::Value::as_u64))
            .map_or(config.max_position_embeddings, |n| (n as usize).min(config.max_position_embeddings));
        let tokenizer = TextTokenizer::new(files.need("tokenizer.json")?, max_tokens)?;
        let vb = VarBuilder::from_slice_safetensors(files.need("model.safetensors")?, DType::F32, &Device::Cpu)
            .map_err(|e| candle_err("model.safetensors", e))?;
        let model = BertEncoder::load(vb, &config).map_err(|e| candle_err("model.safetensors", e))?;
        Ok(Bert { model, tokenizer, pooling, normalize, dims: config.hidden_size, pad_id: config.pad_token_id as u32 })
    }

    /// One vector per text, in order.
    pub fn embed(&self, texts: &[&str]) -> Result<Embedded> {
        embed_in_batches(&self.tokenizer, texts, BATCH, BATCH_TOKENS, |b| self.forward(b))
    }

    fn forward(&self, batch: &[&tokenizers::Encoding]) -> candle_core::Result<Vec<Vec<f32>>> {
        let b = pad(batch, self.pad_id);
        let n = batch.len();
        let ids = Tensor::from_vec(b.ids, (n, b.len), &Device::Cpu)?;
        let mask = Tensor::from_vec(b.mask, (n, b.len), &Device::Cpu)?;
        let hidden = self.model.forward(&ids, &mask)?;
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let pooled = match self.pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Max => {
                // Padding pushed far below any real value before the max.
                let off = ((m.ones_like()? - &m)? * 1e9)?;
                hidden.broadcast_sub(&off)?.max(1)?
            }
            Pooling::Mean | Pooling::MeanSqrtLen => {
                let sum = hidden.broadcast_mul(&m)?.sum(1)?;
                let count = m.sum(1)?.clamp(1e-9, f32::MAX)?;
                let div = if self.pooling == Pooling::Mean { count } else { count.sqrt()? };
                sum.broadcast_div(&div)?
            }
        };
        let pooled = if self.normalize { l2_normalize(&pooled)? } else { pooled };
        pooled.to_vec2::<f32>()
    }
}

/// Rows scaled to unit length (rows of zeros stay zero), as torch's
/// `F.normalize` with eps 1e-12.
pub fn l2_normalize(x: &Tensor) -> candle_core::Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f32::MAX)?;
    x.broadcast_div(&norm)
}
