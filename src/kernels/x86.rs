//! AVX2+FMA kernels for x86-64. Each processes 16 lanes per step in two
//! independent accumulators (hiding FMA latency), then finishes the tail with
//! scalar code. Installed only after `is_x86_feature_detected!` confirms both
//! features, which is what makes the `unsafe` calls below sound.

use std::arch::x86_64::*;

use super::{DotNorms, Kernels};

static KERNELS: Kernels = Kernels { name: "avx2+fma", dot, l2_squared, l1, dot_norms };

pub(super) fn kernels() -> Option<&'static Kernels> {
    (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(&KERNELS)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: this table is only handed out by `kernels()` after detecting AVX2 and FMA.
    unsafe { dot_avx2(a, b) }
}

fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: as in `dot`: the CPU features were detected before this table was used.
    unsafe { l2_squared_avx2(a, b) }
}

fn l1(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: as in `dot`: the CPU features were detected before this table was used.
    unsafe { l1_avx2(a, b) }
}

fn dot_norms(a: &[f32], b: &[f32]) -> DotNorms {
    // SAFETY: as in `dot`: the CPU features were detected before this table was used.
    unsafe { dot_norms_avx2(a, b) }
}

#[target_feature(enable = "avx2,fma")]
fn hsum(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps::<1>(v);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
    _mm_cvtss_f32(s)
}

/// Loads 8 lanes at `i` from both slices.
///
/// # Safety
/// `i + 8 <= a.len()` and `a.len() == b.len()` (asserted in debug builds).
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn load2(a: &[f32], b: &[f32], i: usize) -> (__m256, __m256) {
    debug_assert!(i + 8 <= a.len() && a.len() == b.len());
    // SAFETY: the caller guarantees 8 readable lanes at `i` in both slices; loadu needs no alignment.
    unsafe { (_mm256_loadu_ps(a.as_ptr().add(i)), _mm256_loadu_ps(b.as_ptr().add(i))) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n, so lanes i..i+16 exist in both slices.
        let ((x0, y0), (x1, y1)) = unsafe { (load2(a, b, i), load2(a, b, i + 8)) };
        acc0 = _mm256_fmadd_ps(x0, y0, acc0);
        acc1 = _mm256_fmadd_ps(x1, y1, acc1);
        i += 16;
    }
    if i + 8 <= n {
        // SAFETY: i + 8 <= n.
        let (x0, y0) = unsafe { load2(a, b, i) };
        acc0 = _mm256_fmadd_ps(x0, y0, acc0);
        i += 8;
    }
    let mut s = hsum(_mm256_add_ps(acc0, acc1));
    for j in i..n {
        s += a[j] * b[j];
    }
    s
}

#[target_feature(enable = "avx2,fma")]
unsafe fn l2_squared_avx2(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n.
        let ((x0, y0), (x1, y1)) = unsafe { (load2(a, b, i), load2(a, b, i + 8)) };
        let d0 = _mm256_sub_ps(x0, y0);
        let d1 = _mm256_sub_ps(x1, y1);
        acc0 = _mm256_fmadd_ps(d0, d0, acc0);
        acc1 = _mm256_fmadd_ps(d1, d1, acc1);
        i += 16;
    }
    if i + 8 <= n {
        // SAFETY: i + 8 <= n.
        let (x0, y0) = unsafe { load2(a, b, i) };
        let d0 = _mm256_sub_ps(x0, y0);
        acc0 = _mm256_fmadd_ps(d0, d0, acc0);
        i += 8;
    }
    let mut s = hsum(_mm256_add_ps(acc0, acc1));
    for j in i..n {
        let d = a[j] - b[j];
        s += d * d;
    }
    s
}

#[target_feature(enable = "avx2,fma")]
unsafe fn l1_avx2(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    // Clearing the sign bit is |x| for IEEE floats.
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n.
        let ((x0, y0), (x1, y1)) = unsafe { (load2(a, b, i), load2(a, b, i + 8)) };
        acc0 = _mm256_add_ps(acc0, _mm256_and_ps(_mm256_sub_ps(x0, y0), abs_mask));
        acc1 = _mm256_add_ps(acc1, _mm256_and_ps(_mm256_sub_ps(x1, y1), abs_mask));
        i += 16;
    }
    if i + 8 <= n {
        // SAFETY: i + 8 <= n.
        let (x0, y0) = unsafe { load2(a, b, i) };
        acc0 = _mm256_add_ps(acc0, _mm256_and_ps(_mm256_sub_ps(x0, y0), abs_mask));
        i += 8;
    }
    let mut s = hsum(_mm256_add_ps(acc0, acc1));
    for j in i..n {
        s += (a[j] - b[j]).abs();
    }
    s
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dot_norms_avx2(a: &[f32], b: &[f32]) -> DotNorms {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut d = _mm256_setzero_ps();
    let mut na = _mm256_setzero_ps();
    let mut nb = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n.
        let (x, y) = unsafe { load2(a, b, i) };
        d = _mm256_fmadd_ps(x, y, d);
        na = _mm256_fmadd_ps(x, x, na);
        nb = _mm256_fmadd_ps(y, y, nb);
        i += 8;
    }
    let mut r = DotNorms { dot: hsum(d), norm_a: hsum(na), norm_b: hsum(nb) };
    for j in i..n {
        r.dot += a[j] * b[j];
        r.norm_a += a[j] * a[j];
        r.norm_b += b[j] * b[j];
    }
    r
}
