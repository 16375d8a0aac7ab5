//! Held-out test splits, per user: a random fraction of each user's
//! interactions, or, when timestamps are given, each user's latest one
//! (leave-last-out). A user keeps at least one interaction in training, so every
//! test user can be scored. For cold-start evaluation a share of the items is
//! first held out entirely: all their interactions are tested, none trained.

use super::data::Dataset;
use pgrec_base::rng::Rng;

/// Row indices of the training and the test part.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Split {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

/// Splits `ds`: `fraction` of each user's rows (rounded, at least one when the
/// user has two or more and fraction > 0) go to the test part; by timestamp
/// (the latest row) when `ds.ts` is set, at random with `seed` otherwise.
pub fn split(ds: &Dataset, fraction: f64, seed: u64) -> Split {
    split_rows(ds, fraction, seed, |_| true)
}

/// A split with cold items: `cold_test` holds every row of the `cold_items`
/// (a `cold_fraction` of the items that have rows, at random with `seed`, and
/// never all of them); the other rows are split as [`split`] does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ColdSplit {
    pub warm: Split,
    pub cold_test: Vec<usize>,
    pub cold_items: Vec<u32>,
}

pub fn cold_split(ds: &Dataset, fraction: f64, cold_fraction: f64, seed: u64) -> ColdSplit {
    let mut has_rows = vec![false; ds.n_items()];
    ds.items.iter().for_each(|&i| has_rows[i as usize] = true);
    let mut items: Vec<u32> = (0..ds.n_items() as u32).filter(|&i| has_rows[i as usize]).collect();
    Rng::new(seed ^ 0xc01d).shuffle(&mut items);
    let n_cold = ((items.len() as f64 * cold_fraction).round() as usize).min(items.len().saturating_sub(1));
    let mut cold_items = items[..n_cold].to_vec();
    cold_items.sort_unstable();
    let mut cold = vec![false; ds.n_items()];
    cold_items.iter().for_each(|&i| cold[i as usize] = true);
    let is_cold = |k: usize| cold[ds.items[k] as usize];
    ColdSplit {
        warm: split_rows(ds, fraction, seed, |k| !is_cold(k)),
        cold_test: (0..ds.len()).filter(|&k| is_cold(k)).collect(),
        cold_items,
    }
}

/// [`split`] over the rows `keep` accepts.
fn split_rows(ds: &Dataset, fraction: f64, seed: u64, keep: impl Fn(usize) -> bool) -> Split {
    let mut by_user: Vec<Vec<usize>> = vec![Vec::new(); ds.n_users()];
    for (k, &u) in ds.users.iter().enumerate() {
        if keep(k) {
            by_user[u as usize].push(k);
        }
    }
    let mut rng = Rng::new(seed);
    let mut out = Split::default();
    for mut rows in by_user {
        let n = rows.len();
        let held = if fraction <= 0.0 || n < 2 {
            0
        } else if ds.ts.is_some() {
            1
        } else {
            ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
        };
        match &ds.ts {
            Some(ts) => rows.sort_by_key(|&k| (ts[k], k)),
            None => {
                for i in (1..n).rev() {
                    let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                    rows.swap(i, j);
                }
            }
        }
        out.train.extend_from_slice(&rows[..n - held]);
        out.test.extend_from_slice(&rows[n - held..]);
    }
    out.train.sort_unstable();
    out.test.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Row;

    #[test]
    fn random_fraction_per_user_keeps_one_in_training() {
        let rows: Vec<Row> = (0..10)
            .map(|i| Row { user: 1, item: i, weight: 1.0, ts: None })
            .chain([Row { user: 2, item: 0, weight: 1.0, ts: None }])
            .collect();
        let ds = Dataset::from_rows(&rows).unwrap();
        let s = split(&ds, 0.2, 7);
        assert_eq!(s.test.len(), 2, "20% of user 1's ten rows; user 2 has one row and keeps it");
        assert_eq!(s.train.len() + s.test.len(), 11);
        assert!(s.test.iter().all(|&k| ds.users[k] == 0));
        assert_eq!(split(&ds, 0.2, 7), s, "deterministic for a seed");
        assert!(split(&ds, 0.0, 7).test.is_empty());
    }

    #[test]
    fn cold_items_are_held_out_whole() {
        let rows: Vec<Row> = (0..40)
            .map(|k| Row { user: k % 4, item: k % 10, weight: 1.0, ts: None })
            .chain([Row { user: 9, item: 0, weight: 1.0, ts: None }])
            .collect();
        let ds = Dataset::from_rows(&rows).unwrap();
        let s = cold_split(&ds, 0.25, 0.2, 3);
        assert_eq!(s.cold_items.len(), 2, "a fifth of ten items");
        let cold = |k: &usize| s.cold_items.contains(&ds.items[*k]);
        assert!(s.cold_test.iter().all(cold));
        assert_eq!(s.cold_test.len(), 8, "every row of the two cold items");
        assert!(!s.warm.train.iter().chain(&s.warm.test).any(cold));
        assert_eq!(s.warm.train.len() + s.warm.test.len() + s.cold_test.len(), 41);
        assert!(!s.warm.test.is_empty());
        assert_eq!(cold_split(&ds, 0.25, 0.2, 3), s, "deterministic for a seed");
        assert_eq!(cold_split(&ds, 0.25, 0.0, 3).warm, split(&ds, 0.25, 3), "no cold items: the plain split");
        assert_eq!(cold_split(&ds, 0.0, 0.99, 3).cold_items.len(), 9, "never every item");
    }

    #[test]
    fn timestamps_hold_out_each_users_latest() {
        let rows: Vec<Row> = [(1, 5, 30), (1, 6, 10), (1, 7, 20), (2, 5, 1), (2, 8, 2)]
            .iter()
            .map(|&(user, item, t)| Row { user, item, weight: 1.0, ts: Some(t) })
            .collect();
        let ds = Dataset::from_rows(&rows).unwrap();
        let s = split(&ds, 0.2, 1);
        let held: Vec<(i64, i64)> =
            s.test.iter().map(|&k| (ds.user_ids[ds.users[k] as usize], ds.item_ids[ds.items[k] as usize])).collect();
        assert_eq!(held, vec![(1, 5), (2, 8)]);
    }
}
