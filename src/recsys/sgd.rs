//! Shared factors for lock-free parallel SGD ("Hogwild!", Recht et al. 2011),
//! as BPR and MF train. Each value is an `AtomicU32` holding f32 bits, read and
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

    /// `x · row[..x.len()]` read in place, without copying the row out first;
    /// eight running sums, as the SIMD kernels keep, so the adds overlap.
    #[inline]
    pub fn dot(&self, row: usize, x: &[f32]) -> f32 {
        let base = row * self.cols;
        let r = &self.v[base..base + x.len()];
        let mut acc = [0f32; 8];
        let mut chunks = x.chunks_exact(8).zip(r.chunks_exact(8));
        for (xs, rs) in &mut chunks {
            for k in 0..8 {
                acc[k] += xs[k] * f32::from_bits(rs[k].load(Ordering::Relaxed));
            }
        }
        let tail = x.len() / 8 * 8;
        let mut sum: f32 = acc.iter().sum();
        for k in tail..x.len() {
            sum += x[k] * f32::from_bits(r[k].load(Ordering::Relaxed));
        }
        sum
    }

    /// Column `col` of `row`.
    #[inline]
    pub fn get(&self, row: usize, col: usize) -> f32 {
        f32::from_bits(self.v[row * self.cols + col].load(Ordering::Relaxed))
    }

    /// Hints the CPU to start fetching `row` into cache, so that the fetches of
    /// several rows needed next overlap instead of stalling one after another.
    #[inline]
    pub fn prefetch(&self, row: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            let base = row * self.cols;
            for k in (0..self.cols).step_by(16) {
                let p = self.v[base + k..].as_ptr() as *const i8;
                // SAFETY: a prefetch is a hint with no architectural effect;
                // `p` points into `self.v` (the slice index checked bounds) and
                // SSE is part of the x86_64 baseline.
                unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = row;
    }

    pub fn into_array(self, rows: usize) -> Array2<f32> {
        let cols = self.cols;
        let data: Vec<f32> = self.v.into_iter().map(|a| f32::from_bits(a.into_inner())).collect();
        Array2::from_shape_vec((rows, cols), data).unwrap_or_else(|_| Array2::zeros((rows, cols)))
    }
}
