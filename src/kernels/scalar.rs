//! Portable kernels: plain loops the compiler may not reorder, so results are the
//! sequential f32 sums. They run on every CPU and are the reference for the SIMD sets.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{DotNorms, Kernels};

pub(super) static KERNELS: Kernels =
    Kernels { name: "portable", dot, l2_squared, l1, dot_norms, dot_i8, quantize_i8, dot_i8_rows };

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

pub(super) fn dot_i8(q: &[i8], x: &[f32]) -> f32 {
    q.iter().zip(x).map(|(&q, x)| f32::from(q) * x).sum()
}

pub(super) fn quantize_i8(x: &[f32], codes: &mut [i8]) -> f32 {
    let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let inv = if max > 0.0 { 127.0 / max } else { 0.0 };
    for (c, v) in codes.iter_mut().zip(x) {
        *c = (v * inv).round_ties_even() as i8;
    }
    max / 127.0
}

pub(super) fn dot_i8_rows(words: &[AtomicU64], rows: &[u32], x: &[f32], out: &mut [f32]) {
    let per_row = x.len() / 8;
    for (o, &r) in out.iter_mut().zip(rows) {
        let row = &words[r as usize * per_row..(r as usize + 1) * per_row];
        *o = row
            .iter()
            .zip(x.chunks_exact(8))
            .map(|(w, xs)| {
                let codes = w.load(Ordering::Relaxed).to_le_bytes();
                codes.iter().zip(xs).map(|(&c, x)| f32::from(c as i8) * x).sum::<f32>()
            })
            .sum();
    }
}
