//! AVX2+FMA kernels for x86-64. Each walks 16 lanes per step in two independent
//! accumulators (hiding FMA latency), then finishes the tail with scalar code.
//! The table is installed only after `is_x86_feature_detected!` confirms both
//! features, which is what makes the `unsafe` calls below sound.

use std::arch::x86_64::*;

use super::{DotNorms, Kernels};

static KERNELS: Kernels =
    Kernels { name: "avx2+fma", dot, l2_squared, l1, dot_norms, quantize_i8, dot_i8_rows, sgd_pair, weighted_sum };

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

fn quantize_i8(x: &[f32], codes: &mut [i8]) -> f32 {
    // SAFETY: as in `dot`: the CPU features were detected before this table was used.
    unsafe { quantize_i8_avx2(x, codes) }
}

fn dot_i8_rows(codes: &[i8], rows: &[u32], q: &[i8], out: &mut [i32]) {
    // SAFETY: as in `dot`: the CPU features were detected before this table was used.
    unsafe { dot_i8_rows_avx2(codes, rows, q, out) }
}

fn sgd_pair(u: &mut [f32], i: &mut [f32], j: &mut [f32], a: f32, b: f32) {
    // SAFETY: as in `dot`: the CPU features were detected before this table was used.
    unsafe { sgd_pair_avx2(u, i, j, a, b) }
}

fn weighted_sum(out: &mut [f32], cols: &[u32], vals: &[f32], x: &[f32]) {
    // SAFETY: as in `dot`: the CPU features were detected before this table was used.
    unsafe { weighted_sum_avx2(out, cols, vals, x) }
}

/// How many edges ahead `weighted_sum` prefetches its rows: far enough to
/// cover a load from L3 at a few cycles per edge (on a 2-core EPYC, KGAT's
/// propagation on ml-1m-kgat at width 64: 2 ahead 9.3 ms, 4 ahead 8.7 ms, 8
/// ahead 7.3 ms, 16 ahead 7.6 ms per product, one core).
const AHEAD: usize = 8;

/// 32 lanes of `out` stay in four registers while every row passes (a 64-wide
/// row in two sweeps over `cols`, which are in cache by the second), instead
/// of loading and storing `out` once per row; rows are prefetched `AHEAD`
/// edges early, as a graph's edges name rows scattered over `x` (KGAT's
/// propagation on ml-1m-kgat spent 40% of its time here). Lanes past the
/// last multiple of 32 go eight at a time, then one by one.
#[target_feature(enable = "avx2,fma")]
fn weighted_sum_avx2(out: &mut [f32], cols: &[u32], vals: &[f32], x: &[f32]) {
    let d = out.len();
    let mut lo = 0;
    while lo + 32 <= d {
        sweep::<4>(&mut out[lo..lo + 32], cols, vals, x, d, lo);
        lo += 32;
    }
    while lo + 8 <= d {
        sweep::<1>(&mut out[lo..lo + 8], cols, vals, x, d, lo);
        lo += 8;
    }
    if lo < d {
        let tail = &mut out[lo..];
        tail.fill(0.0);
        for (&c, &a) in cols.iter().zip(vals) {
            let row = &x[c as usize * d + lo..(c as usize + 1) * d];
            for (o, &v) in tail.iter_mut().zip(row) {
                *o += a * v;
            }
        }
    }
}

/// Lanes `lo..lo + 8W` of `weighted_sum` over rows `d` long, in W registers.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn sweep<const W: usize>(out: &mut [f32], cols: &[u32], vals: &[f32], x: &[f32], d: usize, lo: usize) {
    let mut acc = [_mm256_setzero_ps(); W];
    for (k, (&c, &a)) in cols.iter().zip(vals).enumerate() {
        if let Some(&ahead) = cols.get(k + AHEAD) {
            super::prefetch(x.as_ptr().wrapping_add(ahead as usize * d + lo).cast(), 32 * W);
        }
        let row = &x[c as usize * d + lo..c as usize * d + lo + 8 * W];
        let a = _mm256_set1_ps(a);
        for (q, acc) in acc.iter_mut().enumerate() {
            // SAFETY: `row` holds 8W floats, so lanes 8q..8q+8 are in bounds.
            let v = unsafe { _mm256_loadu_ps(row.as_ptr().add(8 * q)) };
            *acc = _mm256_fmadd_ps(a, v, *acc);
        }
    }
    for (q, acc) in acc.iter().enumerate() {
        // SAFETY: `out` holds 8W floats, so lanes 8q..8q+8 are in bounds.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * q), *acc) };
    }
}

/// The portable loop, compiled eight lanes wide. Rust does not fuse a·b + c
/// into an FMA on its own, so the results equal the portable ones.
#[target_feature(enable = "avx2,fma")]
fn sgd_pair_avx2(u: &mut [f32], i: &mut [f32], j: &mut [f32], a: f32, b: f32) {
    super::scalar::sgd_pair(u, i, j, a, b)
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

/// Σ over lanes of `step(acc, a_i, b_i)`, finished by `tail` for the last < 8
/// elements. All three kernels below are this loop with a different step.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn reduce(
    a: &[f32],
    b: &[f32],
    step: impl Fn(__m256, __m256, __m256) -> __m256,
    tail: impl Fn(f32, f32) -> f32,
) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let load = |i: usize| {
        debug_assert!(i + 8 <= n);
        // SAFETY: every call below has i + 8 <= n, so 8 lanes exist at i in both
        // slices; loadu has no alignment requirement.
        unsafe { (_mm256_loadu_ps(a.as_ptr().add(i)), _mm256_loadu_ps(b.as_ptr().add(i))) }
    };
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut i = 0;
    while i + 16 <= n {
        let (x0, y0) = load(i);
        let (x1, y1) = load(i + 8);
        acc0 = step(acc0, x0, y0);
        acc1 = step(acc1, x1, y1);
        i += 16;
    }
    if i + 8 <= n {
        let (x0, y0) = load(i);
        acc0 = step(acc0, x0, y0);
        i += 8;
    }
    let mut s = hsum(_mm256_add_ps(acc0, acc1));
    for j in i..n {
        s += tail(a[j], b[j]);
    }
    s
}

#[target_feature(enable = "avx2,fma")]
fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    reduce(a, b, |acc, x, y| _mm256_fmadd_ps(x, y, acc), |x, y| x * y)
}

#[target_feature(enable = "avx2,fma")]
fn l2_squared_avx2(a: &[f32], b: &[f32]) -> f32 {
    reduce(
        a,
        b,
        |acc, x, y| {
            let d = _mm256_sub_ps(x, y);
            _mm256_fmadd_ps(d, d, acc)
        },
        |x, y| (x - y) * (x - y),
    )
}

#[target_feature(enable = "avx2,fma")]
fn l1_avx2(a: &[f32], b: &[f32]) -> f32 {
    // Clearing the sign bit is |x| for IEEE floats.
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    reduce(a, b, |acc, x, y| _mm256_add_ps(acc, _mm256_and_ps(_mm256_sub_ps(x, y), abs_mask)), |x, y| (x - y).abs())
}

#[target_feature(enable = "avx2,fma")]
fn dot_norms_avx2(a: &[f32], b: &[f32]) -> DotNorms {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut d = _mm256_setzero_ps();
    let mut na = _mm256_setzero_ps();
    let mut nb = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, so 8 lanes exist at i in both slices.
        let (x, y) = unsafe { (_mm256_loadu_ps(a.as_ptr().add(i)), _mm256_loadu_ps(b.as_ptr().add(i))) };
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

#[target_feature(enable = "avx2,fma")]
fn quantize_i8_avx2(x: &[f32], codes: &mut [i8]) -> f32 {
    let n = x.len().min(codes.len());
    let (x, codes) = (&x[..n], &mut codes[..n]);
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let mut m = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n: 8 floats exist at i.
        let v = unsafe { _mm256_loadu_ps(x.as_ptr().add(i)) };
        m = _mm256_max_ps(m, _mm256_and_ps(v, abs_mask));
        i += 8;
    }
    let (lo, hi) = (_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m = _mm_max_ps(lo, hi);
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_shuffle_ps::<0b01>(m, m));
    let max = x[i..].iter().fold(_mm_cvtss_f32(m), |a, v| a.max(v.abs()));
    let inv = if max > 0.0 { 127.0 / max } else { 0.0 };
    let vinv = _mm256_set1_ps(inv);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n: 8 floats exist at i, and 8 bytes of `codes`
        // (the store writes exactly 8); both accesses are unaligned ones.
        unsafe {
            // cvtps rounds to nearest even, as `round_ties_even`; |code| <= 127.
            let q = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x.as_ptr().add(i)), vinv));
            let w = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
            _mm_storel_epi64(codes.as_mut_ptr().add(i) as *mut __m128i, _mm_packs_epi16(w, w));
        }
        i += 8;
    }
    for j in i..n {
        codes[j] = (x[j] * inv).round_ties_even() as i8;
    }
    max / 127.0
}

#[target_feature(enable = "avx2,fma")]
fn dot_i8_rows_avx2(codes: &[i8], rows: &[u32], q: &[i8], out: &mut [i32]) {
    let n = q.len();
    let ones = _mm256_set1_epi16(1);
    let load = |s: &[i8], i: usize| {
        debug_assert!(i + 32 <= s.len());
        // SAFETY: every call below has i + 32 <= s.len(); loadu needs no alignment.
        unsafe { _mm256_loadu_si256(s.as_ptr().add(i) as *const __m256i) }
    };
    // 64 codes (the default factors): the query's two halves stay in
    // registers, and four rows share one horizontal reduction.
    let mut done = 0;
    if n == 64 {
        let (x0, x1) = (load(q, 0), load(q, 32));
        let (a0, a1) = (_mm256_abs_epi8(x0), _mm256_abs_epi8(x1));
        let row_dot = |r: u32| {
            let row = &codes[r as usize * 64..r as usize * 64 + 64];
            let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(a0, _mm256_sign_epi8(load(row, 0), x0)), ones);
            let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(a1, _mm256_sign_epi8(load(row, 32), x1)), ones);
            _mm256_add_epi32(p0, p1)
        };
        for (o, r) in out.chunks_exact_mut(4).zip(rows.chunks_exact(4)) {
            let h01 = _mm256_hadd_epi32(row_dot(r[0]), row_dot(r[1]));
            let h23 = _mm256_hadd_epi32(row_dot(r[2]), row_dot(r[3]));
            let h = _mm256_hadd_epi32(h01, h23);
            let s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
            o[0] = _mm_extract_epi32::<0>(s);
            o[1] = _mm_extract_epi32::<1>(s);
            o[2] = _mm_extract_epi32::<2>(s);
            o[3] = _mm_extract_epi32::<3>(s);
            done += 4;
        }
    }
    for (o, &r) in out.iter_mut().zip(rows).skip(done) {
        let row = &codes[r as usize * n..(r as usize + 1) * n];
        let mut acc = _mm256_setzero_si256();
        let mut i = 0;
        while i + 32 <= n {
            let (c, x) = (load(row, i), load(q, i));
            // maddubs multiplies unsigned by signed bytes: |x| times the row's
            // code with x's sign, summed in pairs to i16 (|sum| ≤ 2·127·127
            // fits), then in pairs again to i32.
            let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(x), _mm256_sign_epi8(c, x));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones));
            i += 32;
        }
        let s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256::<1>(acc));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        *o = _mm_cvtsi128_si32(s)
            + row[i..].iter().zip(&q[i..]).map(|(&c, &x)| i32::from(c) * i32::from(x)).sum::<i32>();
    }
}
