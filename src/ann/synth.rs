//! Synthetic vectors shaped like real embeddings, for tests and benchmarks.
//!
//! Uniform random vectors are a poor test of an ANN index (every point is about
//! equally far from every other), so `clustered` draws points around cluster
//! centres that lie near a low-dimensional subspace, plus small isotropic noise:
//! the structure sentence and image embeddings have. Deterministic for a seed.

/// splitmix64: tiny, fast, and good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, n): the high half of a 64 × 64-bit product (Lemire),
    /// a multiply where `% n` is a division; the bias is below n / 2⁶⁴.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Shuffles `v` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for k in (1..v.len()).rev() {
            v.swap(k, (self.next_u64() % (k as u64 + 1)) as usize);
        }
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.uniform().max(f64::MIN_POSITIVE);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

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
