//! Training parameters, read from the `params jsonb` of `train()`: every key is
//! optional, unknown keys and out-of-range values are errors that name the key.
//! Defaults are per algorithm and chosen to work without a grid search (see the
//! README's benchmark for what they reach).

use serde::Deserialize;

use super::kgat::KgatParams;
use super::kgat::propagate::Aggregator;
use super::model::Algorithm;
use super::vbpr::VbprParams;
use pgrec_base::error::{Error, ErrorKind, Result};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    factors: Option<i64>,
    iterations: Option<i64>,
    regularization: Option<f64>,
    learning_rate: Option<f64>,
    alpha: Option<f64>,
    cg_steps: Option<i64>,
    negatives: Option<i64>,
    test_fraction: Option<f64>,
    seed: Option<i64>,
    layers: Option<Vec<i64>>,
    aggregator: Option<String>,
    relation_dim: Option<i64>,
    kg_regularization: Option<f64>,
    batch_size: Option<i64>,
    kg_batch_size: Option<i64>,
    dropout: Option<f64>,
    pretrain: Option<String>,
    eval_every: Option<i64>,
    patience: Option<i64>,
    cold_items: Option<f64>,
    content_factors: Option<i64>,
    bias_regularization: Option<f64>,
    content_regularization: Option<f64>,
    cold_boost: Option<f64>,
    item_bias: Option<bool>,
    layer_init: Option<f64>,
}

/// Parameters with every default filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub factors: usize,
    pub iterations: usize,
    pub regularization: f32,
    pub learning_rate: f32,
    /// ALS confidence: c = 1 + alpha · weight.
    pub alpha: f32,
    pub cg_steps: usize,
    /// BPR: unseen items drawn per sample; the highest-scored is the negative.
    /// `None`: one per 1,000 items in the catalogue, between 1 and 20 (see
    /// [`Params::negatives_for`]).
    pub negatives: Option<usize>,
    pub test_fraction: f64,
    pub seed: u64,
    /// KGAT only: propagation layer sizes, aggregator, TransR space, KG-loss
    /// L2, CF and KG batch sizes, message dropout (`factors` is the layer-0
    /// embedding size, `regularization` the CF L2).
    pub layers: Vec<usize>,
    pub aggregator: Aggregator,
    pub relation_dim: usize,
    pub kg_regularization: f32,
    pub batch_size: usize,
    pub kg_batch_size: usize,
    pub dropout: f32,
    /// KGAT only: the name of a trained model whose factors start the
    /// user and item embeddings.
    pub pretrain: Option<String>,
    /// KGAT only: early stopping on a validation part of the training data
    /// (see [`KgatParams`]); `patience` 0 turns it off.
    pub eval_every: usize,
    pub patience: usize,
    /// KGAT only: learn an item bias (not in the paper).
    pub item_bias: bool,
    /// KGAT: the scale of the propagation weights' Xavier init (None: 0.1
    /// with `pretrain`, 1 without).
    pub layer_init: Option<f32>,
    /// Cold-start evaluation: this share of the items (with interactions) is
    /// held out entirely, all their interactions tested, ranked among
    /// themselves.
    pub cold_items: f64,
    /// VBPR only: θ size, L2 on item biases, L2 on E and β', and what is
    /// added to the bias of items without interactions.
    pub content_factors: usize,
    pub bias_regularization: f32,
    pub content_regularization: f32,
    pub cold_boost: f32,
}

fn invalid(key: &str, value: impl std::fmt::Display, rule: &str) -> Error {
    Error::new(ErrorKind::InvalidParameterValue, format!("invalid value {value} for param \"{key}\": {rule}"))
}

impl Params {
    pub fn defaults(algorithm: Algorithm) -> Params {
        let base = Params {
            factors: 64,
            iterations: 20,
            regularization: 0.01,
            learning_rate: 0.05,
            alpha: 1.0,
            cg_steps: 3,
            negatives: None,
            test_fraction: 0.2,
            seed: 42,
            layers: vec![64, 32, 16],
            aggregator: Aggregator::Bi,
            relation_dim: 64,
            kg_regularization: 1e-5,
            batch_size: 1024,
            kg_batch_size: 2048,
            dropout: 0.1,
            pretrain: None,
            eval_every: 10,
            patience: 10,
            item_bias: false,
            layer_init: None,
            cold_items: 0.0,
            content_factors: 32,
            bias_regularization: 0.01,
            content_regularization: 0.0,
            cold_boost: 0.0,
        };
        match algorithm {
            Algorithm::Als => Params { iterations: 15, regularization: 10.0, alpha: 80.0, ..base },
            Algorithm::Bpr => Params { iterations: 80, regularization: 0.05, learning_rate: 0.05, ..base },
            Algorithm::Mf => Params { factors: 32, iterations: 30, regularization: 0.05, learning_rate: 0.01, ..base },
            Algorithm::Popular => Params { factors: 0, iterations: 1, ..base },
            // The paper's settings (Adam at 1e-4, L2 1e-5); its runs train for
            // hundreds of epochs.
            Algorithm::Kgat => Params { iterations: 400, regularization: 1e-5, learning_rate: 1e-4, ..base },
            // Adam on mini-batches, as Cornac's VBPR. A narrow, regularised
            // content projection: on MovieLens 100K with MiniLM title vectors,
            // 32 content factors without L2 on E cost 0.06 warm Recall@20
            // (benches/multimodal.sh).
            Algorithm::Vbpr => Params {
                factors: 32,
                iterations: 50,
                regularization: 0.02,
                learning_rate: 0.005,
                batch_size: 256,
                content_factors: 8,
                content_regularization: 0.02,
                ..base
            },
            Algorithm::ContentKnn => Params { factors: 0, iterations: 1, ..base },
        }
    }

    /// The KGAT training settings these params describe.
    pub fn kgat(&self) -> KgatParams {
        KgatParams {
            embedding: self.factors,
            layers: self.layers.clone(),
            aggregator: self.aggregator,
            relation_dim: self.relation_dim,
            learning_rate: self.learning_rate,
            cf_regularization: self.regularization,
            kg_regularization: self.kg_regularization,
            cf_batch: self.batch_size,
            kg_batch: self.kg_batch_size,
            dropout: self.dropout,
            epochs: self.iterations,
            eval_every: self.eval_every,
            patience: self.patience,
            item_bias: self.item_bias,
            negatives: self.negatives.unwrap_or(1),
            layer_init: self.layer_init,
            seed: self.seed,
        }
    }

    /// The VBPR training settings these params describe.
    pub fn vbpr(&self) -> VbprParams {
        VbprParams {
            factors: self.factors,
            content_factors: self.content_factors,
            epochs: self.iterations,
            learning_rate: self.learning_rate,
            regularization: self.regularization,
            bias_regularization: self.bias_regularization,
            content_regularization: self.content_regularization,
            batch: self.batch_size,
            cold_boost: self.cold_boost,
            seed: self.seed,
        }
    }

    /// Negative candidates per BPR sample for a catalogue of `n_items`. The
    /// highest-scored of several random unseen items is a hard negative — and in
    /// a small catalogue, often an item the user would like, which training then
    /// pushes down: so few candidates for hundreds of items, 20 for 20,000+.
    pub fn negatives_for(&self, n_items: usize) -> usize {
        self.negatives.unwrap_or((n_items / 1000).clamp(1, 20))
    }

    /// Parses `json` (a JSON object) over the algorithm's defaults.
    pub fn parse(algorithm: Algorithm, json: &str) -> Result<Params> {
        let raw: Raw = serde_json::from_str(json).map_err(|e| {
            Error::new(ErrorKind::InvalidParameterValue, format!("invalid params: {e}"))
                .with_hint("params is a JSON object with keys factors, iterations, regularization, learning_rate, alpha, cg_steps, negatives, test_fraction, seed, cold_items (and for kgat: layers, aggregator, relation_dim, kg_regularization, batch_size, kg_batch_size, dropout, pretrain, eval_every, patience, item_bias, layer_init; for vbpr: content_factors, batch_size, bias_regularization, content_regularization, cold_boost)")
        })?;
        let mut p = Params::defaults(algorithm);
        if let Some(v) = raw.factors {
            if !(1..=1024).contains(&v) {
                return Err(invalid("factors", v, "must be between 1 and 1024"));
            }
            if !matches!(algorithm, Algorithm::Popular | Algorithm::ContentKnn) {
                p.factors = v as usize;
            }
        }
        if let Some(v) = raw.iterations {
            if !(1..=10_000).contains(&v) {
                return Err(invalid("iterations", v, "must be between 1 and 10000"));
            }
            p.iterations = v as usize;
        }
        let positive = |key: &str, v: f64| {
            if v.is_finite() && v >= 0.0 { Ok(v as f32) } else { Err(invalid(key, v, "must be a finite number ≥ 0")) }
        };
        if let Some(v) = raw.regularization {
            p.regularization = positive("regularization", v)?;
        }
        if let Some(v) = raw.learning_rate {
            if !(v.is_finite() && v > 0.0 && v <= 10.0) {
                return Err(invalid("learning_rate", v, "must be > 0 and at most 10"));
            }
            p.learning_rate = v as f32;
        }
        if let Some(v) = raw.alpha {
            p.alpha = positive("alpha", v)?;
        }
        if let Some(v) = raw.cg_steps {
            if !(1..=100).contains(&v) {
                return Err(invalid("cg_steps", v, "must be between 1 and 100"));
            }
            p.cg_steps = v as usize;
        }
        if let Some(v) = raw.negatives {
            if !(1..=100).contains(&v) {
                return Err(invalid("negatives", v, "must be between 1 and 100"));
            }
            p.negatives = Some(v as usize);
        }
        if let Some(v) = raw.test_fraction {
            if !(0.0..1.0).contains(&v) {
                return Err(invalid("test_fraction", v, "must be ≥ 0 and < 1 (0 disables the held-out split)"));
            }
            p.test_fraction = v;
        }
        if let Some(v) = raw.seed {
            p.seed = v as u64;
        }
        let only = |key: &str, algorithms: &[Algorithm]| -> Result<()> {
            if algorithms.contains(&algorithm) {
                Ok(())
            } else {
                let names = algorithms.iter().map(|a| a.name()).collect::<Vec<_>>().join(" and ");
                Err(Error::new(
                    ErrorKind::InvalidParameterValue,
                    format!("param \"{key}\" applies to {names} only, not {}", algorithm.name()),
                ))
            }
        };
        let kgat_only = |key: &str| only(key, &[Algorithm::Kgat]);
        if let Some(v) = raw.layers {
            kgat_only("layers")?;
            if v.is_empty() || v.len() > 8 || v.iter().any(|&d| !(1..=1024).contains(&d)) {
                let shown = v.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
                return Err(invalid("layers", format!("[{shown}]"), "must be 1 to 8 sizes, each between 1 and 1024"));
            }
            p.layers = v.into_iter().map(|d| d as usize).collect();
        }
        if let Some(v) = raw.aggregator {
            kgat_only("aggregator")?;
            p.aggregator = match v.as_str() {
                "bi" => Aggregator::Bi,
                "gcn" => Aggregator::Gcn,
                "graphsage" => Aggregator::GraphSage,
                _ => return Err(invalid("aggregator", format!("\"{v}\""), "must be bi, gcn or graphsage")),
            };
        }
        let count_for = |key: &str, v: i64, max: i64, algorithms: &[Algorithm]| -> Result<usize> {
            only(key, algorithms)?;
            if (1..=max).contains(&v) {
                Ok(v as usize)
            } else {
                Err(invalid(key, v, &format!("must be between 1 and {max}")))
            }
        };
        let count = |key: &str, v: i64, max: i64| count_for(key, v, max, &[Algorithm::Kgat]);
        if let Some(v) = raw.relation_dim {
            p.relation_dim = count("relation_dim", v, 1024)?;
        }
        if let Some(v) = raw.batch_size {
            p.batch_size = count_for("batch_size", v, 1 << 20, &[Algorithm::Kgat, Algorithm::Vbpr])?;
        }
        if let Some(v) = raw.content_factors {
            p.content_factors = count_for("content_factors", v, 1024, &[Algorithm::Vbpr])?;
        }
        if let Some(v) = raw.bias_regularization {
            only("bias_regularization", &[Algorithm::Vbpr])?;
            p.bias_regularization = positive("bias_regularization", v)?;
        }
        if let Some(v) = raw.content_regularization {
            only("content_regularization", &[Algorithm::Vbpr])?;
            p.content_regularization = positive("content_regularization", v)?;
        }
        if let Some(v) = raw.cold_boost {
            only("cold_boost", &[Algorithm::Vbpr])?;
            if !v.is_finite() {
                return Err(invalid("cold_boost", v, "must be a finite number"));
            }
            p.cold_boost = v as f32;
        }
        if let Some(v) = raw.cold_items {
            if !(0.0..1.0).contains(&v) {
                return Err(invalid("cold_items", v, "must be ≥ 0 and < 1 (0: no cold-start evaluation)"));
            }
            p.cold_items = v;
        }
        if let Some(v) = raw.kg_batch_size {
            p.kg_batch_size = count("kg_batch_size", v, 1 << 20)?;
        }
        if let Some(v) = raw.kg_regularization {
            kgat_only("kg_regularization")?;
            p.kg_regularization = positive("kg_regularization", v)?;
        }
        if let Some(v) = raw.dropout {
            kgat_only("dropout")?;
            if !(0.0..1.0).contains(&v) {
                return Err(invalid("dropout", v, "must be ≥ 0 and < 1"));
            }
            p.dropout = v as f32;
        }
        if let Some(v) = raw.eval_every {
            p.eval_every = count("eval_every", v, 10_000)?;
        }
        if let Some(v) = raw.patience {
            kgat_only("patience")?;
            if !(0..=10_000).contains(&v) {
                return Err(invalid("patience", v, "must be between 0 (no early stopping) and 10000"));
            }
            p.patience = v as usize;
        }
        if let Some(v) = raw.item_bias {
            kgat_only("item_bias")?;
            p.item_bias = v;
        }
        if let Some(v) = raw.layer_init {
            kgat_only("layer_init")?;
            if !(v.is_finite() && v > 0.0 && v <= 10.0) {
                return Err(invalid("layer_init", v, "must be > 0 and at most 10"));
            }
            p.layer_init = Some(v as f32);
        }
        if let Some(v) = raw.pretrain {
            kgat_only("pretrain")?;
            p.pretrain = Some(v);
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let p = Params::parse(Algorithm::Als, "{}").unwrap();
        assert_eq!(p, Params::defaults(Algorithm::Als));
        let p = Params::parse(Algorithm::Bpr, r#"{"factors": 8, "iterations": 3, "test_fraction": 0}"#).unwrap();
        assert_eq!((p.factors, p.iterations, p.test_fraction), (8, 3, 0.0));
    }

    #[test]
    fn bad_params_are_named() {
        let msg = |j: &str| Params::parse(Algorithm::Als, j).unwrap_err().message;
        assert_eq!(msg(r#"{"factors": 0}"#), "invalid value 0 for param \"factors\": must be between 1 and 1024");
        assert_eq!(
            msg(r#"{"regularization": -1}"#),
            "invalid value -1 for param \"regularization\": must be a finite number ≥ 0"
        );
        assert!(
            msg(r#"{"factor": 8}"#).starts_with("invalid params: unknown field `factor`"),
            "{}",
            msg(r#"{"factor": 8}"#)
        );
        assert!(msg(r#"{"factors": "many"}"#).starts_with("invalid params: invalid type"));
        assert!(msg("[1]").starts_with("invalid params"));
        assert_eq!(msg(r#"{"layers": [8]}"#), "param \"layers\" applies to kgat only, not als");
        assert_eq!(msg(r#"{"batch_size": 8}"#), "param \"batch_size\" applies to kgat and vbpr only, not als");
        assert_eq!(msg(r#"{"cold_boost": 1}"#), "param \"cold_boost\" applies to vbpr only, not als");
        assert_eq!(msg(r#"{"item_bias": true}"#), "param \"item_bias\" applies to kgat only, not als");
        assert!(Params::parse(Algorithm::Kgat, r#"{"item_bias": true}"#).unwrap().kgat().item_bias);
        assert_eq!(msg(r#"{"layer_init": 0.1}"#), "param \"layer_init\" applies to kgat only, not als");
        assert_eq!(Params::parse(Algorithm::Kgat, r#"{"layer_init": 0.5}"#).unwrap().kgat().layer_init, Some(0.5));
        assert_eq!(
            msg(r#"{"cold_items": 1}"#),
            "invalid value 1 for param \"cold_items\": must be ≥ 0 and < 1 (0: no cold-start evaluation)"
        );
        let v = Params::parse(Algorithm::Vbpr, r#"{"content_factors": 8, "cold_boost": -0.5, "batch_size": 32}"#)
            .unwrap()
            .vbpr();
        assert_eq!((v.factors, v.content_factors, v.cold_boost, v.batch), (32, 8, -0.5, 32));
        let d = Params::defaults(Algorithm::Vbpr).vbpr();
        assert_eq!((d.content_factors, d.regularization, d.content_regularization), (8, 0.02, 0.02));
        let kgat = |j: &str| Params::parse(Algorithm::Kgat, j).unwrap_err().message;
        assert_eq!(
            kgat(r#"{"layers": [64, 0]}"#),
            "invalid value [64, 0] for param \"layers\": must be 1 to 8 sizes, each between 1 and 1024"
        );
        assert_eq!(
            kgat(r#"{"aggregator": "max"}"#),
            "invalid value \"max\" for param \"aggregator\": must be bi, gcn or graphsage"
        );
        assert_eq!(kgat(r#"{"dropout": 1}"#), "invalid value 1 for param \"dropout\": must be ≥ 0 and < 1");
        assert_eq!(
            kgat(r#"{"layer_init": 0}"#),
            "invalid value 0 for param \"layer_init\": must be > 0 and at most 10"
        );
        assert_eq!(
            kgat(r#"{"batch_size": 0}"#),
            "invalid value 0 for param \"batch_size\": must be between 1 and 1048576"
        );
        let p = Params::parse(Algorithm::Kgat, r#"{"layers": [16, 8], "aggregator": "gcn", "factors": 16}"#).unwrap();
        let k = p.kgat();
        assert_eq!((k.embedding, k.layers, k.aggregator, k.learning_rate), (16, vec![16, 8], Aggregator::Gcn, 1e-4));
    }
}
