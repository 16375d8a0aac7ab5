//! Training parameters, read from the `params jsonb` of `train()`: every key is
//! optional, unknown keys and out-of-range values are errors that name the key.
//! Defaults are per algorithm and chosen to work without a grid search (see the
//! README's benchmark for what they reach).

use serde::Deserialize;

use super::model::Algorithm;
use crate::error::{Error, ErrorKind, Result};

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
        };
        match algorithm {
            Algorithm::Als => Params { iterations: 15, regularization: 10.0, alpha: 80.0, ..base },
            Algorithm::Bpr => Params { iterations: 80, regularization: 0.05, learning_rate: 0.05, ..base },
            Algorithm::Mf => Params { factors: 32, iterations: 30, regularization: 0.05, learning_rate: 0.01, ..base },
            Algorithm::Popular => Params { factors: 0, iterations: 1, ..base },
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
                .with_hint("params is a JSON object with keys factors, iterations, regularization, learning_rate, alpha, cg_steps, negatives, test_fraction, seed")
        })?;
        let mut p = Params::defaults(algorithm);
        if let Some(v) = raw.factors {
            if !(1..=1024).contains(&v) {
                return Err(invalid("factors", v, "must be between 1 and 1024"));
            }
            if algorithm != Algorithm::Popular {
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
            if v.is_finite() && v >= 0.0 {
                Ok(v as f32)
            } else {
                Err(invalid(key, v, "must be a finite number ≥ 0"))
            }
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
    }
}
