//! KGAT training: each epoch refreshes the attention, then alternates as the
//! authors' code does — a CF phase (BPR batches on interactions, through all
//! propagation layers) and a KG phase (TransR batches on every CKG edge,
//! interactions included, on the layer-0 embeddings) — with Adam throughout.
//! The result is one final representation per user and per item, whose dot
//! product is the score, so a KGAT model serves like any factor model.

use std::time::Instant;

use ndarray::{Array1, Array2};

use super::KnowledgeGraph;
use super::cf;
use super::graph::Ckg;
use super::propagate::{self, Aggregator, LayerWeights};
use super::transr::{self, Relations};
use crate::Progress;
use crate::adam::Adam;
use crate::data::Csr;
use crate::progress::Phases;
use pgrec_base::error::Result;
use pgrec_base::rng::Rng;

/// KGAT's params; the serde names are `train()`'s keys.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KgatParams {
    /// Size of the layer-0 embeddings of users, items and entities.
    #[serde(rename = "factors")]
    pub embedding: usize,
    /// Output size of each propagation layer.
    pub layers: Vec<usize>,
    pub aggregator: Aggregator,
    /// TransR relation space size.
    pub relation_dim: usize,
    pub learning_rate: f32,
    #[serde(rename = "regularization")]
    pub cf_regularization: f32,
    pub kg_regularization: f32,
    #[serde(rename = "batch_size")]
    pub cf_batch: usize,
    #[serde(rename = "kg_batch_size")]
    pub kg_batch: usize,
    /// Message dropout per layer output.
    pub dropout: f32,
    #[serde(rename = "iterations")]
    pub epochs: usize,
    /// Early stopping: every `eval_every` epochs, Recall@20 on a validation
    /// part of the training interactions (a tenth of each user's, for users
    /// with at least 3); training stops after `patience` evaluations without
    /// improvement and returns the best evaluated model. 0 turns it off.
    pub eval_every: usize,
    pub patience: usize,
    /// Learn an item bias added to the score, as BPR-MF has (not in the
    /// paper); with `Init`, it starts from the pretrained model's. None: on
    /// from a pretrained start (whose ranking includes its biases), else off.
    pub item_bias: Option<bool>,
    /// Weigh each layer's part of the final representation by a learned
    /// gate from [`GATE_START`] (not in the paper). None: on from a
    /// pretrained start.
    pub layer_gates: Option<bool>,
    /// Negative candidates per CF sample: the highest-scored unseen one is
    /// trained against (dynamic negative sampling, as `bpr` does). The default
    /// 1 is the paper's uniform sampling: on ml-1m-kgat 3 candidates (bpr's
    /// default there) lowered NDCG@20 from 0.1233 to 0.1197 after 10 epochs.
    pub negatives: usize,
    /// The scale of the propagation weights' Xavier init; None: 0.1 from a
    /// pretrained start, 1 otherwise.
    pub layer_init: Option<f32>,
    /// The name of a trained model whose factors start the user and item
    /// embeddings (read by `train()`, which passes the model as [`Init`]).
    pub pretrain: Option<String>,
    /// Without `pretrain`: iterations of a BPR model (`bpr`'s defaults,
    /// these factors) trained on the training part to start from, as the
    /// paper recommends; 0 starts from random embeddings.
    pub pretrain_iterations: usize,
    /// The protocol's seed.
    #[serde(skip)]
    pub seed: u64,
}

impl Default for KgatParams {
    /// The paper's settings.
    fn default() -> KgatParams {
        KgatParams {
            embedding: 64,
            layers: vec![64, 32, 16],
            aggregator: Aggregator::Bi,
            relation_dim: 64,
            learning_rate: 1e-4,
            cf_regularization: 1e-5,
            kg_regularization: 1e-5,
            cf_batch: 1024,
            kg_batch: 2048,
            dropout: 0.1,
            epochs: 400,
            eval_every: 1,
            patience: 5,
            item_bias: None,
            layer_gates: None,
            negatives: 1,
            layer_init: None,
            pretrain: None,
            pretrain_iterations: crate::bpr::BprParams::default().iterations,
            seed: 42,
        }
    }
}

fn xavier(rows: usize, cols: usize, rng: &mut Rng) -> Array2<f32> {
    let scale = (2.0 / (rows + cols) as f64).sqrt();
    Array2::from_shape_fn((rows, cols), |_| (rng.normal() * scale) as f32)
}

/// Layer-0 embeddings to start from (the paper initialises from a trained
/// BPR-MF): rows per user and item of the dataset, with whether each was
/// known to the model they came from (unknown rows keep their random start).
pub struct Init {
    pub users: Array2<f32>,
    pub items: Array2<f32>,
    pub user_known: Vec<bool>,
    pub item_known: Vec<bool>,
    /// The pretrained item biases (zeros where unknown or absent).
    pub item_bias: Vec<f32>,
}

impl Init {
    /// From a trained factor model, matched to the dataset by external id.
    pub fn from_model(m: &crate::Model, user_ids: &[i64], item_ids: &[i64], factors: usize) -> Result<Init> {
        if m.factors() != factors {
            return Err(pgrec_base::error::Error::new(
                pgrec_base::error::ErrorKind::InvalidParameterValue,
                format!("the pretrained model has {} factors but kgat's factors is {factors}", m.factors()),
            )
            .with_hint(format!("set \"factors\": {} or pretrain with {factors} factors", m.factors())));
        }
        let index = |ids: &[i64]| -> std::collections::HashMap<i64, usize> {
            ids.iter().enumerate().map(|(k, &id)| (id, k)).collect()
        };
        let (mu, mi) = (index(&m.user_ids), index(&m.item_ids));
        let pick = |ids: &[i64], map: &std::collections::HashMap<i64, usize>, from: &Array2<f32>| {
            let mut out = Array2::zeros((ids.len(), factors));
            let mut known = vec![false; ids.len()];
            for (k, id) in ids.iter().enumerate() {
                if let Some(&r) = map.get(id) {
                    out.row_mut(k).assign(&from.row(r));
                    known[k] = true;
                }
            }
            (out, known)
        };
        let (users, user_known) = pick(user_ids, &mu, &m.user_factors);
        let (items, item_known) = pick(item_ids, &mi, &m.item_factors);
        let item_bias =
            item_ids.iter().map(|id| mi.get(id).and_then(|&r| m.item_bias.get(r)).copied().unwrap_or(0.0)).collect();
        Ok(Init { users, items, user_known, item_known, item_bias })
    }
}

/// The trained final representations (users, items), the item biases (empty
/// without `item_bias`), and the collaborative knowledge graph with the
/// attention of every edge, for explanations.
pub struct KgatFactors {
    pub users: Array2<f32>,
    pub items: Array2<f32>,
    pub item_bias: Vec<f32>,
    pub graph: Option<Ckg>,
}

impl crate::metrics::Scorer for KgatFactors {
    fn n_items(&self) -> usize {
        self.items.nrows()
    }

    fn score_users(&self, users: &[u32], out: &mut [f32]) {
        let n = self.items.nrows();
        for (b, &u) in users.iter().enumerate() {
            let x = self.users.row(u as usize);
            for (i, o) in out[b * n..(b + 1) * n].iter_mut().enumerate() {
                *o = x.dot(&self.items.row(i)) + self.item_bias.get(i).copied().unwrap_or(0.0);
            }
        }
    }
}

/// The (user, positive, negative) triples of a batch: for each drawn (user,
/// positive), the candidate among its `cands` chunk with the highest score
/// f_u · f_j (+ b_j) under this pass's representations.
fn hardest_negatives(
    finals: &Array2<f32>,
    n_entities: usize,
    drawn: &[(u32, u32)],
    cands: &[u32],
    bias: Option<&[f32]>,
) -> Vec<(u32, u32, u32)> {
    let k = cands.len() / drawn.len().max(1);
    drawn
        .iter()
        .zip(cands.chunks(k.max(1)))
        .map(|(&(u, i), c)| {
            if c.len() == 1 {
                return (u, i, c[0]);
            }
            let fu = finals.row(n_entities + u as usize);
            let score = |j: u32| {
                fu.dot(&finals.row(j as usize)) + bias.map_or(0.0, |b| b.get(j as usize).copied().unwrap_or(0.0))
            };
            let j = c
                .iter()
                .copied()
                .map(|j| (score(j), j))
                .fold((f32::NEG_INFINITY, c[0]), |a, b| if b.0 > a.0 { b } else { a })
                .1;
            (u, i, j)
        })
        .collect()
}

/// Moves a tenth of each user's interactions (at least one, for users with 3
/// or more) out of `ui` into a validation set: (training, validation).
fn validation_split(ui: &Csr, seed: u64) -> (Csr, Csr) {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let (mut keep, mut held) = (Vec::new(), Vec::new());
    for u in 0..ui.n_rows {
        let items = ui.row(u).0;
        let n_held = if items.len() >= 3 { (items.len() / 10).max(1) } else { 0 };
        let mut order: Vec<u32> = items.to_vec();
        rng.shuffle(&mut order);
        held.extend(order[..n_held].iter().map(|&i| (u as u32, i, 1.0)));
        keep.extend(order[n_held..].iter().map(|&i| (u as u32, i, 1.0)));
    }
    (
        Csr::from_triples(ui.n_rows, ui.n_cols, keep.into_iter()),
        Csr::from_triples(ui.n_rows, ui.n_cols, held.into_iter()),
    )
}

/// How much better than the internal BPR start (validation Recall@20, as a
/// ratio) the best epoch must be for KGAT's model to be returned instead of
/// that BPR retrained on all the training interactions.
const START_MARGIN: f64 = 1.02;

/// Layer-0 rows as final representations: zeros where the layers' parts go.
fn padded(rows: ndarray::ArrayView2<f32>, p: &KgatParams) -> Array2<f32> {
    let width = p.embedding + p.layers.iter().sum::<usize>();
    let mut out = Array2::zeros((rows.nrows(), width));
    out.slice_mut(ndarray::s![.., ..p.embedding]).assign(&rows);
    out
}

/// Seconds since `since`, which moves to now (one phase's share of an epoch).
fn lap(since: &mut Instant) -> f64 {
    let now = Instant::now();
    let s = now.duration_since(*since).as_secs_f64();
    *since = now;
    s
}

/// Where a layer's gate starts from a pretrained start. Not 0: a gate
/// scales the layer's columns of both the user's and the item's final
/// representation, so it enters a score squared and its gradient at 0 is 0
/// (gates started at 0 never moved, and the layers never counted). At 0.1 a
/// layer adds at most 0.01 to a score at first; on fb943 the gates then rose
/// steadily, to about 0.4 by epoch 33 at the default learning rate.
pub const GATE_START: f32 = 0.1;

/// Trains KGAT on interactions `ui` (users × items) and the knowledge graph
/// `g` (items are its entities 0..n_items). `on_epoch` runs on the caller's
/// thread after every epoch (its loss is the CF loss plus the KG loss) and, as
/// a `checkpoint`, after every batch.
pub fn train(
    ui: &Csr,
    g: &KnowledgeGraph,
    p: &KgatParams,
    init: Option<&Init>,
    pool: &rayon::ThreadPool,
    on_epoch: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<KgatFactors> {
    let full = ui;
    let (ui, validation) = if p.patience > 0 && p.eval_every > 0 {
        let (t, v) = validation_split(ui, p.seed);
        (t, (v.nnz() > 0).then_some(v))
    } else {
        (ui.clone(), None)
    };
    let ui = &ui;
    // Pretrained on the training part only, so the validation part judges
    // the start as it judges every epoch.
    let pretrained;
    let mut pretrain_seconds = None;
    let internal = init.is_none() && p.pretrain_iterations > 0;
    let bp = crate::bpr::BprParams {
        factors: p.embedding,
        iterations: p.pretrain_iterations,
        seed: p.seed,
        ..crate::bpr::BprParams::default()
    };
    let init = match init {
        None if internal => {
            let clock = Instant::now();
            let (users, items, item_bias) =
                crate::bpr::train(ui, &bp, pool, &mut |pr| on_epoch(&Progress { checkpoint: true, ..*pr }))?;
            pretrain_seconds = Some(clock.elapsed().as_secs_f64());
            pretrained = Init {
                user_known: vec![true; users.nrows()],
                item_known: vec![true; items.nrows()],
                users,
                items,
                item_bias,
            };
            Some(&pretrained)
        }
        init => init,
    };
    let use_bias = p.item_bias.unwrap_or(init.is_some());
    let n_entities = g.n_entities;
    let mut ckg = Ckg::new(ui, &g.triples, &g.user_triples, n_entities, g.relations.len());
    let n = ckg.n_nodes();
    let n_items = ui.n_cols;
    let mut rng = Rng::new(p.seed);
    // Aligned: every CF batch gathers its rows (see `aligned_zeros`).
    let mut e0 = propagate::aligned_zeros(n, p.embedding);
    e0.assign(&xavier(n, p.embedding, &mut rng));
    if let Some(init) = init {
        for (u, known) in init.user_known.iter().enumerate() {
            if *known {
                e0.row_mut(n_entities + u).assign(&init.users.row(u));
            }
        }
        for (i, known) in init.item_known.iter().enumerate() {
            if *known {
                e0.row_mut(i).assign(&init.items.row(i));
            }
        }
    }
    // From a pretrained start, each layer's part of the final representation
    // is weighed by a gate learned from GATE_START: training starts near the
    // pretrained ranking and lets the layers in as they help it. With the
    // paper's fixed weight 1, each layer's normalised output adds a
    // unit-scale term to every score at once; on fb943 that lifted validation
    // Recall@20 but left test NDCG@20 below BPR's in every setting tried (25
    // epochs: 0.1104 / 0.1221 against 0.1059 / 0.1271).
    let gated = p.layer_gates.unwrap_or(init.is_some());
    let mut dims = vec![p.embedding];
    dims.extend_from_slice(&p.layers);
    let mut layers: Vec<LayerWeights> = dims
        .windows(2)
        .map(|d| {
            let rows = if p.aggregator == Aggregator::GraphSage { 2 * d[0] } else { d[0] };
            LayerWeights {
                w1: xavier(rows, d[1], &mut rng),
                b1: Array1::zeros(d[1]),
                w2: xavier(d[0], d[1], &mut rng),
                b2: Array1::zeros(d[1]),
                gate: if gated { GATE_START } else { 1.0 },
            }
        })
        .collect();
    // From a pretrained start, small propagation weights keep the layers'
    // share of the score small at first, so training starts from the
    // pretrained model's ranking instead of that plus noise (on ml-1m-kgat,
    // 10 epochs: NDCG@20 0.1233 at full scale, 0.1256 at 0.1).
    let scale = p.layer_init.unwrap_or(if init.is_some() { 0.1 } else { 1.0 });
    for l in layers.iter_mut() {
        l.w1 *= scale;
        l.w2 *= scale;
    }
    let mut rel = Relations {
        w: (0..ckg.n_relations).map(|_| xavier(p.embedding, p.relation_dim, &mut rng)).collect(),
        e: xavier(ckg.n_relations, p.relation_dim, &mut rng),
    };
    // Separate Adam states for the two losses, as in the authors' code: the
    // KG phase's sparse row updates do not feed the CF phase's moments.
    let mut adam_e0 = Adam::new(&e0);
    let mut adam_e0_kg = Adam::new(&e0);
    let mut adam_layers: Vec<[Adam<ndarray::Ix2>; 2]> =
        layers.iter().map(|w| [Adam::new(&w.w1), Adam::new(&w.w2)]).collect();
    let mut adam_bias: Vec<[Adam<ndarray::Ix1>; 2]> =
        layers.iter().map(|w| [Adam::new(&w.b1), Adam::new(&w.b2)]).collect();
    let mut adam_gates = vec![[0f32; 2]; layers.len()];
    let mut adam_rel_w: Vec<Adam<ndarray::Ix2>> = rel.w.iter().map(Adam::new).collect();
    let mut adam_rel_e = Adam::new(&rel.e);
    let mut item_bias: Array1<f32> = match (use_bias, init) {
        (false, _) => Array1::zeros(0),
        (true, Some(init)) => Array1::from(init.item_bias.clone()),
        (true, None) => Array1::zeros(n_items),
    };
    let mut adam_bias_i = Adam::new(&item_bias);
    let (mut t_cf, mut t_kg) = (0i32, 0i32);

    let users: Vec<u32> = (0..ui.n_rows as u32).filter(|&u| !ui.row(u as usize).0.is_empty()).collect();
    let heads: Vec<u32> =
        (0..n as u32).filter(|&h| ckg.adjacency.indptr[h as usize + 1] > ckg.adjacency.indptr[h as usize]).collect();
    let cf_batches = ui.nnz().div_ceil(p.cf_batch.max(1)).max(1);
    let negatives = p.negatives.max(1);
    let kg_batches = ckg.adjacency.nnz().div_ceil(p.kg_batch.max(1)).max(1);
    let start = Instant::now();
    // The final representations: attention from the current parameters,
    // then every layer without dropout.
    let finish = |ckg: &mut Ckg, e0: &Array2<f32>, rel: &Relations, layers: &[LayerWeights]| {
        pool.install(|| {
            transr::attention(ckg, e0, rel);
            let mut ws = propagate::Workspace::default();
            propagate::forward(p.aggregator, &ckg.adjacency, layers, e0, None, None, &mut ws);
            let finals = ws.finals;
            (
                finals.slice(ndarray::s![n_entities.., ..]).to_owned(),
                finals.slice(ndarray::s![..n_items, ..]).to_owned(),
            )
        })
    };
    // The best evaluated representations, with the layer-0 embeddings and
    // relations that gave them (for the explanation graph's attention).
    struct Best {
        epoch: usize,
        recall: f64,
        finals: (Array2<f32>, Array2<f32>),
        item_bias: Array1<f32>,
        e0: Array2<f32>,
        rel: Relations,
    }
    let mut best: Option<Best> = None;
    let mut stale = 0usize;
    // Validation Recall@20 of the current parameters; the best so far is
    // kept (with what gave it) and `stale` counts evaluations since.
    let mut judge =
        |epoch: usize, f: (Array2<f32>, Array2<f32>), e0: &Array2<f32>, rel: &Relations, bias: &Array1<f32>| {
            let v = validation.as_ref()?;
            let scorer = KgatFactors { users: f.0, items: f.1, item_bias: bias.to_vec(), graph: None };
            let recall = pool.install(|| crate::metrics::evaluate(&scorer, ui, v, None, &[20]))["recall@20"];
            if best.as_ref().is_none_or(|b| recall > b.recall) {
                best = Some(Best {
                    epoch,
                    recall,
                    finals: (scorer.users, scorer.items),
                    item_bias: bias.clone(),
                    e0: e0.clone(),
                    rel: rel.clone(),
                });
                stale = 0;
            } else {
                stale += 1;
            }
            Some((recall, stale))
        };
    // A pretrained start is judged as epoch 0, as the pretrained model
    // itself (its factors, zeros for the layers' parts of the final
    // representation): when no epoch beats it on validation, training returns
    // it (an internal BPR start retrained on all the data, see the end), so
    // KGAT never ends below its start there. (The start propagated
    // through the untrained layers would not do: each layer's output is
    // normalised, so even small weights add a unit-scale random term.)
    let mut start_recall = None;
    if init.is_some() && validation.is_some() {
        let clock = Instant::now();
        let start_finals =
            (padded(e0.slice(ndarray::s![n_entities.., ..]), p), padded(e0.slice(ndarray::s![..n_items, ..]), p));
        if let Some((recall, _)) = judge(0, start_finals, &e0, &rel, &item_bias) {
            start_recall = Some(recall);
            on_epoch(&Progress {
                iteration: 0,
                of: p.epochs,
                elapsed: start.elapsed().as_secs_f64(),
                validation_recall: Some(recall),
                pretrain_seconds,
                phases: Some(Phases { validation: clock.elapsed().as_secs_f64(), ..Phases::default() }),
                ..Progress::default()
            })?;
        }
    }
    // Kept from batch to batch (see `Workspace`); the gradient arrays are
    // zeroed where a batch wrote them.
    let mut ws = propagate::Workspace::default();
    let mut d_final = Array2::<f32>::zeros((0, 0));
    let mut d_ent = Array2::<f32>::zeros((0, 0));
    let mut rows: Vec<u32> = Vec::new();
    for epoch in 1..=p.epochs {
        let (mut cf_loss, mut kg_loss) = (0.0, 0.0);
        let mut ph = Phases::default();
        let mut clock = Instant::now();
        // Batches are drawn here and computed on the pool; between them the
        // caller may cancel (an epoch on a large graph takes minutes).
        let checkpoint =
            |loss| Progress { iteration: epoch, of: p.epochs, loss, checkpoint: true, ..Progress::default() };
        let a_t = pool.install(|| {
            transr::attention(&mut ckg, &e0, &rel);
            ckg.adjacency.transpose()
        });
        ph.attention += lap(&mut clock);
        for _ in 0..cf_batches {
            // Each sample's negative candidates are drawn now and the hardest
            // chosen once the forward pass has scored them.
            let mut drawn: Vec<(u32, u32)> = Vec::with_capacity(p.cf_batch);
            let mut cands: Vec<u32> = Vec::with_capacity(p.cf_batch * negatives);
            for _ in 0..p.cf_batch {
                let u = users[rng.below(users.len() as u64) as usize];
                let seen = ui.row(u as usize).0;
                drawn.push((u, seen[rng.below(seen.len() as u64) as usize]));
                cands.extend((0..negatives).map(|_| ui.draw_unseen(u as usize, &mut rng)));
            }
            let dropout = (p.dropout > 0.0).then(|| propagate::Dropout { p: p.dropout, seed: rng.next_u64() });
            // The nodes whose final representation the batch reads.
            rows.clear();
            rows.extend(drawn.iter().flat_map(|&(u, i)| [(n_entities + u as usize) as u32, i]));
            rows.extend_from_slice(&cands);
            rows.sort_unstable();
            rows.dedup();
            t_cf += 1;
            ph.cf_sampling += lap(&mut clock);
            cf_loss += pool.install(|| {
                propagate::forward(p.aggregator, &ckg.adjacency, &layers, &e0, dropout, Some(&rows), &mut ws);
                let finals = &ws.finals;
                let bias = if use_bias { item_bias.as_slice() } else { None };
                let batch = hardest_negatives(finals, n_entities, &drawn, &cands, bias);
                if d_final.dim() != finals.dim() {
                    d_final = Array2::zeros(finals.raw_dim());
                }
                let mut d_bias = Array1::zeros(item_bias.len());
                let bias = use_bias.then(|| cf::Bias {
                    value: item_bias.as_slice().unwrap_or(&[]),
                    grad: d_bias.as_slice_mut().unwrap_or(&mut []),
                });
                let loss = cf::bpr_loss(finals, n_entities, &batch, p.cf_regularization, &mut d_final, bias);
                ph.cf_forward += lap(&mut clock);
                if use_bias {
                    adam_bias_i.step(&mut item_bias, &d_bias, p.learning_rate, t_cf);
                }
                let (d_e0, dws) = propagate::backward(p.aggregator, &a_t, &layers, &e0, &d_final, &mut ws);
                // Only the batch's rows of d_final were written: zeroed again
                // for the next batch (the whole array is 2.7 times E₀).
                for &(u, i, j) in &batch {
                    for r in [n_entities + u as usize, i as usize, j as usize] {
                        d_final.row_mut(r).fill(0.0);
                    }
                }
                ph.cf_backward += lap(&mut clock);
                adam_e0.step(&mut e0, d_e0, p.learning_rate, t_cf);
                for (l, dw) in dws.iter().enumerate() {
                    adam_layers[l][0].step(&mut layers[l].w1, &dw.w1, p.learning_rate, t_cf);
                    adam_layers[l][1].step(&mut layers[l].w2, &dw.w2, p.learning_rate, t_cf);
                    adam_bias[l][0].step(&mut layers[l].b1, &dw.b1, p.learning_rate, t_cf);
                    adam_bias[l][1].step(&mut layers[l].b2, &dw.b2, p.learning_rate, t_cf);
                    if gated {
                        let (c1, c2) = crate::adam::corrections(t_cf);
                        let [m, v] = &mut adam_gates[l];
                        crate::adam::update(&mut layers[l].gate, m, v, dw.gate, p.learning_rate, c1, c2);
                    }
                }
                ph.cf_adam += lap(&mut clock);
                loss
            });
            on_epoch(&checkpoint(cf_loss))?;
        }
        lap(&mut clock);
        for _ in 0..kg_batches {
            let adj = &ckg.adjacency;
            let batch: Vec<(u32, u16, u32, u32)> = (0..p.kg_batch)
                .map(|_| {
                    let h = heads[rng.below(heads.len() as u64) as usize];
                    let (from, to) = (adj.indptr[h as usize], adj.indptr[h as usize + 1]);
                    let k = from + rng.below((to - from) as u64) as usize;
                    let tail = rng.below(n as u64) as u32;
                    (h, ckg.relation[k], adj.indices[k], tail)
                })
                .collect();
            t_kg += 1;
            kg_loss += pool.install(|| {
                if d_ent.dim() != e0.dim() {
                    d_ent = Array2::zeros(e0.raw_dim());
                }
                let mut d_rel = rel.zeros_like();
                let loss = transr::kg_loss(&e0, &rel, &batch, p.kg_regularization, &mut d_ent, &mut d_rel);
                adam_e0_kg.step(&mut e0, &d_ent, p.learning_rate, t_kg);
                // Zeroed again where the batch wrote, for the next batch.
                for &(h, _, t, tail) in &batch {
                    for r in [h, t, tail] {
                        d_ent.row_mut(r as usize).fill(0.0);
                    }
                }
                for (r, dw) in d_rel.w.iter().enumerate() {
                    adam_rel_w[r].step(&mut rel.w[r], dw, p.learning_rate, t_kg);
                }
                adam_rel_e.step(&mut rel.e, &d_rel.e, p.learning_rate, t_kg);
                loss
            });
            on_epoch(&checkpoint(kg_loss))?;
        }
        ph.kg += lap(&mut clock);
        let mut validation_recall = None;
        let mut stop = false;
        if epoch % p.eval_every.max(1) == 0
            && let Some((recall, stale)) = judge(epoch, finish(&mut ckg, &e0, &rel, &layers), &e0, &rel, &item_bias)
        {
            validation_recall = Some(recall);
            stop = stale >= p.patience;
            ph.validation += lap(&mut clock);
        }
        let (cf, kg) = (cf_loss / cf_batches as f64, kg_loss / kg_batches as f64);
        on_epoch(&Progress {
            iteration: epoch,
            of: p.epochs,
            loss: cf + kg,
            elapsed: start.elapsed().as_secs_f64(),
            checkpoint: false,
            cf_kg: Some((cf, kg)),
            validation_recall,
            phases: Some(ph),
            pretrain_seconds: None,
        })?;
        if stop {
            break;
        }
    }
    // An epoch must beat the start by START_MARGIN: trained without the
    // validation tenth, it has to make up for what the BPR retrained on all
    // of it gains (music-kgcn: the best epoch's 0.3274 against the start's
    // 0.3264 on validation gave test Recall@20 0.3445 against BPR's 0.3581).
    let start_won = match (&best, start_recall) {
        (Some(b), Some(r0)) => b.epoch == 0 || b.recall < r0 * START_MARGIN,
        _ => false,
    };
    let (mut factors, mut item_bias, mut e0, rel) = match best {
        Some(b) => (b.finals, b.item_bias, b.e0, b.rel),
        None => (finish(&mut ckg, &e0, &rel, &layers), item_bias, e0, rel),
    };
    // When no epoch beat the internal BPR start on validation, that BPR is
    // the model, trained again on all the training interactions (the
    // validation tenth included): the one trained on nine tenths would leave
    // KGAT's default below a plain `bpr` (music-kgcn: Recall@20 0.3445
    // against 0.3581).
    if internal && start_won {
        let (users, items, bias) =
            crate::bpr::train(full, &bp, pool, &mut |pr| on_epoch(&Progress { checkpoint: true, ..*pr }))?;
        e0.slice_mut(ndarray::s![n_entities.., ..]).assign(&users);
        e0.slice_mut(ndarray::s![..n_items, ..]).assign(&items);
        factors = (padded(users.view(), p), padded(items.view(), p));
        item_bias = Array1::from(bias);
    }
    // The explanation graph: every training interaction (the validation part
    // included), weighted by the attention of the returned model.
    let mut graph = Ckg::new(full, &g.triples, &g.user_triples, n_entities, g.relations.len());
    pool.install(|| transr::attention(&mut graph, &e0, &rel));
    Ok(KgatFactors { users: factors.0, items: factors.1, item_bias: item_bias.to_vec(), graph: Some(graph) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpr::{self, BprParams};
    use crate::kgat::explain::{ExplainGraph, Node};
    use crate::metrics::{Scorer, evaluate};

    #[test]
    fn the_hardest_candidate_is_the_negative() {
        // Nodes: items 0..3 (entities), then users 0 and 1.
        let finals = ndarray::array![[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [1.0, 0.0], [0.0, 1.0f32]];
        let drawn = [(0, 0), (1, 0)];
        let cands = [1, 2, 1, 2];
        // User 0 = (1, 0) scores item 2 highest, user 1 = (0, 1) item 1.
        assert_eq!(hardest_negatives(&finals, 3, &drawn, &cands, None), [(0, 0, 2), (1, 0, 1)]);
        // A bias can overturn the order; one candidate is taken as drawn.
        assert_eq!(hardest_negatives(&finals, 3, &drawn, &cands, Some(&[0.0, 5.0, 0.0])), [(0, 0, 1), (1, 0, 1)]);
        assert_eq!(hardest_negatives(&finals, 3, &drawn, &[2, 2], None), [(0, 0, 2), (1, 0, 2)]);
    }

    /// Dot-product scores plus an optional item bias.
    struct Dot<'a>(&'a Array2<f32>, &'a Array2<f32>, &'a [f32]);

    impl Scorer for Dot<'_> {
        fn n_items(&self) -> usize {
            self.1.nrows()
        }
        fn score_users(&self, users: &[u32], out: &mut [f32]) {
            let n = self.n_items();
            for (b, &u) in users.iter().enumerate() {
                for i in 0..n {
                    out[b * n + i] = self.0.row(u as usize).dot(&self.1.row(i)) + self.2.get(i).copied().unwrap_or(0.0);
                }
            }
        }
    }

    /// 8 genres of 20 items; each user likes one genre and has 3 training
    /// and up to 3 test items from it, so each item has under two training
    /// interactions: too few for BPR to learn the genres from co-occurrence,
    /// while the knowledge graph (item → genre) states them.
    fn fixture() -> (Csr, Csr, KnowledgeGraph) {
        let (genres, per, users) = (8u32, 20u32, 96u32);
        let mut rng = Rng::new(9);
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for u in 0..users {
            let g = u % genres;
            for k in 0..3 {
                let at = (u / genres * 7 + k * 3) % per;
                train.push((u, g * per + at, 1.0));
                test.push((u, g * per + (at + 1 + rng.below(per as u64 - 1) as u32) % per, 1.0));
            }
        }
        let n_items = (genres * per) as usize;
        let triples: Vec<(u32, u16, u32)> = (0..genres * per).map(|i| (i, 0, genres * per + i / per)).collect();
        let g = KnowledgeGraph {
            triples,
            n_entities: n_items + genres as usize,
            entity_ids: (0..genres as i64).map(|g| 1000 + g).collect(),
            relations: vec!["genre".into()],
            ..KnowledgeGraph::default()
        };
        (
            Csr::from_triples(users as usize, n_items, train.into_iter()),
            Csr::from_triples(users as usize, n_items, test.into_iter()),
            g,
        )
    }

    /// The fixture's size: 16 factors, layers [16, 8], lr 0.01, batches of 128.
    fn small() -> KgatParams {
        KgatParams {
            embedding: 16,
            layers: vec![16, 8],
            relation_dim: 16,
            learning_rate: 0.01,
            cf_batch: 128,
            kg_batch: 128,
            ..KgatParams::default()
        }
    }

    #[test]
    fn kgat_uses_the_knowledge_graph_where_bpr_cannot() {
        let (train_ui, test_ui, graph) = fixture();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let p = KgatParams { epochs: 40, patience: 0, pretrain_iterations: 0, ..small() };
        let mut losses = Vec::new();
        let kgat = train(&train_ui, &graph, &p, None, &pool, &mut |pr| {
            if !pr.checkpoint {
                losses.push(pr.loss);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(losses.len(), 40);
        assert!(losses[39] < losses[0] * 0.8, "loss falls: {losses:?}");
        let bp = BprParams { factors: 16, iterations: 80, ..BprParams::default() };
        let (x, y, b) = bpr::train(&train_ui, &bp, &pool, &mut |_| Ok(())).unwrap();
        let k = pool.install(|| evaluate(&Dot(&kgat.users, &kgat.items, &[]), &train_ui, &test_ui, None, &[20]));
        let m = pool.install(|| evaluate(&Dot(&x, &y, &b), &train_ui, &test_ui, None, &[20]));
        let (rk, rb) = (k["recall@20"], m["recall@20"]);
        // 20 of the 157 unseen items: chance is about 0.13.
        assert!(rk > 0.5 && rk > rb + 0.2, "KGAT recall@20 {rk} vs BPR {rb}");

        // Explanations run over the trained attention: every path's weight is
        // the product of its edges' attention, best first, and each user's
        // held-out items are reached through their genre.
        let g = ExplainGraph::new(kgat.graph.unwrap(), &graph, 160);
        let adj = &g.adjacency;
        let index = |n: Node| match n {
            Node::Item(i) => i,
            Node::Entity(e) => 160 + e,
            Node::User(u) => 168 + u,
        };
        let attention = |h: u32, r: u16, t: u32| {
            (adj.indptr[h as usize]..adj.indptr[h as usize + 1])
                .find(|&k| adj.indices[k] == t && g.relation[k] == r)
                .map(|k| adj.data[k])
                .unwrap()
        };
        for u in 0..96u32 {
            let t = test_ui.row(u as usize).0[0];
            let paths = g.paths(u, t, 500);
            for w in paths.windows(2) {
                assert!(w[0].weight >= w[1].weight);
            }
            for p in &paths {
                let product: f32 = (0..p.relations.len())
                    .map(|h| attention(index(p.nodes[h]), p.relations[h], index(p.nodes[h + 1])))
                    .product();
                assert!((product - p.weight).abs() <= 1e-6 * product.max(1e-3), "{p:?}");
            }
            let genre = Node::Entity(u % 8);
            assert!(
                paths.iter().any(|p| p.nodes.len() == 4 && p.nodes[2] == genre && p.relations == [0, 2, 3]),
                "user {u}, item {t}: {paths:?}"
            );
        }
    }

    #[test]
    fn from_a_pretrained_start_the_layer_gates_learn() {
        let (train_ui, _, graph) = fixture();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let p = KgatParams { epochs: 5, patience: 0, ..small() };
        let f = train(&train_ui, &graph, &p, None, &pool, &mut |_| Ok(())).unwrap();
        // A layer's columns of every final representation are its gate times
        // a unit vector.
        let mut at = 16;
        for (l, d) in [16, 8].into_iter().enumerate() {
            let norms: Vec<f32> = f
                .items
                .rows()
                .into_iter()
                .map(|r| r.slice(ndarray::s![at..at + d]).dot(&r.slice(ndarray::s![at..at + d])).sqrt())
                .collect();
            let gate = norms[0];
            assert!(norms.iter().all(|&x| (x - gate).abs() <= 1e-4 * gate), "layer {l}: {norms:?}");
            assert!((gate - GATE_START).abs() > 0.01, "layer {l}'s gate moved from its start: {gate}");
            at += d;
        }
    }

    #[test]
    fn early_stopping_ends_training_once_validation_recall_stops_rising() {
        let (train_ui, _, graph) = fixture();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let p = KgatParams {
            embedding: 8,
            layers: vec![8],
            relation_dim: 8,
            learning_rate: 0.01,
            cf_batch: 128,
            kg_batch: 128,
            epochs: 300,
            eval_every: 2,
            patience: 3,
            pretrain_iterations: 0,
            ..KgatParams::default()
        };
        let (mut epochs, mut evaluations) = (0, 0);
        let f = train(&train_ui, &graph, &p, None, &pool, &mut |pr| {
            if !pr.checkpoint {
                epochs += 1;
                let (cf, kg) = pr.cf_kg.unwrap();
                assert!((cf + kg - pr.loss).abs() < 1e-9);
                // Validation recall comes with every second epoch's report.
                assert_eq!(pr.validation_recall.is_some(), epochs % 2 == 0);
                evaluations += usize::from(pr.validation_recall.is_some());
            }
            Ok(())
        })
        .unwrap();
        assert!(epochs < 300, "stopped early, after {epochs} epochs");
        assert_eq!(evaluations, epochs / 2);
        assert!(epochs >= 8, "three evaluations without a gain follow a first one: {epochs}");
        assert_eq!((f.users.nrows(), f.items.nrows(), f.items.ncols()), (96, 160, 16));
    }

    #[test]
    fn a_pretrained_start_is_judged_first_and_the_best_judged_model_is_returned() {
        let (train_ui, _, graph) = fixture();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let p = KgatParams { epochs: 6, eval_every: 1, patience: 10, ..small() };
        let run = |p: &KgatParams| {
            let mut reports = Vec::new();
            let f = train(&train_ui, &graph, p, None, &pool, &mut |pr| {
                if !pr.checkpoint {
                    reports.push(*pr);
                }
                Ok(())
            })
            .unwrap();
            (f, reports)
        };
        // The start is BPR trained on the same training part with the same
        // seed. Without epochs it wins, and the model returned is that BPR
        // trained again on all the training interactions: its factors, zeros
        // where the layers' parts go, its biases.
        let (part, validation) = validation_split(&train_ui, p.seed);
        let bp = BprParams { factors: 16, seed: p.seed, ..BprParams::default() };
        let (x, y, b) = bpr::train(&part, &bp, &pool, &mut |_| Ok(())).unwrap();
        let whole = bpr::train(&train_ui, &bp, &pool, &mut |_| Ok(())).unwrap();
        let is_whole_bpr = |f: &KgatFactors| {
            f.users.slice(ndarray::s![.., ..16]) == whole.0
                && f.items.slice(ndarray::s![.., ..16]) == whole.1
                && f.users
                    .slice(ndarray::s![.., 16..])
                    .iter()
                    .chain(f.items.slice(ndarray::s![.., 16..]))
                    .all(|&v| v == 0.0)
                && f.item_bias == whole.2
        };
        let (f, reports) = run(&KgatParams { epochs: 0, ..p.clone() });
        assert_eq!(reports.len(), 1);
        assert!(is_whole_bpr(&f));
        assert_ne!(whole.0, x, "the validation tenth changes BPR");
        let start = Dot(&x, &y, &b);
        let r0 = pool.install(|| evaluate(&start, &part, &validation, None, &[20]))["recall@20"];
        assert_eq!(reports[0].validation_recall, Some(r0));
        assert!(reports[0].pretrain_seconds.is_some_and(|s| s > 0.0));

        // With epochs: the start is judged as epoch 0, then every epoch; what
        // comes back scores the best of those recalls on the validation part.
        let (f, reports) = run(&p);
        assert_eq!(reports.iter().map(|r| r.iteration).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5, 6]);
        assert!(reports[1..].iter().all(|r| r.pretrain_seconds.is_none()));
        let recalls: Vec<f64> = reports.iter().map(|r| r.validation_recall.unwrap()).collect();
        assert_eq!(recalls[0], r0);
        let best = recalls.iter().copied().fold(0.0, f64::max);
        assert!(best > r0, "an epoch beats the start on this fixture: {recalls:?}");
        let got = pool.install(|| evaluate(&f, &part, &validation, None, &[20]))["recall@20"];
        assert_eq!(got, best, "{recalls:?}");
        assert!(!is_whole_bpr(&f));
    }
}
