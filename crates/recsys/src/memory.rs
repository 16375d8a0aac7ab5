//! What a training will hold in memory at its peak, estimated from its params
//! and the sizes of its data before anything large is allocated, so that a
//! call that would exhaust the server is refused with the figure instead.
//! Estimates err high: every parameter array is counted with its gradient
//! and optimiser state where the algorithm keeps them, and the model is
//! counted twice (trained, and encoded for storage).

use super::Params;
use pgrec_base::error::Result;

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

/// A model of `f` factors per user and item: the factors, the stored copy
/// and scoring buffers.
pub fn factor_model(s: &Shape, f: u64) -> u64 {
    (s.users + s.items) as u64 * f * 4 * 3 + s.items as u64 * 8 * 4
}

/// Peak bytes of training `p`'s algorithm on data of `shape` (the data, plus
/// what the algorithm's [`crate::registry::Algo::memory`] says), and the
/// param that drives it most (for the message that refuses it).
pub fn estimate(p: &Params, s: &Shape) -> Result<(u64, &'static str)> {
    let data = s.interactions as u64 * BYTES_PER_INTERACTION;
    let (bytes, driver) = p.algorithm.memory_of(p, s)?;
    Ok((data + bytes, driver))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Algorithm;

    #[test]
    fn kgat_with_wide_relation_spaces_is_estimated_in_gigabytes() {
        let kgat = Algorithm::parse("kgat").unwrap();
        let p = Params::parse(kgat, r#"{"factors": 1024, "relation_dim": 1024}"#).unwrap();
        let s = Shape {
            users: 10,
            items: 10,
            interactions: 50,
            entities: 20,
            relations: 1000,
            triples: 1000,
            ..Shape::default()
        };
        let (bytes, driver) = estimate(&p, &s).unwrap();
        // 2,002 relation matrices of 1024 × 1024 floats, four copies: 33.6 GB.
        assert!(bytes > 33_000_000_000, "{bytes}");
        assert_eq!(driver, "lower \"relation_dim\" in params");
    }

    #[test]
    fn amazon_book_sized_bpr_fits_in_well_under_a_gigabyte() {
        let p = Params::defaults(Algorithm::parse("bpr").unwrap());
        let s = Shape { users: 70_679, items: 24_915, interactions: 847_733, ..Shape::default() };
        let (bytes, driver) = estimate(&p, &s).unwrap();
        assert!(bytes > 100_000_000 && bytes < 1_000_000_000, "{bytes}");
        assert_eq!(driver, "lower \"factors\" in params");
    }
}
