//! Distance kernels over `f32` slices: dot product, squared L2, L1 and the fused
//! dot-and-norms pass used by cosine distance (and, in `activation`, the
//! element-wise activations of transformer inference).
//!
//! Every kernel has a portable version and, where the CPU offers it, a SIMD one
//! (AVX2+FMA on x86-64, NEON on aarch64). The SIMD set is chosen once at run time,
//! so one binary runs well on any machine of its architecture. Callers must pass
//! slices of equal length; checking that (and reporting a friendly error) is the
//! job of the SQL boundary, which knows the user-facing names of the operands.

use std::sync::OnceLock;

pub mod activation;
mod scalar;

#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(target_arch = "aarch64")]
mod neon;

/// Dot product, |a|² and |b|² of one pair, computed in a single pass.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DotNorms {
    pub dot: f32,
    pub norm_a: f32,
    pub norm_b: f32,
}

/// One implementation of every kernel. Tables are `'static`, so a caller may keep
/// a reference for the duration of a scan instead of re-dispatching per call.
#[derive(Debug)]
pub struct Kernels {
    /// Short label for benchmarks and diagnostics (`"avx2+fma"`, `"neon"`, `"portable"`).
    pub name: &'static str,
    pub dot: fn(&[f32], &[f32]) -> f32,
    pub l2_squared: fn(&[f32], &[f32]) -> f32,
    pub l1: fn(&[f32], &[f32]) -> f32,
    pub dot_norms: fn(&[f32], &[f32]) -> DotNorms,
    /// Writes `x` as int8 codes with one scale (returned): x ≈ scale · code.
    pub quantize_i8: fn(&[f32], &mut [i8]) -> f32,
    /// `out[k] = Σ row(rows[k]) · q` over int8 rows and an int8 query.
    pub dot_i8_rows: DotI8Rows,
    /// One SGD step on a (user, positive, negative) triple of rows.
    pub sgd_pair: SgdPair,
    /// `out = Σ vals[k] · row(cols[k])` of a row-major matrix.
    pub weighted_sum: WeightedSum,
}

/// The signature of `weighted_sum`: the output row, the rows' indices, their
/// weights, the row-major matrix whose rows are `out.len()` long.
pub type WeightedSum = fn(&mut [f32], &[u32], &[f32], &[f32]);

/// The signature of `dot_i8_rows`: the row-major codes, the rows to score,
/// the query's codes, the integer dots.
pub type DotI8Rows = fn(&[i8], &[u32], &[i8], &mut [i32]);

/// The signature of `sgd_pair`: the three rows, then a and b.
pub type SgdPair = fn(&mut [f32], &mut [f32], &mut [f32], f32, f32);

/// The portable kernels; the reference every SIMD set is tested against.
pub fn portable() -> &'static Kernels {
    &scalar::KERNELS
}

/// The fastest kernels this CPU supports, detected on first use. Inlined:
/// every kernel call from the other crates (training loops, graph search)
/// goes through it, and across a crate boundary only `#[inline]` functions
/// inline without LTO.
#[inline]
pub fn best() -> &'static Kernels {
    static BEST: OnceLock<&'static Kernels> = OnceLock::new();
    BEST.get_or_init(detect)
}

fn detect() -> &'static Kernels {
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(k) = x86::kernels() {
            return k;
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if let Some(k) = neon::kernels() {
            return k;
        }
    }
    portable()
}

/// Σ aᵢbᵢ.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    (best().dot)(a, b)
}

/// Σ (aᵢ − bᵢ)².
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    (best().l2_squared)(a, b)
}

/// Σ |aᵢ − bᵢ|.
#[inline]
pub fn l1(a: &[f32], b: &[f32]) -> f32 {
    (best().l1)(a, b)
}

/// Symmetric int8 quantization of `x` into `codes` (equal lengths): returns
/// the scale max|x|/127, and each code is x/scale rounded to nearest (0 for a
/// zero vector), so codes never reach −128 and the product of two scales times
/// the integer dot of two code vectors approximates the dot of the floats.
#[inline]
pub fn quantize_i8(x: &[f32], codes: &mut [i8]) -> f32 {
    (best().quantize_i8)(x, codes)
}

/// Integer dots of many int8 rows with one int8 query `q`: row r is
/// `codes[r · q.len()..(r + 1) · q.len()]`, and `out[k]` gets row `rows[k]`'s
/// Σ code · q (`out` as long as `rows`). Codes must lie in −127..=127, as
/// `quantize_i8` writes them (the SIMD form multiplies |q| by q's sign moved
/// onto the row, which −128 would overflow).
#[inline]
pub fn dot_i8_rows(codes: &[i8], rows: &[u32], q: &[i8], out: &mut [i32]) {
    (best().dot_i8_rows)(codes, rows, q, out)
}

/// One SGD step of a pairwise ranking loss on rows `u`, `i`, `j` (equal
/// lengths), all from their old values: u ← a·u + b·(i − j), i ← a·i + b·u,
/// j ← a·j − b·u. For BPR, a = 1 − lr·reg (weight decay) and b = lr·σ(−x).
/// Every set computes the same expressions in the same order, so results are
/// identical across sets.
#[inline]
pub fn sgd_pair(u: &mut [f32], i: &mut [f32], j: &mut [f32], a: f32, b: f32) {
    (best().sgd_pair)(u, i, j, a, b)
}

/// `out = Σₖ vals[k] · x[cols[k]]`, where row r of the row-major `x` is
/// `x[r·d..(r+1)·d]` for d = `out.len()`: one row of a sparse × dense product
/// (graph propagation). `cols` and `vals` have equal lengths and every row
/// lies within `x` (a row outside it panics). The SIMD sets keep `out` in
/// registers across the rows and may fuse multiply and add, so they agree
/// with the portable loop to rounding, not bit for bit.
#[inline]
pub fn weighted_sum(out: &mut [f32], cols: &[u32], vals: &[f32], x: &[f32]) {
    (best().weighted_sum)(out, cols, vals, x)
}

/// Asks the CPU to start loading the cache lines of `len` bytes at `ptr`,
/// so that several rows' memory latencies overlap instead of following one
/// another (the HNSW search knows the next few rows it will compare before it
/// compares the first). A hint only: any address is allowed, nothing is read
/// and no fault can follow; a no-op where there is no stable prefetch
/// instruction.
#[inline]
pub fn prefetch(ptr: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let mut off = 0;
        while off < len {
            // wrapping_add: the address is never dereferenced, so it need not
            // stay inside an allocation.
            let p = ptr.wrapping_add(off).cast::<i8>();
            // SAFETY: a prefetch is a hint that never faults nor reads into
            // the program; SSE is part of the x86-64 baseline.
            unsafe { _mm_prefetch(p, _MM_HINT_T0) };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ptr, len);
    }
}

/// Σ aᵢ², via the dot kernel so it shares its SIMD path.
#[inline]
pub fn norm_squared(a: &[f32]) -> f32 {
    (best().dot)(a, a)
}

/// Euclidean distance.
#[inline]
pub fn l2_distance(a: &[f32], b: &[f32]) -> f64 {
    f64::from(l2_squared(a, b)).sqrt()
}

/// 1 − cos(a, b), clamped to [0, 2] against rounding. Like pgvector, a zero vector
/// has no direction, so its distance to anything is NaN rather than an error:
/// one bad row must not abort a whole `ORDER BY`.
#[inline]
pub fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    let r = (best().dot_norms)(a, b);
    let denom = (f64::from(r.norm_a) * f64::from(r.norm_b)).sqrt();
    let sim = f64::from(r.dot) / denom;
    if sim.is_nan() {
        return f64::NAN;
    }
    1.0 - sim.clamp(-1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1). Self-contained (not `ann::synth`) so that
    /// `scripts/check-neon.sh` can build this module alone for aarch64.
    fn series(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn naive(a: &[f32], b: &[f32]) -> (f64, f64, f64, f64, f64) {
        let mut dot = 0.0;
        let mut l2 = 0.0;
        let mut l1 = 0.0;
        let mut na = 0.0;
        let mut nb = 0.0;
        for (&x, &y) in a.iter().zip(b) {
            let (x, y) = (f64::from(x), f64::from(y));
            dot += x * y;
            l2 += (x - y) * (x - y);
            l1 += (x - y).abs();
            na += x * x;
            nb += y * y;
        }
        (dot, l2, l1, na, nb)
    }

    fn close(got: f32, want: f64, scale: f64) -> bool {
        // f32 accumulation over n terms: error grows with the sum of magnitudes.
        (f64::from(got) - want).abs() <= 1e-5 * scale.max(1.0)
    }

    fn check(k: &Kernels) {
        let lens = [0usize, 1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 128, 384, 768, 1536, 16000];
        for (i, &n) in lens.iter().enumerate() {
            let a = series(i as u64 * 2 + 1, n);
            let b = series(i as u64 * 2 + 2, n);
            let (dot, l2, l1, na, nb) = naive(&a, &b);
            let scale = n as f64;
            assert!(close((k.dot)(&a, &b), dot, scale), "{} dot n={n}", k.name);
            assert!(close((k.l2_squared)(&a, &b), l2, scale), "{} l2 n={n}", k.name);
            assert!(close((k.l1)(&a, &b), l1, scale), "{} l1 n={n}", k.name);
            let r = (k.dot_norms)(&a, &b);
            assert!(close(r.dot, dot, scale), "{} dot_norms.dot n={n}", k.name);
            assert!(close(r.norm_a, na, scale), "{} dot_norms.a n={n}", k.name);
            assert!(close(r.norm_b, nb, scale), "{} dot_norms.b n={n}", k.name);
            let mut codes = vec![0i8; n];
            let s = (k.quantize_i8)(&b, &mut codes);
            // Three rows: the codes of a, of b, and of a reversed, against b's.
            let mut qa = vec![0i8; n];
            (k.quantize_i8)(&a, &mut qa);
            let rev: Vec<i8> = qa.iter().rev().copied().collect();
            let rows: Vec<i8> = qa.iter().chain(&codes).chain(&rev).copied().collect();
            let mut out = [0i32; 4];
            (k.dot_i8_rows)(&rows, &[2, 0, 1, 2], &codes, &mut out);
            let idot = |r: &[i8]| r.iter().zip(&codes).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum::<i32>();
            assert_eq!(out, [idot(&rev), idot(&qa), idot(&codes), idot(&rev)], "{} dot_i8_rows n={n}", k.name);
            let (mut u, mut pi, mut nj) = (a.clone(), b.clone(), series(i as u64 + 99, n));
            let (mut u0, mut pi0, mut nj0) = (u.clone(), pi.clone(), nj.clone());
            (k.sgd_pair)(&mut u, &mut pi, &mut nj, 0.99, 0.05);
            (portable().sgd_pair)(&mut u0, &mut pi0, &mut nj0, 0.99, 0.05);
            assert_eq!((&u, &pi, &nj), (&u0, &pi0, &nj0), "{} sgd_pair n={n}", k.name);
            for (c, v) in codes.iter().zip(&b) {
                // Ties may round either way between the sets; nothing else differs.
                assert!((f32::from(*c) - v / s).abs() <= 0.5 + 1e-4, "{} quantize_i8 n={n}: {c} for {v}", k.name);
            }
        }
    }

    #[test]
    fn portable_matches_f64_reference() {
        check(portable());
    }

    #[test]
    fn detected_matches_f64_reference() {
        check(best());
    }

    #[test]
    fn simd_is_used_where_the_cpu_has_it() {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            assert_eq!(best().name, "avx2+fma");
        }
        #[cfg(target_arch = "aarch64")]
        assert_eq!(best().name, "neon");
    }

    #[test]
    fn exact_on_small_integers() {
        let a = [1.0, 2.0, 3.0];
        let b = [4.0, -5.0, 6.0];
        assert_eq!(dot(&a, &b), 12.0);
        assert_eq!(l2_squared(&a, &b), 9.0 + 49.0 + 9.0);
        assert_eq!(l1(&a, &b), 3.0 + 7.0 + 3.0);
        assert_eq!(norm_squared(&a), 14.0);
        let mut codes = [9i8; 12];
        let x = [2.54, -1.26, 0.0, 0.022, -2.54, 0.5, 0.6, 0.7, 1.0, 1.1, 1.2, -0.02];
        assert_eq!(quantize_i8(&x, &mut codes), 0.02);
        assert_eq!(codes, [127, -63, 0, 1, -127, 25, 30, 35, 50, 55, 60, -1]);
        assert_eq!(quantize_i8(&[0.0; 9], &mut codes[..9]), 0.0);
        let rows = [1, 2, 3, 4, -1, -2, -3, -4, 127, -127, 0, 5];
        for k in [portable(), best()] {
            let mut out = [0; 3];
            (k.dot_i8_rows)(&rows, &[1, 0, 2], &[1, -1, 2, 0], &mut out);
            assert_eq!(out, [-1 + 2 - 6, 1 - 2 + 6, 127 + 127], "{}", k.name);
        }
    }

    #[test]
    fn sgd_pair_uses_the_old_values() {
        for k in [portable(), best()] {
            let (mut u, mut i, mut j) = ([1.0, -2.0, 0.5], [3.0, 0.0, -1.0], [-1.0, 4.0, 2.0]);
            (k.sgd_pair)(&mut u, &mut i, &mut j, 0.5, 2.0);
            assert_eq!(u, [0.5 + 2.0 * 4.0, -1.0 + 2.0 * -4.0, 0.25 + 2.0 * -3.0], "{}", k.name);
            assert_eq!(i, [1.5 + 2.0, 0.0 - 4.0, -0.5 + 1.0], "{}", k.name);
            assert_eq!(j, [-0.5 - 2.0, 2.0 + 4.0, 1.0 - 1.0], "{}", k.name);
        }
    }

    #[test]
    fn weighted_sum_matches_f64_reference() {
        let mut rng = crate::rng::Rng::new(7);
        // Widths through every path (32 at a time, 8 at a time, one by one),
        // and a short and a long row list (the SIMD set prefetches rows some
        // edges ahead).
        let long: Vec<u32> = (0..40).map(|_| rng.below(6) as u32).collect();
        let long_vals: Vec<f32> = (0..40).map(|_| rng.normal() as f32).collect();
        for d in [1, 7, 8, 16, 32, 45, 64, 100] {
            let x: Vec<f32> = (0..6 * d).map(|_| rng.normal() as f32).collect();
            for (cols, vals) in [(&[4u32, 0, 4, 5][..], &[0.5f32, -1.25, 2.0, 0.125][..]), (&long[..], &long_vals[..])]
            {
                for k in [portable(), best()] {
                    let mut out = vec![9.0; d];
                    (k.weighted_sum)(&mut out, cols, vals, &x);
                    for (t, &o) in out.iter().enumerate() {
                        let want: f64 =
                            cols.iter().zip(vals).map(|(&c, &a)| f64::from(a) * f64::from(x[c as usize * d + t])).sum();
                        assert!((f64::from(o) - want).abs() < 1e-4, "{} d {d} lane {t}: {o} vs {want}", k.name);
                    }
                }
            }
            for k in [portable(), best()] {
                let mut out = vec![9.0; d];
                (k.weighted_sum)(&mut out, &[], &[], &x);
                assert!(out.iter().all(|&o| o == 0.0), "{}: no rows is zero", k.name);
            }
        }
    }

    #[test]
    fn cosine_edges() {
        assert_eq!(cosine_distance(&[1.0, 0.0], &[2.0, 0.0]), 0.0);
        assert_eq!(cosine_distance(&[1.0, 0.0], &[0.0, 3.0]), 1.0);
        assert_eq!(cosine_distance(&[1.0, 1.0], &[-1.0, -1.0]), 2.0);
        assert!(cosine_distance(&[0.0, 0.0], &[1.0, 1.0]).is_nan());
    }
}
