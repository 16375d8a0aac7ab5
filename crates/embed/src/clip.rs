//! CLIP (Radford et al. 2021) on candle: text and image towers with their
//! projections into one space, for `embed_text`, `embed_image` and zero-shot
//! labels. The towers are candle's; the text vector is read at each input's
//! closing token (found from the token ids, so batches can be padded), as
//! transformers reads it.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use candle_transformers::models::clip::text_model::{Activation, ClipTextConfig, ClipTextTransformer};
use candle_transformers::models::clip::vision_model::{ClipVisionConfig, ClipVisionTransformer};
use serde::Deserialize;

use super::bert::l2_normalize;
use super::files::{ModelFiles, parse_json};
use super::image::Preprocess;
use super::text::{BATCH_TOKENS, TextTokenizer, embed_in_batches, pad};
use super::{Embedded, candle_err};
use pgrec_base::error::{Error, ErrorKind, Result};

/// `config.json` of a transformers CLIPModel; absent fields take transformers'
/// defaults (those of ViT-B/32).
#[derive(Deserialize)]
struct HfConfig {
    #[serde(default)]
    text_config: HfText,
    #[serde(default)]
    vision_config: HfVision,
    #[serde(default = "d512")]
    projection_dim: usize,
}

#[derive(Deserialize)]
#[serde(default)]
struct HfText {
    hidden_size: usize,
    intermediate_size: usize,
    num_attention_heads: usize,
    num_hidden_layers: usize,
    max_position_embeddings: usize,
    vocab_size: usize,
    hidden_act: String,
    layer_norm_eps: f64,
}

impl Default for HfText {
    fn default() -> Self {
        HfText {
            hidden_size: 512,
            intermediate_size: 2048,
            num_attention_heads: 8,
            num_hidden_layers: 12,
            max_position_embeddings: 77,
            vocab_size: 49408,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
        }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct HfVision {
    hidden_size: usize,
    intermediate_size: usize,
    num_attention_heads: usize,
    num_hidden_layers: usize,
    image_size: usize,
    patch_size: usize,
    num_channels: usize,
    hidden_act: String,
    layer_norm_eps: f64,
}

impl Default for HfVision {
    fn default() -> Self {
        HfVision {
            hidden_size: 768,
            intermediate_size: 3072,
            num_attention_heads: 12,
            num_hidden_layers: 12,
            image_size: 224,
            patch_size: 32,
            num_channels: 3,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
        }
    }
}

fn d512() -> usize {
    512
}

/// candle's CLIP towers implement quick GELU and layer norms with eps 1e-5,
/// which is what every OpenAI CLIP checkpoint uses.
fn check_supported(tower: &str, act: &str, eps: f64) -> Result<()> {
    if act != "quick_gelu" {
        return Err(Error::new(
            ErrorKind::FeatureNotSupported,
            format!("{tower}.hidden_act \"{act}\" is not supported (CLIP's quick_gelu is)"),
        ));
    }
    if (eps - 1e-5).abs() > 1e-12 {
        return Err(Error::new(
            ErrorKind::FeatureNotSupported,
            format!("{tower}.layer_norm_eps {eps} is not supported (1e-5 is)"),
        ));
    }
    Ok(())
}

pub struct Clip {
    text: ClipTextTransformer,
    vision: ClipVisionTransformer,
    text_projection: Linear,
    visual_projection: Linear,
    /// exp of the learned logit scale: the softmax temperature of zero-shot labels.
    pub logit_scale: f32,
    pub tokenizer: TextTokenizer,
    pub preprocess: Preprocess,
    pub dims: usize,
}

/// Texts or images per forward pass.
const BATCH: usize = 32;

impl Clip {
    pub fn load(files: &ModelFiles) -> Result<Clip> {
        let c: HfConfig = parse_json("config.json", files.need("config.json")?)?;
        check_supported("text_config", &c.text_config.hidden_act, c.text_config.layer_norm_eps)?;
        check_supported("vision_config", &c.vision_config.hidden_act, c.vision_config.layer_norm_eps)?;
        let t = &c.text_config;
        let v = &c.vision_config;
        super::Shape {
            section: "text_config.",
            hidden: t.hidden_size,
            heads: t.num_attention_heads,
            layers: t.num_hidden_layers,
            intermediate: t.intermediate_size,
            vocab: t.vocab_size,
            positions: t.max_position_embeddings,
        }
        .check()?;
        let patches = v.image_size.checked_div(v.patch_size).map_or(0, |n| n * n + 1);
        super::Shape {
            section: "vision_config.",
            hidden: v.hidden_size,
            heads: v.num_attention_heads,
            layers: v.num_hidden_layers,
            intermediate: v.intermediate_size,
            vocab: v.num_channels,
            positions: patches,
        }
        .check()?;
        if v.patch_size == 0
            || !v.image_size.is_multiple_of(v.patch_size)
            || v.image_size > 4096
            || c.projection_dim == 0
        {
            return Err(Error::new(
                ErrorKind::InvalidParameterValue,
                format!(
                    "config.json vision_config.image_size {} must be a multiple of patch_size {} and at most 4096, projection_dim ({}) positive",
                    v.image_size, v.patch_size, c.projection_dim
                ),
            ));
        }
        let text_cfg = ClipTextConfig {
            vocab_size: c.text_config.vocab_size,
            embed_dim: c.text_config.hidden_size,
            activation: Activation::QuickGelu,
            intermediate_size: c.text_config.intermediate_size,
            max_position_embeddings: c.text_config.max_position_embeddings,
            pad_with: None,
            num_hidden_layers: c.text_config.num_hidden_layers,
            num_attention_heads: c.text_config.num_attention_heads,
            projection_dim: c.projection_dim,
        };
        let v = &c.vision_config;
        let vision_cfg = ClipVisionConfig {
            embed_dim: v.hidden_size,
            activation: Activation::QuickGelu,
            intermediate_size: v.intermediate_size,
            num_hidden_layers: v.num_hidden_layers,
            num_attention_heads: v.num_attention_heads,
            projection_dim: c.projection_dim,
            num_channels: v.num_channels,
            image_size: v.image_size,
            patch_size: v.patch_size,
        };
        let preprocess = match files.json("preprocessor_config.json")? {
            Some(p) => Preprocess::from_json(&p, v.image_size)?,
            None => {
                return Err(Error::new(ErrorKind::UndefinedFile, "the model has no preprocessor_config.json")
                    .with_hint("a CLIP folder needs preprocessor_config.json to know how to prepare images"));
            }
        };
        let tokenizer = TextTokenizer::new(files.need("tokenizer.json")?, c.text_config.max_position_embeddings)?;
        let w = |e| candle_err("model.safetensors", e);
        let vb = VarBuilder::from_slice_safetensors(files.need("model.safetensors")?, DType::F32, &Device::Cpu)
            .map_err(w)?;
        // Without it candle would invent a random class embedding.
        if !vb.contains_tensor("vision_model.embeddings.class_embedding") {
            return Err(Error::new(
                ErrorKind::InvalidBinaryRepresentation,
                "model.safetensors has no vision_model.embeddings.class_embedding",
            )
            .with_hint("check that model.safetensors is a complete CLIPModel checkpoint"));
        }
        let text = ClipTextTransformer::new(vb.pp("text_model"), &text_cfg).map_err(w)?;
        let vision = ClipVisionTransformer::new(vb.pp("vision_model"), &vision_cfg).map_err(w)?;
        let text_projection =
            candle_nn::linear_no_bias(text_cfg.embed_dim, c.projection_dim, vb.pp("text_projection")).map_err(w)?;
        let visual_projection =
            candle_nn::linear_no_bias(vision_cfg.embed_dim, c.projection_dim, vb.pp("visual_projection")).map_err(w)?;
        let logit_scale = vb.get((), "logit_scale").and_then(|t| t.to_scalar::<f32>()).map_err(w)?.exp();
        Ok(Clip {
            text,
            vision,
            text_projection,
            visual_projection,
            logit_scale,
            tokenizer,
            preprocess,
            dims: c.projection_dim,
        })
    }

    /// Unit-length text vectors, in order.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Embedded> {
        embed_in_batches(&self.tokenizer, texts, BATCH, BATCH_TOKENS, |b| self.text_forward(b))
    }

    fn text_forward(&self, batch: &[&tokenizers::Encoding]) -> candle_core::Result<Vec<Vec<f32>>> {
        // Padding follows each input's closing token; the causal mask keeps it
        // from reaching the positions read.
        let b = pad(batch, 0);
        let n = batch.len();
        let ids = Tensor::from_vec(b.ids, (n, b.len), &Device::Cpu)?;
        let hidden = self.text.forward_with_mask(&ids, usize::MAX)?;
        let rows = batch
            .iter()
            .enumerate()
            .map(|(r, e)| hidden.get(r)?.get(e.len().saturating_sub(1)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let pooled = Tensor::stack(&rows, 0)?;
        l2_normalize(&self.text_projection.forward(&pooled)?)?.to_vec2::<f32>()
    }

    /// Unit-length image vectors, in order.
    pub fn embed_images(&self, images: &[&[u8]], max_pixels: u64) -> Result<Vec<Vec<f32>>> {
        let s = self.preprocess.image_size;
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(BATCH) {
            let mut px = Vec::with_capacity(chunk.len() * 3 * s * s);
            for bytes in chunk {
                px.extend(self.preprocess.pixels(bytes, max_pixels)?);
            }
            let run = || -> candle_core::Result<Vec<Vec<f32>>> {
                let t = Tensor::from_vec(px, (chunk.len(), 3, s, s), &Device::Cpu)?;
                let pooled = self.vision.forward(&t)?;
                l2_normalize(&self.visual_projection.forward(&pooled)?)?.to_vec2::<f32>()
            };
            out.extend(run().map_err(|e| candle_err("the model", e))?);
        }
        Ok(out)
    }

    /// Probability of each label for the image vector `image`: softmax over
    /// the labels of the scaled cosine similarity, as CLIP's zero-shot
    /// classifier; `labels` are unit-length text vectors.
    pub fn zero_shot(&self, image: &[f32], labels: &[Vec<f32>]) -> Vec<f32> {
        let logits: Vec<f32> = labels.iter().map(|l| self.logit_scale * pgrec_base::kernels::dot(image, l)).collect();
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
        let sum: f32 = e.iter().sum();
        e.into_iter().map(|x| x / sum).collect()
    }
}
