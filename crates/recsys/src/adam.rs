//! Adam (Kingma & Ba), shared by the trainers that use it (KGAT, VBPR):
//! β₁ 0.9, β₂ 0.999, ε 1e-8, bias-corrected, at step `t` ≥ 1 — over a whole
//! array (in parallel on the current rayon pool) or, for sparse updates, one
//! row at a time ("lazy" Adam: rows a batch did not touch keep their moments).

use ndarray::{Array, Array2, Dimension, Zip};

pub(crate) struct Adam<D: Dimension> {
    m: Array<f32, D>,
    v: Array<f32, D>,
}

const B1: f32 = 0.9;
const B2: f32 = 0.999;

/// One element's step: moments `m`, `v` from gradient `g`, then `p`.
#[inline(always)]
pub(crate) fn update(p: &mut f32, m: &mut f32, v: &mut f32, g: f32, lr: f32, c1: f32, c2: f32) {
    *m = B1 * *m + (1.0 - B1) * g;
    *v = B2 * *v + (1.0 - B2) * g * g;
    *p -= lr * (*m / c1) / ((*v / c2).sqrt() + 1e-8);
}

/// The bias corrections 1 − β₁ᵗ and 1 − β₂ᵗ at step `t` ≥ 1.
pub(crate) fn corrections(t: i32) -> (f32, f32) {
    (1.0 - B1.powi(t), 1.0 - B2.powi(t))
}

impl<D: Dimension> Adam<D> {
    pub fn new(like: &Array<f32, D>) -> Adam<D> {
        Adam { m: Array::zeros(like.raw_dim()), v: Array::zeros(like.raw_dim()) }
    }

    /// One step on all of `param`.
    pub fn step(&mut self, param: &mut Array<f32, D>, grad: &Array<f32, D>, lr: f32, t: i32) {
        let (c1, c2) = corrections(t);
        Zip::from(param)
            .and(&mut self.m)
            .and(&mut self.v)
            .and(grad)
            .par_for_each(|p, m, v, &g| update(p, m, v, g, lr, c1, c2));
    }
}

impl Adam<ndarray::Ix2> {
    /// One step on row `r` of `param` only, with that row's gradient `g`.
    pub fn step_row(&mut self, param: &mut Array2<f32>, r: usize, g: &[f32], lr: f32, t: i32) {
        let (c1, c2) = corrections(t);
        let (mut p, mut m, mut v) = (param.row_mut(r), self.m.row_mut(r), self.v.row_mut(r));
        for (d, &g) in g.iter().enumerate() {
            update(&mut p[d], &mut m[d], &mut v[d], g, lr, c1, c2);
        }
    }
}
