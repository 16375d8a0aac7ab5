//! BPR (Rendle et al. 2009): for an observed (user, item) and an item the user
//! has not interacted with, push the observed one's score above the other's by
//! SGD on −ln σ(x_ui − x_uj). Items carry a bias. The negative is the
//! highest-scored of `negatives` unseen items drawn at random (dynamic negative
//! sampling, Zhang et al. 2013): on amazon-book, 20 candidates lift Recall@20
//! from 0.084 to 0.146 at equal epochs.
//!
//! An epoch trains each interaction once (nnz triples, as many as uniform
//! sampling over interactions draws, without its repeats). Workers never share
//! a row: users and items are put in a random order and cut into as many
//! blocks as there are workers (users by equal interactions, items by equal
//! count), and an epoch runs in that many stages; in stage s worker w trains
//! the interactions of user block w with item block w + s, drawing negatives
//! from that block too (a uniform draw from a random subset is a uniform
//! draw). Rows are plain memory updated in place, and training is exactly
//! reproducible for a seed and a thread count. (This replaced Hogwild-style
//! updates of shared atomic rows: the row copies in and out of atomics and the
//! cache lines the workers passed between them cost more than the stage
//! barriers, and Recall@20 on amazon-book went from 0.1438 to 0.1453–0.1467.)
//!
//! Scoring the candidates is most of the cost. Each item block carries an
//! int8 copy of its rows (`sgd::Mirror`: one cache line per 64-factor row
//! instead of five, integer dots, all of a sample's candidates in one kernel
//! call) that its holder writes through on every update; the chosen negative
//! then trains in full precision, with one kernel call for the three rows
//! (`kernels::sgd_pair`). The next users' interactions and rows and the next
//! positive's row are requested ahead; the candidates' are not (`hardest`).
//! On amazon-book an epoch takes 0.118–0.126 s on one thread (0.218 s before
//! blocks) and 0.057–0.064 s on two (plain BPR, one candidate: 0.019–0.020 s,
//! was 0.040 s).
//! (Tried without gain: candidates from a cache-sized window of rows, moved
//! every thousand samples — no faster and 0.015 lower Recall@20, the window's
//! hardest items pushed down over and over; scoring 20 candidates once for two
//! samples — no better than 10 fresh ones; a per-user bitmap for "seen?"; four
//! times as many blocks as workers, so that a block's rows stay in L2 — no
//! faster, and lower recall at equal epochs; writing through only the
//! negative's row — Recall@20 0.120.)

use ndarray::Array2;
use rayon::prelude::*;

use super::data::{Csr, draw_absent};
use super::init::{init_factors, init_factors_with_bias};
use serde::{Deserialize, Serialize};

use super::memory::{Shape, factor_model};
use super::params::{FACTORS, ITERATIONS, LEARNING_RATE, Param, Rule};
use super::progress::Progress;
use super::registry::{Algo, Context};
use super::sgd::{Mirror, prefetch_range};
use pgrec_base::error::Result;
use pgrec_base::kernels;
use pgrec_base::rng::Rng;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BprParams {
    pub factors: usize,
    pub iterations: usize,
    pub regularization: f32,
    pub learning_rate: f32,
    /// Unseen items drawn per sample; the highest-scored is the negative.
    /// `None`: one per 1,000 items in the catalogue, between 1 and 20 (see
    /// [`BprParams::negatives_for`]).
    pub negatives: Option<usize>,
    /// The protocol's seed.
    #[serde(skip)]
    pub seed: u64,
}

impl Default for BprParams {
    fn default() -> BprParams {
        BprParams { factors: 64, iterations: 80, regularization: 0.05, learning_rate: 0.05, negatives: None, seed: 42 }
    }
}

impl BprParams {
    /// Negative candidates per sample for a catalogue of `n_items`. The
    /// highest-scored of several random unseen items is a hard negative — and in
    /// a small catalogue, often an item the user would like, which training then
    /// pushes down: so few candidates for hundreds of items, 20 for 20,000+.
    pub fn negatives_for(&self, n_items: usize) -> usize {
        self.negatives.unwrap_or((n_items / 1000).clamp(1, 20))
    }
}

pub struct Bpr;

impl Algo for Bpr {
    type Params = BprParams;
    const NAME: &'static str = "bpr";
    const SUMMARY: &'static str = "BPR with dynamic negative sampling and item biases";
    const PARAMS: &'static [Param] = &[
        Param { key: "factors", rule: FACTORS, meaning: "latent dimensions" },
        Param { key: "iterations", rule: ITERATIONS, meaning: "epochs" },
        Param { key: "regularization", rule: Rule::NonNegative, meaning: "L2 weight" },
        Param { key: "learning_rate", rule: LEARNING_RATE, meaning: "SGD step" },
        Param {
            key: "negatives",
            rule: Rule::Int { min: 1, max: 100, note: "" },
            meaning: "unseen items drawn per sample, the highest-scored trained against; by default one per 1,000 items, 1 to 20 (few in a small catalogue, where the hardest is often an item the user would like)",
        },
    ];

    fn memory(p: &BprParams, s: &Shape) -> (u64, &'static str) {
        let f = p.factors as u64;
        // int8 mirrors of the item rows, block copies.
        (factor_model(s, f) + (s.users + s.items) as u64 * f * 4 + s.items as u64 * f, "lower \"factors\" in params")
    }

    fn fit(p: &BprParams, cx: &mut Context<'_>) -> Result<()> {
        let p = BprParams { seed: cx.seed, ..p.clone() };
        let (x, y, b) = train(cx.train, &p, cx.pool, cx.on_iteration)?;
        cx.model.user_factors = x;
        cx.model.item_factors = y;
        cx.model.item_bias = b;
        Ok(())
    }
}

/// Trains user factors, item factors and item biases on `ui`.
pub fn train(
    ui: &Csr,
    p: &BprParams,
    pool: &rayon::ThreadPool,
    on_iteration: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<(Array2<f32>, Array2<f32>, Vec<f32>)> {
    let f = p.factors;
    let (n_users, n_items) = (ui.n_rows, ui.n_cols);
    let negatives = p.negatives_for(n_items).max(1);
    let strata = pool.current_num_threads().min(n_users).min(n_items).max(1);
    let plan = Plan::new(ui, strata, p.seed);
    let x0 = init_factors(n_users, f, p.seed, 0.1);
    // The item bias rides along as one more column of the item factors.
    let y0 = init_factors_with_bias(n_items, f, p.seed ^ 1);
    let mut user_blocks: Vec<Vec<f32>> =
        plan.user_bounds.windows(2).map(|w| gather(&x0, &plan.user_at[w[0]..w[1]])).collect();
    let mut item_blocks: Vec<ItemBlock> = plan
        .item_bounds
        .windows(2)
        .map(|w| {
            let rows = gather(&y0, &plan.item_at[w[0]..w[1]]);
            let len = w[1] - w[0];
            // Candidates are scored from the block's int8 mirror; the chosen
            // negative then trains in full precision.
            let mirror = (negatives > 1).then(|| {
                let mut m = Mirror::new(len, f);
                for (r, row) in rows.chunks_exact(f + 1).enumerate() {
                    m.set(r, &row[..f], row[f]);
                }
                m
            });
            ItemBlock { lo: w[0] as u32, len, rows, mirror }
        })
        .collect();
    let start = std::time::Instant::now();
    for epoch in 1..=p.iterations {
        let (mut loss, mut samples) = (0f64, 0usize);
        for stage in 0..strata {
            // Stage s pairs user block w with item block w + s: every worker
            // owns its rows outright, and in `strata` stages every
            // interaction is visited once.
            let mut items: Vec<&mut ItemBlock> = item_blocks.iter_mut().collect();
            items.rotate_left(stage);
            let parts: Vec<(f64, usize)> = pool.install(|| {
                user_blocks
                    .par_iter_mut()
                    .zip(items.into_par_iter())
                    .enumerate()
                    .map(|(w, (users, items))| {
                        let seed = p.seed ^ (epoch as u64) << 32 ^ (stage as u64) << 16 ^ w as u64;
                        let sweep = Sweep {
                            ui: &plan.ui,
                            first_user: plan.user_bounds[w],
                            f,
                            lr: p.learning_rate,
                            reg: p.regularization,
                            negatives,
                        };
                        sweep.run(users, items, &mut Rng::new(seed))
                    })
                    .collect()
            });
            for (l, n) in parts {
                loss += l;
                samples += n;
            }
        }
        on_iteration(&Progress {
            iteration: epoch,
            of: p.iterations,
            loss: loss / samples.max(1) as f64,
            elapsed: start.elapsed().as_secs_f64(),
            ..Progress::default()
        })?;
    }
    let users: Vec<f32> = user_blocks.concat();
    let items: Vec<f32> = item_blocks.into_iter().flat_map(|b| b.rows).collect();
    let x = scatter(&users, &plan.user_slot, f);
    let all = scatter(&items, &plan.item_slot, f + 1);
    let y = all.slice(ndarray::s![.., ..f]).to_owned();
    let bias = all.column(f).to_vec();
    Ok((x, y, bias))
}

/// Where users and items sit during training: both in a random order
/// ("slots"), users cut into blocks of about equal interactions and items
/// into blocks of equal size, and the interactions renumbered to slots.
struct Plan {
    user_slot: Vec<u32>,
    user_at: Vec<u32>,
    item_slot: Vec<u32>,
    item_at: Vec<u32>,
    user_bounds: Vec<usize>,
    item_bounds: Vec<usize>,
    /// Row = user slot, columns = item slots (sorted).
    ui: Csr,
}

impl Plan {
    fn new(ui: &Csr, strata: usize, seed: u64) -> Plan {
        let mut rng = Rng::new(seed ^ 0xB10C);
        let (user_at, user_slot) = random_order(ui.n_rows, &mut rng);
        let (item_at, item_slot) = random_order(ui.n_cols, &mut rng);
        let mut indptr = Vec::with_capacity(ui.n_rows + 1);
        let mut indices = Vec::with_capacity(ui.nnz());
        indptr.push(0);
        for &u in &user_at {
            let start = indices.len();
            indices.extend(ui.row(u as usize).0.iter().map(|&i| item_slot[i as usize]));
            indices[start..].sort_unstable();
            indptr.push(indices.len());
        }
        let nnz = indices.len().max(1);
        let mut user_bounds: Vec<usize> =
            (0..=strata).map(|b| indptr.partition_point(|&at| at * strata < b * nnz).min(ui.n_rows)).collect();
        user_bounds[0] = 0;
        user_bounds[strata] = ui.n_rows;
        let item_bounds = (0..=strata).map(|b| b * ui.n_cols / strata).collect();
        let data = vec![1.0; indices.len()];
        let ui = Csr { n_rows: ui.n_rows, n_cols: ui.n_cols, indptr, indices, data };
        Plan { user_slot, user_at, item_slot, item_at, user_bounds, item_bounds, ui }
    }
}

/// The rows of `a` listed in `at`, one after another.
fn gather(a: &Array2<f32>, at: &[u32]) -> Vec<f32> {
    at.iter().flat_map(|&r| a.row(r as usize).into_iter().copied()).collect()
}

/// Back from slot order: row r of the result is row `slot[r]` of `rows`.
fn scatter(rows: &[f32], slot: &[u32], cols: usize) -> Array2<f32> {
    Array2::from_shape_fn((slot.len(), cols), |(r, c)| rows[slot[r] as usize * cols + c])
}

/// A random permutation and its inverse.
fn random_order(n: usize, rng: &mut Rng) -> (Vec<u32>, Vec<u32>) {
    let mut at: Vec<u32> = (0..n as u32).collect();
    rng.shuffle(&mut at);
    let mut slot = vec![0u32; n];
    for (s, &x) in at.iter().enumerate() {
        slot[x as usize] = s as u32;
    }
    (at, slot)
}

/// One block of item rows (factors then bias, in slot order from `lo`) and
/// the int8 mirror its candidates are scored from; whoever holds it owns it.
struct ItemBlock {
    lo: u32,
    len: usize,
    rows: Vec<f32>,
    mirror: Option<Mirror>,
}

/// One worker's pass over its user block against one item block.
struct Sweep<'a> {
    ui: &'a Csr,
    first_user: usize,
    f: usize,
    lr: f32,
    reg: f32,
    negatives: usize,
}

impl Sweep<'_> {
    fn run(&self, users: &mut [f32], block: &mut ItemBlock, rng: &mut Rng) -> (f64, usize) {
        let f = self.f;
        let (lo, hi) = (block.lo, block.lo + block.len as u32);
        let mut order: Vec<u32> = (0..(users.len() / f) as u32).collect();
        rng.shuffle(&mut order);
        let mut cand = vec![0u32; self.negatives];
        let mut scores = vec![0f32; self.negatives];
        let mut pos: Vec<u32> = Vec::new();
        let (mut loss, mut n) = (0f64, 0usize);

        for (k, &lu) in order.iter().enumerate() {
            // The next user's factors and items, and the one after's place
            // in the interaction index, are requested ahead: users come in
            // random order, so each is a cache miss otherwise.
            if let Some(&next) = order.get(k + 1) {
                prefetch_range(&users[next as usize * f..(next as usize + 1) * f]);
                let r = self.first_user + next as usize;
                prefetch_range(&self.ui.indices[self.ui.indptr[r]..self.ui.indptr[r + 1]]);
            }
            if let Some(&after) = order.get(k + 2) {
                prefetch_range(&self.ui.indptr[self.first_user + after as usize..][..2]);
            }
            let row = self.ui.row(self.first_user + lu as usize).0;
            // This block's items of the user (item slots, sorted).
            let seen = &row[row.partition_point(|&c| c < lo)..row.partition_point(|&c| c < hi)];
            if seen.is_empty() || seen.len() >= block.len {
                continue;
            }
            let xu = &mut users[lu as usize * f..(lu as usize + 1) * f];
            pos.clear();
            pos.extend(seen.iter().map(|&c| c - lo));
            rng.shuffle(&mut pos);
            let unseen = |c: u32| seen.binary_search(&(c + lo)).is_err();
            let draw = |rng: &mut Rng| draw_absent(seen, lo, block.len, rng) - lo;
            // Candidates are scored against the user as this stage found
            // them: refreshing the query after each of the user's samples
            // cost a quantization per sample for no change in Recall@20
            // (0.1457 either way).
            if let Some(m) = block.mirror.as_mut() {
                m.set_query(xu);
            }
            let mut pick = |rng: &mut Rng, m: &mut Option<Mirror>| match m {
                None => draw(rng),
                Some(m) => hardest(m, rng, &mut cand, &mut scores, unseen).unwrap_or_else(|| draw(rng)),
            };
            let mut j = pick(rng, &mut block.mirror) as usize;
            for s in 0..pos.len() {
                let i = pos[s] as usize;
                if let Some(&next) = pos.get(s + 1) {
                    prefetch_range(&block.rows[next as usize * (f + 1)..(next as usize + 1) * (f + 1)]);
                }
                prefetch_range(&block.rows[j * (f + 1)..(j + 1) * (f + 1)]);
                let Ok([yi, yj]) =
                    block.rows.get_disjoint_mut([i * (f + 1)..(i + 1) * (f + 1), j * (f + 1)..(j + 1) * (f + 1)])
                else {
                    continue;
                };
                let x = yi[f] - yj[f] + kernels::dot(xu, &yi[..f]) - kernels::dot(xu, &yj[..f]);
                // z = σ(−x): the gradient's weight; the loss is −ln σ(x) =
                // max(−x, 0) + ln(1 + e^−|x|), both from one exponential.
                let t = (-x.abs()).exp();
                let z = if x >= 0.0 { t / (1.0 + t) } else { 1.0 / (1.0 + t) };
                loss += f64::from((-x).max(0.0) + (1.0 + t).ln());
                let (lr, reg) = (self.lr, self.reg);
                kernels::sgd_pair(xu, &mut yi[..f], &mut yj[..f], 1.0 - lr * reg, lr * z);
                yi[f] += lr * (z - reg * yi[f]);
                yj[f] += lr * (-z - reg * yj[f]);
                if let Some(m) = block.mirror.as_mut() {
                    m.set(i, &yi[..f], yi[f]);
                    m.set(j, &yj[..f], yj[f]);
                }
                n += 1;
                if s + 1 < pos.len() {
                    j = pick(rng, &mut block.mirror) as usize;
                }
            }
        }
        (loss, n)
    }
}

/// Dynamic negative sampling: of `cand.len()` rows drawn at random (seen ones
/// too), the unseen one the model currently ranks highest, if any is unseen.
/// Two candidates come from each 64-bit draw, each half scaled to the block
/// (Lemire; blocks have fewer than 2³² rows, and the bias is below rows / 2³²).
/// Their rows are not prefetched: the block's int8 rows stay in L2 as a
/// rule, and 40 prefetches a sample (codes and scales) kept the CPU's miss
/// buffers full (one thread: 0.136–0.157 s an epoch with, 0.123–0.136 s
/// without). The leader is found without branching on the scores (a new
/// leader is a coin flip the CPU cannot predict), and whether it was seen is
/// asked of it alone; only when it was (rarely: a user has seen few of a
/// block's items) are the others ranked.
fn hardest(
    m: &mut Mirror,
    rng: &mut Rng,
    cand: &mut [u32],
    scores: &mut [f32],
    unseen: impl Fn(u32) -> bool,
) -> Option<u32> {
    let n = m.rows() as u64;
    for pair in cand.chunks_mut(2) {
        let r = rng.next_u64();
        for (slot, half) in pair.iter_mut().zip([r & 0xFFFF_FFFF, r >> 32]) {
            *slot = ((half * n) >> 32) as u32;
        }
    }
    m.score(cand, scores);
    let c = *cand.get(leader(scores))?;
    if unseen(c) {
        return Some(c);
    }
    let mut best = (f32::NEG_INFINITY, None);
    for (&c, &s) in cand.iter().zip(scores.iter()) {
        if s > best.0 && unseen(c) {
            best = (s, Some(c));
        }
    }
    best.1
}

/// The position of the first largest score (0 if there is none): a maximum
/// kept in eight lanes, so that no step waits on the one before it or
/// branches on a comparison, then a search for its first occurrence.
fn leader(scores: &[f32]) -> usize {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = scores.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &s) in lanes.iter_mut().zip(c) {
            *l = if s > *l { s } else { *l };
        }
    }
    for (l, &s) in lanes.iter_mut().zip(tail) {
        *l = if s > *l { s } else { *l };
    }
    let max = lanes.iter().fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    scores.iter().position(|&s| s == max).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr(rows: &[&[u32]], n_cols: usize) -> Csr {
        let triples = rows.iter().enumerate().flat_map(|(u, r)| r.iter().map(move |&i| (u as u32, i, 1.0)));
        Csr::from_triples(rows.len(), n_cols, triples)
    }

    #[test]
    fn plan_renumbers_every_interaction_and_balances_blocks() {
        let rows: Vec<Vec<u32>> = (0..40u32).map(|u| (0..1 + u % 7).map(|k| (u * 3 + k * 5) % 23).collect()).collect();
        let refs: Vec<&[u32]> = rows.iter().map(|r| r.as_slice()).collect();
        let ui = csr(&refs, 23);
        let plan = Plan::new(&ui, 3, 7);
        assert_eq!((plan.item_bounds.clone(), plan.user_bounds[0], plan.user_bounds[3]), (vec![0, 7, 15, 23], 0, 40));
        for u in 0..40 {
            let slot = plan.user_slot[u] as usize;
            assert_eq!(plan.user_at[slot] as usize, u);
            let mut want: Vec<u32> = ui.row(u).0.iter().map(|&i| plan.item_slot[i as usize]).collect();
            want.sort_unstable();
            assert_eq!(plan.ui.row(slot).0, want.as_slice(), "user {u}");
        }
        for (i, &s) in plan.item_slot.iter().enumerate() {
            assert_eq!(plan.item_at[s as usize] as usize, i);
        }
        // Each user block holds about a third of the interactions.
        for w in plan.user_bounds.windows(2) {
            let nnz = plan.ui.indptr[w[1]] - plan.ui.indptr[w[0]];
            assert!(nnz.abs_diff(ui.nnz() / 3) <= 7, "{nnz} of {}", ui.nnz());
        }
    }

    #[test]
    fn training_is_reproducible_with_several_workers() {
        let rows: Vec<Vec<u32>> =
            (0..60u32).map(|u| (0..8).map(|k| (u % 5) * 10 + (u + k * 3) % 10).collect()).collect();
        let refs: Vec<&[u32]> = rows.iter().map(|r| r.as_slice()).collect();
        let ui = csr(&refs, 50);
        let p = BprParams { factors: 8, iterations: 5, negatives: Some(4), ..BprParams::default() };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let run = || train(&ui, &p, &pool, &mut |_| Ok(())).unwrap();
        let (a, b) = (run(), run());
        assert_eq!((&a.0, &a.1, &a.2), (&b.0, &b.1, &b.2));
        // Every item and user was trained: none keeps its initial row.
        let (x0, y0) = (init_factors(60, 8, p.seed, 0.1), init_factors_with_bias(50, 8, p.seed ^ 1));
        assert!((0..60).all(|u| a.0.row(u) != x0.row(u)));
        assert!((0..50).all(|i| a.1.row(i) != y0.row(i).slice(ndarray::s![..8])));
    }

    #[test]
    fn leader_is_the_first_largest_score() {
        assert_eq!(leader(&[]), 0);
        assert_eq!(leader(&[3.0]), 0);
        for n in 1..=20 {
            for at in 0..n {
                let mut s: Vec<f32> = (0..n).map(|k| (k as f32 * 0.37).sin()).collect();
                s[at] = 5.0;
                assert_eq!(leader(&s), at, "n {n}, at {at}");
                // A later tie does not displace the first.
                s.push(5.0);
                assert_eq!(leader(&s), at);
            }
        }
    }
}
