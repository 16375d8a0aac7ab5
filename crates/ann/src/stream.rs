//! An index scan's stream of neighbours, nearest first, that never runs dry
//! early: when the `ef` best are used up (a `WHERE` filter rejected them, or
//! LIMIT is larger than ef), it searches again with twice the ef and hands out
//! only nodes it has not handed out before, until the graph has nothing new or
//! `max_results` nodes have been produced.
//!
//! Rows of a later round may be nearer than some of an earlier one; the scan is
//! approximate in order as in count, which is what ef_search trades away.

use std::collections::VecDeque;
use std::hash::Hash;

use super::search::{Graph, NodeSet, Scored, node_set, search};

pub struct Stream<N> {
    ef: usize,
    max_results: usize,
    produced: usize,
    returned: NodeSet<N>,
    pending: VecDeque<Scored<N>>,
    /// No further round can find anything new.
    exhausted: bool,
}

impl<N: Copy + Ord + Hash> Stream<N> {
    /// A stream whose first search keeps `ef` candidates.
    pub fn new(ef: usize, max_results: usize) -> Self {
        Stream {
            ef: ef.max(1),
            max_results,
            produced: 0,
            returned: node_set(0),
            pending: VecDeque::new(),
            exhausted: false,
        }
    }

    /// The next node not produced before, or `None` when done.
    pub fn next<G: Graph<Node = N>>(&mut self, g: &G, query: &[f32]) -> Option<Scored<N>> {
        while self.produced < self.max_results {
            if let Some(s) = self.pending.pop_front() {
                if self.returned.insert(s.node) {
                    self.produced += 1;
                    return Some(s);
                }
                continue;
            }
            if self.exhausted {
                return None;
            }
            let found = search(g, query, self.ef);
            // Fewer than ef found means the search saw every node it can reach;
            // an ef already past max_results cannot usefully grow.
            self.exhausted = found.len() < self.ef || self.ef >= self.max_results;
            self.pending = found.into_iter().filter(|s| !self.returned.contains(&s.node)).collect();
            self.ef = self.ef.saturating_mul(2).min(self.max_results.max(self.ef));
        }
        None
    }

    /// Nodes produced so far.
    pub fn produced(&self) -> usize {
        self.produced
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BuildParams, Hnsw, Metric, synth};
    use std::collections::HashSet;

    fn graph(n: usize, dim: usize) -> (Hnsw, Vec<f32>) {
        let data = synth::embeddings(n, dim, 21);
        let g = Hnsw::build(Metric::L2, BuildParams::default(), dim, data.clone(), 2, |_| Ok(())).unwrap();
        (g, data)
    }

    #[test]
    fn streams_past_ef_without_repeats_until_the_graph_is_exhausted() {
        let (g, data) = graph(500, 16);
        let q = &data[..16];
        let mut s = Stream::new(10, usize::MAX);
        let mut seen = HashSet::new();
        while let Some(x) = s.next(&g, q) {
            assert!(seen.insert(x.node), "node {} produced twice", x.node);
        }
        assert_eq!(seen.len(), 500, "every node of a connected graph is produced");
    }

    #[test]
    fn first_round_is_the_plain_search_and_the_cap_holds() {
        let (g, data) = graph(2000, 16);
        let q = &data[32..48];
        let mut s = Stream::new(40, 25);
        let got: Vec<u32> = std::iter::from_fn(|| s.next(&g, q)).map(|x| x.node).collect();
        let want: Vec<u32> = search(&g, q, 40).into_iter().take(25).map(|x| x.node).collect();
        assert_eq!(got, want);
        assert_eq!(s.produced(), 25);
    }

    #[test]
    fn a_filter_that_rejects_most_nodes_still_gets_its_rows() {
        let (g, data) = graph(3000, 16);
        let q = &data[..16];
        let mut s = Stream::new(10, 20_000);
        let passing: Vec<u32> =
            std::iter::from_fn(|| s.next(&g, q)).map(|x| x.node).filter(|n| n % 50 == 7).take(10).collect();
        assert_eq!(passing.len(), 10, "a 2% filter still yields LIMIT 10 rows");
    }
}
