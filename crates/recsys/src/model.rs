//! A trained recommender in one form for every algorithm: score(u, i) =
//! global + user_bias[u] + item_bias[i] + user_factors[u] · item_factors[i]
//! (popularity is item_bias alone; MF uses all four terms), plus, for the
//! item-item models (`ease`, `item_knn`), Σ over the user's items j of
//! weights[j, i]. With it: scoring, top-k with seen items excluded, similar
//! items, a new user from a few items, and a compact byte form stored in the
//! database.

use ndarray::{Array2, ArrayView1};

use super::codec::{Reader, Writer, corrupt, unknown_format};
use super::data::Csr;
use super::metrics::Scorer;
use super::registry::Algorithm;
use super::topk::{TopK, top_k};
use pgrec_base::error::{Error, ErrorKind, Result};

#[derive(Clone, Debug)]
pub struct Model {
    pub algorithm: Algorithm,
    pub user_ids: Vec<i64>,
    pub item_ids: Vec<i64>,
    /// n_users × f and n_items × f (f = 0 for popularity).
    pub user_factors: Array2<f32>,
    pub item_factors: Array2<f32>,
    /// Empty, or one per user / item.
    pub user_bias: Vec<f32>,
    pub item_bias: Vec<f32>,
    pub global: f32,
    /// Every interaction of each user (training and test), for exclude_seen.
    pub seen: Csr,
    /// Items by interaction count, most first: the fallback for unknown users.
    pub popular: Vec<u32>,
    /// ALS regularization and confidence scale, for folding in new users.
    pub regularization: f32,
    pub alpha: f32,
    /// Content models: how a new item's factors follow from its content
    /// vector, so items can join without training (`add_items`).
    pub content: Option<ContentMap>,
    /// Item-item models: row j holds what an interaction with item j adds to
    /// each item's score (n_items × n_items, sparse). A user's history is
    /// their row of `seen`.
    pub weights: Option<Csr>,
}

/// A content model's map from an item's content vector f to its factors and
/// bias: f · `projection` (vbpr: [0 | E | β']), or f / |f| without one
/// (content_knn); the bias of an item without interactions.
#[derive(Clone, Debug, PartialEq)]
pub struct ContentMap {
    pub dims: usize,
    pub projection: Option<Array2<f32>>,
    pub bias: f32,
}

impl Model {
    pub fn factors(&self) -> usize {
        self.item_factors.ncols()
    }

    /// Fails if training diverged: a factor, bias or the global mean is not
    /// a finite number (the model would recommend nothing, and its embeddings
    /// could not be stored).
    pub fn check_finite(&self) -> Result<()> {
        let bad = |v: &[f32]| v.iter().any(|x| !x.is_finite());
        let factors = |a: &Array2<f32>| a.iter().any(|x| !x.is_finite());
        if factors(&self.user_factors)
            || factors(&self.item_factors)
            || bad(&self.user_bias)
            || bad(&self.item_bias)
            || !self.global.is_finite()
            || self.weights.as_ref().is_some_and(|w| bad(&w.data))
        {
            return Err(super::registry::diverged(self.algorithm, "the trained factors are not finite numbers"));
        }
        Ok(())
    }

    pub fn n_users(&self) -> usize {
        self.user_ids.len()
    }

    pub fn n_items(&self) -> usize {
        self.item_ids.len()
    }

    /// Scores of every item for a user vector (and that user's bias).
    pub fn score_vector(&self, v: ArrayView1<f32>, user_bias: f32, out: &mut [f32]) {
        let base = self.global + user_bias;
        for (i, o) in out.iter_mut().enumerate() {
            let b = self.item_bias.get(i).copied().unwrap_or(0.0);
            *o = base + b;
        }
        if self.factors() > 0 {
            let s = self.item_factors.dot(&v);
            out.iter_mut().zip(s.iter()).for_each(|(o, x)| *o += x);
        }
    }

    /// The score of one (user, item) pair, as `score_user` computes it.
    pub fn predict(&self, u: usize, i: usize) -> f32 {
        let ub = self.user_bias.get(u).copied().unwrap_or(0.0);
        let ib = self.item_bias.get(i).copied().unwrap_or(0.0);
        let dot = if self.factors() > 0 { self.user_factors.row(u).dot(&self.item_factors.row(i)) } else { 0.0 };
        self.global + ub + ib + dot
    }

    pub fn score_user(&self, u: u32, out: &mut [f32]) {
        if let Some(w) = &self.weights {
            let history = if (u as usize) < self.seen.n_rows { self.seen.row(u as usize).0 } else { &[] };
            return self.score_history(w, history, out);
        }
        let ub = self.user_bias.get(u as usize).copied().unwrap_or(0.0);
        self.score_vector(self.user_factors.row(u as usize), ub, out);
    }

    /// Item-item scores of someone who interacted with `history`.
    fn score_history(&self, w: &Csr, history: &[u32], out: &mut [f32]) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.global + self.item_bias.get(i).copied().unwrap_or(0.0);
        }
        for &j in history {
            let (cols, vals) = w.row(j as usize);
            for (&i, &v) in cols.iter().zip(vals) {
                out[i as usize] += v;
            }
        }
    }

    /// Scores for someone who liked `items` (not a known user): the item-item
    /// weights summed, or a user vector from the algorithm's fold-in. False,
    /// with `out` untouched, for a model that cannot (popularity).
    pub fn score_liked(&self, items: &[u32], out: &mut [f32]) -> bool {
        if let Some(w) = &self.weights {
            self.score_history(w, items, out);
            return true;
        }
        if self.factors() == 0 || items.is_empty() {
            return false;
        }
        let v = self.fold_in(items);
        self.score_vector(ArrayView1::from(&v[..]), 0.0, out);
        true
    }

    /// The top `k` items for user `u`: unseen ones if `exclude_seen`, among
    /// `pool` if given.
    pub fn recommend(&self, u: u32, k: usize, exclude_seen: bool, pool: Option<&[u32]>) -> Vec<(u32, f32)> {
        let mut s = vec![0f32; self.n_items()];
        self.score_user(u, &mut s);
        if exclude_seen && (u as usize) < self.seen.n_rows {
            for &i in self.seen.row(u as usize).0 {
                s[i as usize] = f32::NEG_INFINITY;
            }
        }
        top_k(&s, k, pool).into_iter().map(|i| (i, s[i as usize])).collect()
    }

    /// `recommend` for many users at once: scores are computed a batch of users
    /// at a time as one matrix product, batches in parallel (rayon).
    pub fn recommend_many(
        &self,
        users: &[u32],
        k: usize,
        exclude_seen: bool,
        pool: Option<&[u32]>,
    ) -> Vec<Vec<(u32, f32)>> {
        use rayon::prelude::*;
        let n = self.n_items();
        if pool.is_some() || self.weights.is_some() {
            return users.par_iter().map(|&u| self.recommend(u, k, exclude_seen, pool)).collect();
        }
        // Users in batches of USERS, items in blocks of ITEMS: one block of
        // scores (USERS × ITEMS floats, 1 MB; 1.5 s for all amazon-book users against 2.4 s with 64 whole-catalogue rows) is written by the matrix product
        // and read by top-k while still in cache, and each packed block of
        // item factors serves USERS users.
        const USERS: usize = 512;
        const ITEMS: usize = 512;
        users
            .par_chunks(USERS)
            .flat_map_iter(|batch| {
                let idx: Vec<usize> = batch.iter().map(|&u| u as usize).collect();
                let us = self.user_factors.select(ndarray::Axis(0), &idx);
                let mut tops: Vec<TopK> = batch.iter().map(|_| TopK::new(k)).collect();
                let mut s = vec![0f32; batch.len() * ITEMS];
                for lo in (0..n).step_by(ITEMS) {
                    let hi = (lo + ITEMS).min(n);
                    let w = hi - lo;
                    let block = &mut s[..batch.len() * w];
                    self.score_block(batch, &us, lo..hi, block);
                    for (b, &u) in batch.iter().enumerate() {
                        let row = &mut block[b * w..(b + 1) * w];
                        if exclude_seen && (u as usize) < self.seen.n_rows {
                            let seen = self.seen.row(u as usize).0;
                            let from = seen.partition_point(|&i| (i as usize) < lo);
                            for &i in seen[from..].iter().take_while(|&&i| (i as usize) < hi) {
                                row[i as usize - lo] = f32::NEG_INFINITY;
                            }
                        }
                        tops[b].push_all(lo as u32, row);
                    }
                }
                tops.into_iter().map(TopK::into_sorted).collect::<Vec<_>>()
            })
            .collect()
    }

    /// Scores of `users` (whose factor rows are `us`) for items `items`, one
    /// row of `items.len()` per user, into `out`.
    fn score_block(&self, users: &[u32], us: &Array2<f32>, items: std::ops::Range<usize>, out: &mut [f32]) {
        let w = items.len();
        for (b, &u) in users.iter().enumerate() {
            let base = self.global + self.user_bias.get(u as usize).copied().unwrap_or(0.0);
            let row = &mut out[b * w..(b + 1) * w];
            if self.item_bias.is_empty() {
                row.fill(base);
            } else {
                row.iter_mut().zip(&self.item_bias[items.clone()]).for_each(|(o, &ib)| *o = base + ib);
            }
        }
        if self.factors() > 0 {
            let ys = self.item_factors.slice(ndarray::s![items, ..]);
            // Accumulate the products straight into `out` (beta = 1 keeps the biases).
            if let Ok(mut view) = ndarray::ArrayViewMut2::from_shape((users.len(), w), out) {
                ndarray::linalg::general_mat_mul(1.0, us, &ys.t(), 1.0, &mut view);
            }
        }
    }

    /// The most popular items, skipping `exclude`, among `pool` if given.
    pub fn popular_items(&self, k: usize, exclude: &[u32], pool: Option<&[u32]>) -> Vec<(u32, f32)> {
        let n = self.popular.len() as f32;
        // Masks, not `contains` per item: a pool can be the whole catalogue.
        let mut allowed = vec![pool.is_none(); self.n_items()];
        pool.into_iter().flatten().for_each(|&i| allowed[i as usize] = true);
        exclude.iter().for_each(|&i| allowed[i as usize] = false);
        self.popular
            .iter()
            .enumerate()
            .filter(|&(_, &i)| allowed[i as usize])
            .take(k)
            .map(|(rank, &i)| (i, 1.0 - rank as f32 / n))
            .collect()
    }

    /// A user vector for someone who liked `items`, as the model's algorithm
    /// computes it (ALS: exactly, as a training step would).
    pub fn fold_in(&self, items: &[u32]) -> Vec<f32> {
        self.algorithm.fold_in(self, items)
    }

    /// The mean of the items' factors.
    pub fn mean_factors(&self, items: &[u32]) -> Vec<f32> {
        let f = self.factors();
        let mut v = vec![0f32; f];
        if f == 0 || items.is_empty() {
            return v;
        }
        for &i in items {
            v.iter_mut().zip(self.item_factors.row(i as usize)).for_each(|(a, b)| *a += b);
        }
        v.iter_mut().for_each(|x| *x /= items.len() as f32);
        v
    }

    /// Items most similar to `item` by cosine of their factors (by their
    /// weight from `item` for an item-item model, by popularity rank for
    /// a model with neither), the item itself excluded.
    pub fn similar_items(&self, item: u32, k: usize, pool: Option<&[u32]>) -> Vec<(u32, f32)> {
        if let Some(w) = &self.weights {
            let mut s = vec![f32::NEG_INFINITY; self.n_items()];
            let (cols, vals) = w.row(item as usize);
            cols.iter().zip(vals).for_each(|(&i, &v)| s[i as usize] = v);
            s[item as usize] = f32::NEG_INFINITY;
            return top_k(&s, k, pool)
                .into_iter()
                .filter(|&i| s[i as usize] > f32::NEG_INFINITY)
                .map(|i| (i, s[i as usize]))
                .collect();
        }
        if self.factors() == 0 {
            return self.popular_items(k, &[item], pool);
        }
        let q = self.item_factors.row(item as usize);
        let qn = q.dot(&q).sqrt().max(f32::MIN_POSITIVE);
        let mut s: Vec<f32> = self
            .item_factors
            .outer_iter()
            .map(|r| r.dot(&q) / (r.dot(&r).sqrt().max(f32::MIN_POSITIVE) * qn))
            .collect();
        s[item as usize] = f32::NEG_INFINITY;
        top_k(&s, k, pool).into_iter().map(|i| (i, s[i as usize])).collect()
    }

    /// Adds the items among `ids` (one content vector per row of `features`)
    /// that the model does not have, with factors from their content alone;
    /// returns how many were added. Only content models can.
    pub fn add_items(&mut self, ids: &[i64], features: &Array2<f32>) -> Result<usize> {
        let map = self.content.as_ref().ok_or_else(|| {
            let (article, name) = (self.algorithm.article(), self.algorithm.name());
            let content = Algorithm::names_where(|a| a.needs().features);
            Error::new(ErrorKind::FeatureNotSupported, format!("{article} {name} model cannot add items from content"))
                .with_hint(format!("only {content} models learn from item content; train one of those"))
        })?;
        if features.ncols() != map.dims {
            return Err(Error::new(
                ErrorKind::DataException,
                format!(
                    "the item features have {} dimensions, the model was trained on {}",
                    features.ncols(),
                    map.dims
                ),
            )
            .with_hint("pass the same embedding columns, in the same order, as item_features at training"));
        }
        let known: std::collections::HashSet<i64> = self.item_ids.iter().copied().collect();
        let mut fresh = std::collections::HashSet::new();
        let rows: Vec<usize> = (0..ids.len()).filter(|&k| !known.contains(&ids[k]) && fresh.insert(ids[k])).collect();
        if rows.is_empty() {
            return Ok(0);
        }
        let f = features.select(ndarray::Axis(0), &rows);
        let factors = match &map.projection {
            Some(p) => f.dot(p),
            None => super::content::normalized(&f),
        };
        let mut all = Array2::zeros((self.n_items() + rows.len(), self.factors()));
        all.slice_mut(ndarray::s![..self.n_items(), ..]).assign(&self.item_factors);
        all.slice_mut(ndarray::s![self.n_items().., ..]).assign(&factors);
        self.item_factors = all;
        if !self.item_bias.is_empty() {
            self.item_bias.extend(std::iter::repeat_n(map.bias, rows.len()));
        }
        self.item_ids.extend(rows.iter().map(|&k| ids[k]));
        self.seen.n_cols = self.item_ids.len();
        Ok(rows.len())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        w.bytes(MAGIC);
        w.u32(FORMAT);
        w.str(self.algorithm.name());
        w.i64s(&self.user_ids);
        w.i64s(&self.item_ids);
        w.u32(self.factors() as u32);
        w.f32s(self.user_factors.as_slice().unwrap_or(&[]));
        w.f32s(self.item_factors.as_slice().unwrap_or(&[]));
        w.f32s(&self.user_bias);
        w.f32s(&self.item_bias);
        w.f32s(&[self.global, self.regularization, self.alpha]);
        w.u32s(&self.seen.indptr.iter().map(|&x| x as u32).collect::<Vec<_>>());
        w.u32s(&self.seen.indices);
        w.u32s(&self.popular);
        // Format 2: the content map, if any.
        match &self.content {
            None => w.u32(0),
            Some(c) => {
                w.u32(1);
                w.u32(c.dims as u32);
                let p = c.projection.as_ref();
                w.u32(p.map_or(0, |p| p.ncols() as u32));
                w.f32s(p.and_then(|p| p.as_slice()).unwrap_or(&[]));
                w.f32s(&[c.bias]);
                // Was the item_features text (format 2 as first released);
                // never read back: serving does not run stored SQL text.
                w.str("");
            }
        }
        // Format 3: the item-item weights, if any.
        match &self.weights {
            None => w.u32(0),
            Some(c) => {
                w.u32(1);
                w.u32s(&c.indptr.iter().map(|&x| x as u32).collect::<Vec<_>>());
                w.u32s(&c.indices);
                w.f32s(&c.data);
            }
        }
        w.0
    }

    pub fn from_bytes(b: &[u8]) -> Result<Model> {
        let mut r = Reader::new(b);
        if r.take(MAGIC.len())? != MAGIC {
            return Err(corrupt("wrong magic"));
        }
        let format = r.u32()?;
        if format > FORMAT {
            return Err(unknown_format("model", format, FORMAT));
        }
        if format == 0 {
            return Err(corrupt("format 0"));
        }
        let algorithm = Algorithm::parse(&r.str()?).map_err(|_| corrupt("unknown algorithm"))?;
        let user_ids = r.i64s()?;
        let item_ids = r.i64s()?;
        let f = r.u32()? as usize;
        let uf = r.f32s()?;
        let itf = r.f32s()?;
        let user_factors = Array2::from_shape_vec((user_ids.len(), f), uf).map_err(|_| corrupt("user factor shape"))?;
        let item_factors =
            Array2::from_shape_vec((item_ids.len(), f), itf).map_err(|_| corrupt("item factor shape"))?;
        let user_bias = r.f32s()?;
        let item_bias = r.f32s()?;
        let g = r.f32s()?;
        let indptr: Vec<usize> = r.u32s()?.into_iter().map(|x| x as usize).collect();
        let indices = r.u32s()?;
        let popular = r.u32s()?;
        if g.len() != 3 || indptr.len() != user_ids.len() + 1 || indptr.last().copied() != Some(indices.len()) {
            return Err(corrupt("inconsistent sizes"));
        }
        let n_items = item_ids.len();
        if indices.iter().chain(&popular).any(|&i| i as usize >= n_items) {
            return Err(corrupt("item index out of range"));
        }
        let content = if format >= 2 && r.u32()? == 1 {
            let dims = r.u32()? as usize;
            let cols = r.u32()? as usize;
            let values = r.f32s()?;
            let bias = r.f32s()?;
            r.str()?;
            let projection = (cols > 0)
                .then(|| Array2::from_shape_vec((dims, cols), values))
                .transpose()
                .map_err(|_| corrupt("content projection shape"))?;
            if projection.as_ref().map_or(dims, |p| p.ncols()) != f || bias.len() != 1 {
                return Err(corrupt("content map"));
            }
            Some(ContentMap { dims, projection, bias: bias[0] })
        } else {
            None
        };
        let weights = if format >= 3 && r.u32()? == 1 {
            let wptr: Vec<usize> = r.u32s()?.into_iter().map(|x| x as usize).collect();
            let windices = r.u32s()?;
            let wdata = r.f32s()?;
            if wptr.len() != n_items + 1
                || wptr.first() != Some(&0)
                || wptr.windows(2).any(|w| w[0] > w[1])
                || wptr.last().copied() != Some(windices.len())
                || wdata.len() != windices.len()
                || windices.iter().any(|&i| i as usize >= n_items)
            {
                return Err(corrupt("item-item weights"));
            }
            Some(Csr { n_rows: n_items, n_cols: n_items, indptr: wptr, indices: windices, data: wdata })
        } else {
            None
        };
        let seen = Csr { n_rows: user_ids.len(), n_cols: n_items, data: vec![1.0; indices.len()], indptr, indices };
        Ok(Model {
            algorithm,
            user_ids,
            item_ids,
            user_factors,
            item_factors,
            user_bias,
            item_bias,
            global: g[0],
            seen,
            popular,
            regularization: g[1],
            alpha: g[2],
            content,
            weights,
        })
    }
}

impl Scorer for Model {
    fn n_items(&self) -> usize {
        self.item_ids.len()
    }

    fn score_users(&self, users: &[u32], out: &mut [f32]) {
        if self.weights.is_some() {
            let n = self.n_items();
            for (&u, row) in users.iter().zip(out.chunks_exact_mut(n)) {
                self.score_user(u, row);
            }
            return;
        }
        let idx: Vec<usize> = users.iter().map(|&u| u as usize).collect();
        let us = self.user_factors.select(ndarray::Axis(0), &idx);
        self.score_block(users, &us, 0..self.n_items(), out);
    }
}

const MAGIC: &[u8] = b"pgrecmdl";
const FORMAT: u32 = 3;
