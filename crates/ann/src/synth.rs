//! Synthetic vectors shaped like real embeddings, for tests and benchmarks.
//!
//! Uniform random vectors are a poor test of an ANN index (every point is about
//! equally far from every other), so `clustered` draws points around cluster
//! centres that lie near a low-dimensional subspace, plus small isotropic noise:
//! the structure sentence and image embeddings have. Deterministic for a seed.

use pgrec_base::rng::Rng;

/// `n` vectors of `dim` dimensions (row-major), in `clusters` clusters whose
/// centres lie in a random `rank`-dimensional subspace, with per-point noise of
/// standard deviation `noise` relative to the spread of the centres.
pub fn clustered(n: usize, dim: usize, clusters: usize, rank: usize, noise: f64, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let basis: Vec<f64> = (0..rank * dim).map(|_| rng.normal() / (rank as f64).sqrt()).collect();
    let centres: Vec<Vec<f64>> = (0..clusters)
        .map(|_| {
            let coef: Vec<f64> = (0..rank).map(|_| rng.normal()).collect();
            (0..dim).map(|d| (0..rank).map(|r| coef[r] * basis[r * dim + d]).sum()).collect()
        })
        .collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = &centres[(rng.next_u64() % clusters as u64) as usize];
        // Points also vary within the subspace, so clusters are not tight balls.
        let coef: Vec<f64> = (0..rank).map(|_| rng.normal() * 0.3).collect();
        for d in 0..dim {
            let within: f64 = (0..rank).map(|r| coef[r] * basis[r * dim + d]).sum();
            out.push((c[d] + within + rng.normal() * noise / (dim as f64).sqrt()) as f32);
        }
    }
    out
}

/// The default shape used across tests and benches: 100 clusters near a
/// 32-dimensional subspace, noise 0.1.
pub fn embeddings(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    clustered(n, dim, 100, 32.min(dim), 0.1, seed)
}
