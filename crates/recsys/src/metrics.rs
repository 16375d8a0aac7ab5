//! Held-out ranking metrics, the protocol of the KGAT paper: for every test
//! user, rank all items (or a candidate set) except the user's training items,
//! and compare the top K with the user's test items. Reports Recall, NDCG (the
//! standard one and the KGAT code's variant), Precision, MAP and HitRate at each
//! K, and AUC over the whole ranking; averages over test users.

use std::collections::BTreeMap;

use rayon::prelude::*;

use super::data::Csr;
use super::topk::top_k;

/// Metric name → value; names such as `recall@20`, `ndcg@10`, `auc`, `users`.
pub type Metrics = BTreeMap<String, f64>;

/// Anything that scores every item for a batch of users.
pub trait Scorer: Sync {
    fn n_items(&self) -> usize;
    /// Fills `out` (users.len() × n_items, row-major) with scores.
    fn score_users(&self, users: &[u32], out: &mut [f32]);
}

/// Per-user metrics at one K, from the ranked top list and the test set.
fn at_k(top: &[u32], relevant: &[u32], k: usize) -> [f64; 6] {
    let top = &top[..top.len().min(k)];
    let hits: Vec<bool> = top.iter().map(|i| relevant.binary_search(i).is_ok()).collect();
    let n_hits = hits.iter().filter(|&&h| h).count() as f64;
    let disc = |pos: usize| 1.0 / ((pos + 2) as f64).log2();
    let dcg: f64 = hits.iter().enumerate().filter(|&(_, &h)| h).map(|(p, _)| disc(p)).sum();
    let ideal: f64 = (0..relevant.len().min(k)).map(disc).sum();
    // KGAT's metrics.py: the ideal DCG of the retrieved hits re-sorted, so a list
    // with any hit at all scores as if its hits were on top of what it found.
    let ideal_kgat: f64 = (0..n_hits as usize).map(disc).sum();
    let mut ap = 0.0;
    let mut seen = 0.0;
    for (p, &h) in hits.iter().enumerate() {
        if h {
            seen += 1.0;
            ap += seen / (p + 1) as f64;
        }
    }
    [
        n_hits / relevant.len() as f64,
        if ideal > 0.0 { dcg / ideal } else { 0.0 },
        if ideal_kgat > 0.0 { dcg / ideal_kgat } else { 0.0 },
        n_hits / k as f64,
        ap / relevant.len().min(k) as f64,
        if n_hits > 0.0 { 1.0 } else { 0.0 },
    ]
}

const NAMES: [&str; 6] = ["recall", "ndcg", "ndcg_kgat", "precision", "map", "hit_rate"];

/// Ranking metrics of `model` on the users that have test items. `train` rows
/// are masked out; `candidates`, if given, is the only pool ranked.
pub fn evaluate(model: &dyn Scorer, train: &Csr, test: &Csr, candidates: Option<&[u32]>, ks: &[usize]) -> Metrics {
    let n_items = model.n_items();
    let users: Vec<u32> = (0..test.n_rows as u32).filter(|&u| !test.row(u as usize).0.is_empty()).collect();
    let kmax = ks.iter().copied().max().unwrap_or(20);
    let in_pool: Option<Vec<bool>> = candidates.map(|c| {
        let mut m = vec![false; n_items];
        c.iter().for_each(|&i| m[i as usize] = true);
        m
    });
    // 64 users a batch: their score rows stay in cache while masking, top-k
    // and AUC read them.
    const BATCH: usize = 64;
    let per_user: Vec<Vec<f64>> = users
        .par_chunks(BATCH)
        .flat_map_iter(|batch| {
            let mut scores = vec![0f32; batch.len() * n_items];
            model.score_users(batch, &mut scores);
            let mut out = Vec::with_capacity(batch.len());
            for (b, &u) in batch.iter().enumerate() {
                let s = &mut scores[b * n_items..(b + 1) * n_items];
                if (u as usize) < train.n_rows {
                    for &i in train.row(u as usize).0 {
                        s[i as usize] = f32::NEG_INFINITY;
                    }
                }
                if let Some(pool) = &in_pool {
                    s.iter_mut().zip(pool).filter(|&(_, &p)| !p).for_each(|(x, _)| *x = f32::NEG_INFINITY);
                }
                // Test items that are masked (training items, or outside the
                // pool) cannot be recommended, so they are not counted.
                let relevant: Vec<u32> =
                    test.row(u as usize).0.iter().copied().filter(|&i| s[i as usize] > f32::NEG_INFINITY).collect();
                if relevant.is_empty() {
                    continue;
                }
                let top = top_k(s, kmax, candidates);
                let mut v = Vec::with_capacity(ks.len() * 6 + 1);
                for &k in ks {
                    v.extend_from_slice(&at_k(&top, &relevant, k));
                }
                v.push(auc(s, &relevant));
                out.push(v);
            }
            out
        })
        .collect();
    let mut m = Metrics::new();
    let n = per_user.len().max(1) as f64;
    for (j, &k) in ks.iter().enumerate() {
        for (x, name) in NAMES.iter().enumerate() {
            let sum: f64 = per_user.iter().map(|v| v[j * 6 + x]).sum();
            m.insert(format!("{name}@{k}"), sum / n);
        }
    }
    m.insert("auc".into(), per_user.iter().map(|v| v[ks.len() * 6]).sum::<f64>() / n);
    m.insert("users".into(), per_user.len() as f64);
    m
}

/// Share of (test item, other rankable item) pairs ordered correctly; ties
/// count half. Masked items (-inf) are not rankable.
fn auc(scores: &[f32], relevant: &[u32]) -> f64 {
    let rankable = scores.iter().filter(|&&s| s > f32::NEG_INFINITY).count();
    let negatives = rankable.saturating_sub(relevant.len());
    if negatives == 0 || relevant.is_empty() {
        return 0.5;
    }
    let mut correct = 0.0;
    for &p in relevant {
        let sp = scores[p as usize];
        let (mut below, mut tied) = (0usize, 0usize);
        for &s in scores {
            if s > f32::NEG_INFINITY {
                below += usize::from(s < sp);
                tied += usize::from(s == sp);
            }
        }
        // Other test items are not negatives: remove them from the counts.
        let others_below = relevant.iter().filter(|&&q| q != p && scores[q as usize] < sp).count();
        let others_tied = relevant.iter().filter(|&&q| q != p && scores[q as usize] == sp).count();
        correct += (below - others_below) as f64 + 0.5 * (tied - 1 - others_tied) as f64;
    }
    correct / (relevant.len() * negatives) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<Vec<f32>>);

    impl Scorer for Fixed {
        fn n_items(&self) -> usize {
            self.0[0].len()
        }
        fn score_users(&self, users: &[u32], out: &mut [f32]) {
            for (b, &u) in users.iter().enumerate() {
                out[b * self.n_items()..(b + 1) * self.n_items()].copy_from_slice(&self.0[u as usize]);
            }
        }
    }

    #[test]
    fn metrics_match_hand_computed_values() {
        // One user, 6 items; item 0 is a training item (masked), test items 2 and 5.
        let scores = Fixed(vec![vec![9.0, 8.0, 7.0, 6.0, 5.0, 4.0]]);
        let train = Csr::from_triples(1, 6, [(0, 0, 1.0)].into_iter());
        let test = Csr::from_triples(1, 6, [(0, 2, 1.0), (0, 5, 1.0)].into_iter());
        let m = evaluate(&scores, &train, &test, None, &[2, 5]);
        // Ranking after masking: 1, 2, 3, 4, 5.
        assert_eq!(m["recall@2"], 0.5);
        assert_eq!(m["precision@2"], 0.5);
        assert_eq!(m["hit_rate@2"], 1.0);
        let d = |p: f64| 1.0 / (p + 2.0).log2();
        assert!((m["ndcg@2"] - d(1.0) / (d(0.0) + d(1.0))).abs() < 1e-12);
        assert!((m["ndcg_kgat@2"] - d(1.0) / d(0.0)).abs() < 1e-12);
        assert!((m["map@2"] - 0.5 / 2.0).abs() < 1e-12);
        assert_eq!(m["recall@5"], 1.0);
        assert!((m["map@5"] - (0.5 + 2.0 / 5.0) / 2.0).abs() < 1e-12);
        // Negatives 1, 3, 4: item 2 beats 3 and 4; item 5 beats none.
        assert!((m["auc"] - 2.0 / 6.0).abs() < 1e-12);
        assert_eq!(m["users"], 1.0);
    }

    #[test]
    fn candidates_restrict_the_ranking() {
        let scores = Fixed(vec![vec![9.0, 8.0, 7.0, 6.0]]);
        let train = Csr::from_triples(1, 4, std::iter::empty());
        let test = Csr::from_triples(1, 4, [(0, 3, 1.0)].into_iter());
        let m = evaluate(&scores, &train, &test, Some(&[2, 3]), &[1]);
        assert_eq!(m["recall@1"], 0.0);
        let m = evaluate(&scores, &train, &test, Some(&[3]), &[1]);
        assert_eq!(m["recall@1"], 1.0);
    }
}
