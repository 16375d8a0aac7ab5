//! The training protocol every algorithm runs through: split the data, train
//! the chosen algorithm on the training part (through the registry: this file
//! names no algorithm), evaluate on the held-out part.

use ndarray::Array2;

use super::progress::Progress;
use super::registry::Context;
use super::{Algorithm, Dataset, Metrics, Model, Params};
use super::{kgat, metrics, split};
use pgrec_base::error::{Error, ErrorKind, Result};

/// A trained model with its held-out metrics.
pub struct Trained {
    pub model: Model,
    pub metrics: Metrics,
    pub train_rows: usize,
    pub test_rows: usize,
    /// KGAT: the attention-weighted graph behind `explain`.
    pub explain: Option<kgat::explain::ExplainGraph>,
}

/// Splits `ds`, trains `p`'s algorithm on the training part, evaluates on the
/// rest (Recall, NDCG, … at 10 and 20, all items ranked, training items
/// excluded, and the algorithm's own metrics, such as `mf`'s RMSE), and
/// returns the model, whose `seen` holds all rows.
pub fn fit(
    ds: &Dataset,
    p: &Params,
    threads: usize,
    on_iteration: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<Trained> {
    fit_with(ds, p, &Side::default(), threads, on_iteration)
}

/// What some algorithms learn from besides the interactions.
#[derive(Clone, Copy, Default)]
pub struct Side<'a> {
    /// kgat: the knowledge graph (its entity indices below `ds.n_items()`
    /// are the dataset's items).
    pub graph: Option<&'a kgat::KnowledgeGraph>,
    /// kgat: a trained factor model to start its embeddings from.
    pub pretrain: Option<&'a Model>,
    /// vbpr, content_knn: one content vector per item of `ds`, in its order
    /// (see [`crate::content::ItemFeatures::align`]).
    pub features: Option<&'a Array2<f32>>,
    /// lightgcn: user–user pairs (user indices of `ds`), a social graph.
    pub social: Option<&'a [(u32, u32)]>,
}

impl<'a> Context<'a> {
    /// The item content vectors, which `algorithm` needs.
    pub fn features(&self, algorithm: &str) -> Result<&'a Array2<f32>> {
        self.side.features.filter(|f| f.nrows() == self.ds.n_items()).ok_or_else(|| {
            Error::new(ErrorKind::InvalidParameterValue, format!("{algorithm} needs item features"))
                .with_hint("pass item_features => 'SELECT item_id, embedding FROM items'")
        })
    }
}

/// [`fit`], with the side data that `kgat`, `vbpr` and `content_knn` need.
/// With `cold_items` > 0 that share of the items is held out entirely and
/// the metrics gain `cold_` ones: those items' interactions ranked among
/// them; the warm metrics then rank the other items.
pub fn fit_with(
    ds: &Dataset,
    p: &Params,
    side: &Side<'_>,
    threads: usize,
    on_iteration: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<Trained> {
    let algorithm: Algorithm = p.algorithm;
    let protocol = &p.protocol;
    let cs = split::cold_split(ds, protocol.test_fraction, protocol.cold_items, protocol.seed());
    let parts = &cs.warm;
    let train = ds.user_items(Some(&parts.train));
    let test = ds.user_items(Some(&parts.test));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| Error::new(ErrorKind::InvalidParameterValue, format!("cannot start training threads: {e}")))?;
    let (n_users, n_items) = (ds.n_users(), ds.n_items());
    let mut counts = vec![0u32; n_items];
    ds.items.iter().for_each(|&i| counts[i as usize] += 1);
    let popular = crate::popular::by_count(&counts);
    let mut model = Model {
        algorithm,
        user_ids: ds.user_ids.clone(),
        item_ids: ds.item_ids.clone(),
        user_factors: Array2::zeros((n_users, 0)),
        item_factors: Array2::zeros((n_items, 0)),
        user_bias: Vec::new(),
        item_bias: Vec::new(),
        global: 0.0,
        // While it is evaluated, the model knows the training rows only: an
        // item-item model scores a user from them.
        seen: train.clone(),
        popular,
        regularization: 0.0,
        alpha: 0.0,
        content: None,
        weights: None,
    };
    let mut cx = Context {
        ds,
        train: &train,
        side,
        pool: &pool,
        seed: protocol.seed(),
        model: &mut model,
        explain: None,
        on_iteration: &mut *on_iteration,
    };
    algorithm.fit(p.algorithm_params(), &mut cx)?;
    let explain = cx.explain.take();
    let mut metrics = Metrics::new();
    // With cold items held out, warm items rank among the other items that
    // have interactions, cold ones among the cold.
    let warm_pool: Option<Vec<u32>> = (!cs.cold_items.is_empty()).then(|| {
        let mut trained = vec![false; n_items];
        train.indices.iter().for_each(|&i| trained[i as usize] = true);
        (0..n_items as u32).filter(|&i| trained[i as usize]).collect()
    });
    if test.nnz() > 0 {
        metrics = pool.install(|| metrics::evaluate(&model, &train, &test, warm_pool.as_deref(), &[10, 20]));
        metrics.extend(algorithm.extra_metrics(&model, &test));
    }
    if !cs.cold_test.is_empty() {
        on_iteration(&Progress { checkpoint: true, ..Progress::default() })?;
        let cold_test = ds.user_items(Some(&cs.cold_test));
        let cold = pool.install(|| metrics::evaluate(&model, &train, &cold_test, Some(&cs.cold_items), &[10, 20]));
        metrics.extend(cold.into_iter().map(|(k, v)| (format!("cold_{k}"), v)));
    }
    model.seen = ds.user_items(None);
    Ok(Trained {
        model,
        metrics,
        train_rows: parts.train.len(),
        test_rows: parts.test.len() + cs.cold_test.len(),
        explain,
    })
}

/// Test and benchmark shorthand: `fit` with params parsed from JSON.
pub fn fit_json(ds: &Dataset, algorithm: &str, json: &str, threads: usize) -> Result<Trained> {
    let p = Algorithm::parse(algorithm)?.parse_params(json)?;
    fit(ds, &p, threads, &mut |_| Ok(()))
}
