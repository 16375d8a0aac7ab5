//! Item-based k-nearest neighbours, as `implicit`'s `CosineRecommender` and
//! `BM25Recommender`: each item is its vector over users (the interaction
//! weights, then unit length for `cosine`, or BM25-weighted for `bm25`), two
//! items' similarity is the dot product of their vectors, and each item keeps
//! its `neighbors` most similar other items. A user's score for item i is the
//! sum of i's similarities to the user's items. Sparse throughout: the work is
//! Σ over users of (their items)², not items², so it scales to large
//! catalogues.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::data::Csr;
use super::memory::{Shape, factor_model};
use super::params::{Param, Rule};
use super::progress::Progress;
use super::registry::{Algo, Context};
use pgrec_base::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Similarity {
    Cosine,
    Bm25,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ItemKnnParams {
    pub neighbors: usize,
    pub similarity: Similarity,
    /// BM25's term-frequency saturation and length normalisation.
    pub k1: f32,
    pub b: f32,
}

impl Default for ItemKnnParams {
    fn default() -> ItemKnnParams {
        ItemKnnParams { neighbors: 100, similarity: Similarity::Cosine, k1: 1.2, b: 0.75 }
    }
}

pub struct ItemKnn;

/// Items per unit of work between cancellation checks.
const CHUNK: usize = 4096;

impl Algo for ItemKnn {
    type Params = ItemKnnParams;
    const NAME: &'static str = "item_knn";
    const SUMMARY: &'static str = "item-based nearest neighbours by cosine or BM25 similarity, as implicit's";
    const PARAMS: &'static [Param] = &[
        Param {
            key: "neighbors",
            rule: Rule::Int { min: 1, max: 10_000, note: "" },
            meaning: "most similar other items kept per item",
        },
        Param {
            key: "similarity",
            rule: Rule::Choice(&["cosine", "bm25"]),
            meaning: "`cosine` of the items' interaction vectors, or the dot product of their BM25-weighted vectors (each user's weight damped by how many items they have, each item's by how popular it is)",
        },
        Param { key: "k1", rule: Rule::NonNegative, meaning: "`bm25`: saturation of repeated interactions" },
        Param {
            key: "b",
            rule: Rule::Fraction { note: "" },
            meaning: "`bm25`: how much an item's popularity damps its weights",
        },
    ];
    const LABEL: &'static str = "step";
    const REPORTS_LOSS: bool = false;

    fn memory(p: &ItemKnnParams, s: &Shape) -> (u64, &'static str) {
        // Two weighted copies of the interactions, an accumulator per worker,
        // and the neighbour lists (kept, sorted, stored).
        let nnz = s.interactions as u64;
        let lists = s.items as u64 * p.neighbors.min(s.items) as u64 * 8 * 3;
        (factor_model(s, 0) + nnz * 8 * 2 + s.items as u64 * 8 * 64 + lists, "lower \"neighbors\" in params")
    }

    fn fit(p: &ItemKnnParams, cx: &mut Context<'_>) -> Result<()> {
        let n = cx.train.n_cols;
        let iu = weighted(&cx.train.transpose(), p);
        let ui = iu.transpose();
        let start = std::time::Instant::now();
        let steps = n.div_ceil(CHUNK).max(1);
        let mut rows: Vec<Vec<(u32, f32)>> = Vec::with_capacity(n);
        for (step, lo) in (0..n).step_by(CHUNK).enumerate() {
            let hi = (lo + CHUNK).min(n);
            let part: Vec<Vec<(u32, f32)>> = cx.pool.install(|| {
                (lo..hi)
                    .into_par_iter()
                    .map_init(
                        || (vec![0f32; n], Vec::new()),
                        |(acc, touched), i| neighbors(&iu, &ui, i, p.neighbors, acc, touched),
                    )
                    .collect()
            });
            rows.extend(part);
            let last = step + 1 == steps;
            (cx.on_iteration)(&Progress {
                iteration: step + 1,
                of: steps,
                elapsed: start.elapsed().as_secs_f64(),
                checkpoint: !last,
                ..Progress::default()
            })?;
        }
        cx.model.weights = Some(Csr::from_rows(n, rows.into_iter()));
        Ok(())
    }
}

/// The item × user matrix `iu` weighted as `p` says: rows of unit length for
/// cosine, BM25 as implicit's `bm25_weight` (items are the documents, users
/// the terms) for bm25.
fn weighted(iu: &Csr, p: &ItemKnnParams) -> Csr {
    let mut w = iu.clone();
    match p.similarity {
        Similarity::Cosine => {
            for r in 0..w.n_rows {
                let (lo, hi) = (w.indptr[r], w.indptr[r + 1]);
                let norm = w.data[lo..hi].iter().map(|x| x * x).sum::<f32>().sqrt();
                if norm > 0.0 {
                    w.data[lo..hi].iter_mut().for_each(|x| *x /= norm);
                }
            }
        }
        Similarity::Bm25 => {
            let n = w.n_rows as f64;
            let mut df = vec![0u32; w.n_cols];
            w.indices.iter().for_each(|&u| df[u as usize] += 1);
            let idf: Vec<f64> = df.iter().map(|&d| (n / (1.0 + f64::from(d))).ln()).collect();
            let sums: Vec<f64> = (0..w.n_rows)
                .map(|r| w.data[w.indptr[r]..w.indptr[r + 1]].iter().map(|&x| f64::from(x)).sum())
                .collect();
            let mean = sums.iter().sum::<f64>() / n.max(1.0);
            let (k1, b) = (f64::from(p.k1), f64::from(p.b));
            for (r, sum) in sums.iter().enumerate() {
                let norm = (1.0 - b) + b * sum / mean.max(f64::MIN_POSITIVE);
                for k in w.indptr[r]..w.indptr[r + 1] {
                    let x = f64::from(w.data[k]);
                    w.data[k] = (x * (k1 + 1.0) / (k1 * norm + x) * idf[w.indices[k] as usize]) as f32;
                }
            }
        }
    }
    w
}

/// Item i's `keep` most similar other items, sorted by item: the dot
/// products of its row of `iu` with every other row, through the users
/// (`ui` is `iu` transposed). `acc` is a zeroed accumulator of one slot per
/// item, left zeroed.
fn neighbors(iu: &Csr, ui: &Csr, i: usize, keep: usize, acc: &mut [f32], touched: &mut Vec<u32>) -> Vec<(u32, f32)> {
    let (users, wi) = iu.row(i);
    for (&u, &a) in users.iter().zip(wi) {
        let (items, wu) = ui.row(u as usize);
        for (&j, &b) in items.iter().zip(wu) {
            if acc[j as usize] == 0.0 {
                touched.push(j);
            }
            acc[j as usize] += a * b;
        }
    }
    let mut row: Vec<(u32, f32)> = Vec::with_capacity(touched.len());
    for &j in touched.iter() {
        let s = std::mem::take(&mut acc[j as usize]);
        if j as usize != i && s != 0.0 {
            row.push((j, s));
        }
    }
    touched.clear();
    if row.len() > keep {
        row.select_nth_unstable_by(keep - 1, |x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        row.truncate(keep);
    }
    row.sort_unstable_by_key(|x| x.0);
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ui() -> Csr {
        // Items 0 and 1 share users 0 and 1; item 2 shares user 1 with both;
        // item 3 has user 2 alone.
        Csr::from_triples(
            3,
            4,
            [(0, 0, 1.0), (0, 1, 1.0), (1, 0, 1.0), (1, 1, 1.0), (1, 2, 1.0), (2, 3, 2.0)].into_iter(),
        )
    }

    fn all(p: &ItemKnnParams) -> Vec<Vec<(u32, f32)>> {
        let ui = ui();
        let iu = weighted(&ui.transpose(), p);
        let ut = iu.transpose();
        let mut acc = vec![0f32; 4];
        let mut touched = Vec::new();
        let rows = (0..4).map(|i| neighbors(&iu, &ut, i, p.neighbors, &mut acc, &mut touched)).collect();
        assert!(acc.iter().all(|&x| x == 0.0) && touched.is_empty());
        rows
    }

    #[test]
    fn cosine_neighbours_are_exact() {
        let rows = all(&ItemKnnParams::default());
        let h = 1.0 / 2f32.sqrt();
        // cos(0, 1) = 2 / (√2 √2) = 1; cos(0, 2) = 1 / (√2 · 1).
        assert_eq!(rows[0].iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!((rows[0][0].1 - 1.0).abs() < 1e-6 && rows[0][1].1 == h);
        assert_eq!(rows[2], vec![(0, h), (1, h)]);
        assert!(rows[3].is_empty(), "item 3 shares no user");
        // One neighbour: the most similar.
        let one = all(&ItemKnnParams { neighbors: 1, ..ItemKnnParams::default() });
        assert_eq!(one[0].len(), 1);
        assert_eq!(one[0][0].0, 1);
        // Ties go to the lower item.
        assert_eq!(one[2], vec![(0, h)]);
    }

    #[test]
    fn bm25_weights_as_implicit() {
        let p = ItemKnnParams { similarity: Similarity::Bm25, ..ItemKnnParams::default() };
        let w = weighted(&ui().transpose(), &p);
        // Items are documents: 4 of them, row sums 2, 2, 1, 2 (mean 1.75);
        // user 1 has 3 items: idf ln(4 / 4) = 0; users 0 and 2: ln(4 / 3), ln(4 / 2).
        let bm25 = |x: f64, sum: f64, df: f64| {
            let norm = 0.25 + 0.75 * sum / 1.75;
            x * 2.2 / (1.2 * norm + x) * (4.0 / (1.0 + df)).ln()
        };
        let row = |r: usize| (w.row(r).0.to_vec(), w.row(r).1.iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
        let (cols, vals) = row(0);
        assert_eq!(cols, vec![0, 1]);
        assert!((vals[0] - bm25(1.0, 2.0, 2.0)).abs() < 1e-6 && vals[1].abs() < 1e-9);
        let (cols, vals) = row(3);
        assert_eq!(cols, vec![2]);
        assert!((vals[0] - bm25(2.0, 2.0, 1.0)).abs() < 1e-6);
    }
}
