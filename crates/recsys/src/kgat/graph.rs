//! The collaborative knowledge graph (CKG): items and knowledge-graph entities
//! share one id space (an item's entity id is its item index), users follow
//! them, and every edge exists in both directions, each direction its own
//! relation: 0 user → item ("interacts"), 1 item → user, and for KG relation
//! k, 2 + 2k head → tail and 3 + 2k tail → head; user–user relations (a
//! social graph) take relation ids the same way, between user nodes.
//! Attention weights per edge are computed by `transr::attention` and live in
//! the adjacency's `data`.

use super::super::data::Csr;

pub struct Ckg {
    pub n_entities: usize,
    pub n_users: usize,
    pub n_relations: usize,
    /// Heads as rows, tails as columns, one entry per (head, relation, tail),
    /// sorted by head then tail; `data` holds the attention weights. A tail
    /// may repeat within a row when two relations link the same pair.
    pub adjacency: Csr,
    /// The relation of each adjacency entry.
    pub relation: Vec<u16>,
    /// Adjacency entries grouped by relation: `by_relation[r]` lists the
    /// positions of relation r's entries (attention is computed a relation at
    /// a time, with that relation's projection of every entity).
    pub by_relation: Vec<Vec<u32>>,
}

impl Ckg {
    /// Builds the CKG from user→item interactions (`ui`, users as rows), KG
    /// triples (head, relation, tail) over entity ids < `n_entities` and
    /// user–user triples over user indices, with `n_kg_relations` relation
    /// ids shared by both. Duplicate triples must already be gone.
    pub fn new(
        ui: &Csr,
        triples: &[(u32, u16, u32)],
        user_triples: &[(u32, u16, u32)],
        n_entities: usize,
        n_kg_relations: usize,
    ) -> Ckg {
        let n_users = ui.n_rows;
        let user = |u: usize| (n_entities + u) as u32;
        let mut edges: Vec<(u32, u32, u16)> = Vec::with_capacity(2 * (ui.nnz() + triples.len() + user_triples.len()));
        for u in 0..n_users {
            for &i in ui.row(u).0 {
                edges.push((user(u), i, 0));
                edges.push((i, user(u), 1));
            }
        }
        let user_edges = user_triples.iter().map(|&(a, r, b)| (user(a as usize), r, user(b as usize)));
        for (h, r, t) in triples.iter().copied().chain(user_edges) {
            edges.push((h, t, 2 + 2 * r));
            edges.push((t, h, 3 + 2 * r));
        }
        edges.sort_unstable();
        let n = n_entities + n_users;
        let n_relations = 2 + 2 * n_kg_relations;
        let mut indptr = vec![0usize; n + 1];
        let mut by_relation = vec![Vec::new(); n_relations];
        for (k, &(h, _, r)) in edges.iter().enumerate() {
            indptr[h as usize + 1] += 1;
            by_relation[r as usize].push(k as u32);
        }
        for r in 0..n {
            indptr[r + 1] += indptr[r];
        }
        let adjacency = Csr {
            n_rows: n,
            n_cols: n,
            indptr,
            indices: edges.iter().map(|e| e.1).collect(),
            data: vec![0.0; edges.len()],
        };
        Ckg { n_entities, n_users, n_relations, adjacency, relation: edges.iter().map(|e| e.2).collect(), by_relation }
    }

    pub fn n_nodes(&self) -> usize {
        self.n_entities + self.n_users
    }

    /// The head of each adjacency entry.
    pub fn heads(&self) -> Vec<u32> {
        let mut h = vec![0u32; self.adjacency.nnz()];
        for r in 0..self.adjacency.n_rows {
            h[self.adjacency.indptr[r]..self.adjacency.indptr[r + 1]].fill(r as u32);
        }
        h
    }
}
