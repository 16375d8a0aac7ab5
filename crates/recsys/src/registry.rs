//! The recommender registry: every algorithm is one type implementing
//! [`Algo`] in its own module — its name, its typed params (with their
//! defaults beside them and a validation [`Param`] table), the side data it
//! needs, its key metric, its progress label, its memory estimate and its
//! `fit` — and one line in [`ALGORITHMS`]. `train`, the params errors and
//! hints, the README's params tables, the memory guard and the auto-deploy
//! rule all read from here, so adding an algorithm touches its module and
//! that line.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::data::{Csr, Dataset};
use crate::fit::Side;
use crate::memory::Shape;
use crate::metrics::Metrics;
use crate::model::Model;
use crate::params::{Param, Params};
use crate::progress::Progress;
use crate::{als, bpr, content, ease, item_knn, kgat, lightgcn, mf, popular, vbpr};
use pgrec_base::error::{Error, ErrorKind, Result};

/// What an algorithm needs besides the interactions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// Explicit ratings (a weight or rating column).
    pub ratings: bool,
    /// A knowledge graph (`relations`, optionally `item_entities` and
    /// `user_relations`).
    pub graph: bool,
    /// Item content vectors (`item_features`).
    pub features: bool,
    /// The model's factors are the unit content vectors themselves, so an
    /// index over a single content column can rank for it at serving time.
    pub content_index: bool,
    /// Optional user–user pairs (`user_relations`) without a knowledge graph.
    pub social: bool,
}

impl Needs {
    /// Interactions alone.
    pub const NONE: Needs =
        Needs { ratings: false, graph: false, features: false, content_index: false, social: false };
}

/// What training has at hand: the data, the side data, the worker pool,
/// the protocol's seed and the progress callback. `fit` fills `model` (whose
/// ids, `seen` and popularity are set) and may set `explain`.
pub struct Context<'a> {
    pub ds: &'a Dataset,
    /// The training part of the interactions (users × items).
    pub train: &'a Csr,
    pub side: &'a Side<'a>,
    pub pool: &'a rayon::ThreadPool,
    pub seed: u64,
    pub model: &'a mut Model,
    pub explain: Option<kgat::explain::ExplainGraph>,
    pub on_iteration: &'a mut dyn FnMut(&Progress) -> Result<()>,
}

/// One recommender, written once. `Params` is its typed params: serde reads
/// them from `train()`'s jsonb (every key optional, `Default` the defaults)
/// after [`Algo::PARAMS`] has checked each key's value, so its field names
/// are the keys (a rename where the code's name differs).
pub trait Algo: Sync + 'static {
    type Params: Serialize + DeserializeOwned + Default + Clone + fmt::Debug + Send + Sync + 'static;
    const NAME: &'static str;
    /// One line for the README's list of algorithms.
    const SUMMARY: &'static str;
    /// Every key `Params` takes, with its rule and meaning, in the order the
    /// README lists them.
    const PARAMS: &'static [Param];
    const NEEDS: Needs = Needs::NONE;
    /// The metric that decides auto-deploys, and whether lower is better.
    const KEY_METRIC: (&'static str, bool) = ("recall@20", false);
    /// What one `Progress` iteration is called in the NOTICEs.
    const LABEL: &'static str = "epoch";
    /// Whether `Progress::loss` means anything (a closed form has none).
    const REPORTS_LOSS: bool = true;
    /// The hint of the error that stops a diverged training.
    const DIVERGED_HINT: &'static str = "lower learning_rate, raise regularization, or scale the weights down";

    /// Checks between params that one key's rule cannot see.
    fn validate(_p: &Self::Params) -> Result<()> {
        Ok(())
    }

    /// Peak bytes of training with `p` on data of `shape` besides the data and
    /// the stored model (see `memory`), and the param that drives it most.
    fn memory(p: &Self::Params, s: &Shape) -> (u64, &'static str);

    /// Trains on `cx.train`, filling `cx.model`.
    fn fit(p: &Self::Params, cx: &mut Context<'_>) -> Result<()>;

    /// Metrics besides the ranking ones, from the held-out part.
    fn extra_metrics(_model: &Model, _test: &Csr) -> Metrics {
        Metrics::new()
    }

    /// A user vector for someone who liked `items`, for factor models: the
    /// mean of the items' factors unless the algorithm knows better.
    fn fold_in(model: &Model, items: &[u32]) -> Vec<f32> {
        model.mean_factors(items)
    }

    /// The name of a trained model the params ask to start from.
    fn pretrain(_p: &Self::Params) -> Option<&str> {
        None
    }
}

/// The object-safe face of an [`Algo`], which the registry holds.
pub trait Recommender: Sync {
    fn name(&self) -> &'static str;
    fn summary(&self) -> &'static str;
    fn params(&self) -> &'static [Param];
    fn needs(&self) -> Needs;
    fn key_metric(&self) -> (&'static str, bool);
    fn label(&self) -> &'static str;
    fn reports_loss(&self) -> bool;
    fn diverged_hint(&self) -> &'static str;
    /// The typed params from a JSON object whose keys have passed their rules.
    fn typed(&self, object: serde_json::Value) -> Result<Box<dyn AnyParams>>;
    fn defaults(&self) -> Box<dyn AnyParams>;
    fn memory(&self, p: &dyn AnyParams, s: &Shape) -> Result<(u64, &'static str)>;
    fn fit(&self, p: &dyn AnyParams, cx: &mut Context<'_>) -> Result<()>;
    fn extra_metrics(&self, model: &Model, test: &Csr) -> Metrics;
    fn fold_in(&self, model: &Model, items: &[u32]) -> Vec<f32>;
    fn pretrain<'p>(&self, p: &'p dyn AnyParams) -> Option<&'p str>;
}

/// Some algorithm's typed params.
pub trait AnyParams: Any + fmt::Debug + Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn to_json(&self) -> serde_json::Value;
    fn clone_box(&self) -> Box<dyn AnyParams>;
}

impl<T: Any + fmt::Debug + Send + Sync + Serialize + Clone> AnyParams for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn clone_box(&self) -> Box<dyn AnyParams> {
        Box::new(self.clone())
    }
}

struct Registered<A>(PhantomData<A>);

impl<A: Algo> Registered<A> {
    fn cast(p: &dyn AnyParams) -> Result<&A::Params> {
        p.as_any().downcast_ref::<A::Params>().ok_or_else(|| {
            Error::new(ErrorKind::Internal, format!("params of another algorithm were passed to {}", A::NAME))
        })
    }
}

impl<A: Algo> Recommender for Registered<A> {
    fn name(&self) -> &'static str {
        A::NAME
    }

    fn summary(&self) -> &'static str {
        A::SUMMARY
    }

    fn params(&self) -> &'static [Param] {
        A::PARAMS
    }

    fn needs(&self) -> Needs {
        A::NEEDS
    }

    fn key_metric(&self) -> (&'static str, bool) {
        A::KEY_METRIC
    }

    fn label(&self) -> &'static str {
        A::LABEL
    }

    fn reports_loss(&self) -> bool {
        A::REPORTS_LOSS
    }

    fn diverged_hint(&self) -> &'static str {
        A::DIVERGED_HINT
    }

    fn typed(&self, object: serde_json::Value) -> Result<Box<dyn AnyParams>> {
        let p: A::Params = serde_json::from_value(object)
            .map_err(|e| Error::new(ErrorKind::InvalidParameterValue, format!("invalid params: {e}")))?;
        A::validate(&p)?;
        Ok(Box::new(p))
    }

    fn defaults(&self) -> Box<dyn AnyParams> {
        Box::new(A::Params::default())
    }

    fn memory(&self, p: &dyn AnyParams, s: &Shape) -> Result<(u64, &'static str)> {
        Ok(A::memory(Self::cast(p)?, s))
    }

    fn fit(&self, p: &dyn AnyParams, cx: &mut Context<'_>) -> Result<()> {
        A::fit(Self::cast(p)?, cx)
    }

    fn extra_metrics(&self, model: &Model, test: &Csr) -> Metrics {
        A::extra_metrics(model, test)
    }

    fn fold_in(&self, model: &Model, items: &[u32]) -> Vec<f32> {
        A::fold_in(model, items)
    }

    fn pretrain<'p>(&self, p: &'p dyn AnyParams) -> Option<&'p str> {
        Self::cast(p).ok().and_then(A::pretrain)
    }
}

/// Every algorithm `train()` knows, in the order the README lists them.
static ALGORITHMS: &[&dyn Recommender] = &[
    &Registered::<popular::Popular>(PhantomData),
    &Registered::<als::Als>(PhantomData),
    &Registered::<bpr::Bpr>(PhantomData),
    &Registered::<mf::Mf>(PhantomData),
    &Registered::<ease::Ease>(PhantomData),
    &Registered::<item_knn::ItemKnn>(PhantomData),
    &Registered::<lightgcn::LightGcn>(PhantomData),
    &Registered::<kgat::Kgat>(PhantomData),
    &Registered::<vbpr::Vbpr>(PhantomData),
    &Registered::<content::ContentKnn>(PhantomData),
];

/// An algorithm of the registry: cheap to copy, compared by name.
#[derive(Clone, Copy)]
pub struct Algorithm(&'static dyn Recommender);

impl PartialEq for Algorithm {
    fn eq(&self, other: &Algorithm) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Algorithm {}

impl fmt::Debug for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::ops::Deref for Algorithm {
    type Target = dyn Recommender;

    fn deref(&self) -> &(dyn Recommender + 'static) {
        self.0
    }
}

impl Algorithm {
    pub fn all() -> impl Iterator<Item = Algorithm> {
        ALGORITHMS.iter().map(|&r| Algorithm(r))
    }

    pub fn parse(name: &str) -> Result<Algorithm> {
        Algorithm::all().find(|a| a.name() == name).ok_or_else(|| {
            let mut names: Vec<&str> = Algorithm::all().map(|a| a.name()).collect();
            names.sort_unstable();
            Error::new(ErrorKind::InvalidParameterValue, format!("unknown algorithm \"{name}\""))
                .with_hint(format!("use one of {}", names.join(", ")))
        })
    }

    /// The names of the algorithms `pred` holds for, as "a, b and c" (in the
    /// registry's order), for messages that say which algorithms something
    /// applies to.
    pub fn names_where(pred: impl Fn(Algorithm) -> bool) -> String {
        let names: Vec<&str> = Algorithm::all().filter(|&a| pred(a)).map(|a| a.name()).collect();
        crate::params::listed(&names, "and")
    }

    /// "a" or "an", as the name is read out ("an ease model", "a bpr model").
    pub fn article(self) -> &'static str {
        if self.name().starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }
    }

    /// Parses `train()`'s params (a JSON object) for this algorithm.
    pub fn parse_params(self, json: &str) -> Result<Params> {
        Params::parse(self, json)
    }

    /// The `pretrain` model the params name, if the algorithm takes one.
    pub fn pretrain_of(self, p: &Params) -> Option<&str> {
        self.0.pretrain(p.algorithm_params())
    }

    /// [`Recommender::memory`] for params parsed for this algorithm.
    pub fn memory_of(self, p: &Params, s: &Shape) -> Result<(u64, &'static str)> {
        self.0.memory(p.algorithm_params(), s)
    }
}

/// The error that stops a training whose numbers overflowed.
pub fn diverged(algorithm: Algorithm, what: &str) -> Error {
    Error::new(
        ErrorKind::NumericValueOutOfRange,
        format!("{} training diverged: {what}; nothing was stored", algorithm.name()),
    )
    .with_hint(algorithm.diverged_hint())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The validation table and the typed params name the same keys, so a
    /// key cannot be accepted without a rule or documented without effect.
    #[test]
    fn every_params_table_matches_its_typed_params() {
        for a in Algorithm::all() {
            let mut fields: Vec<String> = match a.defaults().to_json() {
                serde_json::Value::Object(m) => m.keys().cloned().collect(),
                other => panic!("{} defaults are not an object: {other}", a.name()),
            };
            let mut keys: Vec<String> = a.params().iter().map(|p| p.key.to_string()).collect();
            fields.sort();
            keys.sort();
            assert_eq!(fields, keys, "{}", a.name());
        }
    }

    #[test]
    fn names_are_unique_and_parse() {
        let names: Vec<&str> = Algorithm::all().map(|a| a.name()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        for n in names {
            assert_eq!(Algorithm::parse(n).unwrap().name(), n);
        }
        let e = Algorithm::parse("svd").unwrap_err();
        assert_eq!(e.message, "unknown algorithm \"svd\"");
        assert_eq!(
            e.hint.as_deref(),
            Some("use one of als, bpr, content_knn, ease, item_knn, kgat, lightgcn, mf, popular, vbpr")
        );
    }
}
