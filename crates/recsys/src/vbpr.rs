//! VBPR (He & McAuley, AAAI 2016): BPR whose item score adds a learned
//! projection of the item's content vector f_i,
//!   x_ui = β_i + γ_u·γ_i + θ_u·(E f_i) + β'·f_i,
//! so an item without interactions still scores through E f_i and β'·f_i.
//! Trained on mini-batches of (user, seen item, unseen warm item) triples with
//! Adam (dense for E and β', lazy — touched rows only — for the per-user and
//! per-item rows), the loss −ln σ(x_ui − x_uj) plus L2, as Cornac's VBPR does.
//!
//! The result is folded into the factor form every model serves with: user
//! [γ_u, θ_u, 1] · item [γ_i, E f_i, β'·f_i] + item bias β_i. Items with no
//! training interactions (cold) get γ_i = 0 and the mean warm bias plus
//! `cold_boost`, so they rank by content alone.

use std::collections::HashMap;

use ndarray::{Array1, Array2, Axis};

use serde::{Deserialize, Serialize};

use super::adam::Adam;
use super::data::Csr;
use super::init::init_factors;
use super::memory::{Shape, factor_model};
use super::model::ContentMap;
use super::params::{BATCH, FACTORS, ITERATIONS, LEARNING_RATE, Param, Rule};
use super::progress::Progress;
use super::registry::{Algo, Context, Needs};
use pgrec_base::error::Result;
use pgrec_base::rng::Rng;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VbprParams {
    /// Size of γ (collaborative factors).
    pub factors: usize,
    /// Size of θ and of E's output (content factors).
    pub content_factors: usize,
    #[serde(rename = "iterations")]
    pub epochs: usize,
    pub learning_rate: f32,
    /// L2 on γ_u, γ_i, γ_j, θ_u per sample.
    pub regularization: f32,
    /// L2 on the item biases per sample.
    pub bias_regularization: f32,
    /// L2 on E and β' per batch.
    pub content_regularization: f32,
    #[serde(rename = "batch_size")]
    pub batch: usize,
    /// Added to the bias of items without training interactions.
    pub cold_boost: f32,
    /// The protocol's seed.
    #[serde(skip)]
    pub seed: u64,
}

/// Adam on mini-batches, as Cornac's VBPR. A narrow, regularised content
/// projection: on MovieLens 100K with MiniLM title vectors, 32 content
/// factors without L2 on E cost 0.06 warm Recall@20 (benches/multimodal.sh).
impl Default for VbprParams {
    fn default() -> VbprParams {
        VbprParams {
            factors: 32,
            content_factors: 8,
            epochs: 50,
            learning_rate: 0.005,
            regularization: 0.02,
            bias_regularization: 0.01,
            content_regularization: 0.02,
            batch: 256,
            cold_boost: 0.0,
            seed: 42,
        }
    }
}

pub struct Vbpr;

impl Algo for Vbpr {
    type Params = VbprParams;
    const NAME: &'static str = "vbpr";
    const SUMMARY: &'static str = "BPR whose item score adds a learned projection of the item's content vector";
    const PARAMS: &'static [Param] = &[
        Param { key: "factors", rule: FACTORS, meaning: "size of γ, the collaborative factors" },
        Param { key: "content_factors", rule: FACTORS, meaning: "size of θ, E's output" },
        Param { key: "iterations", rule: ITERATIONS, meaning: "epochs" },
        Param { key: "batch_size", rule: BATCH, meaning: "mini-batch size" },
        Param { key: "learning_rate", rule: LEARNING_RATE, meaning: "Adam step" },
        Param { key: "regularization", rule: Rule::NonNegative, meaning: "L2 on γ and θ" },
        Param { key: "bias_regularization", rule: Rule::NonNegative, meaning: "L2 on the item biases" },
        Param { key: "content_regularization", rule: Rule::NonNegative, meaning: "L2 on E and β'" },
        Param {
            key: "cold_boost",
            rule: Rule::Finite,
            meaning: "added to the score of items without interactions: more (or less) exposure for new items",
        },
    ];
    const NEEDS: Needs = Needs { features: true, ..Needs::NONE };

    fn memory(p: &VbprParams, s: &Shape) -> (u64, &'static str) {
        let f = p.factors as u64;
        let (users, items, d, k) = (s.users as u64, s.items as u64, s.feature_dims as u64, p.content_factors as u64);
        // Features, projection with Adam state, per-item content factors.
        let extra = items * d * 4 + d * (k + 1) * 4 * 4 + (users + items) * (f + k) * 4 * 4;
        (factor_model(s, f) + extra, "lower \"content_factors\" in params")
    }

    fn fit(p: &VbprParams, cx: &mut Context<'_>) -> Result<()> {
        let features = cx.features(Self::NAME)?;
        let p = VbprParams { seed: cx.seed, ..p.clone() };
        let m = train(cx.train, features, &p, cx.pool, cx.on_iteration)?;
        cx.model.user_factors = m.users;
        cx.model.item_factors = m.items;
        cx.model.item_bias = m.item_bias;
        cx.model.content =
            Some(ContentMap { dims: features.ncols(), projection: Some(m.projection), bias: m.cold_bias });
        Ok(())
    }
}

/// Trained VBPR in factor form: users × (k + k2 + 1), items × (k + k2 + 1),
/// and the item biases.
pub struct Fitted {
    pub users: Array2<f32>,
    pub items: Array2<f32>,
    pub item_bias: Vec<f32>,
    /// F × (k + k2 + 1): [0 | E | β'], a content vector's item factors.
    pub projection: Array2<f32>,
    /// The bias of items without interactions.
    pub cold_bias: f32,
}

/// Gradients of the rows a batch touches, summed per row.
struct RowGrads {
    width: usize,
    slot: HashMap<u32, usize>,
    rows: Vec<u32>,
    g: Vec<f32>,
}

impl RowGrads {
    fn new(width: usize) -> RowGrads {
        RowGrads { width, slot: HashMap::new(), rows: Vec::new(), g: Vec::new() }
    }

    fn clear(&mut self) {
        self.slot.clear();
        self.rows.clear();
        self.g.clear();
    }

    fn row(&mut self, r: u32) -> &mut [f32] {
        let w = self.width;
        let k = *self.slot.entry(r).or_insert_with(|| {
            self.rows.push(r);
            self.g.resize(self.g.len() + w, 0.0);
            self.rows.len() - 1
        });
        &mut self.g[k * w..(k + 1) * w]
    }
}

/// Trains VBPR on `ui` (users × items) with `features` (items × F, zeros for
/// items without content). `on_epoch` runs after every epoch and, as a
/// `checkpoint`, every 64 batches.
pub fn train(
    ui: &Csr,
    features: &Array2<f32>,
    p: &VbprParams,
    pool: &rayon::ThreadPool,
    on_epoch: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<Fitted> {
    let (n_users, n_items, dims) = (ui.n_rows, ui.n_cols, features.ncols());
    let (k, k2) = (p.factors, p.content_factors);
    let mut warm = vec![false; n_items];
    ui.indices.iter().for_each(|&i| warm[i as usize] = true);
    let warm_items: Vec<u32> = (0..n_items as u32).filter(|&i| warm[i as usize]).collect();
    // γ_u and θ_u side by side; γ_i and β_i side by side.
    let mut users = init_factors(n_users, k + k2, p.seed, 0.1);
    let mut items = init_factors(n_items, k + 1, p.seed ^ 1, 0.1);
    items.column_mut(k).fill(0.0);
    let content_scale = (2.0 / (dims + k2) as f64).sqrt();
    let mut e = init_factors(dims, k2, p.seed ^ 2, content_scale);
    let mut bp = init_factors(dims, 1, p.seed ^ 3, content_scale);
    let (mut adam_u, mut adam_i) = (Adam::new(&users), Adam::new(&items));
    let (mut adam_e, mut adam_bp) = (Adam::new(&e), Adam::new(&bp));
    let mut pairs: Vec<(u32, u32)> =
        (0..n_users).flat_map(|u| ui.row(u).0.iter().map(move |&i| (u as u32, i))).collect();
    let mut rng = Rng::new(p.seed);
    let (mut gu, mut gi) = (RowGrads::new(k + k2), RowGrads::new(k + 1));
    let mut t = 0i32;
    let start = std::time::Instant::now();
    for epoch in 1..=p.epochs {
        rng.shuffle(&mut pairs);
        let (mut loss, mut samples) = (0f64, 0usize);
        for (nb, chunk) in pairs.chunks(p.batch.max(1)).enumerate() {
            // (u, i, j), j an unseen warm item; users who saw every warm item
            // have no negative and are skipped.
            let batch: Vec<(u32, u32, u32)> = chunk
                .iter()
                .filter_map(|&(u, i)| {
                    let seen = ui.row(u as usize).0;
                    (seen.len() < warm_items.len()).then(|| {
                        loop {
                            let j = warm_items[rng.below(warm_items.len() as u64) as usize];
                            if seen.binary_search(&j).is_err() {
                                break (u, i, j);
                            }
                        }
                    })
                })
                .collect();
            if batch.is_empty() {
                continue;
            }
            let b = batch.len();
            let mut d = Array2::zeros((b, dims));
            for (r, &(_, i, j)) in batch.iter().enumerate() {
                let mut row = d.row_mut(r);
                row.assign(&features.row(i as usize));
                row -= &features.row(j as usize);
            }
            let (proj, visual) = pool.install(|| (d.dot(&e), d.dot(&bp)));
            let mut g_theta = Array2::zeros((b, k2));
            let mut g_visual = Array2::zeros((b, 1));
            gu.clear();
            gi.clear();
            let (reg, breg) = (p.regularization, p.bias_regularization);
            for (r, &(u, i, j)) in batch.iter().enumerate() {
                let (xu, yi, yj) = (users.row(u as usize), items.row(i as usize), items.row(j as usize));
                let mut x = yi[k] - yj[k] + visual[[r, 0]];
                for c in 0..k {
                    x += xu[c] * (yi[c] - yj[c]);
                }
                for c in 0..k2 {
                    x += xu[k + c] * proj[[r, c]];
                }
                // −ln σ(x) and its derivative −σ(−x).
                loss += f64::from((1.0 + (-x).exp()).ln());
                let z = -1.0 / (1.0 + x.exp());
                let (xu, yi, yj) = (xu.to_vec(), yi.to_vec(), yj.to_vec());
                let du = gu.row(u);
                for c in 0..k {
                    du[c] += z * (yi[c] - yj[c]) + reg * xu[c];
                }
                for c in 0..k2 {
                    du[k + c] += z * proj[[r, c]] + reg * xu[k + c];
                    g_theta[[r, c]] = z * xu[k + c];
                }
                g_visual[[r, 0]] = z;
                let di = gi.row(i);
                for c in 0..k {
                    di[c] += z * xu[c] + reg * yi[c];
                }
                di[k] += z + breg * yi[k];
                let dj = gi.row(j);
                for c in 0..k {
                    dj[c] += -z * xu[c] + reg * yj[c];
                }
                dj[k] += -z + breg * yj[k];
            }
            // dE = Dᵀ (z θ_u), dβ' = Dᵀ z, plus L2.
            let (mut de, mut dbp) = pool.install(|| (d.t().dot(&g_theta), d.t().dot(&g_visual)));
            de.scaled_add(p.content_regularization, &e);
            dbp.scaled_add(p.content_regularization, &bp);
            t += 1;
            let lr = p.learning_rate;
            for (s, &u) in gu.rows.iter().enumerate() {
                adam_u.step_row(&mut users, u as usize, &gu.g[s * gu.width..(s + 1) * gu.width], lr, t);
            }
            for (s, &i) in gi.rows.iter().enumerate() {
                adam_i.step_row(&mut items, i as usize, &gi.g[s * gi.width..(s + 1) * gi.width], lr, t);
            }
            pool.install(|| {
                adam_e.step(&mut e, &de, lr, t);
                adam_bp.step(&mut bp, &dbp, lr, t);
            });
            samples += b;
            if nb % 64 == 63 {
                on_epoch(&Progress { iteration: epoch, of: p.epochs, checkpoint: true, ..Progress::default() })?;
            }
        }
        on_epoch(&Progress {
            iteration: epoch,
            of: p.epochs,
            loss: loss / samples.max(1) as f64,
            elapsed: start.elapsed().as_secs_f64(),
            ..Progress::default()
        })?;
    }
    // Fold into factor form.
    let content = pool.install(|| features.dot(&e));
    let visual = features.dot(&bp);
    let mut out_users = Array2::zeros((n_users, k + k2 + 1));
    out_users.slice_mut(ndarray::s![.., ..k + k2]).assign(&users);
    out_users.column_mut(k + k2).fill(1.0);
    let mut out_items = Array2::zeros((n_items, k + k2 + 1));
    out_items.slice_mut(ndarray::s![.., ..k]).assign(&items.slice(ndarray::s![.., ..k]));
    out_items.slice_mut(ndarray::s![.., k..k + k2]).assign(&content);
    out_items.column_mut(k + k2).assign(&visual.index_axis(Axis(1), 0));
    let mut bias: Array1<f32> = items.column(k).to_owned();
    let warm_mean = warm_items.iter().map(|&i| bias[i as usize]).sum::<f32>() / warm_items.len().max(1) as f32;
    let cold_bias = warm_mean + p.cold_boost;
    for i in (0..n_items).filter(|&i| !warm[i]) {
        out_items.slice_mut(ndarray::s![i, ..k]).fill(0.0);
        bias[i] = cold_bias;
    }
    let mut projection = Array2::zeros((dims, k + k2 + 1));
    projection.slice_mut(ndarray::s![.., k..k + k2]).assign(&e);
    projection.column_mut(k + k2).assign(&bp.index_axis(Axis(1), 0));
    Ok(Fitted { users: out_users, items: out_items, item_bias: bias.to_vec(), projection, cold_bias })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Scorer, evaluate};

    /// Dot-product scores plus item bias.
    struct Dot<'a>(&'a Fitted);

    impl Scorer for Dot<'_> {
        fn n_items(&self) -> usize {
            self.0.items.nrows()
        }
        fn score_users(&self, users: &[u32], out: &mut [f32]) {
            let n = self.n_items();
            for (b, &u) in users.iter().enumerate() {
                for i in 0..n {
                    out[b * n + i] = self.0.users.row(u as usize).dot(&self.0.items.row(i)) + self.0.item_bias[i];
                }
            }
        }
    }

    pub(crate) fn params() -> VbprParams {
        VbprParams {
            factors: 8,
            content_factors: 8,
            epochs: 30,
            learning_rate: 0.01,
            regularization: 0.001,
            bias_regularization: 0.001,
            content_regularization: 0.0,
            batch: 64,
            cold_boost: 0.0,
            seed: 3,
        }
    }

    /// 6 topics of 30 items; an item's content is its topic's one-hot vector
    /// plus noise. Users like one topic each. Items 25..30 of each topic have
    /// no training interactions (cold); test items are cold ones of the
    /// user's topic.
    fn fixture() -> (Csr, Csr, Array2<f32>) {
        let (topics, per, users) = (6u32, 30u32, 120u32);
        let mut rng = Rng::new(5);
        let features = Array2::from_shape_fn(((topics * per) as usize, 8), |(i, c)| {
            let topic = i as u32 / per;
            f32::from(u8::from(c as u32 == topic)) + 0.3 * rng.normal() as f32
        });
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for u in 0..users {
            let t = u % topics;
            for _ in 0..6 {
                train.push((u, t * per + rng.below(25) as u32, 1.0));
            }
            test.push((u, t * per + 25 + rng.below(5) as u32, 1.0));
        }
        let n = (topics * per) as usize;
        (
            Csr::from_triples(users as usize, n, train.into_iter()),
            Csr::from_triples(users as usize, n, test.into_iter()),
            features,
        )
    }

    #[test]
    fn content_lets_cold_items_be_ranked() {
        let (train_ui, test_ui, features) = fixture();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let mut losses = Vec::new();
        let m = train(&train_ui, &features, &params(), &pool, &mut |pr| {
            if !pr.checkpoint {
                losses.push(pr.loss);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(losses.len(), 30);
        assert!(losses[29] < losses[0] * 0.7, "loss falls: {losses:?}");
        assert_eq!((m.users.ncols(), m.items.ncols()), (17, 17));
        // Cold items: no collaborative part, the mean warm bias.
        let cold: Vec<u32> = (0..180).filter(|i| i % 30 >= 25).collect();
        assert!(cold.iter().all(|&i| m.items.row(i as usize).iter().take(8).all(|&x| x == 0.0)));
        assert!(cold.windows(2).all(|w| m.item_bias[w[0] as usize] == m.item_bias[w[1] as usize]));
        // Ranked among the 30 cold items, the user's topic has 5: chance
        // puts a test item in the top 5 a sixth of the time.
        let r = pool.install(|| evaluate(&Dot(&m), &train_ui, &test_ui, Some(&cold), &[5]))["recall@5"];
        assert!(r > 0.8, "cold recall@5 {r}");

        // cold_boost lifts every cold item's bias by that much.
        let boosted =
            train(&train_ui, &features, &VbprParams { cold_boost: 2.0, ..params() }, &pool, &mut |_| Ok(())).unwrap();
        let c = cold[0] as usize;
        assert!((boosted.item_bias[c] - m.item_bias[c] - 2.0).abs() < 1e-5);

        // The projection gives a cold item's factors from its content.
        let from_content = features.row(c).dot(&m.projection);
        assert!(from_content.iter().zip(m.items.row(c)).all(|(a, b)| (a - b).abs() < 1e-5));
        assert_eq!(m.cold_bias, m.item_bias[c]);
    }
}
