//! The HNSW search, written once over the [`Graph`] trait so the in-memory graph
//! (used while building) and the index pages (used by scans) share it.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// A node with its distance to the query; ordered by distance, then node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scored<N> {
    pub dist: f32,
    pub node: N,
}

impl<N: Ord> Eq for Scored<N> {}

impl<N: Ord> PartialOrd for Scored<N> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<N: Ord> Ord for Scored<N> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.dist.total_cmp(&other.dist).then_with(|| self.node.cmp(&other.node))
    }
}

/// Set of nodes already looked at during one search.
pub trait Visited<N> {
    /// True if `n` was not in the set (and is now).
    fn insert(&mut self, n: N) -> bool;
}

/// A set of node ids with a fast fixed hasher (foldhash's): the ids are the
/// graph's own, never chosen by a caller, so the default SipHash's defence
/// against chosen keys buys nothing, and hashing was 2–3% of an index scan.
pub type NodeSet<N> = std::collections::HashSet<N, foldhash::fast::FixedState>;

/// A new, empty [`NodeSet`] with room for `capacity` ids.
pub fn node_set<N>(capacity: usize) -> NodeSet<N> {
    NodeSet::with_capacity_and_hasher(capacity, foldhash::fast::FixedState::default())
}

/// A hash set serves graphs whose node ids are too sparse for a bitmap (the
/// index pages' block and line numbers).
impl<N: Eq + std::hash::Hash, S: std::hash::BuildHasher> Visited<N> for std::collections::HashSet<N, S> {
    #[inline]
    fn insert(&mut self, n: N) -> bool {
        std::collections::HashSet::insert(self, n)
    }
}

/// Read access to an HNSW graph.
pub trait Graph {
    type Node: Copy + Ord;
    type Visited: Visited<Self::Node>;

    /// A fresh, empty visited set for one search.
    fn visited(&self) -> Self::Visited;
    /// The top-level entry node and its level, or `None` for an empty graph.
    fn entry(&self) -> Option<(Self::Node, usize)>;
    /// Distance from a prepared query vector to `node`.
    fn distance(&self, query: &[f32], node: Self::Node) -> f32;
    /// Distances from `query` to each of `nodes`, in order, appended to
    /// `out`. The search asks for a whole neighbour list at once so that a
    /// graph can start fetching every row before it compares the first.
    fn distances(&self, query: &[f32], nodes: &[Self::Node], out: &mut Vec<f32>) {
        out.extend(nodes.iter().map(|&n| self.distance(query, n)));
    }
    /// Appends the neighbours of `node` at `level` to `out`.
    fn neighbors(&self, node: Self::Node, level: usize, out: &mut Vec<Self::Node>);
    /// Hints that [`neighbors`](Self::neighbors) of `node` will be asked
    /// for soon: the search names the next candidate while it measures the
    /// current one's neighbours, so a graph can start loading that list.
    fn prefetch_neighbors(&self, _node: Self::Node, _level: usize) {}
}

/// Best-first search of one layer from `entry`, keeping the `ef` closest nodes.
/// Returns them nearest first.
pub fn search_layer<G: Graph>(
    g: &G,
    query: &[f32],
    entry: &[Scored<G::Node>],
    ef: usize,
    level: usize,
    visited: &mut G::Visited,
) -> Vec<Scored<G::Node>> {
    let ef = ef.max(1);
    let mut candidates: BinaryHeap<Reverse<Scored<G::Node>>> = BinaryHeap::with_capacity(ef * 4);
    let mut results: BinaryHeap<Scored<G::Node>> = BinaryHeap::with_capacity(ef + 1);
    for &e in entry {
        if visited.insert(e.node) {
            candidates.push(Reverse(e));
            results.push(e);
            if results.len() > ef {
                results.pop();
            }
        }
    }
    let (mut nbrs, mut fresh, mut dists) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(Reverse(c)) = candidates.pop() {
        if results.len() >= ef && results.peek().is_some_and(|w| c.dist > w.dist) {
            break;
        }
        nbrs.clear();
        g.neighbors(c.node, level, &mut nbrs);
        if let Some(Reverse(next)) = candidates.peek() {
            g.prefetch_neighbors(next.node, level);
        }
        fresh.clear();
        fresh.extend(nbrs.iter().copied().filter(|&n| visited.insert(n)));
        dists.clear();
        g.distances(query, &fresh, &mut dists);
        for (&n, &d) in fresh.iter().zip(&dists) {
            if results.len() < ef || results.peek().is_some_and(|w| d < w.dist) {
                let s = Scored { dist: d, node: n };
                candidates.push(Reverse(s));
                results.push(s);
                if results.len() > ef {
                    results.pop();
                }
            }
        }
    }
    results.into_sorted_vec()
}

/// How many candidates the descent through the upper layers keeps, at query
/// time and while inserting (above the new node's own levels). The HNSW paper
/// descends greedily (1), as pgvector and hnswlib do; on clustered data that
/// greedy walk stops in the wrong cluster for 1–2% of queries, which layer 0
/// then cannot leave at any ordinary ef_search. On 50,000 × 128 `synth`
/// vectors (100 clusters) and 1,000 queries at ef_search 40: with 1, 15 to 19
/// queries found none of their true top 10 (pgvector 0.8.6 on the same rows:
/// 13) and recall@10 was 0.976–0.980; with 4, at most 1 and 0.9986–0.9996;
/// with 8, none and 0.9994–0.9996 (measured in memory, parallel
/// builds; `cargo bench --bench hnsw`). On a tangled curve beside a blob (the crash test's data) 8 also
/// beats 4 (queries finding none at ef 40, of 462: 34 with 1, 13–18 with 4,
/// 11–14 with 8). Upper layers hold one node in m, so the wider descent costs
/// a few dozen distances per query and per insert.
pub const UPPER_EF: usize = 8;

/// The `ef` nearest nodes to `query` found by HNSW search (a narrow beam,
/// [`UPPER_EF`], down through the upper layers, then a best-first search of
/// layer 0), nearest first.
pub fn search<G: Graph>(g: &G, query: &[f32], ef: usize) -> Vec<Scored<G::Node>> {
    search_with(g, query, ef, UPPER_EF)
}

/// [`search`] with another width for the upper layers (1 is the paper's greedy
/// descent), for benchmarks that compare the two.
pub fn search_with<G: Graph>(g: &G, query: &[f32], ef: usize, upper_ef: usize) -> Vec<Scored<G::Node>> {
    let Some((entry, top)) = g.entry() else {
        return Vec::new();
    };
    let mut visited = g.visited();
    let mut cur = vec![Scored { dist: g.distance(query, entry), node: entry }];
    for level in (1..=top).rev() {
        cur = search_layer(g, query, &cur, upper_ef, level, &mut visited);
        // Upper layers are revisited from a fresh set: a node seen on one layer
        // must still be expandable on the next.
        visited = g.visited();
    }
    search_layer(g, query, &cur, ef, 0, &mut visited)
}
