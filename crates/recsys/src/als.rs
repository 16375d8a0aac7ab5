//! Implicit-feedback ALS (Hu, Koren & Volinsky 2008): preference 1 for every
//! observed pair, confidence c = 1 + alpha · weight, squared loss over all
//! pairs. Each half-step solves every user (then every item) against the other
//! side's fixed factors with a few conjugate-gradient steps warm-started from the
//! current factors (Takács et al.), as `implicit` does; rows are solved in
//! parallel, each reading only the fixed side.

use ndarray::{Array2, Axis};
use rayon::prelude::*;

use super::data::Csr;
use super::init::init_factors;
use super::params::Params;
use super::progress::Progress;
use pgrec_base::error::Result;
use pgrec_base::kernels;

/// Per-thread scratch vectors of one CG solve.
struct Scratch {
    r: Vec<f32>,
    p: Vec<f32>,
    ap: Vec<f32>,
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
fn solve_row(
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

fn gram(y: &Array2<f32>, reg: f32) -> Array2<f32> {
    let mut g = y.t().dot(y);
    g.diag_mut().iter_mut().for_each(|d| *d += reg);
    g
}

fn half_step(x: &mut Array2<f32>, y: &Array2<f32>, m: &Csr, p: &Params) {
    let f = p.factors;
    let yty = gram(y, p.regularization);
    let (yty, y) = (yty.as_standard_layout(), y.as_standard_layout());
    let (yty, y) = (yty.as_slice().unwrap_or(&[]), y.as_slice().unwrap_or(&[]));
    let scratch = || Scratch { r: vec![0.0; f], p: vec![0.0; f], ap: vec![0.0; f] };
    x.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each_init(scratch, |s, (u, mut row)| {
        let (cols, w) = m.row(u);
        if let Some(xs) = row.as_slice_mut() {
            solve_row(xs, y, yty, cols, w, p.alpha, p.cg_steps, s);
        }
    });
}

/// Σ over all pairs of c·(p − x·y)², plus λ(|X|² + |Y|²), per unit of
/// confidence: computed without touching the unobserved pairs one by one.
fn loss(x: &Array2<f32>, y: &Array2<f32>, m: &Csr, p: &Params) -> f64 {
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
    p: &Params,
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
