//! Starting values of the factor models' embeddings, reproducible for a seed.

use ndarray::Array2;

use pgrec_base::rng::Rng;

/// Factors drawn from N(0, scale²), reproducible for a seed.
pub(crate) fn init_factors(rows: usize, cols: usize, seed: u64, scale: f64) -> Array2<f32> {
    let mut rng = Rng::new(seed);
    Array2::from_shape_fn((rows, cols), |_| (rng.normal() * scale) as f32)
}

/// Factors plus one last column, a bias, starting at zero.
pub(crate) fn init_factors_with_bias(rows: usize, factors: usize, seed: u64) -> Array2<f32> {
    let mut a = init_factors(rows, factors + 1, seed, 0.1);
    a.column_mut(factors).fill(0.0);
    a
}
