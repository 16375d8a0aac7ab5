//! EASE (Steck, WWW 2019): the closed-form item-item model. With X the binary
//! user × item matrix, G = XᵀX + λI and P = G⁻¹, the weights are
//! B = I − P·diag(1/diag(P)) (zero diagonal), and a user's score for item i
//! is Σ over their items j of B[j, i].
//!
//! G is dense over the items with at least `min_count` training interactions
//! (n of them: n² floats, 2.5 GB at 25,000 items, which `pgrec.max_train_memory`
//! bounds before anything is allocated). It is inverted in place by a blocked
//! symmetric sweep (Gauss-Jordan on 256-column panels, only the lower triangle
//! updated, each panel's rank-256 update a matrix product split across the
//! workers by rows): n³ multiply-adds, the same as a Cholesky inverse, but one
//! kind of step, and Ctrl-C is seen between panels. Written here because the
//! stack has no LAPACK (ndarray's products come from matrixmultiply). The
//! stored model keeps the `neighbors` largest weights of each item's row.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::data::Csr;
use super::memory::{Shape, factor_model};
use super::params::{Param, Rule};
use super::progress::Progress;
use super::registry::{Algo, Context};
use pgrec_base::error::{Error, ErrorKind, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EaseParams {
    /// λ, added to G's diagonal; None: [`AUTO_LAMBDA`] × the mean training
    /// interactions per item.
    pub regularization: Option<f32>,
    /// Items with fewer training interactions get no weights (and are
    /// recommended only to fill a list).
    pub min_count: usize,
    /// Weights kept per item in the stored model, the largest in magnitude.
    pub neighbors: usize,
}

impl Default for EaseParams {
    fn default() -> EaseParams {
        EaseParams { regularization: None, min_count: 1, neighbors: 1000 }
    }
}

/// λ by default, per mean training interaction of an item. The best λ grows
/// with how often items are seen: in a sweep of 20–500 the best were 100 on
/// amazon-book (26 interactions per item), 50 on music-kgcn (4.9) and 250 on
/// MovieLens 100K (48); 4 per interaction lands within 0.002 Recall@20 of the
/// best on amazon-book and ML-100K, 0.011 on music-kgcn
/// (benches/item_item_peers.sh, `cargo bench --bench recsys`).
pub const AUTO_LAMBDA: f32 = 4.0;

pub struct Ease;

/// Columns per sweep panel.
const PANEL: usize = 256;
/// Rows one worker updates at a time.
const ROWS: usize = 128;

impl Algo for Ease {
    type Params = EaseParams;
    const NAME: &'static str = "ease";
    const SUMMARY: &'static str = "EASE: closed-form item-item weights from the inverse of the item Gram matrix";
    const PARAMS: &'static [Param] = &[
        Param {
            key: "regularization",
            rule: Rule::Positive { max: 1e6 },
            meaning: "λ on the Gram matrix's diagonal: larger shrinks the weights towards zero; by default 4 × the mean training interactions per item (104 on amazon-book)",
        },
        Param {
            key: "min_count",
            rule: Rule::Int { min: 1, max: 1_000_000, note: "" },
            meaning: "items with fewer training interactions are left out of the Gram matrix (they get no weights): the dense matrix has one row and column per other item",
        },
        Param {
            key: "neighbors",
            rule: Rule::Int { min: 1, max: 100_000, note: "" },
            meaning: "weights kept per item in the stored model, the largest in magnitude (EASE's negative weights count as much as its positive ones)",
        },
    ];
    const LABEL: &'static str = "panel";
    const REPORTS_LOSS: bool = false;

    fn memory(p: &EaseParams, s: &Shape) -> (u64, &'static str) {
        // Items that pass min_count are not known before the data is read:
        // all of them count.
        let n = s.items as u64;
        let gram = n * n * 4;
        let panels = n * PANEL as u64 * 4 * 2;
        let stored = n * p.neighbors.min(s.items) as u64 * 8 * 3;
        (factor_model(s, 0) + gram + panels + stored, "raise \"min_count\" in params")
    }

    fn fit(p: &EaseParams, cx: &mut Context<'_>) -> Result<()> {
        let train = cx.train;
        let n_items = train.n_cols;
        let mut counts = vec![0usize; n_items];
        train.indices.iter().for_each(|&i| counts[i as usize] += 1);
        let active: Vec<u32> = (0..n_items as u32).filter(|&i| counts[i as usize] >= p.min_count.max(1)).collect();
        let mut slot = vec![u32::MAX; n_items];
        active.iter().enumerate().for_each(|(k, &i)| slot[i as usize] = k as u32);
        let n = active.len();
        if n == 0 {
            return Err(Error::new(
                ErrorKind::InvalidParameterValue,
                format!("ease: no item has min_count ({}) training interactions", p.min_count),
            )
            .with_hint("lower \"min_count\""));
        }
        let lambda = p.regularization.unwrap_or_else(|| {
            let seen: usize = active.iter().map(|&i| counts[i as usize]).sum();
            AUTO_LAMBDA * seen as f32 / n as f32
        });
        let start = std::time::Instant::now();
        let mut g = cx.pool.install(|| gram(train, &active, &slot, lambda))?;
        let panels = n.div_ceil(PANEL).max(1);
        let every = panels.div_ceil(10).max(1);
        let (pool, on_iteration) = (cx.pool, &mut *cx.on_iteration);
        invert(&mut g, n, pool, &mut |done| {
            let report = done % every == 0 || done == panels;
            on_iteration(&Progress {
                iteration: done,
                of: panels,
                elapsed: start.elapsed().as_secs_f64(),
                checkpoint: !report,
                ..Progress::default()
            })
        })?;
        mirror_lower(&mut g, n);
        let mut rows = cx.pool.install(|| weights(&g, n, &active, p.neighbors)).into_iter();
        drop(g);
        let full = slot.iter().map(|&k| if k == u32::MAX { Vec::new() } else { rows.next().unwrap_or_default() });
        cx.model.weights = Some(Csr::from_rows(n_items, full));
        Ok(())
    }
}

/// G = XᵀX + λI over the `active` items (binary X), dense and row-major; only
/// the lower triangle is filled. Rows in parallel. An allocation the system
/// refuses is an error, not an abort.
fn gram(train: &Csr, active: &[u32], slot: &[u32], lambda: f32) -> Result<Vec<f32>> {
    let n = active.len();
    let iu = train.transpose();
    let mut g: Vec<f32> = Vec::new();
    g.try_reserve_exact(n * n).map_err(|_| {
        Error::new(
            ErrorKind::ProgramLimitExceeded,
            format!("ease: cannot allocate the Gram matrix of {n} items ({} MB)", (n * n * 4) >> 20),
        )
        .with_hint("raise \"min_count\" in params")
    })?;
    g.resize(n * n, 0.0);
    g.par_chunks_mut(n.max(1)).enumerate().for_each(|(p, row)| {
        for &u in iu.row(active[p] as usize).0 {
            for &j in train.row(u as usize).0 {
                let q = slot[j as usize];
                if q != u32::MAX && (q as usize) <= p {
                    row[q as usize] += 1.0;
                }
            }
        }
        row[p] += lambda;
    });
    Ok(g)
}

/// Inverts the symmetric positive-definite n × n matrix in `a` (lower
/// triangle read and written; row-major) in place, by sweeping one panel of
/// columns at a time. After every panel `done(panels swept)`; an error from it
/// stops the inversion.
fn invert(a: &mut [f32], n: usize, pool: &rayon::ThreadPool, done: &mut dyn FnMut(usize) -> Result<()>) -> Result<()> {
    let at = |a: &[f32], i: usize, j: usize| if j <= i { a[i * n + j] } else { a[j * n + i] };
    let mut c = vec![0f32; n * PANEL];
    let mut e = vec![0f32; n * PANEL];
    for (step, k0) in (0..n).step_by(PANEL).enumerate() {
        let k1 = (k0 + PANEL).min(n);
        let b = k1 - k0;
        // D = A_KK⁻¹ of the not yet swept part, which is positive definite.
        let kk: Vec<f64> = (0..b * b).map(|x| f64::from(at(a, k0 + x / b, k0 + x % b))).collect();
        let d = spd_inverse(&kk, b).ok_or_else(|| {
            Error::new(ErrorKind::NumericValueOutOfRange, "ease: the Gram matrix is not positive definite")
                .with_hint("raise \"regularization\"")
        })?;
        let d32: Vec<f32> = d.iter().map(|&x| x as f32).collect();
        // C = A[:, K], E = C·D. Rows above the panel are read from the
        // panel's own rows (the lower triangle), the rest from their rows.
        let (c, e) = (&mut c[..n * b], &mut e[..n * b]);
        for j in 0..b {
            let row = &a[(k0 + j) * n..(k0 + j) * n + k0];
            for (i, &v) in row.iter().enumerate() {
                c[i * b + j] = v;
            }
        }
        for i in k0..k1 {
            for j in 0..b {
                c[i * b + j] = at(a, i, k0 + j);
            }
        }
        for i in k1..n {
            c[i * b..(i + 1) * b].copy_from_slice(&a[i * n + k0..i * n + k1]);
        }
        pool.install(|| {
            let dv = ArrayView2::from_shape((b, b), &d32[..]).ok();
            e.par_chunks_mut(ROWS * b).zip(c.par_chunks(ROWS * b)).for_each(|(eo, ci)| {
                let rows = ci.len() / b;
                if let (Some(dv), Ok(cv), Ok(mut ev)) =
                    (dv, ArrayView2::from_shape((rows, b), ci), ArrayViewMut2::from_shape((rows, b), eo))
                {
                    general_mat_mul(1.0, &cv, &dv, 0.0, &mut ev);
                }
            });
            // The rank-b update of the lower triangle: A_ij −= E_i·C_j.
            let (c, e) = (&*c, &*e);
            a.par_chunks_mut(ROWS * n).enumerate().for_each(|(chunk, rows)| {
                let r0 = chunk * ROWS;
                let m = rows.len() / n;
                let cols = r0 + m;
                let (Ok(ev), Ok(cv)) = (
                    ArrayView2::from_shape((m, b), &e[r0 * b..cols * b]),
                    ArrayView2::from_shape((cols, b), &c[..cols * b]),
                ) else {
                    return;
                };
                if let Ok(mut out) = ArrayViewMut2::from_shape((m, n), rows) {
                    let mut out = out.slice_mut(ndarray::s![.., ..cols]);
                    general_mat_mul(-1.0, &ev, &cv.t(), 1.0, &mut out);
                }
            });
        });
        // Panel rows and columns: A_iK = E_i (and A_Ki its transpose), A_KK = −D.
        for j in 0..b {
            let row = &mut a[(k0 + j) * n..(k0 + j) * n + k0];
            for (i, v) in row.iter_mut().enumerate() {
                *v = e[i * b + j];
            }
        }
        for i in k1..n {
            a[i * n + k0..i * n + k1].copy_from_slice(&e[i * b..(i + 1) * b]);
        }
        for p in 0..b {
            for q in 0..=p {
                a[(k0 + p) * n + k0 + q] = -d32[p * b + q];
            }
        }
        done(step + 1)?;
    }
    // Every index swept: A holds −G⁻¹ (lower triangle).
    a.par_iter_mut().for_each(|x| *x = -*x);
    Ok(())
}

/// Copies the lower triangle of the n × n row-major `a` onto the upper one,
/// a tile at a time so that both sides are read and written in cache lines.
fn mirror_lower(a: &mut [f32], n: usize) {
    const TILE: usize = 64;
    for bi in (0..n).step_by(TILE) {
        for bj in (0..=bi).step_by(TILE) {
            for i in bi..(bi + TILE).min(n) {
                for j in bj..(bj + TILE).min(i) {
                    a[j * n + i] = a[i * n + j];
                }
            }
        }
    }
}

/// The inverse of a small symmetric positive-definite b × b matrix (f64,
/// row-major), by Cholesky; None if it is not positive definite.
fn spd_inverse(m: &[f64], b: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; b * b];
    for i in 0..b {
        for j in 0..=i {
            let s = m[i * b + j] - (0..j).map(|k| l[i * b + k] * l[j * b + k]).sum::<f64>();
            if i == j {
                if s.is_nan() || s <= 0.0 {
                    return None;
                }
                l[i * b + i] = s.sqrt();
            } else {
                l[i * b + j] = s / l[j * b + j];
            }
        }
    }
    // L⁻¹ by forward substitution, then (L⁻¹)ᵀ L⁻¹.
    let mut li = vec![0f64; b * b];
    for c in 0..b {
        for i in c..b {
            let s = if i == c { 1.0 } else { 0.0 } - (c..i).map(|k| l[i * b + k] * li[k * b + c]).sum::<f64>();
            li[i * b + c] = s / l[i * b + i];
        }
    }
    let mut inv = vec![0f64; b * b];
    for i in 0..b {
        for j in 0..=i {
            let s: f64 = (i..b).map(|k| li[k * b + i] * li[k * b + j]).sum();
            inv[i * b + j] = s;
            inv[j * b + i] = s;
        }
    }
    Some(inv)
}

/// Row p of B = −P[p, q] / P[q, q] (q ≠ p) for each active item, from P in
/// `p` (symmetric, full), keeping the `keep` largest in magnitude — EASE's
/// negative weights carry as much as its positive ones: keeping the largest
/// values instead cost 0.01 Recall@20 on MovieLens 100K — as (item, weight)
/// pairs over item indices.
fn weights(p: &[f32], n: usize, active: &[u32], keep: usize) -> Vec<Vec<(u32, f32)>> {
    let diag: Vec<f32> = (0..n).map(|q| p[q * n + q]).collect();
    (0..n)
        .into_par_iter()
        .map(|r| {
            let row = &p[r * n..(r + 1) * n];
            let mut row: Vec<(u32, f32)> = (0..n).filter(|&q| q != r).map(|q| (active[q], -row[q] / diag[q])).collect();
            if row.len() > keep {
                row.select_nth_unstable_by(keep - 1, |x, y| y.1.abs().total_cmp(&x.1.abs()));
                row.truncate(keep);
            }
            row.sort_unstable_by_key(|x| x.0);
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgrec_base::rng::Rng;

    /// G⁻¹ by Gauss-Jordan in f64, the textbook way.
    fn reference_inverse(g: &[f64], n: usize) -> Vec<f64> {
        let mut m: Vec<f64> = g.to_vec();
        let mut inv: Vec<f64> = (0..n * n).map(|x| if x / n == x % n { 1.0 } else { 0.0 }).collect();
        for c in 0..n {
            let d = m[c * n + c];
            for j in 0..n {
                m[c * n + j] /= d;
                inv[c * n + j] /= d;
            }
            for r in 0..n {
                if r != c {
                    let f = m[r * n + c];
                    for j in 0..n {
                        m[r * n + j] -= f * m[c * n + j];
                        inv[r * n + j] -= f * inv[c * n + j];
                    }
                }
            }
        }
        inv
    }

    #[test]
    fn the_blocked_sweep_inverts_across_panels() {
        // 600 = two full panels and a partial one; a Gram matrix plus λ as EASE's.
        let n = 600;
        let mut rng = Rng::new(5);
        let x: Vec<f64> = (0..900 * n).map(|_| f64::from(u8::from(rng.uniform() < 0.05))).collect();
        let mut g = vec![0f64; n * n];
        for u in 0..900 {
            let row = &x[u * n..(u + 1) * n];
            let items: Vec<usize> = (0..n).filter(|&i| row[i] > 0.0).collect();
            for &p in &items {
                for &q in &items {
                    g[p * n + q] += 1.0;
                }
            }
        }
        (0..n).for_each(|i| g[i * n + i] += 5.0);
        let want = reference_inverse(&g, n);
        let mut a: Vec<f32> = (0..n * n).map(|k| if k % n <= k / n { g[k] as f32 } else { f32::NAN }).collect();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let mut panels = 0;
        invert(&mut a, n, &pool, &mut |d| {
            panels = d;
            Ok(())
        })
        .unwrap();
        assert_eq!(panels, 3);
        let worst = (0..n)
            .flat_map(|i| (0..=i).map(move |j| (i, j)))
            .map(|(i, j)| (f64::from(a[i * n + j]) - want[i * n + j]).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-5, "largest error {worst}");
        // An error from the callback stops it.
        let mut b: Vec<f32> = (0..n * n).map(|k| g[k] as f32).collect();
        let e = invert(&mut b, n, &pool, &mut |d| {
            if d == 2 { Err(Error::new(ErrorKind::DataException, "canceled")) } else { Ok(()) }
        });
        assert_eq!(e.unwrap_err().message, "canceled");
    }

    #[test]
    fn a_matrix_that_is_not_positive_definite_is_an_error() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let mut a = vec![1.0, 0.0, 2.0, 1.0];
        let e = invert(&mut a, 2, &pool, &mut |_| Ok(())).unwrap_err();
        assert_eq!(e.message, "ease: the Gram matrix is not positive definite");
    }

    #[test]
    fn weights_are_eases_closed_form() {
        // Three users over four items: B = I − P diag(1/diag P), by hand.
        let train = Csr::from_triples(
            3,
            4,
            [(0, 0, 1.0), (0, 1, 1.0), (1, 1, 1.0), (1, 2, 1.0), (2, 0, 1.0), (2, 2, 1.0), (2, 3, 5.0)].into_iter(),
        );
        let active: Vec<u32> = (0..4).collect();
        let slot: Vec<u32> = (0..4).collect();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let mut g = gram(&train, &active, &slot, 2.0).unwrap();
        // Binary X: user 2's weight 5 counts once.
        assert_eq!(&g[..4], &[4.0, 0.0, 0.0, 0.0]);
        assert_eq!(&g[12..16], &[1.0, 0.0, 1.0, 3.0]);
        let full: Vec<f64> =
            (0..16).map(|k| f64::from(if k % 4 <= k / 4 { g[k] } else { g[(k % 4) * 4 + k / 4] })).collect();
        let p = reference_inverse(&full, 4);
        invert(&mut g, 4, &pool, &mut |_| Ok(())).unwrap();
        mirror_lower(&mut g, 4);
        let rows = weights(&g, 4, &active, 3);
        for (r, row) in rows.iter().enumerate() {
            assert_eq!(row.len(), 3);
            for &(q, w) in row {
                let want = -p[r * 4 + q as usize] / p[q as usize * 4 + q as usize];
                assert!((f64::from(w) - want).abs() < 1e-6, "B[{r}][{q}] = {w}, want {want}");
            }
        }
        // Keeping 1 keeps the largest in magnitude.
        let one = weights(&g, 4, &active, 1);
        for (r, row) in rows.iter().enumerate() {
            let best = row.iter().map(|x| x.1.abs()).fold(0.0, f32::max);
            assert_eq!(one[r][0].1.abs(), best);
        }
    }
}
