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

use crate::memory::{Shape, factor_model};
use crate::params::{BATCH, FACTORS, ITERATIONS, LEARNING_RATE, Param, Rule};
use crate::registry::{Algo, Context, Needs};
use pgrec_base::error::{Error, ErrorKind, Result};

pub struct Kgat;

impl Algo for Kgat {
    type Params = KgatParams;
    const NAME: &'static str = "kgat";
    const SUMMARY: &'static str = "knowledge-graph attention network over the interactions and item relations (below)";
    const PARAMS: &'static [Param] = &[
        Param { key: "factors", rule: FACTORS, meaning: "layer-0 embedding size of users, items and entities" },
        Param {
            key: "layers",
            rule: Rule::Sizes { max_len: 8, min: 1, max: 1024 },
            meaning: "output size of each propagation layer",
        },
        Param {
            key: "aggregator",
            rule: Rule::Choice(&["bi", "gcn", "graphsage"]),
            meaning: "`bi`: sum and element-wise product of node and neighbourhood",
        },
        Param { key: "relation_dim", rule: FACTORS, meaning: "TransR relation space size" },
        Param {
            key: "learning_rate",
            rule: LEARNING_RATE,
            meaning: "Adam step (the paper's; small graphs train faster at 0.01)",
        },
        Param { key: "regularization", rule: Rule::NonNegative, meaning: "L2 on the CF batch's representations" },
        Param { key: "kg_regularization", rule: Rule::NonNegative, meaning: "L2 on the TransR projections" },
        Param { key: "batch_size", rule: BATCH, meaning: "CF batch size" },
        Param { key: "kg_batch_size", rule: BATCH, meaning: "TransR batch size" },
        Param { key: "dropout", rule: Rule::Fraction { note: "" }, meaning: "message dropout on each layer's output" },
        Param { key: "iterations", rule: ITERATIONS, meaning: "most epochs" },
        Param {
            key: "eval_every",
            rule: Rule::Int { min: 1, max: 10_000, note: "" },
            meaning: "early stopping: every `eval_every` epochs, Recall@20 on a validation tenth of each user's training interactions (users with 3 or more), which is then not trained on",
        },
        Param {
            key: "patience",
            rule: Rule::Int { min: 0, max: 10_000, note: "0: no early stopping" },
            meaning: "stops after `patience` evaluations without a gain and keeps the best evaluated model; 0 trains all epochs on all training data",
        },
        Param {
            key: "item_bias",
            rule: Rule::Bool,
            meaning: "also learn an item bias added to the score, as BPR-MF has (not in the paper); it starts from the pretrained model's biases; by default on from a pretrained start, off from a random one",
        },
        Param {
            key: "layer_gates",
            rule: Rule::Bool,
            meaning: "weigh each layer's part of the final representation by a learned gate that starts at 0.1 (not in the paper), so training starts near the pretrained model's ranking and lets the layers in as they help; by default on from a pretrained start, off from a random one (weight 1, the paper's)",
        },
        Param {
            key: "negatives",
            rule: Rule::Int { min: 1, max: 100, note: "" },
            meaning: "negative candidates per CF sample, the hardest under the current representations trained against; 1 is the paper's uniform sampling",
        },
        Param {
            key: "layer_init",
            rule: Rule::Positive { max: 10.0 },
            meaning: "scale of the propagation weights' Xavier init; by default 0.1 from a pretrained start (`pretrain` or `pretrain_iterations`: small weights let its ranking lead at first), else 1",
        },
        Param {
            key: "pretrain",
            rule: Rule::Name,
            meaning: "a trained model (e.g. a `bpr` one with the same `factors`) whose user and item factors start the layer-0 embeddings, as the paper recommends",
        },
        Param {
            key: "pretrain_iterations",
            rule: Rule::Int { min: 0, max: 10_000, note: "0: a random start" },
            meaning: "without `pretrain`, the layer-0 embeddings start from a BPR model (`bpr`'s defaults, these `factors`) trained this many iterations on the training part; with early stopping, that start is evaluated first and, when no epoch beats it, is the model returned, trained again on all the training interactions",
        },
    ];
    const NEEDS: Needs = Needs { graph: true, ..Needs::NONE };

    fn memory(p: &KgatParams, s: &Shape) -> (u64, &'static str) {
        let f = p.embedding as u64;
        let (users, nnz) = (s.users as u64, s.interactions as u64);
        let nodes = s.entities as u64 + users;
        let r = 2 * s.relations as u64 + 2;
        let rd = p.relation_dim as u64;
        // Embeddings, relation matrices and vectors: value, gradient and two
        // Adam moments each.
        let params = (nodes * f + r * f * rd + r * rd) * 4 * 4;
        let mut widths = vec![f];
        widths.extend(p.layers.iter().map(|&l| l as u64));
        let weights: u64 = widths.windows(2).map(|w| w[0] * w[1] * 2).sum::<u64>() * 4 * 4;
        // Per-layer activations kept for the backward pass, and their gradients.
        let activations = nodes * widths.iter().sum::<u64>() * 4 * 4;
        // The attention-weighted adjacency (both directions) and its scores.
        let edges = 2 * (nnz + s.triples as u64) * 24;
        // A TransR batch projects its heads and tails into every relation space it touches.
        let batch = p.kg_batch as u64 * rd * 4 * 8;
        let driver =
            if r * f * rd > nodes * f { "lower \"relation_dim\" in params" } else { "lower \"factors\" in params" };
        (factor_model(s, f) + params + weights + activations + edges + batch, driver)
    }

    fn fit(p: &KgatParams, cx: &mut Context<'_>) -> Result<()> {
        let g = cx.side.graph.ok_or_else(|| {
            Error::new(ErrorKind::InvalidParameterValue, "kgat needs a knowledge graph")
                .with_hint("pass relations => 'SELECT head, relation, tail FROM ...'")
        })?;
        let init =
            cx.side.pretrain.map(|m| Init::from_model(m, &cx.ds.user_ids, &cx.ds.item_ids, p.embedding)).transpose()?;
        let p = KgatParams { seed: cx.seed, ..p.clone() };
        let f = train(cx.train, g, &p, init.as_ref(), cx.pool, cx.on_iteration)?;
        cx.model.user_factors = f.users;
        cx.model.item_factors = f.items;
        cx.model.item_bias = f.item_bias;
        cx.explain = f.graph.map(|c| explain::ExplainGraph::new(c, g, cx.ds.n_items()));
        Ok(())
    }

    fn pretrain(p: &KgatParams) -> Option<&str> {
        p.pretrain.as_deref()
    }
}

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
