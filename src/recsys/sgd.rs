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

    pub fn into_array(self, rows: usize) -> Array2<f32> {
        let cols = self.cols;
        let data: Vec<f32> = self.v.into_iter().map(|a| f32::from_bits(a.into_inner())).collect();
        Array2::from_shape_vec((rows, cols), data).unwrap_or_else(|_| Array2::zeros((rows, cols)))
    }
}
