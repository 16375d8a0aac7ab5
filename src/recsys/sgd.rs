//! Shared factors for lock-free parallel SGD ("Hogwild!", Recht et al. 2011),
//! as BPR and MF train. Each value is an `AtomicU32` holding f32 bits, read and
//! written with relaxed ordering: threads may overwrite each other's updates to
//! the same row now and then, which SGD tolerates, but no access is a data race.
//! A row is copied out, updated as plain floats, and stored back.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

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

    /// Hints the CPU to start fetching `row` into cache, so that the fetches of
    /// several rows needed next overlap instead of stalling one after another.
    #[inline]
    pub fn prefetch(&self, row: usize) {
        prefetch_range(&self.v[row * self.cols..(row + 1) * self.cols]);
    }

    pub fn into_array(self, rows: usize) -> Array2<f32> {
        let cols = self.cols;
        let data: Vec<f32> = self.v.into_iter().map(|a| f32::from_bits(a.into_inner())).collect();
        Array2::from_shape_vec((rows, cols), data).unwrap_or_else(|_| Array2::zeros((rows, cols)))
    }
}

/// An int8 copy of factor rows with a per-row scale and a bias, for scoring
/// many rows cheaply: a 64-factor row is one cache line instead of four, and
/// BPR's candidate scoring is bound by fetching random rows. Codes live eight
/// to an `AtomicU64`, and scale and bias share one, so a row is read in a few
/// plain loads and a writer never tears a scale from its bias. Rounding to
/// 1/127 of the row's largest factor moves a score by far less than the gaps
/// that decide which candidate is hardest.
pub struct Quantized {
    words: usize,
    /// Words skipped at the front of `codes` so that rows start on 64-byte
    /// lines (a 64-factor row is then exactly one line).
    skip: usize,
    codes: Vec<AtomicU64>,
    scale_bias: Vec<AtomicU64>,
}

impl Quantized {
    /// Rows of `factors` values, all zero until `set`.
    pub fn new(rows: usize, factors: usize) -> Quantized {
        let words = factors.div_ceil(8);
        let codes: Vec<AtomicU64> = (0..rows * words + 7).map(|_| AtomicU64::new(0)).collect();
        let skip = (64 - codes.as_ptr() as usize % 64) % 64 / 8;
        Quantized { words, skip, codes, scale_bias: (0..rows).map(|_| AtomicU64::new(0)).collect() }
    }

    /// Replaces `row` with `factors` (at most the width given to `new`) and
    /// `bias`; `buf` is scratch of at least `padded()` codes.
    pub fn set(&self, row: usize, factors: &[f32], bias: f32, buf: &mut [i8]) {
        let codes = &mut buf[..self.words * 8];
        codes.fill(0);
        let scale = crate::kernels::quantize_i8(factors, &mut codes[..factors.len()]);
        for (w, c) in codes.chunks_exact(8).enumerate() {
            let word = u64::from_le_bytes(std::array::from_fn(|k| c[k] as u8));
            self.codes[self.skip + row * self.words + w].store(word, Ordering::Relaxed);
        }
        let packed = u64::from(scale.to_bits()) | u64::from(bias.to_bits()) << 32;
        self.scale_bias[row].store(packed, Ordering::Relaxed);
    }

    /// `out[k]` = bias + row · x of row `rows[k]`; `x` is zero-padded to 8 × words.
    #[inline]
    pub fn score(&self, rows: &[u32], x: &[f32], out: &mut [f32]) {
        crate::kernels::dot_i8_rows(&self.codes[self.skip..], rows, x, out);
        for (o, &r) in out.iter_mut().zip(rows) {
            let packed = self.scale_bias[r as usize].load(Ordering::Relaxed);
            let (scale, bias) = (f32::from_bits(packed as u32), f32::from_bits((packed >> 32) as u32));
            *o = bias + scale * *o;
        }
    }

    /// The width `score` wants of `x`: the factors rounded up to a multiple of 8.
    pub fn padded(&self) -> usize {
        self.words * 8
    }

    /// Starts fetching `row`'s codes, as `Shared::prefetch` does.
    #[inline]
    pub fn prefetch(&self, row: usize) {
        let base = self.skip + row * self.words;
        prefetch_range(&self.codes[base..base + self.words]);
        prefetch_range(std::slice::from_ref(&self.scale_bias[row]));
    }
}

/// A prefetch of every cache line under `s`: the first and the last line
/// directly (most rows span one or two), the rest in a loop.
#[inline]
fn prefetch_range<T>(s: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let start = s.as_ptr() as usize;
        let last = start + std::mem::size_of_val(s).max(1) - 1;
        // SAFETY: a prefetch is a hint with no architectural effect (it cannot
        // fault, whatever the address); SSE is part of the x86_64 baseline.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(start as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(last as *const i8);
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
    fn quantized_scores_match_full_precision() {
        // 12 factors: two words, the second half padding.
        let (rows, f) = (5, 12);
        let q = Quantized::new(rows, f);
        assert_eq!(q.padded(), 16);
        assert_eq!((q.codes.as_ptr() as usize + 8 * q.skip) % 64, 0, "rows start on a cache line");
        let mut buf = vec![0i8; q.padded()];
        let row = |r: usize| -> Vec<f32> { (0..f).map(|d| ((r * 7 + d * 3) % 11) as f32 / 5.0 - 1.0).collect() };
        for r in 0..rows {
            q.set(r, &row(r), r as f32 * 0.5, &mut buf);
        }
        let mut x: Vec<f32> = (0..f).map(|d| (d as f32 - 5.5) / 4.0).collect();
        x.resize(q.padded(), 0.0);
        let picks = [4u32, 0, 2, 2];
        let mut out = [0f32; 4];
        q.score(&picks, &x, &mut out);
        for (&r, &got) in picks.iter().zip(&out) {
            let exact: f32 = r as f32 * 0.5 + row(r as usize).iter().zip(&x).map(|(a, b)| a * b).sum::<f32>();
            // Each code is off by at most half a step (max|row| / 254).
            let bound = x.iter().map(|v| v.abs()).sum::<f32>() / 254.0;
            assert!((got - exact).abs() <= bound, "row {r}: {got} vs {exact}");
        }
        // A rewrite replaces the row whole; a zero row scores its bias.
        q.set(2, &[0.0; 12], -3.0, &mut buf);
        q.score(&[2], &x, &mut out[..1]);
        assert_eq!(out[0], -3.0);
    }
}
