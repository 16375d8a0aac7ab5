//! NEON kernels for aarch64: 8 lanes per step in two accumulators, scalar tail.
//! NEON is part of the aarch64 baseline, but the table is still installed only
//! after `is_aarch64_feature_detected!` agrees, which keeps the `unsafe` calls sound.

use std::arch::aarch64::*;

use super::{DotNorms, Kernels};

// The int8 kernels (BPR's candidate scoring only) have no NEON form yet: the portable loops serve.
static KERNELS: Kernels = Kernels {
    name: "neon",
    dot,
    l2_squared,
    l1,
    dot_norms,
    quantize_i8: super::scalar::quantize_i8,
    dot_i8_rows: super::scalar::dot_i8_rows,
    // Element-wise: the compiler already vectorizes the portable loop for NEON.
    sgd_pair: super::scalar::sgd_pair,
    weighted_sum: super::scalar::weighted_sum,
};

pub(super) fn kernels() -> Option<&'static Kernels> {
    std::arch::is_aarch64_feature_detected!("neon").then_some(&KERNELS)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: the table is only handed out after NEON was detected.
    unsafe { dot_neon(a, b) }
}

fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: the table is only handed out after NEON was detected.
    unsafe { l2_squared_neon(a, b) }
}

fn l1(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: the table is only handed out after NEON was detected.
    unsafe { l1_neon(a, b) }
}

fn dot_norms(a: &[f32], b: &[f32]) -> DotNorms {
    // SAFETY: the table is only handed out after NEON was detected.
    unsafe { dot_norms_neon(a, b) }
}

/// Σ over lanes of `step(acc, a_i, b_i)`, finished by `tail` for the last < 4
/// elements; the kernels below are this loop with a different step.
#[inline]
#[target_feature(enable = "neon")]
fn reduce(
    a: &[f32],
    b: &[f32],
    step: impl Fn(float32x4_t, float32x4_t, float32x4_t) -> float32x4_t,
    tail: impl Fn(f32, f32) -> f32,
) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let load = |i: usize| {
        debug_assert!(i + 4 <= n);
        // SAFETY: every call below has i + 4 <= n; vld1q has no alignment requirement.
        unsafe { (vld1q_f32(a.as_ptr().add(i)), vld1q_f32(b.as_ptr().add(i))) }
    };
    let mut acc0 = vdupq_n_f32(0.0);
    let mut acc1 = vdupq_n_f32(0.0);
    let mut i = 0;
    while i + 8 <= n {
        let (x0, y0) = load(i);
        let (x1, y1) = load(i + 4);
        acc0 = step(acc0, x0, y0);
        acc1 = step(acc1, x1, y1);
        i += 8;
    }
    if i + 4 <= n {
        let (x0, y0) = load(i);
        acc0 = step(acc0, x0, y0);
        i += 4;
    }
    let mut s = vaddvq_f32(vaddq_f32(acc0, acc1));
    for j in i..n {
        s += tail(a[j], b[j]);
    }
    s
}

#[target_feature(enable = "neon")]
fn dot_neon(a: &[f32], b: &[f32]) -> f32 {
    reduce(a, b, |acc, x, y| vfmaq_f32(acc, x, y), |x, y| x * y)
}

#[target_feature(enable = "neon")]
fn l2_squared_neon(a: &[f32], b: &[f32]) -> f32 {
    reduce(
        a,
        b,
        |acc, x, y| {
            let d = vsubq_f32(x, y);
            vfmaq_f32(acc, d, d)
        },
        |x, y| (x - y) * (x - y),
    )
}

#[target_feature(enable = "neon")]
fn l1_neon(a: &[f32], b: &[f32]) -> f32 {
    reduce(a, b, |acc, x, y| vaddq_f32(acc, vabdq_f32(x, y)), |x, y| (x - y).abs())
}

#[target_feature(enable = "neon")]
fn dot_norms_neon(a: &[f32], b: &[f32]) -> DotNorms {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut d = vdupq_n_f32(0.0);
    let mut na = vdupq_n_f32(0.0);
    let mut nb = vdupq_n_f32(0.0);
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: i + 4 <= n, so 4 lanes exist at i in both slices.
        let (x, y) = unsafe { (vld1q_f32(a.as_ptr().add(i)), vld1q_f32(b.as_ptr().add(i))) };
        d = vfmaq_f32(d, x, y);
        na = vfmaq_f32(na, x, x);
        nb = vfmaq_f32(nb, y, y);
        i += 4;
    }
    let mut r = DotNorms { dot: vaddvq_f32(d), norm_a: vaddvq_f32(na), norm_b: vaddvq_f32(nb) };
    for j in i..n {
        r.dot += a[j] * b[j];
        r.norm_a += a[j] * a[j];
        r.norm_b += b[j] * b[j];
    }
    r
}
