//! Held-out test splits, per user: a random fraction of each user's
//! interactions, or, when timestamps are given, each user's latest one
//! (leave-last-out). A user keeps at least one interaction in training, so every
//! test user can be scored.

use super::data::Dataset;
use crate::ann::synth::Rng;

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
    let mut by_user: Vec<Vec<usize>> = vec![Vec::new(); ds.n_users()];
    for (k, &u) in ds.users.iter().enumerate() {
        by_user[u as usize].push(k);
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
    use crate::recsys::data::Row;

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
