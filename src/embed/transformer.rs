//! The BERT encoder's forward pass, built from candle tensors and candle-nn
//! layers and shaped for CPU inference. It reads the same safetensors names as
//! candle-transformers' `BertModel` and computes the same function; what
//! differs is how, which on 2 cores took all-MiniLM-L6-v2 from 30 to 47
//! 146-token texts per second (README, encoder benchmark):
//! - query, key and value are one matrix multiply (their weights stacked at
//!   load time) and are split into heads with one copy;
//! - attention runs a few sequences at a time, so its scores stay in cache,
//!   and its probabilities come from candle-nn's fused `softmax_last_dim`
//!   (one pass per row) instead of five whole-tensor passes;
//! - each dense layer's bias, residual and GELU are one pass on the worker
//!   threads (`Epilogue`), with the vectorised erf of `kernels::activation`,
//!   instead of single-threaded candle passes and a scalar erf per element.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Module, Result, Shape, Tensor};
use candle_nn::{embedding, layer_norm, Embedding, LayerNorm, VarBuilder};
use candle_transformers::models::bert::{Config, HiddenAct};
use rayon::prelude::*;

/// Attention scores computed at once (256K floats, 1 MiB): all heads of a
/// few sequences.
const ATTENTION_SCORES: usize = 1 << 18;

/// A dense layer's weight (out, in) and bias; the bias is added by an
/// [`Epilogue`] together with whatever follows the multiply.
struct Dense {
    weight: Tensor,
    bias: Tensor,
}

impl Dense {
    fn load(vb: VarBuilder, inputs: usize, outputs: usize) -> Result<Dense> {
        Ok(Dense { weight: vb.get((outputs, inputs), "weight")?, bias: vb.get(outputs, "bias")? })
    }

    /// x·Wᵀ + b, then GELU when `gelu`.
    fn forward(&self, x: &Tensor, gelu: bool) -> Result<Tensor> {
        x.matmul(&self.weight.t()?)?.apply_op2_no_bwd(&self.bias, &Epilogue { gelu })
    }

    /// x·Wᵀ + b + residual.
    fn forward_residual(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        x.matmul(&self.weight.t()?)?.apply_op3_no_bwd(&self.bias, residual, &Epilogue { gelu: false })
    }
}

struct Layer {
    qkv: Dense,
    attention_out: Dense,
    attention_norm: LayerNorm,
    up: Dense,
    down: Dense,
    out_norm: LayerNorm,
}

pub struct BertEncoder {
    word: Embedding,
    /// Position embeddings plus the segment-0 embedding (every input here is
    /// one segment), added in one broadcast.
    position: Tensor,
    norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    hidden: usize,
    act: HiddenAct,
}

impl BertEncoder {
    pub fn load(vb: VarBuilder, config: &Config) -> Result<BertEncoder> {
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") { vb.pp("bert") } else { vb };
        let h = config.hidden_size;
        let e = vb.pp("embeddings");
        let word = embedding(config.vocab_size, h, e.pp("word_embeddings"))?;
        let segment = e.get((config.type_vocab_size, h), "token_type_embeddings.weight")?.get(0)?;
        let position =
            e.get((config.max_position_embeddings, h), "position_embeddings.weight")?.broadcast_add(&segment)?;
        let norm = layer_norm(h, config.layer_norm_eps, e.pp("LayerNorm"))?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let a = l.pp("attention");
                let part = |name: &str| Dense::load(a.pp("self").pp(name), h, h);
                let (q, k, v) = (part("query")?, part("key")?, part("value")?);
                let qkv = Dense {
                    weight: Tensor::cat(&[&q.weight, &k.weight, &v.weight], 0)?,
                    bias: Tensor::cat(&[&q.bias, &k.bias, &v.bias], 0)?,
                };
                Ok(Layer {
                    qkv,
                    attention_out: Dense::load(a.pp("output").pp("dense"), h, h)?,
                    attention_norm: layer_norm(h, config.layer_norm_eps, a.pp("output").pp("LayerNorm"))?,
                    up: Dense::load(l.pp("intermediate").pp("dense"), h, config.intermediate_size)?,
                    down: Dense::load(l.pp("output").pp("dense"), config.intermediate_size, h)?,
                    out_norm: layer_norm(h, config.layer_norm_eps, l.pp("output").pp("LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(BertEncoder {
            word,
            position,
            norm,
            layers,
            heads: config.num_attention_heads,
            hidden: h,
            act: config.hidden_act,
        })
    }

    /// Last hidden states, (batch, len, hidden), for token `ids` (batch, len)
    /// whose padding is 0 in `mask`.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, s) = ids.dims2()?;
        let (h, heads) = (self.hidden, self.heads);
        let d = h / heads;
        let x = self.word.forward(ids)?.broadcast_add(&self.position.narrow(0, 0, s)?)?;
        let mut x = self.norm.forward(&x)?.reshape((b * s, h))?;
        // Padding gets the lowest float added to its scores, as transformers does.
        let mask = mask.to_dtype(candle_core::DType::F32)?;
        let mask = ((mask.ones_like()? - mask)? * f32::MIN as f64)?.reshape((b, 1, 1, s))?;
        let scale = 1.0 / (d as f64).sqrt();
        // Attention runs a few sequences at a time so its (heads, len, len)
        // scores stay in cache, while the dense layers take the whole batch
        // as one large, efficient matrix multiply.
        let group = (ATTENTION_SCORES / (heads * s * s).max(1)).clamp(1, b.max(1));
        for l in &self.layers {
            let qkv = l.qkv.forward(&x, false)?.reshape((b, s, 3, heads, d))?.permute((2, 0, 3, 1, 4))?.contiguous()?;
            let (q, k, v) = ((qkv.get(0)? * scale)?, qkv.get(1)?, qkv.get(2)?);
            let mut parts = Vec::with_capacity(b.div_ceil(group));
            for start in (0..b).step_by(group) {
                let n = group.min(b - start);
                let scores = q
                    .narrow(0, start, n)?
                    .matmul(&k.narrow(0, start, n)?.t()?)?
                    .broadcast_add(&mask.narrow(0, start, n)?)?;
                let probs = candle_nn::ops::softmax_last_dim(&scores)?;
                parts.push(probs.matmul(&v.narrow(0, start, n)?)?);
            }
            let ctx = Tensor::cat(&parts, 0)?.transpose(1, 2)?.contiguous()?.reshape((b * s, h))?;
            let x1 = l.attention_norm.forward(&l.attention_out.forward_residual(&ctx, &x)?)?;
            let up = match self.act {
                HiddenAct::Gelu => l.up.forward(&x1, true)?,
                HiddenAct::GeluApproximate => l.up.forward(&x1, false)?.gelu()?,
                HiddenAct::Relu => l.up.forward(&x1, false)?.relu()?,
            };
            x = l.out_norm.forward(&l.down.forward_residual(&up, &x1)?)?;
        }
        x.reshape((b, s, h))
    }
}

/// What follows a dense layer's multiply, in one pass over its rows split
/// across the current rayon pool: add the bias, then either the exact GELU or
/// a residual (the third operand).
struct Epilogue {
    gelu: bool,
}

/// The contiguous f32 elements of a tensor's storage.
fn f32s<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("expected f32 hidden states");
    };
    let Some((from, to)) = l.contiguous_offsets() else {
        candle_core::bail!("expected a contiguous tensor");
    };
    Ok(&v[from..to])
}

impl Epilogue {
    fn run(&self, y: &[f32], shape: &Shape, bias: &[f32], residual: Option<&[f32]>) -> Result<(CpuStorage, Shape)> {
        let width = bias.len();
        if width == 0 || !y.len().is_multiple_of(width) || residual.is_some_and(|r| r.len() != y.len()) {
            candle_core::bail!("dense epilogue: shapes do not match");
        }
        let rows = (16 * 1024 / width).max(1);
        let mut out = y.to_vec();
        out.par_chunks_mut(rows * width).enumerate().for_each(|(c, chunk)| {
            for (r, row) in chunk.chunks_exact_mut(width).enumerate() {
                row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
                if let Some(res) = residual {
                    let at = (c * rows + r) * width;
                    row.iter_mut().zip(&res[at..at + width]).for_each(|(v, x)| *v += x);
                }
                if self.gelu {
                    crate::kernels::activation::gelu_erf(row);
                }
            }
        });
        Ok((CpuStorage::F32(out), shape.clone()))
    }
}

impl CustomOp2 for Epilogue {
    fn name(&self) -> &'static str {
        "pgrec-dense-epilogue"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        self.run(f32s(s1, l1)?, l1.shape(), f32s(s2, l2)?, None)
    }
}

impl CustomOp3 for Epilogue {
    fn name(&self) -> &'static str {
        "pgrec-dense-epilogue"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.run(f32s(s1, l1)?, l1.shape(), f32s(s2, l2)?, Some(f32s(s3, l3)?))
    }
}
