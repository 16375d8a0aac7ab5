//! Shared factors for lock-free parallel SGD ("Hogwild!", Recht et al. 2011),
//! as MF trains, and the int8 mirror BPR scores its negative candidates from.
//! Each `Shared` value is an `AtomicU32` holding f32 bits, read and
//! written with relaxed ordering: threads may overwrite each other's updates to
//! the same row now and then, which SGD tolerates, but no access is a data race.
//! A row is copied out, updated as plain floats, and stored back.

use std::sync::atomic::{AtomicU32, Ordering};

use ndarray::Array2;

pub struct Shared {
    cols: usize,
    v: Vec<AtomicU32>,
}

impl Shared {
    pub fn from_array(a: &Array2<f32>) -> Shared {
        Shared { cols: a.ncols(), v: a.iter().map(|x| AtomicU32::new(x.to_bits())).collect() }
    }

    #[inline]
    pub fn load(&self, row: usize, out: &mut [f32]) {
        let base = row * self.cols;
        for (o, a) in out.iter_mut().zip(&self.v[base..base + self.cols]) {
            *o = f32::from_bits(a.load(Ordering::Relaxed));
        }
    }

    #[inline]
    pub fn store(&self, row: usize, vals: &[f32]) {
        let base = row * self.cols;
        for (a, v) in self.v[base..base + self.cols].iter().zip(vals) {
            a.store(v.to_bits(), Ordering::Relaxed);
        }
    }

    pub fn into_array(self, rows: usize) -> Array2<f32> {
        let cols = self.cols;
        let data: Vec<f32> = self.v.into_iter().map(|a| f32::from_bits(a.into_inner())).collect();
        Array2::from_shape_vec((rows, cols), data).unwrap_or_else(|_| Array2::zeros((rows, cols)))
    }
}

/// An int8 copy of factor rows with a per-row scale and a bias, for scoring
/// many rows cheaply: a 64-factor row is one cache line instead of five, and
/// BPR's candidate scoring is bound by random rows. Whoever updates a row
/// writes it through with `set`. Rounding to 1/127 of a row's largest factor moves a
/// score far less than the gaps that decide which candidate is hardest.
pub struct Mirror {
    /// Codes per row: the factors rounded up to a multiple of 32 (one SIMD
    /// step), zero beyond the factors.
    stride: usize,
    factors: usize,
    /// Bytes skipped at the front of `codes` so that rows start on 64-byte lines.
    skip: usize,
    codes: Vec<i8>,
    scale_bias: Vec<(f32, f32)>,
    /// The query's codes and scale, set by `set_query`.
    query: Vec<i8>,
    scale_x: f32,
    dots: Vec<i32>,
}

impl Mirror {
    /// Rows of `factors` values, all zero until `set`.
    pub fn new(rows: usize, factors: usize) -> Mirror {
        let stride = factors.div_ceil(32) * 32;
        let codes = vec![0i8; rows * stride + 63];
        let skip = (64 - codes.as_ptr() as usize % 64) % 64;
        Mirror {
            stride,
            factors,
            skip,
            codes,
            scale_bias: vec![(0.0, 0.0); rows],
            query: vec![0; stride],
            scale_x: 0.0,
            dots: Vec::new(),
        }
    }

    /// Replaces `row` with `factors` (the width given to `new`) and `bias`.
    pub fn set(&mut self, row: usize, factors: &[f32], bias: f32) {
        let at = self.skip + row * self.stride;
        let scale = pgrec_base::kernels::quantize_i8(factors, &mut self.codes[at..at + self.factors]);
        self.scale_bias[row] = (scale, bias);
    }

    /// Makes `x` (the width given to `new`) the query `score` uses.
    pub fn set_query(&mut self, x: &[f32]) {
        self.scale_x = pgrec_base::kernels::quantize_i8(x, &mut self.query[..self.factors]);
    }

    /// `out[k]` ≈ bias + row · x of row `rows[k]`, `x` the last query set.
    pub fn score(&mut self, rows: &[u32], out: &mut [f32]) {
        self.dots.resize(rows.len(), 0);
        let codes = &self.codes[self.skip..self.skip + self.scale_bias.len() * self.stride];
        pgrec_base::kernels::dot_i8_rows(codes, rows, &self.query, &mut self.dots);
        for ((o, &r), &d) in out.iter_mut().zip(rows).zip(&self.dots) {
            let (scale, bias) = self.scale_bias[r as usize];
            *o = bias + scale * self.scale_x * d as f32;
        }
    }

    pub fn rows(&self) -> usize {
        self.scale_bias.len()
    }
}

/// Hints the CPU to start fetching every cache line under `s`, so that the
/// fetches of several rows needed next overlap instead of stalling one after
/// another: the first and the last line directly (most rows span one or
/// two), the rest in a loop.
#[inline]
pub(super) fn prefetch_range<T>(s: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = s.as_ptr() as usize;
        let last = start + std::mem::size_of_val(s).max(1) - 1;
        // SAFETY: a prefetch is a hint with no architectural effect (it cannot
        // fault, whatever the address); SSE is part of the x86_64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(start as *const i8) };
        if last & !63 != start & !63 {
            // SAFETY: as above.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(last as *const i8) };
        }
        let mut line = (start & !63) + 64;
        while line < last & !63 {
            // SAFETY: as above.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line as *const i8) };
            line += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = s;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_scores_match_full_precision() {
        // 12 factors: one 32-code stride, the rest padding.
        let (rows, f) = (5, 12);
        let row = |r: usize| -> Vec<f32> { (0..=f).map(|d| ((r * 7 + d * 3) % 11) as f32 / 5.0 - 1.0).collect() };
        let data: Vec<f32> = (0..rows).flat_map(row).collect();
        let mut m = Mirror::new(rows, f);
        assert_eq!((m.codes.as_ptr() as usize + m.skip) % 64, 0, "rows start on a cache line");
        for (r, v) in data.chunks_exact(f + 1).enumerate() {
            m.set(r, &v[..f], v[f]);
        }
        let x: Vec<f32> = (0..f).map(|d| (d as f32 - 5.5) / 4.0).collect();
        let picks = [4u32, 0, 2, 2];
        let mut out = [0f32; 4];
        m.set_query(&x);
        m.score(&picks, &mut out);
        for (&r, &got) in picks.iter().zip(&out) {
            let v = row(r as usize);
            let exact: f32 = v[f] + v[..f].iter().zip(&x).map(|(a, b)| a * b).sum::<f32>();
            // Each code of the row and of x is off by at most half a step.
            let (mr, mx) = (1.0f32, 5.5 / 4.0);
            let bound = f as f32 * (mr * mx / 254.0 * 2.0 + (mr * mx / 254.0).powi(2));
            assert!((got - exact).abs() <= bound, "row {r}: {got} vs {exact} (bound {bound})");
        }
        assert_eq!(out[2], out[3]);
        // A rewrite replaces the row whole; a zero row scores its bias.
        m.set(2, &[0.0; 12], -3.0);
        m.score(&[2], &mut out[..1]);
        assert_eq!(out[0], -3.0);
    }
}
