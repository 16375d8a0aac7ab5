//! Portable kernels: plain loops the compiler may not reorder, so results are the
//! sequential f32 sums. They run on every CPU and are the reference for the SIMD sets.

use super::{DotNorms, Kernels};

pub(super) static KERNELS: Kernels =
    Kernels { name: "portable", dot, l2_squared, l1, dot_norms, quantize_i8, dot_i8_rows, sgd_pair, weighted_sum };

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = x - y;
            d * d
        })
        .sum()
}

fn l1(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum()
}

fn dot_norms(a: &[f32], b: &[f32]) -> DotNorms {
    let mut r = DotNorms::default();
    for (x, y) in a.iter().zip(b) {
        r.dot += x * y;
        r.norm_a += x * x;
        r.norm_b += y * y;
    }
    r
}

pub(super) fn quantize_i8(x: &[f32], codes: &mut [i8]) -> f32 {
    let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let inv = if max > 0.0 { 127.0 / max } else { 0.0 };
    for (c, v) in codes.iter_mut().zip(x) {
        *c = (v * inv).round_ties_even() as i8;
    }
    max / 127.0
}

pub(super) fn dot_i8_rows(codes: &[i8], rows: &[u32], q: &[i8], out: &mut [i32]) {
    let n = q.len();
    for (o, &r) in out.iter_mut().zip(rows) {
        let row = &codes[r as usize * n..(r as usize + 1) * n];
        *o = row.iter().zip(q).map(|(&c, &x)| i32::from(c) * i32::from(x)).sum();
    }
}

/// Element-wise, so the compiler may vectorize it without changing any
/// result; the x86 set compiles this same body for AVX2.
#[inline(always)]
pub(super) fn sgd_pair(u: &mut [f32], i: &mut [f32], j: &mut [f32], a: f32, b: f32) {
    for ((u, i), j) in u.iter_mut().zip(i.iter_mut()).zip(j.iter_mut()) {
        let (uu, ii, jj) = (*u, *i, *j);
        *u = a * uu + b * (ii - jj);
        *i = a * ii + b * uu;
        *j = a * jj - b * uu;
    }
}

pub(super) fn weighted_sum(out: &mut [f32], cols: &[u32], vals: &[f32], x: &[f32]) {
    let d = out.len();
    out.fill(0.0);
    for (&c, &a) in cols.iter().zip(vals) {
        let row = &x[c as usize * d..(c as usize + 1) * d];
        for (o, &v) in out.iter_mut().zip(row) {
            *o += a * v;
        }
    }
}
