//! The training protocol every algorithm runs through: split the data, train
//! the chosen algorithm on the training part (the one place that dispatches on
//! [`Algorithm`]), evaluate on the held-out part.

use ndarray::Array2;

use super::progress::Progress;
use super::{Algorithm, Dataset, Metrics, Model, Params};
use super::{als, bpr, content, kgat, metrics, mf, model, split, vbpr};
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

/// Splits `ds`, trains `algorithm` on the training part, evaluates on the rest
/// (Recall, NDCG, … at 10 and 20, all items ranked, training items excluded;
/// RMSE/MAE too for `mf`), and returns the model, whose `seen` holds all rows.
pub fn fit(
    ds: &Dataset,
    algorithm: Algorithm,
    p: &Params,
    threads: usize,
    on_iteration: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<Trained> {
    fit_with(ds, algorithm, p, &Side::default(), threads, on_iteration)
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
    /// (see [`content::ItemFeatures::align`]).
    pub features: Option<&'a Array2<f32>>,
}

/// [`fit`], with the side data that `kgat`, `vbpr` and `content_knn` need.
/// With `p.cold_items` > 0 that share of the items is held out entirely and
/// the metrics gain `cold_` ones: those items' interactions ranked among
/// them; the warm metrics then rank the other items.
pub fn fit_with(
    ds: &Dataset,
    algorithm: Algorithm,
    p: &Params,
    side: &Side<'_>,
    threads: usize,
    on_iteration: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<Trained> {
    let cs = split::cold_split(ds, p.test_fraction, p.cold_items, p.seed);
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
    let mut popular: Vec<u32> = (0..n_items as u32).collect();
    popular.sort_by(|&a, &b| counts[b as usize].cmp(&counts[a as usize]).then(a.cmp(&b)));
    let mut model = Model {
        algorithm,
        user_ids: ds.user_ids.clone(),
        item_ids: ds.item_ids.clone(),
        user_factors: Array2::zeros((n_users, 0)),
        item_factors: Array2::zeros((n_items, 0)),
        user_bias: Vec::new(),
        item_bias: Vec::new(),
        global: 0.0,
        seen: ds.user_items(None),
        popular,
        regularization: p.regularization,
        alpha: p.alpha,
        content: None,
    };
    let mut explain = None;
    match algorithm {
        Algorithm::Popular => {
            let mut train_counts = vec![0f32; n_items];
            parts.train.iter().for_each(|&k| train_counts[ds.items[k] as usize] += 1.0);
            let max = train_counts.iter().copied().fold(1.0, f32::max);
            model.item_bias = train_counts.into_iter().map(|c| c / max).collect();
            on_iteration(&Progress { iteration: 1, of: 1, ..Progress::default() })?;
        }
        Algorithm::Als => {
            let (x, y) = als::train(&train, p, &pool, on_iteration)?;
            model.user_factors = x;
            model.item_factors = y;
        }
        Algorithm::Bpr => {
            let (x, y, b) = bpr::train(&train, p, &pool, on_iteration)?;
            model.user_factors = x;
            model.item_factors = y;
            model.item_bias = b;
        }
        Algorithm::Kgat => {
            let g = side.graph.ok_or_else(|| {
                Error::new(ErrorKind::InvalidParameterValue, "kgat needs a knowledge graph")
                    .with_hint("pass relations => 'SELECT head, relation, tail FROM ...'")
            })?;
            let init =
                side.pretrain.map(|m| kgat::Init::from_model(m, &ds.user_ids, &ds.item_ids, p.factors)).transpose()?;
            let f = kgat::train(&train, g, &p.kgat(), init.as_ref(), &pool, on_iteration)?;
            model.user_factors = f.users;
            model.item_factors = f.items;
            model.item_bias = f.item_bias;
            explain = f.graph.map(|c| kgat::explain::ExplainGraph::new(c, g, n_items));
        }
        Algorithm::Vbpr | Algorithm::ContentKnn => {
            let features = side.features.filter(|f| f.nrows() == n_items).ok_or_else(|| {
                Error::new(ErrorKind::InvalidParameterValue, format!("{} needs item features", algorithm.name()))
                    .with_hint("pass item_features => 'SELECT item_id, embedding FROM items'")
            })?;
            if algorithm == Algorithm::Vbpr {
                let m = vbpr::train(&train, features, &p.vbpr(), &pool, on_iteration)?;
                model.user_factors = m.users;
                model.item_factors = m.items;
                model.item_bias = m.item_bias;
                model.content = Some(model::ContentMap {
                    dims: features.ncols(),
                    projection: Some(m.projection),
                    bias: m.cold_bias,
                });
            } else {
                let (users, items) = pool.install(|| content::knn(&train, features));
                model.user_factors = users;
                model.item_factors = items;
                model.content = Some(model::ContentMap { dims: features.ncols(), projection: None, bias: 0.0 });
                on_iteration(&Progress { iteration: 1, of: 1, ..Progress::default() })?;
            }
        }
        Algorithm::Mf => {
            let m = mf::train(&train, p, &pool, on_iteration)?;
            model.user_factors = m.users;
            model.item_factors = m.items;
            model.user_bias = m.user_bias;
            model.item_bias = m.item_bias;
            model.global = m.global;
        }
    }
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
        if algorithm == Algorithm::Mf {
            let (rmse, mae) = mf::rating_errors(|u, i| model.predict(u, i as usize), &test);
            metrics.insert("rmse".into(), rmse);
            metrics.insert("mae".into(), mae);
        }
    }
    if !cs.cold_test.is_empty() {
        on_iteration(&Progress { checkpoint: true, ..Progress::default() })?;
        let cold_test = ds.user_items(Some(&cs.cold_test));
        let cold = pool.install(|| metrics::evaluate(&model, &train, &cold_test, Some(&cs.cold_items), &[10, 20]));
        metrics.extend(cold.into_iter().map(|(k, v)| (format!("cold_{k}"), v)));
    }
    Ok(Trained {
        model,
        metrics,
        train_rows: parts.train.len(),
        test_rows: parts.test.len() + cs.cold_test.len(),
        explain,
    })
}
