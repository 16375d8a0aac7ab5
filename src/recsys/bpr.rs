//! BPR (Rendle et al. 2009): for an observed (user, item) and an item the user
//! has not interacted with, push the observed one's score above the other's by
//! SGD on −ln σ(x_ui − x_uj). Items carry a bias. The negative is the
//! highest-scored of `negatives` unseen items drawn at random (dynamic negative
//! sampling, Zhang et al. 2013): on amazon-book, 20 candidates lift Recall@20
//! from 0.086 to 0.143 at equal epochs.
//!
//! An epoch visits every user once in a fresh random order and trains each of
//! its interactions once (nnz triples, as many as uniform sampling over
//! interactions draws, without its repeats; Recall@20 0.145 against 0.143).
//! Workers run Hogwild-style over shared factors (`sgd::Shared`), each over its
//! share of the users with its own random stream, so an epoch is reproducible
//! up to update interleaving (exactly, with one thread).
//!
//! Scoring the candidates is most of the cost: each is a random item row. Each
//! worker scores them from its own int8 copy of the item rows (`sgd::Mirror`:
//! one cache line per 64-factor row instead of five, integer dots, all of a
//! sample's candidates in one kernel call), which follows the worker's own
//! updates at once and the other workers' a few times an epoch; the chosen
//! negative then trains in full precision. (With two workers, copies a whole
//! epoch stale for the other's updates still gave Recall@20 0.1433.) A
//! sample's candidates are drawn and requested before the previous sample
//! trains, and scored after it, so their fetches overlap that work. On
//! amazon-book this took an epoch at 20 candidates from 0.244 s to 0.105 s
//! (plain BPR: 0.070 s to 0.040 s) at the same Recall@20.
//! (Drawing candidates from a cache-sized window of rows instead, moved every
//! thousand samples, was no faster and cost 0.015 Recall@20: the window's
//! hardest items were pushed down over and over. Scoring 20 candidates once
//! for two consecutive samples, the best for one and the runner-up for the
//! other, did no better than 10 fresh ones. A per-user bitmap for "seen?" was
//! no faster than the binary search, which runs only for a candidate that
//! would lead.)

use ndarray::Array2;
use rayon::prelude::*;

use super::data::Csr;
use super::params::Params;
use super::sgd::{Mirror, Shared};
use super::{init_factors, init_factors_with_bias, Progress};
use crate::ann::synth::Rng;
use crate::error::Result;
use crate::kernels;

/// Trains user factors, item factors and item biases on `ui`.
pub fn train(
    ui: &Csr,
    p: &Params,
    pool: &rayon::ThreadPool,
    on_iteration: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<(Array2<f32>, Array2<f32>, Vec<f32>)> {
    let f = p.factors;
    let n_items = ui.n_cols;
    let users = Shared::from_array(&init_factors(ui.n_rows, f, p.seed, 0.1));
    // The item bias rides along as one more column of the item factors.
    let items = Shared::from_array(&init_factors_with_bias(n_items, f, p.seed ^ 1));
    let workers = pool.current_num_threads().max(1);
    let negatives = p.negatives_for(n_items).max(1);
    // Candidates are scored from each worker's int8 mirror of the item rows;
    // the chosen negative then trains in full precision.
    let mut mirrors: Vec<Option<Mirror>> =
        (0..workers).map(|_| (negatives > 1).then(|| Mirror::new(n_items, f))).collect();
    let start = std::time::Instant::now();
    for epoch in 1..=p.iterations {
        let lr = p.learning_rate;
        let reg = p.regularization;
        let mut order: Vec<u32> = (0..ui.n_rows as u32).collect();
        Rng::new(p.seed ^ (epoch as u64) << 32).shuffle(&mut order);
        let chunk = order.len().div_ceil(workers).max(1);
        let (loss_sum, samples) = pool.install(|| {
            order
                .par_chunks(chunk)
                .zip(mirrors.par_iter_mut())
                .enumerate()
                .map(|(w, (users_part, mirror))| {
                    let mut rng = Rng::new(p.seed ^ (epoch as u64) << 20 ^ w as u64);
                    let (mut xu, mut yi, mut yj) = (vec![0f32; f], vec![0f32; f + 1], vec![0f32; f + 1]);
                    let mut cand = vec![0u32; negatives];
                    let mut scores = vec![0f32; negatives];
                    let mut pos: Vec<u32> = Vec::new();
                    let (mut loss, mut n, mut fresh) = (0f64, 0usize, None);
                    for (k, &u) in users_part.iter().enumerate() {
                        if let Some(&next) = users_part.get(k + 1) {
                            users.prefetch(next as usize);
                        }
                        // The mirror follows this worker's updates as they happen
                        // and the others' from the shared rows at the start of
                        // each epoch and after every 4 × items samples here (a
                        // copy costs about what a tenth as many samples do).
                        if let Some(m) = mirror.as_mut() {
                            if fresh.is_none_or(|at| n - at >= 4 * n_items) {
                                m.refresh(&items);
                                fresh = Some(n);
                            }
                        }
                        let u = u as usize;
                        let seen = ui.row(u).0;
                        if seen.is_empty() || seen.len() >= n_items {
                            continue;
                        }
                        users.load(u, &mut xu);
                        pos.clear();
                        pos.extend_from_slice(seen);
                        rng.shuffle(&mut pos);
                        // Candidates for the next sample are drawn (and their rows
                        // requested) before this sample trains, and scored after it,
                        // with the updated user; the chosen negative's row is then
                        // requested while the next candidates are drawn. Each fetch
                        // overlaps other work instead of stalling.
                        let mut pick = |rng: &mut Rng, m: &mut Option<Mirror>, cand: &[u32], xu: &[f32]| match m {
                            None => ui.draw_unseen(u, rng),
                            Some(m) => {
                                hardest(m, cand, xu, &mut scores, seen).unwrap_or_else(|| ui.draw_unseen(u, rng))
                            }
                        };
                        if let Some(m) = mirror.as_ref() {
                            draw_candidates(m, &mut rng, &mut cand);
                        }
                        let mut j = pick(&mut rng, mirror, &cand, &xu) as usize;
                        for (s, &i) in pos.iter().enumerate() {
                            let i = i as usize;
                            items.prefetch(i);
                            items.prefetch(j);
                            let more = s + 1 < pos.len();
                            if let (true, Some(m)) = (more, mirror.as_ref()) {
                                draw_candidates(m, &mut rng, &mut cand);
                            }
                            items.load(i, &mut yi);
                            items.load(j, &mut yj);
                            let x = yi[f] - yj[f] + kernels::dot(&xu, &yi[..f]) - kernels::dot(&xu, &yj[..f]);
                            // z = σ(−x): the gradient's weight; the loss is −ln σ(x).
                            let z = 1.0 / (1.0 + x.exp());
                            loss += f64::from((1.0 + (-x).exp()).ln());
                            for d in 0..f {
                                let (u_d, i_d, j_d) = (xu[d], yi[d], yj[d]);
                                xu[d] += lr * (z * (i_d - j_d) - reg * u_d);
                                yi[d] += lr * (z * u_d - reg * i_d);
                                yj[d] += lr * (-z * u_d - reg * j_d);
                            }
                            yi[f] += lr * (z - reg * yi[f]);
                            yj[f] += lr * (-z - reg * yj[f]);
                            items.store(i, &yi);
                            items.store(j, &yj);
                            if let Some(m) = mirror.as_mut() {
                                m.set(i, &yi[..f], yi[f]);
                                m.set(j, &yj[..f], yj[f]);
                            }
                            n += 1;
                            if more {
                                j = pick(&mut rng, mirror, &cand, &xu) as usize;
                            }
                        }
                        users.store(u, &xu);
                    }
                    (loss, n)
                })
                .reduce(|| (0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
        });
        let loss = loss_sum / samples.max(1) as f64;
        on_iteration(&Progress {
            iteration: epoch,
            of: p.iterations,
            loss,
            elapsed: start.elapsed().as_secs_f64(),
            ..Progress::default()
        })?;
    }
    let x = users.into_array(ui.n_rows);
    let all = items.into_array(n_items);
    let y = all.slice(ndarray::s![.., ..f]).to_owned();
    let bias = all.column(f).to_vec();
    Ok((x, y, bias))
}

/// Fills `cand` with random items (seen ones too) and requests their rows.
fn draw_candidates(m: &Mirror, rng: &mut Rng, cand: &mut [u32]) {
    let n_items = m.rows() as u64;
    for slot in cand.iter_mut() {
        *slot = rng.below(n_items) as u32;
        m.prefetch(*slot as usize);
    }
}

/// Dynamic negative sampling: the unseen candidate the model currently ranks
/// highest, if any is unseen (whether one was seen is asked only when it
/// would lead).
fn hardest(m: &mut Mirror, cand: &[u32], xu: &[f32], scores: &mut [f32], seen: &[u32]) -> Option<u32> {
    m.score(cand, xu, scores);
    let mut best = (f32::NEG_INFINITY, None);
    for (&c, &s) in cand.iter().zip(scores.iter()) {
        if s > best.0 && seen.binary_search(&c).is_err() {
            best = (s, Some(c));
        }
    }
    best.1
}
