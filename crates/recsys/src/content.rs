//! Item content for the multimodal recommenders: one feature vector per item
//! (an `embedding` column, or several concatenated — CLIP image vectors,
//! MiniLM text vectors), aligned with a dataset's items; and `content_knn`,
//! the content-only baseline: a user's profile is the weighted mean of the
//! unit-length content vectors of the items they interacted with, and items
//! rank by cosine to it.

use std::collections::HashMap;

use ndarray::Array2;

use serde::{Deserialize, Serialize};

use super::data::{Csr, Dataset};
use super::memory::{Shape, factor_model};
use super::model::ContentMap;
use super::params::Param;
use super::progress::Progress;
use super::registry::{Algo, Context, Needs};
use pgrec_base::error::{Error, ErrorKind, Result};

/// content_knn takes no params of its own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentKnnParams {}

pub struct ContentKnn;

impl Algo for ContentKnn {
    type Params = ContentKnnParams;
    const NAME: &'static str = "content_knn";
    const SUMMARY: &'static str = "no training: a user's profile is the weighted mean of their items' unit content vectors, items rank by cosine to it";
    const PARAMS: &'static [Param] = &[];
    const NEEDS: Needs = Needs { features: true, content_index: true, ..Needs::NONE };

    fn memory(_p: &ContentKnnParams, s: &Shape) -> (u64, &'static str) {
        let d = s.feature_dims as u64;
        (factor_model(s, 0) + (s.users + s.items) as u64 * d * 4 * 2, "pass shorter item_features vectors")
    }

    fn fit(_p: &ContentKnnParams, cx: &mut Context<'_>) -> Result<()> {
        let features = cx.features(Self::NAME)?;
        let (users, items) = cx.pool.install(|| knn(cx.train, features));
        cx.model.user_factors = users;
        cx.model.item_factors = items;
        cx.model.content = Some(ContentMap { dims: features.ncols(), projection: None, bias: 0.0 });
        (cx.on_iteration)(&Progress { iteration: 1, of: 1, ..Progress::default() })
    }
}

/// Content vectors as the user's `item_features` gave them, by item id.
#[derive(Clone, Debug, Default)]
pub struct ItemFeatures {
    pub ids: Vec<i64>,
    /// One row per id.
    pub values: Array2<f32>,
    /// How many vectors each row concatenates.
    pub columns: usize,
}

impl ItemFeatures {
    /// Checks the rows: every id once, every value finite.
    pub fn new(ids: Vec<i64>, values: Array2<f32>) -> Result<ItemFeatures> {
        let mut seen = HashMap::with_capacity(ids.len());
        for &id in &ids {
            if seen.insert(id, ()).is_some() {
                return Err(Error::new(ErrorKind::DataException, format!("item {id} appears twice in item_features"))
                    .with_hint("item_features must return one row per item"));
            }
        }
        if let Some(k) = values.rows().into_iter().position(|r| r.iter().any(|x| !x.is_finite())) {
            return Err(Error::new(
                ErrorKind::DataException,
                format!("the features of item {} are not all finite numbers", ids[k]),
            ));
        }
        Ok(ItemFeatures { ids, values, columns: 1 })
    }

    pub fn dims(&self) -> usize {
        self.values.ncols()
    }

    /// The features in `ds`'s item order, zeros for items without any, after
    /// adding to `ds` the items that have features but no interactions (so
    /// that they can be recommended from their content). Returns the matrix
    /// and how many of `ds`'s items had no features.
    pub fn align(&self, ds: &mut Dataset) -> (Array2<f32>, usize) {
        let known: HashMap<i64, usize> = ds.item_ids.iter().enumerate().map(|(k, &id)| (id, k)).collect();
        let before = ds.n_items();
        for &id in &self.ids {
            if !known.contains_key(&id) {
                ds.item_ids.push(id);
            }
        }
        let index: HashMap<i64, usize> = ds.item_ids.iter().enumerate().map(|(k, &id)| (id, k)).collect();
        let mut out = Array2::zeros((ds.n_items(), self.dims()));
        let mut covered = 0;
        for (row, id) in self.ids.iter().enumerate() {
            let k = index[id];
            covered += usize::from(k < before);
            out.row_mut(k).assign(&self.values.row(row));
        }
        (out, before - covered)
    }
}

/// Each row scaled to unit length (zero rows stay zero).
pub fn normalized(x: &Array2<f32>) -> Array2<f32> {
    let mut out = x.clone();
    for mut r in out.rows_mut() {
        let n = r.dot(&r).sqrt();
        if n > 0.0 {
            r.mapv_inplace(|v| v / n);
        }
    }
    out
}

/// content_knn: (user profiles, item vectors), both unit length, so that a
/// user's score for an item is the cosine of its profile and the item.
pub fn knn(ui: &Csr, features: &Array2<f32>) -> (Array2<f32>, Array2<f32>) {
    let items = normalized(features);
    let mut users = Array2::zeros((ui.n_rows, items.ncols()));
    for (u, mut row) in users.rows_mut().into_iter().enumerate() {
        let (seen, weights) = ui.row(u);
        for (&i, &w) in seen.iter().zip(weights) {
            row.scaled_add(w, &items.row(i as usize));
        }
    }
    (normalized(&users), items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Row;
    use ndarray::array;

    #[test]
    fn features_align_with_items_and_add_content_only_ones() {
        let rows: Vec<Row> =
            [(1, 10), (1, 20), (2, 30)].iter().map(|&(user, item)| Row { user, item, weight: 1.0, ts: None }).collect();
        let mut ds = Dataset::from_rows(&rows).unwrap();
        let f = ItemFeatures::new(vec![30, 40, 10], array![[3.0, 0.0], [4.0, 4.0], [1.0, 0.0]]).unwrap();
        let (x, missing) = f.align(&mut ds);
        // Item 40 has no interactions: it joins the catalogue after the others.
        assert_eq!(ds.item_ids, vec![10, 20, 30, 40]);
        assert_eq!(x, array![[1.0, 0.0], [0.0, 0.0], [3.0, 0.0], [4.0, 4.0]]);
        assert_eq!(missing, 1, "item 20 has no features");

        let e = ItemFeatures::new(vec![1, 1], Array2::zeros((2, 2))).unwrap_err();
        assert_eq!(e.message, "item 1 appears twice in item_features");
        let e = ItemFeatures::new(vec![1, 2], array![[0.0, 1.0], [f32::NAN, 0.0]]).unwrap_err();
        assert_eq!(e.message, "the features of item 2 are not all finite numbers");
    }

    #[test]
    fn knn_profiles_are_weighted_means_scored_by_cosine() {
        let ui = Csr::from_triples(2, 3, [(0, 0, 1.0), (0, 1, 3.0), (1, 2, 1.0)].into_iter());
        let f = array![[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]];
        let (u, i) = knn(&ui, &f);
        // User 0: (1, 0) + 3 (0, 1), normalised.
        let n = 10f32.sqrt();
        assert!((u[[0, 0]] - 1.0 / n).abs() < 1e-6 && (u[[0, 1]] - 3.0 / n).abs() < 1e-6);
        let cos = u.row(0).dot(&i.row(2));
        assert!((cos - 4.0 / (n * 2f32.sqrt())).abs() < 1e-6);
        assert!((i.row(0).dot(&i.row(0)) - 1.0).abs() < 1e-6);
    }
}
