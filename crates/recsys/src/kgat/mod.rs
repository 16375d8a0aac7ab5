//! KGAT (Wang et al., KDD 2019): embeddings of users, items and knowledge-graph
//! entities propagated over the collaborative knowledge graph with TransR-based
//! attention, trained with BPR on interactions and TransR on triples.
//! `graph` builds the collaborative knowledge graph, `transr` holds the KG
//! loss and the attention, `propagate` the layers (forward and backward),
//! `cf` the BPR loss on the final representations, `train` the training loop.
//! `explain` the attention-weighted paths behind a recommendation.
//! Here: the knowledge graph as the user gives it, mapped onto item indices.

/// Tests: the central finite difference (f(x + ε) − f(x − ε)) / 2ε of `loss`
/// at the f32 parameter `place` (ε = 1e-3), which is restored afterwards.
#[cfg(test)]
macro_rules! central_difference {
    ($place:expr, $loss:expr) => {{
        let x = $place;
        $place = x + 1e-3;
        let up: f64 = $loss;
        $place = x - 1e-3;
        let down: f64 = $loss;
        $place = x;
        (up - down) / 2e-3
    }};
}

pub mod cf;
pub mod explain;
pub mod graph;
pub mod propagate;
pub mod train;
pub mod transr;

use std::collections::{BTreeSet, HashMap};

pub use train::{Init, KgatFactors, KgatParams, train};

use pgrec_base::error::{Error, ErrorKind, Result};

/// Triples over entity indices, where entity i < n_items is item i, and
/// user–user triples over user indices.
#[derive(Clone, Debug, Default)]
pub struct KnowledgeGraph {
    pub triples: Vec<(u32, u16, u32)>,
    pub user_triples: Vec<(u32, u16, u32)>,
    pub n_entities: usize,
    /// The user's id of each entity that is not an item (index n_items + k).
    pub entity_ids: Vec<i64>,
    /// Relation names by id.
    pub relations: Vec<String>,
    pub duplicates: usize,
    pub self_loops: usize,
    /// `item_entities` rows naming an item that has no interactions.
    pub unknown_items: usize,
    /// User–user rows naming a user who has no interactions (dropped).
    pub unknown_users: usize,
}

impl KnowledgeGraph {
    /// Maps (head, relation, tail) rows with the user's entity ids onto item
    /// indices: an entity is the item that `item_entities` (item id, entity
    /// id) maps to it, or without that map, the item with the same id; other
    /// entities get indices after the items. `user_rows` (head, relation,
    /// tail) link users by their ids; rows naming a user without interactions
    /// are dropped. Self-loops are dropped and duplicates merged (all
    /// counted); a graph without triples is an error.
    pub fn build(
        item_ids: &[i64],
        rows: &[(i64, String, i64)],
        item_entities: Option<&[(i64, i64)]>,
        user_ids: &[i64],
        user_rows: &[(i64, String, i64)],
    ) -> Result<KnowledgeGraph> {
        let item_index: HashMap<i64, u32> = item_ids.iter().enumerate().map(|(k, &id)| (id, k as u32)).collect();
        let mut g = KnowledgeGraph::default();
        let mut entity: HashMap<i64, u32> = HashMap::new();
        match item_entities {
            Some(pairs) => {
                for &(item, e) in pairs {
                    match item_index.get(&item) {
                        Some(&k) => {
                            entity.insert(e, k);
                        }
                        None => g.unknown_items += 1,
                    }
                }
            }
            None => entity.extend(item_index.iter().map(|(&id, &k)| (id, k))),
        }
        let names: BTreeSet<&str> = rows.iter().chain(user_rows).map(|r| r.1.as_str()).collect();
        if names.len() > (u16::MAX as usize - 3) / 2 {
            return Err(Error::new(
                ErrorKind::InvalidParameterValue,
                format!(
                    "the knowledge graph has {} relations; at most {} are supported",
                    names.len(),
                    (u16::MAX - 3) / 2
                ),
            ));
        }
        g.relations = names.iter().map(|s| s.to_string()).collect();
        let rel: HashMap<&str, u16> = names.iter().enumerate().map(|(k, &s)| (s, k as u16)).collect();
        let mut next = item_ids.len() as u32;
        let mut index = |e: i64| -> u32 {
            *entity.entry(e).or_insert_with(|| {
                g.entity_ids.push(e);
                next += 1;
                next - 1
            })
        };
        let mut triples = Vec::with_capacity(rows.len());
        for (h, r, t) in rows {
            if h == t {
                g.self_loops += 1;
                continue;
            }
            triples.push((index(*h), rel[r.as_str()], index(*t)));
        }
        let user_index: HashMap<i64, u32> = user_ids.iter().enumerate().map(|(k, &id)| (id, k as u32)).collect();
        let mut user_triples = Vec::with_capacity(user_rows.len());
        for (a, r, b) in user_rows {
            match (user_index.get(a), user_index.get(b)) {
                _ if a == b => g.self_loops += 1,
                (Some(&a), Some(&b)) => user_triples.push((a, rel[r.as_str()], b)),
                _ => g.unknown_users += 1,
            }
        }
        let before = triples.len() + user_triples.len();
        for t in [&mut triples, &mut user_triples] {
            t.sort_unstable();
            t.dedup();
        }
        g.duplicates = before - triples.len() - user_triples.len();
        g.user_triples = user_triples;
        if triples.is_empty() && g.user_triples.is_empty() {
            return Err(Error::new(ErrorKind::InvalidParameterValue, "the knowledge graph has no triples")
                .with_hint("kgat needs relations => 'SELECT head, relation, tail FROM ...' with at least one triple between different entities; for interactions alone train 'bpr'"));
        }
        g.n_entities = next as usize;
        g.triples = triples;
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(h: i64, r: &str, t: i64) -> (i64, String, i64) {
        (h, r.to_string(), t)
    }

    #[test]
    fn entities_map_onto_items_and_bad_triples_are_counted() {
        let items = [10, 20, 30];
        let rows = [
            row(10, "genre", 900),
            row(20, "genre", 900),
            row(10, "genre", 900),
            row(30, "by", 30),
            row(30, "by", 901),
        ];
        let users = [1, 2, 3];
        let social = [row(1, "follows", 2), row(1, "follows", 2), row(2, "follows", 2), row(3, "follows", 4)];
        let g = KnowledgeGraph::build(&items, &rows, None, &users, &social).unwrap();
        assert_eq!(g.relations, vec!["by", "follows", "genre"]);
        // Items keep their indices; 900 and 901 follow them.
        assert_eq!(g.triples, vec![(0, 2, 3), (1, 2, 3), (2, 0, 4)]);
        assert_eq!(g.entity_ids, vec![900, 901]);
        // Users by index; user 4 has no interactions.
        assert_eq!(g.user_triples, vec![(0, 1, 1)]);
        assert_eq!((g.n_entities, g.duplicates, g.self_loops, g.unknown_users), (5, 2, 2, 1));

        let map = [(10, 7), (30, 8), (99, 5)];
        let g = KnowledgeGraph::build(&items, &[row(7, "r", 8), row(10, "r", 7)], Some(&map), &users, &[]).unwrap();
        // Entity 7 is item 10 (index 0), 8 is item 30 (index 2); id 10 is now
        // an ordinary entity.
        assert_eq!(g.triples, vec![(0, 0, 2), (3, 0, 0)]);
        assert_eq!(g.entity_ids, vec![10]);
        assert_eq!(g.unknown_items, 1);

        let e = KnowledgeGraph::build(&items, &[row(10, "r", 10)], None, &users, &social[2..3]).unwrap_err();
        assert_eq!(e.message, "the knowledge graph has no triples");
        assert!(e.hint.unwrap().contains("train 'bpr'"));
        assert!(KnowledgeGraph::build(&items, &[], None, &users, &[]).is_err());
    }
}
