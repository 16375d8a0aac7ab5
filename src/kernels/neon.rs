//! NEON kernels for aarch64: 8 lanes per step in two accumulators, scalar tail.
//! NEON is part of the aarch64 baseline, but the table is still installed only
//! after `is_aarch64_feature_detected!` agrees, which keeps the `unsafe` calls sound.

use std::arch::aarch64::*;

use super::{DotNorms, Kernels};

static KERNELS: Kernels = Kernels { name: "neon", dot, l2_squared, l1, dot_norms };

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

/// Loads 4 lanes at `i` from both slices.
///
/// # Safety
/// `i + 4 <= a.len()` and `a.len() == b.len()`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load2(a: &[f32], b: &[f32], i: usize) -> (float32x4_t, float32x4_t) {
    debug_assert!(i + 4 <= a.len() && a.len() == b.len());
    // SAFETY: the caller guarantees 4 readable lanes at `i`; vld1q has no alignment requirement.
    unsafe { (vld1q_f32(a.as_ptr().add(i)), vld1q_f32(b.as_ptr().add(i))) }
}

#[target_feature(enable = "neon")]
unsafe fn dot_neon(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc0 = vdupq_n_f32(0.0);
    let mut acc1 = vdupq_n_f32(0.0);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n.
        let ((x0, y0), (x1, y1)) = unsafe { (load2(a, b, i), load2(a, b, i + 4)) };
        acc0 = vfmaq_f32(acc0, x0, y0);
        acc1 = vfmaq_f32(acc1, x1, y1);
        i += 8;
    }
    let mut s = vaddvq_f32(vaddq_f32(acc0, acc1));
    for j in i..n {
        s += a[j] * b[j];
    }
    s
}

#[target_feature(enable = "neon")]
unsafe fn l2_squared_neon(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc0 = vdupq_n_f32(0.0);
    let mut acc1 = vdupq_n_f32(0.0);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n.
        let ((x0, y0), (x1, y1)) = unsafe { (load2(a, b, i), load2(a, b, i + 4)) };
        let d0 = vsubq_f32(x0, y0);
        let d1 = vsubq_f32(x1, y1);
        acc0 = vfmaq_f32(acc0, d0, d0);
        acc1 = vfmaq_f32(acc1, d1, d1);
        i += 8;
    }
    let mut s = vaddvq_f32(vaddq_f32(acc0, acc1));
    for j in i..n {
        let d = a[j] - b[j];
        s += d * d;
    }
    s
}

#[target_feature(enable = "neon")]
unsafe fn l1_neon(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc0 = vdupq_n_f32(0.0);
    let mut acc1 = vdupq_n_f32(0.0);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n.
        let ((x0, y0), (x1, y1)) = unsafe { (load2(a, b, i), load2(a, b, i + 4)) };
        acc0 = vaddq_f32(acc0, vabdq_f32(x0, y0));
        acc1 = vaddq_f32(acc1, vabdq_f32(x1, y1));
        i += 8;
    }
    let mut s = vaddvq_f32(vaddq_f32(acc0, acc1));
    for j in i..n {
        s += (a[j] - b[j]).abs();
    }
    s
}

#[target_feature(enable = "neon")]
unsafe fn dot_norms_neon(a: &[f32], b: &[f32]) -> DotNorms {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut d = vdupq_n_f32(0.0);
    let mut na = vdupq_n_f32(0.0);
    let mut nb = vdupq_n_f32(0.0);
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: i + 4 <= n.
        let (x, y) = unsafe { load2(a, b, i) };
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
