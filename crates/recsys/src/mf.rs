//! Explicit-rating matrix factorisation (Funk SVD with biases, Koren 2009):
//! rating ≈ μ + b_u + b_i + p_u·q_i, fitted by SGD on squared error with L2
//! regularisation, Hogwild-parallel over shared rows (`sgd::Shared`). The
//! loss reported per epoch is the training RMSE.

use ndarray::Array2;
use rayon::prelude::*;

use super::data::Csr;
use super::init::init_factors_with_bias;
use serde::{Deserialize, Serialize};

use super::memory::{Shape, factor_model};
use super::metrics::Metrics;
use super::model::Model;
use super::params::{FACTORS, ITERATIONS, LEARNING_RATE, Param, Rule};
use super::progress::Progress;
use super::registry::{Algo, Context, Needs};
use super::sgd::Shared;
use pgrec_base::error::Result;
use pgrec_base::rng::Rng;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MfParams {
    pub factors: usize,
    pub iterations: usize,
    pub regularization: f32,
    pub learning_rate: f32,
    /// The protocol's seed.
    #[serde(skip)]
    pub seed: u64,
}

impl Default for MfParams {
    fn default() -> MfParams {
        MfParams { factors: 32, iterations: 30, regularization: 0.05, learning_rate: 0.01, seed: 42 }
    }
}

pub struct Mf;

impl Algo for Mf {
    type Params = MfParams;
    const NAME: &'static str = "mf";
    const SUMMARY: &'static str = "explicit ratings: global mean, biases and factors by SGD; needs a rating column";
    const PARAMS: &'static [Param] = &[
        Param { key: "factors", rule: FACTORS, meaning: "latent dimensions" },
        Param { key: "iterations", rule: ITERATIONS, meaning: "epochs" },
        Param { key: "regularization", rule: Rule::NonNegative, meaning: "L2 weight" },
        Param { key: "learning_rate", rule: LEARNING_RATE, meaning: "SGD step" },
    ];
    const NEEDS: Needs = Needs { ratings: true, ..Needs::NONE };
    const KEY_METRIC: (&'static str, bool) = ("rmse", true);

    fn memory(p: &MfParams, s: &Shape) -> (u64, &'static str) {
        let f = p.factors as u64;
        (factor_model(s, f) + (s.users + s.items) as u64 * f * 4 + s.items as u64 * f, "lower \"factors\" in params")
    }

    fn fit(p: &MfParams, cx: &mut Context<'_>) -> Result<()> {
        let p = MfParams { seed: cx.seed, ..p.clone() };
        let m = train(cx.train, &p, cx.pool, cx.on_iteration)?;
        cx.model.user_factors = m.users;
        cx.model.item_factors = m.items;
        cx.model.user_bias = m.user_bias;
        cx.model.item_bias = m.item_bias;
        cx.model.global = m.global;
        Ok(())
    }

    fn extra_metrics(model: &Model, test: &Csr) -> Metrics {
        let (rmse, mae) = rating_errors(|u, i| model.predict(u, i as usize), test);
        Metrics::from([("rmse".to_string(), rmse), ("mae".to_string(), mae)])
    }
}

pub struct Fitted {
    pub users: Array2<f32>,
    pub items: Array2<f32>,
    pub user_bias: Vec<f32>,
    pub item_bias: Vec<f32>,
    pub global: f32,
}

pub fn train(
    ui: &Csr,
    p: &MfParams,
    pool: &rayon::ThreadPool,
    on_iteration: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<Fitted> {
    let f = p.factors;
    let nnz = ui.nnz().max(1);
    let global = (ui.data.iter().map(|&v| f64::from(v)).sum::<f64>() / nnz as f64) as f32;
    // Biases ride along as the last column of each side.
    let users = Shared::from_array(&init_factors_with_bias(ui.n_rows, f, p.seed));
    let items = Shared::from_array(&init_factors_with_bias(ui.n_cols, f, p.seed ^ 1));
    let owner: Vec<u32> = (0..ui.n_rows).flat_map(|u| std::iter::repeat_n(u as u32, ui.row(u).0.len())).collect();
    let workers = pool.current_num_threads().max(1);
    let start = std::time::Instant::now();
    for epoch in 1..=p.iterations {
        let (lr, reg) = (p.learning_rate, p.regularization);
        let sq: f64 = pool.install(|| {
            (0..workers)
                .into_par_iter()
                .map(|w| {
                    let mut rng = Rng::new(p.seed ^ (epoch as u64) << 20 ^ w as u64);
                    let (mut pu, mut qi) = (vec![0f32; f + 1], vec![0f32; f + 1]);
                    let mut sq = 0f64;
                    let n = ui.nnz() / workers + usize::from(w < ui.nnz() % workers);
                    for _ in 0..n {
                        let k = (rng.next_u64() % nnz as u64) as usize;
                        let (u, i, r) = (owner[k] as usize, ui.indices[k] as usize, ui.data[k]);
                        users.load(u, &mut pu);
                        items.load(i, &mut qi);
                        let mut pred = global + pu[f] + qi[f];
                        for d in 0..f {
                            pred += pu[d] * qi[d];
                        }
                        let e = r - pred;
                        sq += f64::from(e * e);
                        for d in 0..f {
                            let (a, b) = (pu[d], qi[d]);
                            pu[d] += lr * (e * b - reg * a);
                            qi[d] += lr * (e * a - reg * b);
                        }
                        pu[f] += lr * (e - reg * pu[f]);
                        qi[f] += lr * (e - reg * qi[f]);
                        users.store(u, &pu);
                        items.store(i, &qi);
                    }
                    sq
                })
                .sum()
        });
        let rmse = (sq / nnz as f64).sqrt();
        on_iteration(&Progress {
            iteration: epoch,
            of: p.iterations,
            loss: rmse,
            elapsed: start.elapsed().as_secs_f64(),
            ..Progress::default()
        })?;
    }
    let (u, i) = (users.into_array(ui.n_rows), items.into_array(ui.n_cols));
    Ok(Fitted {
        users: u.slice(ndarray::s![.., ..f]).to_owned(),
        items: i.slice(ndarray::s![.., ..f]).to_owned(),
        user_bias: u.column(f).to_vec(),
        item_bias: i.column(f).to_vec(),
        global,
    })
}

/// RMSE and MAE of predictions on held-out ratings.
pub fn rating_errors(predict: impl Fn(usize, u32) -> f32, test: &Csr) -> (f64, f64) {
    let (mut sq, mut abs, mut n) = (0f64, 0f64, 0usize);
    for u in 0..test.n_rows {
        let (cols, vals) = test.row(u);
        for (&i, &r) in cols.iter().zip(vals) {
            let e = f64::from(r - predict(u, i));
            sq += e * e;
            abs += e.abs();
            n += 1;
        }
    }
    let n = n.max(1) as f64;
    ((sq / n).sqrt(), abs / n)
}
