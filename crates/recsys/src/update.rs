//! Folding new interactions into a trained model without retraining it
//! (`update_model()`): new users and items join, and every user with new
//! interactions gets factors that account for them; the other users' and the
//! old items' factors stay as trained.
//!
//! - `als`: one ALS step for those rows. New items are solved from their users' factors (one ALS
//!   half-step), then every user with new rows is solved from all their items,
//!   then the new items again from the refreshed users: what an ALS iteration
//!   does for those rows, with the rest held fixed.
//! - `bpr`: a few epochs of BPR's SGD over the new rows only, each against a
//!   uniformly drawn unseen item, moving the users of those rows and the new
//!   items (factors and biases); the trained items stay fixed, so the model's
//!   other users see no change.
//! - `popular`: the counts again, over every interaction the model has seen.
//! - `ease`, `item_knn`: a user's history is their row of interactions, so
//!   the new rows change their recommendations at once; new items have no
//!   learned similarities until retraining (they are never recommended).
//!
//! Other algorithms learn from side data or from the whole graph at once:
//! they are refused, with the hint to retrain.

use ndarray::Array2;
use rayon::prelude::*;

use crate::data::{Csr, Row, intern};
use crate::model::Model;
use pgrec_base::error::{Error, ErrorKind, Result};
use pgrec_base::rng::Rng;

/// How the SGD algorithms fold in: epochs over the new rows, learning rate,
/// L2 weight (bpr's defaults).
#[derive(Clone, Debug)]
pub struct UpdateParams {
    pub epochs: usize,
    pub learning_rate: f32,
    pub regularization: f32,
    pub seed: u64,
}

impl Default for UpdateParams {
    fn default() -> UpdateParams {
        let b = crate::bpr::BprParams::default();
        UpdateParams { epochs: 10, learning_rate: b.learning_rate, regularization: b.regularization, seed: 42 }
    }
}

/// What an update did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Updated {
    /// Rows read (repeated pairs and pairs the model had count).
    pub rows: usize,
    pub new_users: usize,
    pub new_items: usize,
    /// Users whose factors were recomputed (the new ones included).
    pub users_updated: usize,
}

/// The algorithms `update` folds into.
pub const FOLDS_INTO: [&str; 5] = ["als", "bpr", "popular", "ease", "item_knn"];

/// `model` with `rows` folded in. The solves run on `pool` a chunk at a
/// time; `between` runs on the caller's thread after each chunk and SGD
/// epoch (to cancel: return an error).
pub fn update(
    model: &Model,
    rows: &[Row],
    p: &UpdateParams,
    pool: &rayon::ThreadPool,
    between: &mut dyn FnMut() -> Result<()>,
) -> Result<(Model, Updated)> {
    let name = model.algorithm.name();
    if !FOLDS_INTO.contains(&name) {
        return Err(Error::new(
            ErrorKind::FeatureNotSupported,
            format!("{} {name} model cannot take new interactions without retraining", model.algorithm.article()),
        )
        .with_hint(format!(
            "retrain it with train(); update_model() folds new interactions into {} models",
            crate::params::listed(&FOLDS_INTO, "and")
        )));
    }
    rows.iter().try_for_each(Row::check_weight)?;
    let mut m = model.clone();
    let (n_users0, n_items0) = (m.n_users(), m.n_items());
    let mut users: std::collections::HashMap<i64, u32> =
        m.user_ids.iter().enumerate().map(|(k, &u)| (u, k as u32)).collect();
    let mut items: std::collections::HashMap<i64, u32> =
        m.item_ids.iter().enumerate().map(|(k, &i)| (i, k as u32)).collect();
    let mut new_rows: Vec<(u32, u32, f32)> = Vec::with_capacity(rows.len());
    for r in rows {
        let u = intern(&mut users, &mut m.user_ids, r.user);
        let i = intern(&mut items, &mut m.item_ids, r.item);
        new_rows.push((u, i, r.weight));
    }
    let (n_users, n_items) = (m.n_users(), m.n_items());
    let old = &model.seen;
    let seen = Csr::from_triples(
        n_users,
        n_items,
        (0..old.n_rows)
            .flat_map(|u| {
                let (is, ws) = old.row(u);
                is.iter().zip(ws).map(move |(&i, &w)| (u as u32, i, w))
            })
            .chain(new_rows.iter().copied()),
    );
    let counts = crate::popular::counts(&seen);
    let mut touched: Vec<u32> = new_rows.iter().map(|r| r.0).collect();
    touched.sort_unstable();
    touched.dedup();
    let f = m.factors();
    grow(&mut m.user_factors, n_users);
    grow(&mut m.item_factors, n_items);
    let new_items: Vec<u32> = (n_items0 as u32..n_items as u32).collect();
    match name {
        "als" => {
            let by_item = seen.transpose();
            let (alpha, reg) = (m.alpha, m.regularization);
            solve_rows(&mut m.item_factors, &m.user_factors, &by_item, &new_items, (alpha, reg), pool, between)?;
            solve_rows(&mut m.user_factors, &m.item_factors, &seen, &touched, (alpha, reg), pool, between)?;
            solve_rows(&mut m.item_factors, &m.user_factors, &by_item, &new_items, (alpha, reg), pool, between)?;
        }
        "bpr" => {
            if !m.item_bias.is_empty() {
                // A new item starts at the lowest trained bias: unknown, it
                // ranks below what users chose until its rows lift it.
                let low = m.item_bias.iter().copied().fold(f32::INFINITY, f32::min);
                m.item_bias.resize(n_items, if low.is_finite() { low } else { 0.0 });
            }
            let mut rng = Rng::new(p.seed);
            for &i in &new_items {
                for v in m.item_factors.row_mut(i as usize) {
                    *v = (rng.normal() * 0.01) as f32;
                }
            }
            // New users start from the mean of their items (trained ones
            // first, as bpr's fold-in does for a user named by items).
            for &u in touched.iter().filter(|&&u| u as usize >= n_users0) {
                let mine: Vec<u32> = seen.row(u as usize).0.to_vec();
                let v = m.mean_factors(&mine);
                m.user_factors.row_mut(u as usize).assign(&ndarray::ArrayView1::from(&v[..f.min(v.len())]));
            }
            sgd(&mut m, &seen, &new_rows, n_items0, p, &mut rng, between)?;
        }
        "popular" => m.item_bias = crate::popular::scores(&counts),
        _ => {
            // Item-item: the similarities gain empty rows and columns.
            if let Some(w) = m.weights.as_mut() {
                let last = w.indptr.last().copied().unwrap_or(0);
                w.indptr.resize(n_items + 1, last);
                w.n_rows = n_items;
                w.n_cols = n_items;
            }
            if !m.item_bias.is_empty() {
                m.item_bias.resize(n_items, 0.0);
            }
        }
    }
    if !m.user_bias.is_empty() {
        m.user_bias.resize(n_users, 0.0);
    }
    m.popular = crate::popular::by_count(&counts);
    m.seen = seen;
    m.check_finite()?;
    let done = Updated {
        rows: rows.len(),
        new_users: n_users - n_users0,
        new_items: n_items - n_items0,
        users_updated: if name == "popular" { 0 } else { touched.len() },
    };
    Ok((m, done))
}

/// `a` with zero rows added up to `rows`.
fn grow(a: &mut Array2<f32>, rows: usize) {
    if a.nrows() < rows {
        let mut b = Array2::zeros((rows, a.ncols()));
        b.slice_mut(ndarray::s![..a.nrows(), ..]).assign(a);
        *a = b;
    }
}

/// ALS's solve for rows `which` of `x` from the fixed factors `y` of their
/// interactions in `r` (x's rows × y's rows), confidence 1 + alpha·w:
/// (YᵀY + Σ (c − 1) y yᵀ + λI) x = Σ c y, by training's own conjugate
/// gradient (`als::solve_row`) from the row's current value, for
/// [`CG_STEPS`] steps. (Forming and factoring each row's matrix instead took
/// 1.9 s for amazon-book's 35k users against 3.1 s for the whole retrain.)
fn solve_rows(
    x: &mut Array2<f32>,
    y: &Array2<f32>,
    r: &Csr,
    which: &[u32],
    (alpha, reg): (f32, f32),
    pool: &rayon::ThreadPool,
    between: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let f = y.ncols();
    if f == 0 || which.is_empty() {
        return Ok(());
    }
    let (yty, y) = pool.install(|| (crate::als::gram(y, reg), y.as_standard_layout().into_owned()));
    let (yty, y) = (yty.as_slice().unwrap_or(&[]), y.as_slice().unwrap_or(&[]));
    for chunk in which.chunks(4096) {
        let solved: Vec<(u32, Vec<f32>)> = pool.install(|| {
            chunk
                .par_iter()
                .map_init(
                    || crate::als::Scratch::new(f),
                    |s, &k| {
                        let (is, ws) = if (k as usize) < r.n_rows { r.row(k as usize) } else { (&[][..], &[][..]) };
                        let mut v = x.row(k as usize).to_vec();
                        crate::als::solve_row(&mut v, y, yty, is, ws, alpha, CG_STEPS, s);
                        (k, v)
                    },
                )
                .collect()
        });
        for (k, v) in solved {
            x.row_mut(k as usize).assign(&ndarray::ArrayView1::from(&v[..]));
        }
        between()?;
    }
    Ok(())
}

/// Conjugate-gradient steps per solved row: training takes 3 per iteration
/// from the last; a row folded in may start from zero, and 16 steps bring a
/// 64-wide system to where a direct solve is (within 1e-3 in the tests).
pub const CG_STEPS: usize = 16;

/// BPR's SGD over `rows` for `p.epochs` epochs: the user's factors always,
/// an item's factors and bias only if it is new (index ≥ `first_new`).
fn sgd(
    m: &mut Model,
    seen: &Csr,
    rows: &[(u32, u32, f32)],
    first_new: usize,
    p: &UpdateParams,
    rng: &mut Rng,
    between: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let f = m.factors();
    let n_items = seen.n_cols;
    if rows.is_empty() || n_items < 2 {
        return Ok(());
    }
    let (lr, reg) = (p.learning_rate, p.regularization);
    let has_bias = m.item_bias.len() == n_items;
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut xu = vec![0f32; f];
    for _ in 0..p.epochs {
        rng.shuffle(&mut order);
        for &k in &order {
            let (u, i, _) = rows[k];
            let j = seen.draw_unseen(u as usize, rng);
            let bias = |m: &Model, t: u32| if has_bias { m.item_bias[t as usize] } else { 0.0 };
            xu.copy_from_slice(m.user_factors.row(u as usize).as_slice().unwrap_or(&[]));
            let (yi, yj) = (m.item_factors.row(i as usize), m.item_factors.row(j as usize));
            let x = bias(m, i) - bias(m, j) + (0..f).map(|d| xu[d] * (yi[d] - yj[d])).sum::<f32>();
            // d/dθ of ln σ(x): σ(−x).
            let g = 1.0 / (1.0 + x.exp());
            let (di, dj): (Vec<f32>, Vec<f32>) = (yi.to_vec(), yj.to_vec());
            for d in 0..f {
                m.user_factors[[u as usize, d]] += lr * (g * (di[d] - dj[d]) - reg * xu[d]);
            }
            if i as usize >= first_new {
                for d in 0..f {
                    m.item_factors[[i as usize, d]] += lr * (g * xu[d] - reg * di[d]);
                }
                if has_bias {
                    m.item_bias[i as usize] += lr * (g - reg * m.item_bias[i as usize]);
                }
            }
            if j as usize >= first_new {
                for d in 0..f {
                    m.item_factors[[j as usize, d]] += lr * (-g * xu[d] - reg * dj[d]);
                }
                if has_bias {
                    m.item_bias[j as usize] += lr * (-g - reg * m.item_bias[j as usize]);
                }
            }
        }
        between()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dataset, fit_json};

    const GROUPS: i64 = 8;

    /// 400 users (group u % 8) with 20 of their group's 40 items each; the
    /// rows of users 0–39 and of items 300–319 come later, with a tenth of
    /// the rows of users 40–199; users 200–399 have no new rows (nor any of
    /// the new items): (trained model, later rows).
    fn base(algorithm: &str, json: &str) -> (Model, Vec<Row>) {
        let mut rng = Rng::new(11);
        let (mut now, mut later) = (Vec::new(), Vec::new());
        for u in 0..400i64 {
            let mut mine = std::collections::HashSet::new();
            while mine.len() < 20 {
                mine.insert((rng.below(40) as i64) * GROUPS + u % GROUPS);
            }
            let mut mine: Vec<i64> = mine.into_iter().collect();
            mine.sort_unstable();
            for item in mine {
                let r = Row { user: u, item, weight: 1.0, ts: None };
                if u >= 200 && item >= 300 {
                    continue;
                }
                if u < 40 || item >= 300 || (u < 200 && rng.uniform() < 0.1) { later.push(r) } else { now.push(r) }
            }
        }
        let ds = Dataset::from_rows(&now).unwrap();
        let json = json.replace('}', r#", "test_fraction": 0}"#).replace("{, ", "{");
        (fit_json(&ds, algorithm, &json, 2).unwrap().model, later)
    }

    fn run(m: &Model, rows: &[Row], p: &UpdateParams) -> Result<(Model, Updated)> {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        update(m, rows, p, &pool, &mut || Ok(()))
    }

    fn index(ids: &[i64], id: i64) -> usize {
        ids.iter().position(|&x| x == id).unwrap()
    }

    /// Share of new users' top 10 in their own group, and how much higher a
    /// new item scores for its group's users than for the others, on average.
    fn quality(m: &Model) -> (f64, f32) {
        let (mut own, mut all) = (0usize, 0usize);
        for u in 0..40i64 {
            for (i, _) in m.recommend(index(&m.user_ids, u) as u32, 10, true, None) {
                own += usize::from(m.item_ids[i as usize] % GROUPS == u % GROUPS);
                all += 1;
            }
        }
        let mut gap = 0f32;
        let new: Vec<usize> = (0..m.n_items()).filter(|&i| m.item_ids[i] >= 300).collect();
        for &i in &new {
            let (mut a, mut na, mut b, mut nb) = (0f32, 0f32, 0f32, 0f32);
            for u in 0..m.n_users() {
                let s = m.user_factors.row(u).dot(&m.item_factors.row(i)) + m.item_bias.get(i).copied().unwrap_or(0.0);
                if m.user_ids[u] % GROUPS == m.item_ids[i] % GROUPS {
                    (a, na) = (a + s, na + 1.0);
                } else {
                    (b, nb) = (b + s, nb + 1.0);
                }
            }
            gap += a / na - b / nb;
        }
        (own as f64 / all as f64, gap / new.len() as f32)
    }

    /// Users without new rows and the trained items keep their factors.
    fn untouched_kept(before: &Model, after: &Model, later: &[Row]) {
        let touched: std::collections::HashSet<i64> = later.iter().map(|r| r.user).collect();
        let mut kept = 0;
        for (k, &u) in before.user_ids.iter().enumerate() {
            if !touched.contains(&u) {
                assert_eq!(before.user_factors.row(k), after.user_factors.row(index(&after.user_ids, u)));
                kept += 1;
            }
        }
        assert!(kept >= 200, "{kept}");
        for (k, &i) in before.item_ids.iter().enumerate() {
            assert_eq!(before.item_factors.row(k), after.item_factors.row(index(&after.item_ids, i)), "item {i}");
        }
    }

    #[test]
    fn als_folds_in_what_a_direct_solve_gives() {
        let (m, later) = base("als", r#"{"factors": 16, "iterations": 10}"#);
        let (u, done) = run(&m, &later, &UpdateParams::default()).unwrap();
        assert_eq!((done.rows, done.new_users, done.new_items), (later.len(), 40, 20));
        assert_eq!((u.n_users(), u.n_items()), (400, 320));
        assert_eq!(u.seen.nnz(), m.seen.nnz() + later.len());
        untouched_kept(&m, &u, &later);
        // Without new items (which change YᵀY when solved after the users),
        // each user with new rows has the factors ALS's own fold-in gives for
        // all their items (weights 1, as here).
        let plain: Vec<Row> = later.iter().filter(|r| r.item < 300).copied().collect();
        let (v, done) = run(&m, &plain, &UpdateParams::default()).unwrap();
        assert_eq!(done.new_items, 0);
        for r in &plain {
            let k = index(&v.user_ids, r.user);
            let want = v.fold_in(v.seen.row(k).0);
            for (a, b) in v.user_factors.row(k).iter().zip(&want) {
                assert!((a - b).abs() <= 1e-3 * (1.0 + b.abs()), "user {}: {a} vs {b}", r.user);
            }
        }
        let (own, gap) = quality(&u);
        assert!(own > 0.9, "new users' top 10 in their group: {own}");
        assert!(gap > 0.2, "new items score higher for their group by {gap}");
    }

    #[test]
    fn bpr_folds_in_by_sgd_on_the_new_rows_only() {
        let (m, later) = base("bpr", r#"{"factors": 16, "iterations": 40}"#);
        let (u, done) = run(&m, &later, &UpdateParams::default()).unwrap();
        assert_eq!((done.new_users, done.new_items), (40, 20));
        untouched_kept(&m, &u, &later);
        assert_eq!(u.item_bias.len(), 320);
        let (own, gap) = quality(&u);
        assert!(own > 0.8, "new users' top 10 in their group: {own}");
        assert!(gap > 0.1, "new items score higher for their group by {gap}");
        // Without epochs, new items have only their start: no group shows.
        let (z, _) = run(&m, &later, &UpdateParams { epochs: 0, ..UpdateParams::default() }).unwrap();
        let (_, gap0) = quality(&z);
        assert!(gap0.abs() < gap / 4.0, "{gap0} vs {gap}");
    }

    #[test]
    fn popularity_and_item_item_models_take_the_rows_as_they_are() {
        let (m, later) = base("popular", "{}");
        let (u, _) = run(&m, &later, &UpdateParams::default()).unwrap();
        let mut counts = vec![0f32; u.n_items()];
        u.seen.indices.iter().for_each(|&i| counts[i as usize] += 1.0);
        let max = counts.iter().copied().fold(0.0, f32::max);
        assert_eq!(u.item_bias, counts.iter().map(|c| c / max).collect::<Vec<_>>());
        assert_eq!(counts[u.popular[0] as usize], max);

        let (m, later) = base("ease", "{}");
        let (u, done) = run(&m, &later, &UpdateParams::default()).unwrap();
        let w = u.weights.as_ref().unwrap();
        assert_eq!((w.n_rows, w.n_cols, w.nnz()), (320, 320, m.weights.as_ref().unwrap().nnz()));
        assert_eq!(done.new_items, 20);
        // A new user is served from their history at once, never a new item.
        let recs = u.recommend(index(&u.user_ids, 3) as u32, 10, true, None);
        assert!(recs.iter().all(|&(i, _)| u.item_ids[i as usize] < 300 && u.item_ids[i as usize] % GROUPS == 3));
    }

    #[test]
    fn other_models_and_bad_weights_are_refused() {
        let (m, later) = base("lightgcn", r#"{"factors": 4, "iterations": 2}"#);
        let e = run(&m, &later, &UpdateParams::default()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::FeatureNotSupported);
        assert_eq!(e.message, "a lightgcn model cannot take new interactions without retraining");
        let (m, mut later) = base("als", r#"{"factors": 4, "iterations": 2}"#);
        later[3].weight = f32::NAN;
        let e = run(&m, &later, &UpdateParams::default()).unwrap_err();
        assert_eq!(
            e.message,
            format!("weight NaN of user {} and item {} is not a finite number ≥ 0", later[3].user, later[3].item)
        );
    }
}
