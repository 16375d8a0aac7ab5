//! Portable kernels: plain loops the compiler may not reorder, so results are the
//! sequential f32 sums. They run on every CPU and are the reference for the SIMD sets.

use super::{DotNorms, Kernels};

pub(super) static KERNELS: Kernels = Kernels { name: "portable", dot, l2_squared, l1, dot_norms };

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
