//! LightGCN (He et al., SIGIR 2020): users and items are nodes of one graph,
//! every layer replaces each node's embedding by the sum of its neighbours'
//! weighted by Â = D^-½ A D^-½ (no transformation, no non-linearity), and a
//! node's final embedding is the mean of its layers 0..K. Trained, as in the
//! authors' code and RecBole's, with the BPR loss on (user, seen item, unseen
//! item) triples, L2 on the triples' layer-0 embeddings (λ/2 · Σ‖e⁰‖² / batch)
//! and Adam on every embedding after each mini-batch. An epoch trains each
//! training interaction once, with a uniformly drawn unseen item.
//!
//! Optional social edges (`user_relations`, pairs of users) join the graph as
//! user–user edges, so a user's embedding also gathers their friends' (the
//! GNN social recommendation of DiffNet / SocialLGN, in LightGCN's form).
//!
//! The gradient is exact, as autograd would give it, but the passes skip
//! what the batch cannot reach. The loss reads the final embeddings of the
//! batch's nodes T₀ only, so layer k is computed on T₀ ∪ … ∪ T_{K−k} (T_m the
//! nodes m hops from the batch), not on the whole graph as the reference
//! implementations do; and since Â is symmetric the gradient on the layer-0
//! embeddings is (1/(K+1)) Σ_k Â^k G for G the loss's gradient on the final
//! embeddings, which is zero outside T_k at hop k, so each backward pass reads
//! only the rows of the previous hop.

use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::adam;
use super::data::{Csr, draw_absent};
use super::memory::{Shape, factor_model};
use super::params::{BATCH, FACTORS, ITERATIONS, LEARNING_RATE, Param, Rule};
use super::progress::Progress;
use super::registry::{Algo, Context, Needs};
use pgrec_base::error::Result;
use pgrec_base::kernels;
use pgrec_base::rng::Rng;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LightGcnParams {
    pub factors: usize,
    pub layers: usize,
    pub iterations: usize,
    pub learning_rate: f32,
    /// λ of the L2 term on the batch's layer-0 embeddings.
    pub regularization: f32,
    #[serde(rename = "batch_size")]
    pub batch: usize,
    /// The protocol's seed.
    #[serde(skip)]
    pub seed: u64,
}

impl Default for LightGcnParams {
    fn default() -> LightGcnParams {
        LightGcnParams {
            factors: 64,
            layers: 3,
            iterations: 50,
            learning_rate: 0.005,
            regularization: 1e-4,
            batch: 2048,
            seed: 42,
        }
    }
}

pub struct LightGcn;

impl Algo for LightGcn {
    type Params = LightGcnParams;
    const NAME: &'static str = "lightgcn";
    const SUMMARY: &'static str =
        "LightGCN: embeddings propagated over the user–item graph (and optional social edges), BPR loss";
    const PARAMS: &'static [Param] = &[
        Param { key: "factors", rule: FACTORS, meaning: "embedding dimensions" },
        Param {
            key: "layers",
            rule: Rule::Int { min: 0, max: 8, note: "" },
            meaning: "propagation layers K (0 is matrix factorisation with BPR)",
        },
        Param { key: "iterations", rule: ITERATIONS, meaning: "epochs" },
        Param { key: "batch_size", rule: BATCH, meaning: "mini-batch size (triples per Adam step)" },
        Param { key: "learning_rate", rule: LEARNING_RATE, meaning: "Adam step" },
        Param { key: "regularization", rule: Rule::NonNegative, meaning: "L2 on the batch's layer-0 embeddings" },
    ];
    const NEEDS: Needs = Needs { social: true, ..Needs::NONE };
    const DIVERGED_HINT: &'static str = "lower learning_rate or raise regularization";

    fn memory(p: &LightGcnParams, s: &Shape) -> (u64, &'static str) {
        let (n, f, k) = ((s.users + s.items) as u64, p.factors as u64, p.layers as u64);
        // Layer 0 with Adam's two moments, K forward layers, K + 1 backward
        // ones; the adjacency (two entries per interaction or social pair).
        let arrays = (3 + 2 * k + 1) * n * f * 4;
        let adjacency = 2 * (s.interactions + s.triples) as u64 * 8 + n * 8 * 4;
        (factor_model(s, f) + arrays + adjacency, "lower \"factors\" or \"layers\" in params")
    }

    fn fit(p: &LightGcnParams, cx: &mut Context<'_>) -> Result<()> {
        let p = LightGcnParams { seed: cx.seed, ..p.clone() };
        let social = cx.side.social.unwrap_or_default();
        let (users, items) = train(cx.train, social, &p, cx.pool, cx.on_iteration)?;
        cx.model.user_factors = users;
        cx.model.item_factors = items;
        Ok(())
    }
}

/// Â = D^-½ A D^-½ over users (nodes 0..U) and items (U..U+I): an edge per
/// interaction and per social pair, both ways, once each; self-pairs and
/// pairs naming no user of `ui` are dropped.
pub fn adjacency(ui: &Csr, social: &[(u32, u32)]) -> Csr {
    let (n_users, n_items) = (ui.n_rows, ui.n_cols);
    let n = n_users + n_items;
    let mut edges: Vec<(u32, u32)> = Vec::with_capacity(2 * (ui.nnz() + social.len()));
    for u in 0..n_users {
        for &i in ui.row(u).0 {
            let item = (n_users + i as usize) as u32;
            edges.push((u as u32, item));
            edges.push((item, u as u32));
        }
    }
    for &(a, b) in social {
        if a != b && (a as usize) < n_users && (b as usize) < n_users {
            edges.push((a, b));
            edges.push((b, a));
        }
    }
    edges.sort_unstable();
    edges.dedup();
    let mut indptr = vec![0usize; n + 1];
    for &(r, _) in &edges {
        indptr[r as usize + 1] += 1;
    }
    for r in 0..n {
        indptr[r + 1] += indptr[r];
    }
    let scale: Vec<f32> = (0..n).map(|r| 1.0 / ((indptr[r + 1] - indptr[r]).max(1) as f32).sqrt()).collect();
    let data = edges.iter().map(|&(r, c)| scale[r as usize] * scale[c as usize]).collect();
    Csr { n_rows: n, n_cols: n, indptr, indices: edges.into_iter().map(|e| e.1).collect(), data }
}

/// y += a · x, in blocks of 8 so that it vectorises.
#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    let mut yc = y.chunks_exact_mut(8);
    let mut xc = x.chunks_exact(8);
    for (y8, x8) in (&mut yc).zip(&mut xc) {
        for k in 0..8 {
            y8[k] += a * x8[k];
        }
    }
    for (y1, &x1) in yc.into_remainder().iter_mut().zip(xc.remainder()) {
        *y1 += a * x1;
    }
}

/// Rows `keep` of y = Â·x; rows of x that `read` refuses count as zero (and
/// are not read). Other rows of y are left as they were.
fn propagate(
    adj: &Csr,
    x: &[f32],
    y: &mut [f32],
    d: usize,
    keep: impl Fn(usize) -> bool + Sync,
    read: Option<&(dyn Fn(usize) -> bool + Sync)>,
) {
    let ws = kernels::best().weighted_sum;
    y.par_chunks_mut(d).enumerate().with_min_len(256).for_each_init(
        || (Vec::new(), Vec::new()),
        |(cols, vals), (r, row)| {
            if !keep(r) {
                return;
            }
            let (all_cols, all_vals) = adj.row(r);
            match read {
                None => ws(row, all_cols, all_vals, x),
                Some(read) => {
                    cols.clear();
                    vals.clear();
                    for (&c, &a) in all_cols.iter().zip(all_vals) {
                        if read(c as usize) {
                            cols.push(c);
                            vals.push(a);
                        }
                    }
                    ws(row, cols, vals, x);
                }
            }
        },
    );
}

/// The nodes `hops` away from a batch, as stamps: node r is in hop k when
/// `stamp[k][r] == tick`, so nothing is cleared between batches.
struct Hops {
    stamp: Vec<Vec<u32>>,
    lists: Vec<Vec<u32>>,
    tick: u32,
}

impl Hops {
    fn new(layers: usize, n: usize) -> Hops {
        Hops { stamp: vec![vec![0; n]; layers + 1], lists: vec![Vec::new(); layers + 1], tick: 0 }
    }

    /// Hop 0 is `batch`; hop k the neighbours of hop k − 1.
    fn expand(&mut self, adj: &Csr, batch: impl Iterator<Item = u32>) {
        self.tick += 1;
        let tick = self.tick;
        let mut list = std::mem::take(&mut self.lists[0]);
        list.clear();
        for r in batch {
            if self.stamp[0][r as usize] != tick {
                self.stamp[0][r as usize] = tick;
                list.push(r);
            }
        }
        self.lists[0] = list;
        for k in 1..self.lists.len() {
            let mut list = std::mem::take(&mut self.lists[k]);
            list.clear();
            for &r in &self.lists[k - 1] {
                for &c in adj.row(r as usize).0 {
                    if self.stamp[k][c as usize] != tick {
                        self.stamp[k][c as usize] = tick;
                        list.push(c);
                    }
                }
            }
            self.lists[k] = list;
        }
    }

    fn within(&self, k: usize, r: usize) -> bool {
        self.stamp[k][r] == self.tick
    }
}

/// The final embeddings, the mean of layers 0..K over the whole graph.
fn final_embeddings(adj: &Csr, e0: &[f32], d: usize, layers: usize) -> Vec<f32> {
    let mut sum = e0.to_vec();
    let mut cur = e0.to_vec();
    let mut next = vec![0f32; e0.len()];
    for _ in 0..layers {
        propagate(adj, &cur, &mut next, d, |_| true, None);
        sum.par_iter_mut().zip(next.par_iter()).for_each(|(s, &x)| *s += x);
        std::mem::swap(&mut cur, &mut next);
    }
    let scale = 1.0 / (layers + 1) as f32;
    sum.par_iter_mut().for_each(|s| *s *= scale);
    sum
}

/// The most layers `layers` takes (its rule's bound).
const MAX_LAYERS: usize = 8;

/// A training's state: the layer-0 embeddings and the buffers of one batch.
struct Trainer {
    adj: Csr,
    d: usize,
    layers: usize,
    e0: Vec<f32>,
    /// Forward layers 1..K and backward hops 0..K, each valid on its rows.
    fwd: Vec<Vec<f32>>,
    bwd: Vec<Vec<f32>>,
    /// How often each node is in the batch (its L2 term's weight).
    occurrences: Vec<f32>,
    hops: Hops,
}

impl Trainer {
    fn new(adj: Csr, e0: Vec<f32>, d: usize, layers: usize) -> Trainer {
        let n = adj.n_rows;
        Trainer {
            adj,
            d,
            layers,
            e0,
            fwd: (0..layers).map(|_| vec![0f32; n * d]).collect(),
            bwd: (0..=layers).map(|_| vec![0f32; n * d]).collect(),
            occurrences: vec![0f32; n],
            hops: Hops::new(layers, n),
        }
    }

    /// Forward and backward passes of one batch of (user, item, item) node
    /// triples: afterwards `gradient` gives any row's gradient of the
    /// batch's mean BPR loss plus `reg`/2 · Σ‖e⁰‖² / batch. Returns the
    /// summed BPR loss and the summed ‖e⁰‖²/2 of the triples' rows.
    fn batch(&mut self, triples: &[(u32, u32, u32)], pool: &rayon::ThreadPool) -> (f64, f64) {
        let (d, layers) = (self.d, self.layers);
        let inv_layers = 1.0 / (layers + 1) as f32;
        self.hops.expand(&self.adj, triples.iter().flat_map(|&(u, i, j)| [u, i, j]));
        // Forward: layer k on the hops 0..K−k.
        for k in 1..=layers {
            let (done, rest) = self.fwd.split_at_mut(k - 1);
            let src: &[f32] = if k == 1 { &self.e0 } else { &done[k - 2] };
            let (hops, adj) = (&self.hops, &self.adj);
            pool.install(|| {
                propagate(adj, src, &mut rest[0], d, |r| (0..=layers - k).any(|h| hops.within(h, r)), None)
            });
        }
        // The loss on the final embeddings of the batch's nodes; its
        // gradient G goes into hop 0.
        let b = triples.len().max(1) as f32;
        let (mut loss, mut reg_loss) = (0f64, 0f64);
        let mut acc = vec![0f32; 3 * d];
        let g0 = &mut self.bwd[0];
        for &(u, i, j) in triples {
            let (au, rest) = acc.split_at_mut(d);
            let (ai, aj) = rest.split_at_mut(d);
            for (dst, r) in [(&mut *au, u), (&mut *ai, i), (&mut *aj, j)] {
                let r = r as usize;
                dst.copy_from_slice(&self.e0[r * d..(r + 1) * d]);
                for layer in &self.fwd {
                    axpy(dst, 1.0, &layer[r * d..(r + 1) * d]);
                }
                dst.iter_mut().for_each(|x| *x *= inv_layers);
            }
            let x: f32 = au.iter().zip(ai.iter().zip(aj.iter())).map(|(a, (p, q))| a * (p - q)).sum();
            // −ln σ(x) = softplus(−x), written so that it cannot overflow.
            let z = f64::from(-x);
            loss += z.max(0.0) + (-z.abs()).exp().ln_1p();
            // Its slope in x is −σ(−x).
            let s = 1.0 / (1.0 + x.exp()) / b;
            for t in 0..d {
                g0[u as usize * d + t] -= s * (ai[t] - aj[t]);
                g0[i as usize * d + t] -= s * au[t];
                g0[j as usize * d + t] += s * au[t];
            }
            for r in [u as usize, i as usize, j as usize] {
                self.occurrences[r] += 1.0;
                reg_loss += f64::from(self.e0[r * d..(r + 1) * d].iter().map(|x| x * x).sum::<f32>()) / 2.0;
            }
        }
        // Backward: hop k = Â · hop k − 1, on the rows hop k reaches.
        for k in 1..=layers {
            let (done, rest) = self.bwd.split_at_mut(k);
            let (hops, adj) = (&self.hops, &self.adj);
            let read = |c: usize| hops.within(k - 1, c);
            pool.install(|| propagate(adj, &done[k - 1], &mut rest[0], d, |r| hops.within(k, r), Some(&read)));
        }
        (loss, reg_loss)
    }

    /// Row r's gradient after `batch`: the mean over layers of the backward
    /// hops that reach it, plus `reg_per_occurrence` × its count × e⁰_r
    /// (passed as `row`: Adam holds the embeddings while it asks).
    fn gradient(&self, r: usize, reg_per_occurrence: f32, row: &[f32], g: &mut [f32]) {
        let d = self.d;
        let inv_layers = 1.0 / (self.layers + 1) as f32;
        g.fill(0.0);
        for (k, layer) in self.bwd.iter().enumerate() {
            if self.hops.within(k, r) {
                axpy(g, inv_layers, &layer[r * d..(r + 1) * d]);
            }
        }
        axpy(g, reg_per_occurrence * self.occurrences[r], row);
    }

    /// Clears what `batch` wrote that the next batch must find zero.
    fn clear(&mut self) {
        let d = self.d;
        for &r in &self.hops.lists[0] {
            let r = r as usize;
            self.occurrences[r] = 0.0;
            self.bwd[0][r * d..(r + 1) * d].fill(0.0);
        }
    }
}

/// Trains on `ui` (users × items) with `social` user pairs; returns the
/// users' and the items' final embeddings. Parallel passes run on `pool`;
/// `on_iteration` is called on the caller's thread only.
pub fn train(
    ui: &Csr,
    social: &[(u32, u32)],
    p: &LightGcnParams,
    pool: &rayon::ThreadPool,
    on_iteration: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<(Array2<f32>, Array2<f32>)> {
    let (n_users, n_items, d, layers) = (ui.n_rows, ui.n_cols, p.factors.max(1), p.layers.min(MAX_LAYERS));
    let n = n_users + n_items;
    let e0 = initial(n_users, n_items, d, p.seed);
    let mut t = Trainer::new(adjacency(ui, social), e0, d, layers);
    let (mut m, mut v) = (vec![0f32; n * d], vec![0f32; n * d]);
    let row_user: Vec<u32> = (0..n_users).flat_map(|u| std::iter::repeat_n(u as u32, ui.row(u).0.len())).collect();
    let mut order: Vec<u32> = (0..ui.nnz() as u32).collect();
    let mut rng = Rng::new(p.seed ^ 0x11C4);
    let batch = p.batch.max(1);
    let mut step = 0i32;
    let start = std::time::Instant::now();
    let mut triples: Vec<(u32, u32, u32)> = Vec::with_capacity(batch.min(order.len()));
    for epoch in 1..=p.iterations {
        rng.shuffle(&mut order);
        let (mut loss, mut reg_loss, mut samples) = (0f64, 0f64, 0usize);
        for chunk in order.chunks(batch) {
            triples.clear();
            for &pos in chunk {
                let u = row_user[pos as usize];
                let i = ui.indices[pos as usize];
                let j = draw_absent(ui.row(u as usize).0, 0, n_items, &mut rng);
                triples.push((u, n_users as u32 + i, n_users as u32 + j));
            }
            let (l, r) = t.batch(&triples, pool);
            loss += l;
            reg_loss += r;
            step = step.saturating_add(1);
            adam_step(&mut t, &mut m, &mut v, step, p, chunk.len() as f32, pool);
            t.clear();
            samples += chunk.len();
            on_iteration(&Progress { iteration: epoch, of: p.iterations, checkpoint: true, ..Progress::default() })?;
        }
        let mean = (loss + f64::from(p.regularization) * reg_loss) / samples.max(1) as f64;
        on_iteration(&Progress {
            iteration: epoch,
            of: p.iterations,
            loss: mean,
            elapsed: start.elapsed().as_secs_f64(),
            ..Progress::default()
        })?;
        if !mean.is_finite() {
            // The trained factors are not finite either; the model's check
            // reports it.
            break;
        }
    }
    let all = pool.install(|| final_embeddings(&t.adj, &t.e0, d, layers));
    let (users, items) = all.split_at(n_users * d);
    let users = Array2::from_shape_fn((n_users, d), |(r, c)| users[r * d + c]);
    let items = Array2::from_shape_fn((n_items, d), |(r, c)| items[r * d + c]);
    Ok((users, items))
}

/// Layer 0 at the start: users' and items' rows each drawn uniformly within
/// ±√(6 / (rows + d)) (Xavier's uniform bound for a rows × d table, as
/// RecBole initialises its embeddings).
fn initial(n_users: usize, n_items: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut e = Vec::with_capacity((n_users + n_items) * d);
    for rows in [n_users, n_items] {
        let bound = (6.0 / (rows + d) as f64).sqrt();
        e.extend((0..rows * d).map(|_| ((2.0 * rng.uniform() - 1.0) * bound) as f32));
    }
    e
}

/// One Adam step on every layer-0 row, as dense Adam does (moments decay
/// where the gradient is zero).
fn adam_step(
    t: &mut Trainer,
    m: &mut [f32],
    v: &mut [f32],
    step: i32,
    p: &LightGcnParams,
    b: f32,
    pool: &rayon::ThreadPool,
) {
    let (c1, c2) = adam::corrections(step);
    let (lr, reg) = (p.learning_rate, p.regularization / b);
    let d = t.d;
    let mut e0 = std::mem::take(&mut t.e0);
    let state: &Trainer = t;
    pool.install(|| {
        e0.par_chunks_mut(d)
            .zip(m.par_chunks_mut(d))
            .zip(v.par_chunks_mut(d))
            .enumerate()
            .with_min_len(256)
            .for_each_init(
                || vec![0f32; d],
                |g, (r, ((pr, mr), vr))| {
                    state.gradient(r, reg, pr, g);
                    for t in 0..d {
                        adam::update(&mut pr[t], &mut mr[t], &mut vr[t], g[t], lr, c1, c2);
                    }
                },
            )
    });
    t.e0 = e0;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::init_factors;

    /// 4 users × 5 items.
    fn graph() -> Csr {
        Csr::from_triples(
            4,
            5,
            [(0, 0), (0, 1), (1, 1), (1, 2), (2, 3), (3, 3), (3, 4), (2, 0)].into_iter().map(|(u, i)| (u, i, 1.0)),
        )
    }

    /// The batch loss from scratch in f64: full-graph propagation with a
    /// dense Â, final embeddings the mean of the layers.
    fn naive_loss(adj: &Csr, e0: &[f64], d: usize, layers: usize, triples: &[(u32, u32, u32)], reg: f64) -> f64 {
        let n = adj.n_rows;
        let mut sum = e0.to_vec();
        let mut cur = e0.to_vec();
        for _ in 0..layers {
            let mut next = vec![0f64; n * d];
            for r in 0..n {
                let (cols, vals) = adj.row(r);
                for (&c, &a) in cols.iter().zip(vals) {
                    for t in 0..d {
                        next[r * d + t] += f64::from(a) * cur[c as usize * d + t];
                    }
                }
            }
            sum.iter_mut().zip(&next).for_each(|(s, x)| *s += x);
            cur = next;
        }
        let fin: Vec<f64> = sum.iter().map(|x| x / (layers + 1) as f64).collect();
        let row = |r: u32| &fin[r as usize * d..(r as usize + 1) * d];
        let raw = |r: u32| &e0[r as usize * d..(r as usize + 1) * d];
        let b = triples.len() as f64;
        triples
            .iter()
            .map(|&(u, i, j)| {
                let x: f64 = (0..d).map(|t| row(u)[t] * (row(i)[t] - row(j)[t])).sum();
                let norms: f64 = [u, i, j].iter().map(|&r| raw(r).iter().map(|v| v * v).sum::<f64>()).sum();
                (-x).exp().ln_1p() / b + reg * norms / 2.0 / b
            })
            .sum()
    }

    #[test]
    fn adjacency_is_symmetric_normalised_and_takes_social_pairs_once() {
        let ui = graph();
        let a = adjacency(&ui, &[(0, 1), (1, 0), (2, 2), (0, 9)]);
        assert_eq!(a.n_rows, 9);
        // User 0: items 0, 1 and user 1 (the pair given both ways is one
        // edge; the self-pair and the unknown user are dropped).
        assert_eq!(a.row(0).0, &[1, 4, 5]);
        // Â[u0, item0] = 1/√(deg u0 · deg item0) = 1/√(3 · 2).
        let at = |r: usize, c: u32| a.row(r).0.iter().position(|&x| x == c).map(|k| a.row(r).1[k]);
        assert!((at(0, 4).unwrap() - 1.0 / 6f32.sqrt()).abs() < 1e-6);
        for r in 0..a.n_rows {
            for (&c, &v) in a.row(r).0.iter().zip(a.row(r).1) {
                assert_eq!(at(c as usize, r as u32), Some(v), "({r}, {c})");
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences_of_full_propagation() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let ui = graph();
        let (d, reg) = (3, 0.3f32);
        for layers in [0, 1, 2, 3] {
            let adj = adjacency(&ui, &[(1, 2)]);
            let n = adj.n_rows;
            let e0: Vec<f32> = init_factors(n, d, 5, 0.5).into_raw_vec_and_offset().0;
            // Users are nodes 0..4, items 4..9; user 0 appears twice.
            let triples = [(0u32, 4u32, 7u32), (2, 7, 5), (0, 5, 8)];
            let mut t = Trainer::new(adj.clone(), e0.clone(), d, layers);
            t.batch(&triples, &pool);
            let e64: Vec<f64> = e0.iter().map(|&x| f64::from(x)).collect();
            let b = triples.len() as f32;
            for r in 0..n {
                let mut g = vec![0f32; d];
                t.gradient(r, reg / b, &e0[r * d..(r + 1) * d], &mut g);
                for k in 0..d {
                    let (mut up, mut down) = (e64.clone(), e64.clone());
                    up[r * d + k] += 1e-6;
                    down[r * d + k] -= 1e-6;
                    let f = |e: &[f64]| naive_loss(&adj, e, d, layers, &triples, f64::from(reg));
                    let numeric = (f(&up) - f(&down)) / 2e-6;
                    assert!(
                        (f64::from(g[k]) - numeric).abs() < 1e-4,
                        "layers {layers}, row {r}, lane {k}: {} vs {numeric}",
                        g[k]
                    );
                }
            }
            // After clear(), a batch elsewhere sees nothing of this one: user
            // 0 is three hops from item 3 (node 7: item 3 – user 2 – item 0 –
            // user 0) and farther from the rest of the batch.
            t.clear();
            t.batch(&[(3, 7, 8)], &pool);
            let mut g = vec![0f32; d];
            t.gradient(0, 0.0, &e0[..d], &mut g);
            assert_eq!(g.iter().all(|&x| x == 0.0), layers < 3, "layers {layers}: {g:?}");
        }
    }
}
