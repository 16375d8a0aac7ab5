//! Approximate nearest-neighbour search: the HNSW graph (Malkov & Yashunin,
//! 2016) independent of Postgres.
//!
//! - [`Metric`] says how vectors are prepared for the graph and compared.
//! - [`search`] runs the HNSW search over any [`Graph`]: the in-memory graph built
//!   here, or the page-resident one the index access method reads.
//! - [`Hnsw`] is the in-memory graph, built in parallel with rayon.
//! - [`BuildParams`] and [`select_neighbors`] (`heuristic.rs`): the graph's shape
//!   and the neighbour heuristic every graph uses.
//! - [`link_new_node`] and [`repair_after_delete`] update any [`GraphMut`] one
//!   change at a time: index inserts and VACUUM.
//! - [`Stream`] turns repeated, widening searches into the endless nearest-first
//!   stream an index scan under a `WHERE` filter needs.
//! - [`synth`] makes embedding-shaped test data.

mod heuristic;
mod hnsw;
mod huge;
mod search;
mod stream;
pub mod synth;
mod update;

pub use heuristic::{BuildParams, repair, select_neighbors};
pub use hnsw::{Bitmap, Hnsw, LINK_BYTES};
pub use search::{Graph, NodeSet, Scored, UPPER_EF, Visited, node_set, search, search_layer, search_with};
pub use stream::Stream;
pub use update::{GraphMut, link_new_node, link_unreachable, repair_after_delete};

use pgrec_base::kernels::{self, Kernels};

/// The distance an index is built for; one per operator class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// `<->`; the graph compares squared distances, which order the same.
    L2,
    /// `<=>`; vectors are stored unit-length, so the distance is 1 − dot.
    Cosine,
    /// `<#>`; the distance is −dot.
    InnerProduct,
}

impl Metric {
    /// The vector as the graph stores it, or `None` if it cannot be indexed: a
    /// zero vector has no direction, so its cosine distance to anything is NaN.
    pub fn prepare(self, v: &[f32]) -> Option<Vec<f32>> {
        match self {
            Metric::Cosine => {
                let n = f64::from(kernels::norm_squared(v)).sqrt();
                if n == 0.0 || !n.is_finite() {
                    return None;
                }
                Some(v.iter().map(|&x| (f64::from(x) / n) as f32).collect())
            }
            Metric::L2 | Metric::InnerProduct => Some(v.to_vec()),
        }
    }

    /// Distance between two prepared vectors, smaller is closer.
    #[inline]
    pub fn distance(self, k: &Kernels, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::L2 => (k.l2_squared)(a, b),
            Metric::Cosine => 1.0 - (k.dot)(a, b),
            Metric::InnerProduct => -(k.dot)(a, b),
        }
    }

    /// The graph's distance as the SQL operator reports it.
    pub fn to_operator_value(self, d: f32) -> f64 {
        match self {
            Metric::L2 => f64::from(d.max(0.0)).sqrt(),
            Metric::Cosine | Metric::InnerProduct => f64::from(d),
        }
    }
}
