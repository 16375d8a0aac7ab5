//! Implicit-feedback ALS (Hu, Koren & Volinsky 2008): preference 1 for every
//! observed pair, confidence c = 1 + alpha · weight, squared loss over all
//! pairs. Each half-step solves every user (then every item) against the other
//! side's fixed factors with a few conjugate-gradient steps warm-started from the
//! current factors (Takács et al.), as `implicit` does; rows are solved in
//! parallel, each reading only the fixed side.

use ndarray::{Array2, Axis};
use rayon::prelude::*;

use serde::{Deserialize, Serialize};

use super::data::Csr;
use super::init::init_factors;
use super::memory::{Shape, factor_model};
use super::model::Model;
use super::params::{FACTORS, ITERATIONS, Param, Rule};
use super::progress::Progress;
use super::registry::{Algo, Context};
use pgrec_base::error::Result;
use pgrec_base::kernels;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlsParams {
    pub factors: usize,
    pub iterations: usize,
    pub regularization: f32,
    /// Confidence c = 1 + alpha · weight.
    pub alpha: f32,
    pub cg_steps: usize,
    /// The protocol's seed.
    #[serde(skip)]
    pub seed: u64,
}

impl Default for AlsParams {
    fn default() -> AlsParams {
        AlsParams { factors: 64, iterations: 15, regularization: 10.0, alpha: 80.0, cg_steps: 3, seed: 42 }
    }
}

pub struct Als;

impl Algo for Als {
    type Params = AlsParams;
    const NAME: &'static str = "als";
    const SUMMARY: &'static str = "implicit ALS: confidence 1 + alpha·weight, conjugate gradient";
    const PARAMS: &'static [Param] = &[
        Param { key: "factors", rule: FACTORS, meaning: "latent dimensions" },
        Param { key: "iterations", rule: ITERATIONS, meaning: "sweeps (users, then items)" },
        Param { key: "regularization", rule: Rule::NonNegative, meaning: "L2 weight λ" },
        Param { key: "alpha", rule: Rule::NonNegative, meaning: "confidence scale: c = 1 + alpha · weight" },
        Param {
            key: "cg_steps",
            rule: Rule::Int { min: 1, max: 100, note: "" },
            meaning: "conjugate-gradient steps per row and sweep",
        },
    ];
    const LABEL: &'static str = "iteration";
    const DIVERGED_HINT: &'static str = "lower alpha, or scale the weights down (log1p(weight) often suits counts)";

    fn memory(p: &AlsParams, s: &Shape) -> (u64, &'static str) {
        let f = p.factors as u64;
        // The Gram matrix and one solve per user and thread: small.
        (factor_model(s, f) + (s.users + s.items) as u64 * f * 4 + 64 * f * f * 4, "lower \"factors\" in params")
    }

    fn fit(p: &AlsParams, cx: &mut Context<'_>) -> Result<()> {
        let p = AlsParams { seed: cx.seed, ..p.clone() };
        let (x, y) = train(cx.train, &p, cx.pool, cx.on_iteration)?;
        cx.model.user_factors = x;
        cx.model.item_factors = y;
        cx.model.regularization = p.regularization;
        cx.model.alpha = p.alpha;
        Ok(())
    }

    /// Solves for the user's factors exactly, as a training step would.
    fn fold_in(model: &Model, items: &[u32]) -> Vec<f32> {
        let f = model.factors();
        if f == 0 || items.is_empty() {
            return vec![0.0; f];
        }
        let y = &model.item_factors;
        let mut a = y.t().dot(y);
        let mut b = vec![0f32; f];
        for &i in items {
            let yi = y.row(i as usize);
            let c = 1.0 + model.alpha;
            for r in 0..f {
                b[r] += c * yi[r];
                for col in 0..f {
                    a[[r, col]] += (c - 1.0) * yi[r] * yi[col];
                }
            }
        }
        for r in 0..f {
            a[[r, r]] += model.regularization;
        }
        solve_spd(&a, &b)
    }
}

/// Solves A·x = b for a small symmetric positive-definite A (Cholesky).
pub(crate) fn solve_spd(a: &Array2<f32>, b: &[f32]) -> Vec<f32> {
    let n = b.len();
    let mut l = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for j in 0..=i {
            let mut s = f64::from(a[[i, j]]);
            for k in 0..j {
                s -= l[[i, k]] * l[[j, k]];
            }
            l[[i, j]] = if i == j { s.max(1e-12).sqrt() } else { s / l[[j, j]] };
        }
    }
    let mut z = vec![0f64; n];
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[[i, k]] * z[k]).sum();
        z[i] = (f64::from(b[i]) - s) / l[[i, i]];
    }
    let mut x = vec![0f64; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[[k, i]] * x[k]).sum();
        x[i] = (z[i] - s) / l[[i, i]];
    }
    x.into_iter().map(|v| v as f32).collect()
}

/// Per-thread scratch vectors of one CG solve.
pub(crate) struct Scratch {
    r: Vec<f32>,
    p: Vec<f32>,
    ap: Vec<f32>,
}

impl Scratch {
    pub(crate) fn new(f: usize) -> Scratch {
        Scratch { r: vec![0.0; f], p: vec![0.0; f], ap: vec![0.0; f] }
    }
}

/// `out = m · v` for a row-major f × f matrix.
fn matvec(m: &[f32], v: &[f32], out: &mut [f32]) {
    let f = v.len();
    for (o, row) in out.iter_mut().zip(m.chunks_exact(f)) {
        *o = kernels::dot(row, v);
    }
}

fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}

/// One CG solve of row `x` against fixed factors `y` (row-major, f wide):
/// `yty` is YᵀY + λI, row-major. Plain slices and SIMD dot products, with the
/// scratch vectors reused across rows: this runs once per user and item.
#[allow(clippy::too_many_arguments)]
pub(crate) fn solve_row(
    x: &mut [f32],
    y: &[f32],
    yty: &[f32],
    cols: &[u32],
    w: &[f32],
    alpha: f32,
    steps: usize,
    s: &mut Scratch,
) {
    let f = x.len();
    let Scratch { r, p, ap } = s;
    // r = b − A·x with A = YᵀY + λI + Σ (c−1) yᵢyᵢᵀ and b = Σ c yᵢ.
    matvec(yty, x, r);
    r.iter_mut().for_each(|v| *v = -*v);
    for (&i, &wi) in cols.iter().zip(w) {
        let yi = &y[i as usize * f..(i as usize + 1) * f];
        let c = 1.0 + alpha * wi;
        axpy(c - (c - 1.0) * kernels::dot(yi, x), yi, r);
    }
    p.copy_from_slice(r);
    let mut rs = kernels::dot(r, r);
    for _ in 0..steps {
        if rs < 1e-20 {
            break;
        }
        matvec(yty, p, ap);
        for (&i, &wi) in cols.iter().zip(w) {
            let yi = &y[i as usize * f..(i as usize + 1) * f];
            axpy(alpha * wi * kernels::dot(yi, p), yi, ap);
        }
        let a = rs / kernels::dot(p, ap);
        axpy(a, p, x);
        axpy(-a, ap, r);
        let rs_new = kernels::dot(r, r);
        let beta = rs_new / rs;
        p.iter_mut().zip(r.iter()).for_each(|(p, r)| *p = r + beta * *p);
        rs = rs_new;
    }
}

pub(crate) fn gram(y: &Array2<f32>, reg: f32) -> Array2<f32> {
    let mut g = y.t().dot(y);
    g.diag_mut().iter_mut().for_each(|d| *d += reg);
    g
}

fn half_step(x: &mut Array2<f32>, y: &Array2<f32>, m: &Csr, p: &AlsParams) {
    let f = p.factors;
    let yty = gram(y, p.regularization);
    let (yty, y) = (yty.as_standard_layout(), y.as_standard_layout());
    let (yty, y) = (yty.as_slice().unwrap_or(&[]), y.as_slice().unwrap_or(&[]));
    let scratch = || Scratch::new(f);
    x.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each_init(scratch, |s, (u, mut row)| {
        let (cols, w) = m.row(u);
        if let Some(xs) = row.as_slice_mut() {
            solve_row(xs, y, yty, cols, w, p.alpha, p.cg_steps, s);
        }
    });
}

/// Σ over all pairs of c·(p − x·y)², plus λ(|X|² + |Y|²), per unit of
/// confidence: computed without touching the unobserved pairs one by one.
fn loss(x: &Array2<f32>, y: &Array2<f32>, m: &Csr, p: &AlsParams) -> f64 {
    let f = p.factors;
    let yty = y.t().dot(y);
    let (yty, xs, ys) = (yty.as_standard_layout(), x.as_standard_layout(), y.as_standard_layout());
    let (yty, xs, ys) = (yty.as_slice().unwrap_or(&[]), xs.as_slice().unwrap_or(&[]), ys.as_slice().unwrap_or(&[]));
    let (sum, conf): (f64, f64) = (0..m.n_rows)
        .into_par_iter()
        .map_init(
            || vec![0f32; f],
            |t, u| {
                let xu = &xs[u * f..(u + 1) * f];
                matvec(yty, xu, t);
                let mut l = f64::from(kernels::dot(xu, t));
                let mut conf = 0.0;
                let (cols, w) = m.row(u);
                for (&i, &wi) in cols.iter().zip(w) {
                    let c = f64::from(1.0 + p.alpha * wi);
                    let s = f64::from(kernels::dot(xu, &ys[i as usize * f..(i as usize + 1) * f]));
                    l += c * (1.0 - s) * (1.0 - s) - s * s;
                    conf += c - 1.0;
                }
                (l, conf)
            },
        )
        .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    let reg = f64::from(p.regularization) * f64::from(kernels::norm_squared(xs) + kernels::norm_squared(ys));
    (sum + reg) / (m.n_rows as f64 * m.n_cols as f64 + conf)
}

/// Trains user and item factors on the user × item matrix `ui`.
pub fn train(
    ui: &Csr,
    p: &AlsParams,
    pool: &rayon::ThreadPool,
    on_iteration: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<(Array2<f32>, Array2<f32>)> {
    let iu = ui.transpose();
    let mut x = init_factors(ui.n_rows, p.factors, p.seed, 0.01);
    let mut y = init_factors(ui.n_cols, p.factors, p.seed ^ 1, 0.01);
    let start = std::time::Instant::now();
    for it in 1..=p.iterations {
        let l = pool.install(|| {
            half_step(&mut x, &y, ui, p);
            half_step(&mut y, &x, &iu, p);
            loss(&x, &y, ui, p)
        });
        on_iteration(&Progress {
            iteration: it,
            of: p.iterations,
            loss: l,
            elapsed: start.elapsed().as_secs_f64(),
            ..Progress::default()
        })?;
    }
    Ok((x, y))
}
