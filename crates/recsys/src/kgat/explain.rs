//! Why KGAT recommends an item: the paths of up to three hops that lead from
//! the user to the item through the collaborative knowledge graph, each
//! weighted by the product of the attention of its edges. A user's
//! representation gathers its neighbours' in proportion to π(h, r, t), theirs
//! gather their own neighbours' the same way, so a path's product of
//! attentions is the share of the item's layer-0 embedding that reaches the
//! user along it. The graph keeps every training interaction and triple with
//! the attention of the trained model, stored beside the model.

use std::collections::HashMap;

use super::KnowledgeGraph;
use super::graph::Ckg;
use crate::codec::{Reader, Writer, corrupt, unknown_format};
use crate::data::Csr;
use pgrec_base::error::Result;

/// The attention-weighted collaborative knowledge graph of a trained model.
pub struct ExplainGraph {
    pub n_items: usize,
    pub n_entities: usize,
    /// The user's id of each entity that is not an item.
    pub entity_ids: Vec<i64>,
    /// KG (and user–user) relation names by id.
    pub relations: Vec<String>,
    /// Heads as rows, `data` the attention of each edge.
    pub adjacency: Csr,
    /// The CKG relation of each edge (see `graph`).
    pub relation: Vec<u16>,
}

/// A node of the graph, by index: a user, an item or another entity (the
/// k-th entity that is not an item).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    User(u32),
    Item(u32),
    Entity(u32),
}

/// One path from a user to an item: its nodes, the CKG relation of each hop
/// and the product of their attention weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Path {
    pub nodes: Vec<Node>,
    pub relations: Vec<u16>,
    pub weight: f32,
}

const MAGIC: &[u8] = b"pgrecckg";
const FORMAT: u32 = 1;

impl ExplainGraph {
    pub fn new(ckg: Ckg, g: &KnowledgeGraph, n_items: usize) -> ExplainGraph {
        ExplainGraph {
            n_items,
            n_entities: ckg.n_entities,
            entity_ids: g.entity_ids.clone(),
            relations: g.relations.clone(),
            adjacency: ckg.adjacency,
            relation: ckg.relation,
        }
    }

    fn node(&self, x: u32) -> Node {
        let x = x as usize;
        if x < self.n_items {
            Node::Item(x as u32)
        } else if x < self.n_entities {
            Node::Entity((x - self.n_items) as u32)
        } else {
            Node::User((x - self.n_entities) as u32)
        }
    }

    /// The name of CKG relation `r` and whether the edge runs against it
    /// (tail → head).
    pub fn relation_name(&self, r: u16) -> (&str, bool) {
        match r {
            0 => ("interacts", false),
            1 => ("interacts", true),
            _ => {
                let k = (r as usize - 2) / 2;
                (self.relations.get(k).map_or("?", String::as_str), r % 2 == 1)
            }
        }
    }

    /// The `k` paths of up to three hops from user `user` to item `item`
    /// with the highest attention products, best first; no node repeats.
    pub fn paths(&self, user: u32, item: u32, k: usize) -> Vec<Path> {
        let adj = &self.adjacency;
        let edges = |x: u32| adj.indptr[x as usize]..adj.indptr[x as usize + 1];
        let start = self.n_entities as u32 + user;
        if start as usize >= adj.n_rows || item as usize >= self.n_items {
            return Vec::new();
        }
        // The edges into `item`, by their head: every edge has its reverse, so
        // the heads are the item's own neighbours, and each row is sorted by
        // tail.
        let mut into: HashMap<u32, std::ops::Range<usize>> = HashMap::new();
        for &b in adj.row(item as usize).0 {
            into.entry(b).or_insert_with(|| {
                let (lo, hi) = (adj.indptr[b as usize], adj.indptr[b as usize + 1]);
                let row = &adj.indices[lo..hi];
                lo + row.partition_point(|&t| t < item)..lo + row.partition_point(|&t| t <= item)
            });
        }
        // Candidates as edge positions; paths are built for the best only.
        let mut found: Vec<(f32, [usize; 3], usize)> = Vec::new();
        for e1 in edges(start) {
            let a = adj.indices[e1];
            let w1 = adj.data[e1];
            if a == item {
                found.push((w1, [e1, 0, 0], 1));
                continue;
            }
            if let Some(r) = into.get(&a) {
                found.extend(r.clone().map(|e2| (w1 * adj.data[e2], [e1, e2, 0], 2)));
            }
            for e2 in edges(a) {
                let b = adj.indices[e2];
                if b == start {
                    continue;
                }
                if let Some(r) = into.get(&b) {
                    let w2 = w1 * adj.data[e2];
                    found.extend(r.clone().map(|e3| (w2 * adj.data[e3], [e1, e2, e3], 3)));
                }
            }
        }
        found.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.2.cmp(&y.2)).then(x.1.cmp(&y.1)));
        found.truncate(k);
        found
            .into_iter()
            .map(|(weight, e, hops)| {
                let mut nodes = vec![self.node(start)];
                nodes.extend(e[..hops].iter().map(|&x| self.node(adj.indices[x])));
                Path { nodes, relations: e[..hops].iter().map(|&x| self.relation[x]).collect(), weight }
            })
            .collect()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        w.bytes(MAGIC);
        w.u32(FORMAT);
        w.u32s(&[self.n_items as u32, self.n_entities as u32, self.adjacency.n_rows as u32]);
        w.i64s(&self.entity_ids);
        w.u32(self.relations.len() as u32);
        self.relations.iter().for_each(|r| w.str(r));
        w.u32s(&self.adjacency.indptr.iter().map(|&x| x as u32).collect::<Vec<_>>());
        w.u32s(&self.adjacency.indices);
        w.f32s(&self.adjacency.data);
        w.u32s(&self.relation.iter().map(|&r| r as u32).collect::<Vec<_>>());
        w.0
    }

    pub fn from_bytes(b: &[u8]) -> Result<ExplainGraph> {
        let mut r = Reader::new(b);
        if r.take(MAGIC.len())? != MAGIC {
            return Err(corrupt("wrong graph header"));
        }
        match r.u32()? {
            FORMAT => {}
            f if f > FORMAT => return Err(unknown_format("explanation graph", f, FORMAT)),
            f => return Err(corrupt(&format!("graph format {f}"))),
        }
        let sizes = r.u32s()?;
        let [n_items, n_entities, n] = sizes[..] else { return Err(corrupt("graph sizes")) };
        let (n_items, n_entities, n) = (n_items as usize, n_entities as usize, n as usize);
        let entity_ids = r.i64s()?;
        let n_rel = r.u32()? as usize;
        let relations = (0..n_rel).map(|_| r.str()).collect::<Result<Vec<_>>>()?;
        let indptr: Vec<usize> = r.u32s()?.into_iter().map(|x| x as usize).collect();
        let indices = r.u32s()?;
        let data = r.f32s()?;
        let relation: Vec<u16> = r.u32s()?.into_iter().map(|x| x as u16).collect();
        let nnz = indices.len();
        let consistent = n_items <= n_entities
            && n_entities <= n
            && entity_ids.len() == n_entities - n_items
            && indptr.len() == n + 1
            && indptr.windows(2).all(|w| w[0] <= w[1])
            && indptr.last() == Some(&nnz)
            && data.len() == nnz
            && relation.len() == nnz
            && indices.iter().all(|&t| (t as usize) < n)
            && relation.iter().all(|&x| (x as usize) < 2 + 2 * n_rel);
        if !consistent {
            return Err(corrupt("inconsistent graph"));
        }
        Ok(ExplainGraph {
            n_items,
            n_entities,
            entity_ids,
            relations,
            adjacency: Csr { n_rows: n, n_cols: n, indptr, indices, data },
            relation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Users 0 and 1; items 0..3; entity 3 (id 900) is the genre of items 0
    /// and 2. User 0 has item 0, user 1 items 0 and 1. Attention is set by
    /// hand so that the expected order is known.
    fn graph() -> ExplainGraph {
        let ui = Csr::from_triples(2, 3, [(0, 0, 1.0), (1, 0, 1.0), (1, 1, 1.0)].into_iter());
        let kg = KnowledgeGraph {
            triples: vec![(0, 0, 3), (2, 0, 3)],
            n_entities: 4,
            entity_ids: vec![900],
            relations: vec!["genre".into()],
            ..KnowledgeGraph::default()
        };
        let mut ckg = Ckg::new(&ui, &kg.triples, &[], 4, 1);
        let heads = ckg.heads();
        for (k, &h) in heads.iter().enumerate() {
            let t = ckg.adjacency.indices[k];
            // item 0 attends to the genre more than to its users.
            ckg.adjacency.data[k] = match (h, t) {
                (0, 3) => 0.6,
                (0, _) => 0.2,
                _ => 1.0 / (ckg.adjacency.indptr[h as usize + 1] - ckg.adjacency.indptr[h as usize]) as f32,
            };
        }
        ExplainGraph::new(ckg, &kg, 3)
    }

    #[test]
    fn paths_are_ranked_by_their_attention_product() {
        let g = graph();
        // User 0 → item 0 (1.0) → genre 900 (0.6) → item 2 (entity 3 has two
        // neighbours: 0.5). No other path reaches item 2 within three hops.
        let p = g.paths(0, 2, 5);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].nodes, vec![Node::User(0), Node::Item(0), Node::Entity(0), Node::Item(2)]);
        assert_eq!(p[0].relations, vec![0, 2, 3]);
        assert!((p[0].weight - 0.3).abs() < 1e-6);
        assert_eq!(g.relation_name(2), ("genre", false));
        assert_eq!(g.relation_name(3), ("genre", true));
        assert_eq!(g.relation_name(1), ("interacts", true));

        // User 0 → item 0 → user 1 → item 1: 1.0 · 0.2 · 0.5 = 0.1.
        let p = g.paths(0, 1, 5);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].nodes, vec![Node::User(0), Node::Item(0), Node::User(1), Node::Item(1)]);
        assert!((p[0].weight - 0.1).abs() < 1e-6);

        // User 1 → item 0 directly (0.5), and through two-hop detours none
        // (no node may repeat); k cuts the list.
        let p = g.paths(1, 0, 5);
        assert_eq!(p[0].nodes, vec![Node::User(1), Node::Item(0)]);
        assert_eq!(p.len(), 1);
        // User 1 → item 2: via item 0 and the genre (0.5 · 0.6 · 0.5).
        let p = g.paths(1, 2, 1);
        assert_eq!(p.len(), 1);
        assert!((p[0].weight - 0.15).abs() < 1e-6);
        assert!(g.paths(7, 0, 3).is_empty());
    }

    #[test]
    fn the_graph_survives_its_byte_form_and_damage_is_an_error() {
        let g = graph();
        let b = g.to_bytes();
        let back = ExplainGraph::from_bytes(&b).unwrap();
        assert_eq!(back.paths(0, 2, 5), g.paths(0, 2, 5));
        assert_eq!((back.entity_ids.clone(), back.relations.clone()), (vec![900], vec!["genre".to_string()]));
        assert!(ExplainGraph::from_bytes(&b[..b.len() - 3]).is_err());
        let mut bad = b.clone();
        bad[8] ^= 1;
        assert!(ExplainGraph::from_bytes(&bad).is_err());
    }
}
