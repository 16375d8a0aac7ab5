//! TransR (Lin et al. 2015) as KGAT uses it: each relation r has a projection
//! W_r (d × k) and an embedding e_r (k); a triple (h, r, t) is plausible when
//! h·W_r + e_r ≈ t·W_r. The KG loss pushes a true triple's distance below a
//! corrupted one's (BPR on g = |h·W_r + e_r − t·W_r|²), and the attention of
//! an edge is π(h, r, t) = (t·W_r)ᵀ tanh(h·W_r + e_r), softmaxed over each
//! head's edges.

use ndarray::{Array1, Array2, Axis};
use rayon::prelude::*;

use super::graph::Ckg;

#[derive(Clone, Debug)]
pub struct Relations {
    /// One d × k projection per relation.
    pub w: Vec<Array2<f32>>,
    /// One k-vector per relation, as rows.
    pub e: Array2<f32>,
}

impl Relations {
    pub fn zeros_like(&self) -> Relations {
        Relations { w: self.w.iter().map(|w| Array2::zeros(w.raw_dim())).collect(), e: Array2::zeros(self.e.raw_dim()) }
    }
}

fn softplus(x: f64) -> f64 {
    if x > 30.0 { x } else { x.exp().ln_1p() }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// One relation's share of a TransR batch: its index, the batch rows it
/// holds, their loss, and the gradients of W_r, e_r and the three entity rows.
type RelationPart<'a> = (usize, &'a [usize], f64, Array2<f32>, Array1<f32>, [Array2<f32>; 3]);

/// Mean KG loss of `batch` (head, relation, true tail, corrupted tail) plus
/// `reg` × the mean of ½(|h·W|² + |e_r|² + |t·W|² + |t'·W|²), as in the
/// authors' code. Adds the gradients to `d_ent` (rows of the entity
/// embeddings) and `d_rel`. The batch is worked a relation at a time, as
/// matrix products over that relation's triples, parts in parallel.
pub fn kg_loss(
    ent: &Array2<f32>,
    rel: &Relations,
    batch: &[(u32, u16, u32, u32)],
    reg: f32,
    d_ent: &mut Array2<f32>,
    d_rel: &mut Relations,
) -> f64 {
    let scale = 1.0 / batch.len().max(1) as f32;
    let mut by_relation: Vec<Vec<usize>> = vec![Vec::new(); rel.w.len()];
    for (k, t) in batch.iter().enumerate() {
        by_relation[t.1 as usize].push(k);
    }
    // Parts of at most CHUNK triples, so that one relation holding most of
    // a batch (interactions, on ml-1m-kgat) does not leave the other threads
    // idle; summed below in this order, whatever the threads' timing.
    const CHUNK: usize = 256;
    let groups: Vec<(usize, &[usize])> =
        by_relation.iter().enumerate().flat_map(|(r, g)| g.chunks(CHUNK).map(move |c| (r, c))).collect();
    let parts: Vec<RelationPart<'_>> = groups
        .into_par_iter()
        .map(|(r, g)| {
            let w = &rel.w[r];
            let er = rel.e.row(r);
            let rows = |pick: fn(&(u32, u16, u32, u32)) -> u32| -> Vec<usize> {
                g.iter().map(|&k| pick(&batch[k]) as usize).collect()
            };
            let idx = [rows(|t| t.0), rows(|t| t.2), rows(|t| t.3)];
            let [h, t, n] = [0, 1, 2].map(|k| ent.select(Axis(0), &idx[k]));
            let (ph, pt, pn) = (h.dot(w), t.dot(w), n.dot(w));
            let a = &ph - &pt + er;
            let b = &ph - &pn + er;
            let e2 = er.dot(&er);
            let rs = reg * scale;
            let mut loss = 0.0;
            let mut ga = Array1::<f32>::zeros(g.len());
            for r in 0..g.len() {
                let (pos, neg) = (a.row(r).dot(&a.row(r)) as f64, b.row(r).dot(&b.row(r)) as f64);
                let x = neg - pos;
                let sq = |m: &Array2<f32>| m.row(r).dot(&m.row(r));
                loss += softplus(-x) + reg as f64 * 0.5 * (sq(&ph) + e2 + sq(&pt) + sq(&pn)) as f64;
                // d/dx softplus(−x) = −σ(−x); pos enters x with −1, neg with +1.
                ga[r] = (-sigmoid(-x)) as f32 * scale;
            }
            let gcol = ga.insert_axis(Axis(1));
            let da = &a * &gcol * -2.0;
            let db = &b * &gcol * 2.0;
            let d_ph = &da + &db + &ph * rs;
            let d_pt = &pt * rs - &da;
            let d_pn = &pn * rs - &db;
            let de = (&da + &db).sum_axis(Axis(0)) + &er * (rs * g.len() as f32);
            // p = e·W: dW = eᵀ·dp, de = dp·Wᵀ.
            let dw = h.t().dot(&d_ph) + t.t().dot(&d_pt) + n.t().dot(&d_pn);
            let wt = w.t();
            (r, g, loss, dw, de, [d_ph.dot(&wt), d_pt.dot(&wt), d_pn.dot(&wt)])
        })
        .collect();
    let mut total = 0.0;
    for (r, g, loss, dw, de, d_rows) in parts {
        total += loss;
        d_rel.w[r] += &dw;
        let mut row = d_rel.e.row_mut(r);
        row += &de;
        for (j, &k) in g.iter().enumerate() {
            let (h, _, t, n) = batch[k];
            for (node, d) in [(h, &d_rows[0]), (t, &d_rows[1]), (n, &d_rows[2])] {
                let mut target = d_ent.row_mut(node as usize);
                target += &d.row(j);
            }
        }
    }
    total * scale as f64
}

/// Recomputes the attention weights of every CKG edge from node embeddings
/// `nodes` (entities then users) into `ckg.adjacency.data`: π per edge, then a
/// softmax over each head's edges.
pub fn attention(ckg: &mut Ckg, nodes: &Array2<f32>, rel: &Relations) {
    let heads = ckg.heads();
    let tails = &ckg.adjacency.indices;
    let mut scores = vec![0f32; tails.len()];
    // Per relation, the row of each of its heads in `act` (u32::MAX: none).
    let mut slot = vec![u32::MAX; nodes.nrows()];
    for (r, entries) in ckg.by_relation.iter().enumerate() {
        if entries.is_empty() {
            continue;
        }
        // Every node projected once for this relation, and tanh(h·W_r + e_r)
        // once per head (it does not depend on the tail: per edge, it was
        // most of the attention's time on ml-1m-kgat, whose users have a
        // hundred edges each); then one dot per edge.
        let proj = nodes.dot(&rel.w[r]);
        let er = rel.e.row(r);
        let mut own: Vec<u32> = Vec::new();
        for &k in entries {
            let h = heads[k as usize] as usize;
            if slot[h] == u32::MAX {
                slot[h] = own.len() as u32;
                own.push(h as u32);
            }
        }
        let mut act = Array2::<f32>::zeros((own.len(), proj.ncols()));
        act.axis_iter_mut(Axis(0)).into_par_iter().zip(&own).for_each(|(mut row, &h)| {
            row.iter_mut()
                .zip(proj.row(h as usize).iter().zip(er.iter()))
                .for_each(|(a, (ph, e))| *a = (ph + e).tanh());
        });
        let vals: Vec<f32> = entries
            .par_iter()
            .map(|&k| {
                let (h, t) = (heads[k as usize] as usize, tails[k as usize] as usize);
                proj.row(t).iter().zip(act.row(slot[h] as usize)).map(|(pt, a)| pt * a).sum()
            })
            .collect();
        for &h in &own {
            slot[h as usize] = u32::MAX;
        }
        for (&k, v) in entries.iter().zip(vals) {
            scores[k as usize] = v;
        }
    }
    let adj = &mut ckg.adjacency;
    for r in 0..adj.n_rows {
        let row = &mut scores[adj.indptr[r]..adj.indptr[r + 1]];
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        row.iter_mut().for_each(|v| *v /= sum);
    }
    adj.data = scores;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Csr;
    use pgrec_base::rng::Rng;

    fn random(rows: usize, cols: usize, rng: &mut Rng) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |_| rng.normal() as f32 * 0.5)
    }

    #[test]
    fn kg_loss_gradients_match_finite_differences() {
        let mut rng = Rng::new(3);
        let (d, k) = (4, 3);
        let mut ent = random(5, d, &mut rng);
        let mut rel = Relations { w: vec![random(d, k, &mut rng), random(d, k, &mut rng)], e: random(2, k, &mut rng) };
        let batch = [(0, 0, 1, 2), (3, 1, 4, 0), (1, 1, 2, 1)];
        let reg = 0.1;
        let (mut d_ent, mut d_rel) = (Array2::zeros(ent.raw_dim()), rel.zeros_like());
        kg_loss(&ent, &rel, &batch, reg, &mut d_ent, &mut d_rel);
        let f = |ent: &Array2<f32>, rel: &Relations| {
            let (mut a, mut b) = (Array2::zeros(ent.raw_dim()), rel.zeros_like());
            kg_loss(ent, rel, &batch, reg, &mut a, &mut b)
        };
        let close = |name: &str, an: f32, num: f64| {
            assert!((an as f64 - num).abs() < 1e-3 + 1e-2 * num.abs(), "{name}: analytic {an}, numeric {num}");
        };
        for i in 0..5 {
            for j in 0..d {
                let num = central_difference!(ent[[i, j]], f(&ent, &rel));
                close(&format!("ent[{i},{j}]"), d_ent[[i, j]], num);
            }
        }
        for r in 0..2 {
            for (i, j) in [(0, 0), (3, 2), (1, 1)] {
                let num = central_difference!(rel.w[r][[i, j]], f(&ent, &rel));
                close(&format!("w[{r}][{i},{j}]"), d_rel.w[r][[i, j]], num);
            }
            for j in 0..k {
                let num = central_difference!(rel.e[[r, j]], f(&ent, &rel));
                close(&format!("e[{r},{j}]"), d_rel.e[[r, j]], num);
            }
        }
    }

    #[test]
    fn attention_is_a_softmax_of_transr_scores_per_head() {
        // Users 0, 1 (nodes 3, 4) and items 0, 1 over 3 entities; one KG
        // triple item 0 —(rel 0)→ entity 2.
        let ui = Csr::from_triples(2, 2, [(0, 0, 1.0), (0, 1, 1.0), (1, 1, 1.0)].into_iter());
        let mut ckg = Ckg::new(&ui, &[(0, 0, 2)], &[], 3, 1);
        assert_eq!(ckg.n_relations, 4);
        assert_eq!(ckg.adjacency.nnz(), 8);
        let mut rng = Rng::new(5);
        let nodes = random(5, 4, &mut rng);
        let rel = Relations { w: (0..4).map(|_| random(4, 3, &mut rng)).collect(), e: random(4, 3, &mut rng) };
        attention(&mut ckg, &nodes, &rel);
        let adj = &ckg.adjacency;
        for r in 0..5 {
            let (cols, vals) = adj.row(r);
            if !cols.is_empty() {
                assert!((vals.iter().sum::<f32>() - 1.0).abs() < 1e-6, "row {r} sums to 1");
            }
        }
        // Item 0 (node 0) links to entity 2 (relation 2) and user 0 (node 3,
        // relation 1): weights ∝ exp(π).
        let pi = |h: usize, r: usize, t: usize| {
            let (ph, pt) = (nodes.row(h).dot(&rel.w[r]), nodes.row(t).dot(&rel.w[r]));
            pt.dot(&(&ph + &rel.e.row(r)).mapv(f32::tanh))
        };
        let (cols, vals) = adj.row(0);
        assert_eq!(cols, &[2, 3]);
        let (a, b) = (pi(0, 2, 2).exp(), pi(0, 1, 3).exp());
        assert!((vals[0] - a / (a + b)).abs() < 1e-5 && (vals[1] - b / (a + b)).abs() < 1e-5);
        assert_eq!(ckg.relation[adj.indptr[3]..adj.indptr[4]], [0, 0]);
    }
}
