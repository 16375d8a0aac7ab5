//! Interaction data as the trainers see it: external ids (any integer width,
//! as `i64`) mapped to dense internal indices, and compressed sparse rows
//! (user → items, item → users) with duplicate pairs summed.

use std::collections::HashMap;

use pgrec_base::error::{Error, ErrorKind, Result};

/// One interaction row as read from the user's relation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row {
    pub user: i64,
    pub item: i64,
    pub weight: f32,
    pub ts: Option<i64>,
}

impl Row {
    /// Fails, naming the row, unless the weight is finite and ≥ 0.
    pub fn check_weight(&self) -> Result<()> {
        if !self.weight.is_finite() || self.weight < 0.0 {
            return Err(bad(format!(
                "weight {} of user {} and item {} is not a finite number ≥ 0",
                self.weight, self.user, self.item
            ))
            .with_hint("interaction weights must be non-negative and finite; filter or fix those rows"));
        }
        Ok(())
    }
}

/// The dense index of `id` in `ids`, which it joins if new.
pub fn intern(index: &mut HashMap<i64, u32>, ids: &mut Vec<i64>, id: i64) -> u32 {
    *index.entry(id).or_insert_with(|| {
        ids.push(id);
        (ids.len() - 1) as u32
    })
}

/// Interactions with dense indices: `users[k]`, `items[k]` index `user_ids` and
/// `item_ids`.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    pub user_ids: Vec<i64>,
    pub item_ids: Vec<i64>,
    pub users: Vec<u32>,
    pub items: Vec<u32>,
    pub weights: Vec<f32>,
    pub ts: Option<Vec<i64>>,
}

fn bad(msg: String) -> Error {
    Error::new(ErrorKind::DataException, msg)
}

impl Dataset {
    /// Indexes rows, refusing negative or non-finite weights (naming the row).
    /// Timestamps are kept only if every row has one.
    pub fn from_rows(rows: &[Row]) -> Result<Dataset> {
        if rows.is_empty() {
            return Err(Error::new(ErrorKind::DataException, "the interactions are empty")
                .with_hint("the interactions query must return at least one row"));
        }
        let mut ds = Dataset::default();
        let mut uidx: HashMap<i64, u32> = HashMap::new();
        let mut iidx: HashMap<i64, u32> = HashMap::new();
        let all_ts = rows.iter().all(|r| r.ts.is_some());
        let mut ts = Vec::new();
        for r in rows {
            r.check_weight()?;
            let u = intern(&mut uidx, &mut ds.user_ids, r.user);
            let i = intern(&mut iidx, &mut ds.item_ids, r.item);
            ds.users.push(u);
            ds.items.push(i);
            ds.weights.push(r.weight);
            if all_ts {
                ts.push(r.ts.unwrap_or_default());
            }
        }
        ds.ts = all_ts.then_some(ts);
        Ok(ds)
    }

    /// The rows at `keep` (positions into the rows), in the same id spaces:
    /// users and items without rows left keep their indices.
    pub fn keep_rows(&self, keep: &[usize]) -> Dataset {
        Dataset {
            user_ids: self.user_ids.clone(),
            item_ids: self.item_ids.clone(),
            users: keep.iter().map(|&k| self.users[k]).collect(),
            items: keep.iter().map(|&k| self.items[k]).collect(),
            weights: keep.iter().map(|&k| self.weights[k]).collect(),
            ts: self.ts.as_ref().map(|ts| keep.iter().map(|&k| ts[k]).collect()),
        }
    }

    pub fn n_users(&self) -> usize {
        self.user_ids.len()
    }

    pub fn n_items(&self) -> usize {
        self.item_ids.len()
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The user × item matrix of the rows `keep` selects (all rows if `None`).
    pub fn user_items(&self, keep: Option<&[usize]>) -> Csr {
        let pick = |k: usize| (self.users[k], self.items[k], self.weights[k]);
        match keep {
            Some(ks) => Csr::from_triples(self.n_users(), self.n_items(), ks.iter().map(|&k| pick(k))),
            None => Csr::from_triples(self.n_users(), self.n_items(), (0..self.len()).map(pick)),
        }
    }
}

/// Compressed sparse rows with sorted, unique column indices per row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Csr {
    pub n_rows: usize,
    pub n_cols: usize,
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub data: Vec<f32>,
}

impl Csr {
    /// Builds from (row, col, value) triples; repeated pairs are summed.
    pub fn from_triples(n_rows: usize, n_cols: usize, triples: impl Iterator<Item = (u32, u32, f32)>) -> Csr {
        let mut t: Vec<(u32, u32, f32)> = triples.collect();
        t.sort_unstable_by_key(|&(r, c, _)| (r, c));
        let mut indptr = vec![0usize; n_rows + 1];
        let mut indices = Vec::with_capacity(t.len());
        let mut data: Vec<f32> = Vec::with_capacity(t.len());
        let mut last: Option<(u32, u32)> = None;
        for (r, c, v) in t {
            if last == Some((r, c)) {
                if let Some(d) = data.last_mut() {
                    *d += v;
                }
                continue;
            }
            last = Some((r, c));
            indptr[r as usize + 1] += 1;
            indices.push(c);
            data.push(v);
        }
        for r in 0..n_rows {
            indptr[r + 1] += indptr[r];
        }
        Csr { n_rows, n_cols, indptr, indices, data }
    }

    /// A matrix of `n_cols` columns from its rows' (column, value) pairs.
    pub fn from_rows(n_cols: usize, rows: impl Iterator<Item = Vec<(u32, f32)>>) -> Csr {
        let (mut indptr, mut indices, mut data) = (vec![0], Vec::new(), Vec::new());
        for row in rows {
            for (c, v) in row {
                indices.push(c);
                data.push(v);
            }
            indptr.push(indices.len());
        }
        Csr { n_rows: indptr.len() - 1, n_cols, indptr, indices, data }
    }

    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[r], self.indptr[r + 1]);
        (&self.indices[a..b], &self.data[a..b])
    }

    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    pub fn transpose(&self) -> Csr {
        let triples = (0..self.n_rows).flat_map(|r| {
            let (cols, vals) = self.row(r);
            cols.iter().zip(vals).map(move |(&c, &v)| (c, r as u32, v))
        });
        Csr::from_triples(self.n_cols, self.n_rows, triples)
    }

    /// True if row `r` has column `c` (binary search: columns are sorted).
    pub fn contains(&self, r: usize, c: u32) -> bool {
        self.row(r).0.binary_search(&c).is_ok()
    }

    /// A uniformly drawn column that row `r` lacks (a negative item for a
    /// user), or any column when the row has them all.
    pub fn draw_unseen(&self, r: usize, rng: &mut pgrec_base::rng::Rng) -> u32 {
        draw_absent(self.row(r).0, 0, self.n_cols, rng)
    }
}

/// A uniformly drawn value of `lo..lo + len` that `seen` (sorted, all within
/// that range) lacks, or any value of it when `seen` has them all.
pub fn draw_absent(seen: &[u32], lo: u32, len: usize, rng: &mut pgrec_base::rng::Rng) -> u32 {
    let full = seen.len() >= len;
    loop {
        let c = lo + rng.below(len as u64) as u32;
        if full || seen.binary_search(&c).is_err() {
            break c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user: i64, item: i64, weight: f32) -> Row {
        Row { user, item, weight, ts: None }
    }

    #[test]
    fn ids_are_indexed_and_duplicates_summed() {
        let ds = Dataset::from_rows(&[row(10, 7, 1.0), row(3, 7, 2.0), row(10, 9, 1.0), row(10, 7, 0.5)]).unwrap();
        assert_eq!(ds.user_ids, vec![10, 3]);
        assert_eq!(ds.item_ids, vec![7, 9]);
        let m = ds.user_items(None);
        assert_eq!(m.row(0), (&[0u32, 1][..], &[1.5f32, 1.0][..]));
        assert_eq!(m.row(1), (&[0u32][..], &[2.0f32][..]));
        let t = m.transpose();
        assert_eq!(t.row(0).0, &[0, 1]);
        assert!(m.contains(0, 1) && !m.contains(1, 1));
        assert!(ds.ts.is_none());
    }

    #[test]
    fn bad_weights_and_empty_input_are_refused() {
        let e = Dataset::from_rows(&[row(1, 2, -1.0)]).unwrap_err();
        assert_eq!(e.message, "weight -1 of user 1 and item 2 is not a finite number ≥ 0");
        let e = Dataset::from_rows(&[row(1, 2, f32::NAN)]).unwrap_err();
        assert!(e.message.starts_with("weight NaN of user 1"), "{}", e.message);
        assert_eq!(Dataset::from_rows(&[]).unwrap_err().message, "the interactions are empty");
    }
}
