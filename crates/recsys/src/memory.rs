//! What a training will hold in memory at its peak, estimated from its params
//! and the sizes of its data before anything large is allocated, so that a
//! call that would exhaust the server is refused with the figure instead.
//! Estimates err high: every parameter array is counted with its gradient
//! and optimiser state where the algorithm keeps them, and the model is
//! counted twice (trained, and encoded for storage).

use super::{Algorithm, Params};

/// Bytes a training holds per interaction at least: the row as read, the
/// dataset, its train/test splits and the seen matrix.
pub const BYTES_PER_INTERACTION: u64 = 96;

/// Sizes of a training's inputs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Shape {
    pub users: usize,
    pub items: usize,
    pub interactions: usize,
    /// kgat: entities (items included), relation names, triples.
    pub entities: usize,
    pub relations: usize,
    pub triples: usize,
    /// vbpr, content_knn: the content vector's length.
    pub feature_dims: usize,
}

/// Peak bytes of training `algorithm` with `p` on data of `shape`, and the
/// param that drives it most (for the message that refuses it).
pub fn estimate(algorithm: Algorithm, p: &Params, s: &Shape) -> (u64, &'static str) {
    let f = p.factors as u64;
    let (users, items, nnz) = (s.users as u64, s.items as u64, s.interactions as u64);
    let data = nnz * BYTES_PER_INTERACTION;
    // Factors plus the stored copy and scoring buffers.
    let model = (users + items) * f * 4 * 3 + items * 8 * 4;
    let (extra, driver) = match algorithm {
        Algorithm::Popular => (0, "interactions"),
        // Gram matrix and one solve per user and thread: small.
        Algorithm::Als => ((users + items) * f * 4 + 64 * f * f * 4, "factors"),
        // int8 mirrors of the item rows, block copies.
        Algorithm::Bpr | Algorithm::Mf => ((users + items) * f * 4 + items * f, "factors"),
        Algorithm::Vbpr => {
            let d = s.feature_dims as u64;
            let k = p.content_factors as u64;
            // Features, projection with Adam state, per-item content factors.
            (items * d * 4 + d * (k + 1) * 4 * 4 + (users + items) * (f + k) * 4 * 4, "content_factors")
        }
        Algorithm::ContentKnn => ((users + items) * s.feature_dims as u64 * 4 * 2, "item_features"),
        Algorithm::Kgat => {
            let nodes = s.entities as u64 + users;
            let r = 2 * s.relations as u64 + 2;
            let rd = p.relation_dim as u64;
            // Embeddings, relation matrices and vectors: value, gradient and
            // two Adam moments each.
            let params = (nodes * f + r * f * rd + r * rd) * 4 * 4;
            let mut widths = vec![f];
            widths.extend(p.layers.iter().map(|&l| l as u64));
            let weights: u64 = widths.windows(2).map(|w| w[0] * w[1] * 2).sum::<u64>() * 4 * 4;
            // Per-layer activations kept for the backward pass, and their gradients.
            let activations = nodes * widths.iter().sum::<u64>() * 4 * 4;
            // The attention-weighted adjacency (both directions) and its scores.
            let edges = 2 * (nnz + s.triples as u64) * 24;
            // A TransR batch projects its heads and tails into every relation space it touches.
            let batch = p.kg_batch_size as u64 * rd * 4 * 8;
            let driver = if r * f * rd > nodes * f { "relation_dim" } else { "factors" };
            (params + weights + activations + edges + batch, driver)
        }
    };
    (data + model + extra, driver)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kgat_with_wide_relation_spaces_is_estimated_in_gigabytes() {
        let mut p = Params::defaults(Algorithm::Kgat);
        p.factors = 1024;
        p.relation_dim = 1024;
        let s = Shape {
            users: 10,
            items: 10,
            interactions: 50,
            entities: 20,
            relations: 1000,
            triples: 1000,
            ..Shape::default()
        };
        let (bytes, driver) = estimate(Algorithm::Kgat, &p, &s);
        // 2,002 relation matrices of 1024 × 1024 floats, four copies: 33.6 GB.
        assert!(bytes > 33_000_000_000, "{bytes}");
        assert_eq!(driver, "relation_dim");
    }

    #[test]
    fn amazon_book_sized_bpr_fits_in_well_under_a_gigabyte() {
        let p = Params::defaults(Algorithm::Bpr);
        let s = Shape { users: 70_679, items: 24_915, interactions: 847_733, ..Shape::default() };
        let (bytes, driver) = estimate(Algorithm::Bpr, &p, &s);
        assert!(bytes > 100_000_000 && bytes < 1_000_000_000, "{bytes}");
        assert_eq!(driver, "factors");
    }
}
