//! SQL functions of the recommenders: `train`, `deploy`, `drop_model`,
//! `recommend` (one user or many), `recommend_for_items`, `similar_items`,
//! `user_embedding` / `item_embedding`, `export_item_embeddings`, `evaluate`,
//! KGAT's `explain` and the content models' `add_items`.
//! Training and batch scoring run on worker threads (pure `recsys` code); this
//! thread reads and writes through SPI, reports progress and checks for Ctrl-C
//! between iterations.

use std::time::Instant;

use pgrx::JsonB;
use pgrx::prelude::*;

use super::{defaulted, required, workers};
use crate::catalog::interactions::{self, Source};
use crate::catalog::models::{self, Served};
use crate::catalog::{features, graph};
use crate::error::{Error, ErrorKind, Result};
use crate::guc;
use crate::recsys::kgat::KnowledgeGraph;
use crate::recsys::kgat::explain::Node;
use crate::recsys::{self, Algorithm, Dataset, Params, metrics, tune};
use crate::sqlstate::OrRaise;
use crate::types::datum::Embedding;

/// `k` checked, and bounded by what can be returned (a model's catalogue):
/// nothing is ever sized from the caller's number alone.
fn check_k(k: Option<i32>, at_most: usize) -> Result<usize> {
    match defaulted(k, "k")? {
        k if k >= 1 => Ok((k as usize).min(at_most.max(1))),
        k => Err(Error::new(ErrorKind::InvalidParameterValue, format!("k must be at least 1, got {k}"))),
    }
}

/// Fails before training if it would need more than `pgrec.max_train_memory`.
/// Bytes as whole megabytes, rounded up (for pgrec.max_train_memory's errors).
fn mb(b: u64) -> u64 {
    b.div_ceil(1024 * 1024)
}

fn check_memory(p: &Params, shape: &recsys::memory::Shape) -> Result<()> {
    let (bytes, advice) = recsys::memory::estimate(p, shape)?;
    let limit = guc::max_train_memory_bytes();
    if bytes <= limit {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::ProgramLimitExceeded,
        format!(
            "training {} would need about {} MB, more than pgrec.max_train_memory ({} MB)",
            p.algorithm.name(),
            mb(bytes),
            mb(limit)
        ),
    )
    .with_hint(format!("{advice}, train on less data, or ask a superuser to raise pgrec.max_train_memory")))
}

fn item_rows(s: &Served, recs: Vec<(u32, f32)>) -> Vec<(i64, f32)> {
    recs.into_iter().map(|(i, sc)| (s.model.item_ids[i as usize], sc)).collect()
}

fn candidate_pool(s: &Served, candidates: Option<Array<'_, i64>>) -> Option<Vec<u32>> {
    candidates.map(|c| s.item_indices(&c.iter().flatten().collect::<Vec<_>>()))
}

/// Arguments of `train` in this library's SQL.
const TRAIN_ARGS: i16 = 12;

#[unsafe(no_mangle)]
#[doc(hidden)]
pub extern "C" fn pg_finfo_train_wrapper() -> &'static pg_sys::Pg_finfo_record {
    const V1_API: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1_API
}

/// `train`'s symbol. Its argument list grew from 8 to 12 before the first
/// release, and a database holding an older `CREATE FUNCTION train` would
/// otherwise reach pgrx's argument unboxing and fail there (XX000): this
/// checks the count first and says which versions disagree. A function whose
/// arguments change gets the same guard.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn train_wrapper(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: Postgres passes a valid fcinfo for the duration of the call.
    let nargs = unsafe { (*fcinfo).nargs };
    if nargs != TRAIN_ARGS {
        crate::catalog::access::check_version()
            .and_then(|()| {
                Err::<(), _>(Error::new(
                    ErrorKind::ObjectNotInPrerequisiteState,
                    format!("train() is declared with {nargs} arguments in this database; the pgrec library's takes {TRAIN_ARGS}"),
                )
                .with_hint("reinstall the extension's SQL: ALTER EXTENSION pgrec UPDATE, or DROP and CREATE EXTENSION"))
            })
            .or_raise();
    }
    // SAFETY: the same fcinfo, whose argument count is the one this
    // library's wrapper unboxes.
    unsafe { train_impl_wrapper(fcinfo) }
}

/// Where a training reads from: `train()`'s and `tune()`'s data arguments.
struct Sources<'a> {
    interactions: &'a str,
    user_column: &'a str,
    item_column: &'a str,
    weight_column: Option<&'a str>,
    ts_column: Option<&'a str>,
    relations: Option<&'a str>,
    item_entities: Option<&'a str>,
    user_relations: Option<&'a str>,
    item_features: Option<&'a str>,
}

impl<'a> Sources<'a> {
    /// From the SQL arguments: interactions, user and item columns, then
    /// weight_column, ts_column, relations, item_entities, user_relations and
    /// item_features (optional).
    fn new(
        interactions: Option<&'a str>,
        user_column: Option<&'a str>,
        item_column: Option<&'a str>,
        [weight_column, ts_column, relations, item_entities, user_relations, item_features]: [Option<&'a str>; 6],
    ) -> Result<Sources<'a>> {
        Ok(Sources {
            interactions: required(interactions, "interactions")?,
            user_column: defaulted(user_column, "user_column")?,
            item_column: defaulted(item_column, "item_column")?,
            weight_column,
            ts_column,
            relations,
            item_entities,
            user_relations,
            item_features,
        })
    }
}

/// What a training reads: the interactions and the side data its algorithm
/// needs (refusing side data it does not take).
struct Inputs {
    ds: Dataset,
    graph: Option<KnowledgeGraph>,
    social: Option<Vec<(u32, u32)>>,
    /// The item vectors aligned to `ds`, the indexed column they came from
    /// (content_knn), their dimensions.
    features: Option<(ndarray::Array2<f32>, Option<models::ContentSource>, usize)>,
}

impl Inputs {
    fn shape(&self) -> recsys::memory::Shape {
        let (ds, graph) = (&self.ds, &self.graph);
        recsys::memory::Shape {
            users: ds.n_users(),
            items: ds.n_items(),
            interactions: ds.len(),
            entities: graph.as_ref().map_or(0, |g| g.n_entities),
            relations: graph.as_ref().map_or(0, |g| g.relations.len()),
            triples: graph.as_ref().map_or(0, |g| g.triples.len() + g.user_triples.len())
                + self.social.as_ref().map_or(0, Vec::len),
            feature_dims: self.features.as_ref().map_or(0, |f| f.2),
        }
    }

    fn side<'a>(&'a self, pretrained: Option<&'a recsys::Model>) -> recsys::Side<'a> {
        recsys::Side {
            graph: self.graph.as_ref(),
            pretrain: pretrained,
            features: self.features.as_ref().map(|f| &f.0),
            social: self.social.as_deref(),
        }
    }

    fn announce(&self, algorithm: Algorithm, what: &str, name: &str) {
        pgrx::notice!(
            "{what} {} \"{name}\" on {} interactions of {} users and {} items",
            algorithm.name(),
            self.ds.len(),
            self.ds.n_users(),
            self.ds.n_items()
        );
    }
}

fn read_inputs(algorithm: Algorithm, src: &Sources<'_>) -> Result<Inputs> {
    let needs = algorithm.needs();
    let rows = interactions::read(&Source {
        relation: src.interactions,
        user_column: src.user_column,
        item_column: src.item_column,
        weight_column: src.weight_column,
        ts_column: src.ts_column,
        require_weight: needs.ratings,
    })?;
    pgrx::check_for_interrupts!();
    let mut ds = Dataset::from_rows(&rows)?;
    drop(rows);
    pgrx::check_for_interrupts!();
    let graph = if needs.graph {
        let r = src.relations.ok_or_else(|| {
            Error::new(ErrorKind::InvalidParameterValue, format!("{} needs relations", algorithm.name())).with_hint(
                "pass relations => 'SELECT head, relation, tail FROM ...'; for interactions alone train 'bpr'",
            )
        })?;
        let pairs = src.item_entities.map(graph::read_item_entities).transpose()?;
        let social = src.user_relations.map(|q| graph::read_triples(q, "user_relations")).transpose()?;
        let g = KnowledgeGraph::build(
            &ds.item_ids,
            &graph::read_triples(r, "relations")?,
            pairs.as_deref(),
            &ds.user_ids,
            social.as_deref().unwrap_or_default(),
        )?;
        if g.duplicates + g.self_loops + g.unknown_items + g.unknown_users > 0 {
            pgrx::notice!(
                "knowledge graph: {} duplicate triples merged, {} self-loops dropped, {} item_entities rows name items without interactions, {} user_relations rows name users without interactions",
                g.duplicates,
                g.self_loops,
                g.unknown_items,
                g.unknown_users
            );
        }
        pgrx::notice!(
            "knowledge graph: {} triples, {} user-user triples, {} relations, {} entities ({} of them items)",
            g.triples.len(),
            g.user_triples.len(),
            g.relations.len(),
            g.n_entities,
            ds.n_items()
        );
        pgrx::check_for_interrupts!();
        Some(g)
    } else if src.relations.is_some() || src.item_entities.is_some() {
        return Err(Error::new(
            ErrorKind::InvalidParameterValue,
            format!(
                "relations and item_entities apply to {} only, not {}",
                Algorithm::names_where(|a| a.needs().graph),
                algorithm.name()
            ),
        ));
    } else {
        None
    };
    // A social graph without a knowledge graph: user pairs.
    let social = match src.user_relations {
        Some(q) if needs.social => {
            let (pairs, unknown) = graph::read_user_pairs(q, &ds.user_ids)?;
            pgrx::notice!(
                "user_relations: {} pairs of users; left out: {unknown} row{} naming a user without interactions",
                pairs.len(),
                if unknown == 1 { "" } else { "s" }
            );
            pgrx::check_for_interrupts!();
            Some(pairs)
        }
        Some(_) if !needs.graph => {
            return Err(Error::new(
                ErrorKind::InvalidParameterValue,
                format!(
                    "user_relations apply to {} only, not {}",
                    Algorithm::names_where(|a| a.needs().graph || a.needs().social),
                    algorithm.name()
                ),
            ));
        }
        _ => None,
    };
    let features = if needs.features {
        let q = src.item_features.ok_or_else(|| {
            Error::new(ErrorKind::InvalidParameterValue, format!("{} needs item_features", algorithm.name()))
                .with_hint("pass item_features => 'SELECT item_id, embedding FROM items'")
        })?;
        let f = features::read(q)?;
        let known = ds.n_items();
        let (x, missing) = f.align(&mut ds);
        pgrx::notice!(
            "item features: {} items of {} dimensions; {} items have features but no interactions and are scored from content alone; {missing} items with interactions have no features",
            f.ids.len(),
            f.dims(),
            ds.n_items() - known
        );
        // One plain vector column of one table: content_knn can rank that
        // table's rows by their index at serving time.
        let source = if needs.content_index && f.columns == 1 { features::content_source(q)? } else { None };
        Some((x, source, f.dims()))
    } else if src.item_features.is_some() {
        return Err(Error::new(
            ErrorKind::InvalidParameterValue,
            format!(
                "item_features apply to {} only, not {}",
                Algorithm::names_where(|a| a.needs().features),
                algorithm.name()
            ),
        ));
    } else {
        None
    };
    Ok(Inputs { ds, graph, social, features })
}

/// Between a training's iterations: Ctrl-C and statement_timeout, and the
/// stop of a diverged training.
fn progress_check(algorithm: Algorithm, pr: &recsys::Progress) -> Result<()> {
    pgrx::check_for_interrupts!();
    if !pr.checkpoint && !pr.loss.is_finite() {
        return Err(recsys::registry::diverged(
            algorithm,
            &format!("the loss is {} after {} {}", pr.loss, algorithm.label(), pr.iteration),
        ));
    }
    Ok(())
}

/// One training's progress as a NOTICE; stops a diverged one.
fn progress_notice(algorithm: Algorithm, pr: &recsys::Progress) -> Result<()> {
    progress_check(algorithm, pr)?;
    if pr.checkpoint {
        return Ok(());
    }
    let label = algorithm.label();
    if pr.iteration == 0 {
        // KGAT's start, judged before its first epoch.
        let pretrained = pr.pretrain_seconds.map_or(String::new(), |s| format!(" (bpr pretrained in {s:.1} s)"));
        let recall = pr.validation_recall.map_or(String::new(), |r| format!(": validation recall@20 {r:.4}"));
        pgrx::notice!("{} start{pretrained}{recall}", algorithm.name());
        return Ok(());
    }
    let eta = pr.elapsed / pr.iteration as f64 * (pr.of - pr.iteration) as f64;
    let loss = if algorithm.reports_loss() { format!(": loss {:.5}", pr.loss) } else { String::new() };
    let parts = pr.cf_kg.map_or(String::new(), |(cf, kg)| format!(" (cf {cf:.5}, kg {kg:.5})"));
    let validation = pr.validation_recall.map_or(String::new(), |r| format!(", validation recall@20 {r:.4}"));
    pgrx::notice!(
        "{} {label} {}/{}{loss}{parts}{validation}, {:.1} s elapsed, about {:.0} s left",
        algorithm.name(),
        pr.iteration,
        pr.of,
        pr.elapsed,
        eta
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
#[pg_extern(sql = false)]
fn train_impl(
    name: Option<&str>,
    algorithm: Option<&str>,
    interactions: Option<&str>,
    params: Option<JsonB>,
    user_column: Option<&str>,
    item_column: Option<&str>,
    weight_column: Option<&str>,
    ts_column: Option<&str>,
    relations: Option<&str>,
    item_entities: Option<&str>,
    user_relations: Option<&str>,
    item_features: Option<&str>,
) -> TableIterator<
    'static,
    (name!(name, String), name!(version, i32), name!(algorithm, String), name!(deployed, bool), name!(metrics, JsonB)),
> {
    let run = || -> Result<_> {
        let name = model_name(name)?;
        let algorithm = Algorithm::parse(required(algorithm, "algorithm")?)?;
        let json = defaulted(params, "params")?.0;
        let p = algorithm.parse_params(&json.to_string())?;
        let src = Sources::new(
            interactions,
            user_column,
            item_column,
            [weight_column, ts_column, relations, item_entities, user_relations, item_features],
        )?;
        // Before any data is read: may this role write a version of `name`?
        models::check_may_train(name)?;
        let started = Instant::now();
        let inputs = read_inputs(algorithm, &src)?;
        inputs.announce(algorithm, "training", name);
        check_memory(&p, &inputs.shape())?;
        let pretrained = algorithm.pretrain_of(&p).map(|m| models::load(Some(m))).transpose()?;
        let side = inputs.side(pretrained.as_ref().map(|s| &s.model));
        let t = recsys::fit_with(&inputs.ds, &p, &side, guc::threads(), &mut |pr| progress_notice(algorithm, pr))?;
        let seconds = started.elapsed().as_secs_f64();
        let source = inputs.features.as_ref().and_then(|f| f.1.as_ref());
        let saved = models::save(name, &json, &t, inputs.ds.len(), seconds, source, None)?;
        let metrics = models::metrics_json(&t.metrics);
        Ok(vec![(name.to_string(), saved.version, algorithm.name().to_string(), saved.deployed, JsonB(metrics))])
    };
    TableIterator::new(run().or_raise())
}

#[allow(clippy::too_many_arguments)]
#[pg_extern(sql = false)]
fn tune(
    name: Option<&str>,
    algorithm: Option<&str>,
    interactions: Option<&str>,
    search: Option<JsonB>,
    trials: Option<i32>,
    params: Option<JsonB>,
    user_column: Option<&str>,
    item_column: Option<&str>,
    weight_column: Option<&str>,
    ts_column: Option<&str>,
    relations: Option<&str>,
    item_entities: Option<&str>,
    user_relations: Option<&str>,
    item_features: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(name, String),
        name!(version, i32),
        name!(algorithm, String),
        name!(deployed, bool),
        name!(params, JsonB),
        name!(metrics, JsonB),
    ),
> {
    let run = || -> Result<_> {
        let name = model_name(name)?;
        let algorithm = Algorithm::parse(required(algorithm, "algorithm")?)?;
        let search = required(search, "search")?.0;
        let n_trials = defaulted(trials, "trials")?;
        if !(1..=tune::MAX_TRIALS as i32).contains(&n_trials) {
            return Err(Error::new(
                ErrorKind::InvalidParameterValue,
                format!("trials must be between 1 and {}, got {n_trials}", tune::MAX_TRIALS),
            ));
        }
        let base_json = defaulted(params, "params")?.0;
        let base = algorithm.parse_params(&base_json.to_string())?;
        let base_map = base_json.as_object().cloned().unwrap_or_default();
        if base.protocol.test_fraction <= 0.0 {
            return Err(Error::new(
                ErrorKind::InvalidParameterValue,
                "tune needs held-out rows to choose by: test_fraction must be above 0",
            )
            .with_hint("leave test_fraction out (0.2 of each user's rows) or set it above 0"));
        }
        let space = tune::Search::parse(algorithm, &search)?;
        if let Some(k) = search.as_object().and_then(|o| o.keys().find(|k| base_map.contains_key(*k))) {
            return Err(Error::new(
                ErrorKind::InvalidParameterValue,
                format!("param \"{k}\" is both in params and in search"),
            )
            .with_hint("params holds what every trial shares, search what the trials vary"));
        }
        let (maps, strategy) = space.configs(&base_map, n_trials as usize, base.protocol.seed());
        let configs: Vec<Params> = maps
            .iter()
            .map(|m| algorithm.parse_params(&serde_json::Value::Object(m.clone()).to_string()))
            .collect::<Result<_>>()?;
        let src = Sources::new(
            interactions,
            user_column,
            item_column,
            [weight_column, ts_column, relations, item_entities, user_relations, item_features],
        )?;
        models::check_may_train(name)?;
        let started = Instant::now();
        let inputs = read_inputs(algorithm, &src)?;
        inputs.announce(algorithm, "tuning", name);
        let shape = inputs.shape();
        for c in &configs {
            check_memory(c, &shape)?;
        }
        let (key, lower_better) = algorithm.key_metric();
        pgrx::notice!(
            "{} trials ({}), each trained on the training part less {:.0}% of each user's rows{}, scored by validation {key} ({} is better) on those",
            configs.len(),
            strategy.name(),
            base.protocol.test_fraction * 100.0,
            if inputs.ds.ts.is_some() { " (their latest)" } else { "" },
            if lower_better { "lower" } else { "higher" }
        );
        let pretrained = algorithm.pretrain_of(&base).map(|m| models::load(Some(m))).transpose()?;
        let side = inputs.side(pretrained.as_ref().map(|s| &s.model));
        let of = configs.len();
        let threads = guc::threads();
        let (trials, best) = tune::run(&inputs.ds, &configs, &maps, &side, threads, &mut |e| match e {
            tune::Event::Progress(_, pr) => progress_check(algorithm, pr),
            tune::Event::Done(k, t) => {
                let shown = serde_json::Value::Object(t.params.clone());
                match (&t.metrics, &t.error) {
                    (Some(m), _) => pgrx::notice!(
                        "trial {k}/{of}: {shown}: validation {key} {:.4} in {:.1} s",
                        m.get(key).copied().unwrap_or(f64::NAN),
                        t.seconds
                    ),
                    (None, e) => pgrx::notice!("trial {k}/{of}: {shown}: {}", e.as_deref().unwrap_or("failed")),
                }
                Ok(())
            }
        })?;
        let best = best.ok_or_else(|| {
            Error::new(
                ErrorKind::NumericValueOutOfRange,
                format!("every trial of \"{name}\" diverged; nothing was stored"),
            )
            .with_hint("narrow the search: lower learning rates, higher regularization")
        })?;
        let chosen = serde_json::Value::Object(maps[best].clone());
        pgrx::notice!("trial {} chose {chosen}; training it on the whole training part", best + 1);
        let t = recsys::fit_with(&inputs.ds, &configs[best], &side, threads, &mut |pr| progress_notice(algorithm, pr))?;
        let seconds = started.elapsed().as_secs_f64();
        let kept: Vec<serde_json::Value> = trials
            .iter()
            .enumerate()
            .map(|(k, t)| {
                serde_json::json!({
                    "params": t.params,
                    "metrics": t.metrics.as_ref().map(models::metrics_json),
                    "error": t.error,
                    "seconds": t.seconds,
                    "chosen": k == best,
                })
            })
            .collect();
        let source = inputs.features.as_ref().and_then(|f| f.1.as_ref());
        let saved =
            models::save(name, &chosen, &t, inputs.ds.len(), seconds, source, Some(&serde_json::Value::Array(kept)))?;
        let metrics = models::metrics_json(&t.metrics);
        Ok(vec![(
            name.to_string(),
            saved.version,
            algorithm.name().to_string(),
            saved.deployed,
            JsonB(chosen),
            JsonB(metrics),
        )])
    };
    TableIterator::new(run().or_raise())
}

/// Behind the `pgrec.trials` view: the trials of the tuned versions the
/// caller may use.
#[pg_extern(sql = false)]
#[allow(clippy::type_complexity)]
fn trial_list() -> TableIterator<
    'static,
    (
        name!(name, String),
        name!(version, i32),
        name!(trial, i32),
        name!(chosen, bool),
        name!(params, JsonB),
        name!(metrics, Option<JsonB>),
        name!(error, Option<String>),
        name!(seconds, f64),
    ),
> {
    let rows = models::list_trials().or_raise();
    TableIterator::new(
        rows.into_iter().map(|t| (t.name, t.version, t.trial, t.chosen, t.params, t.metrics, t.error, t.seconds)),
    )
}

fn model_name(name: Option<&str>) -> Result<&str> {
    let name = required(name, "name")?;
    if name.trim().is_empty() {
        return Err(Error::new(ErrorKind::InvalidParameterValue, "model name must not be empty"));
    }
    Ok(name)
}

#[pg_extern(sql = false)]
fn deploy(name: Option<&str>, version: Option<i32>) -> i32 {
    let name = required(name, "name").or_raise();
    models::deploy(name, version).or_raise()
}

#[pg_extern(sql = false)]
fn rollback_model(name: &str) -> i32 {
    models::rollback(name).or_raise()
}

#[pg_extern(sql = false)]
fn deploy_challenger(name: &str, version: i32, share: f32) -> i32 {
    models::deploy_challenger(name, version, share).or_raise()
}

#[pg_extern(sql = false)]
fn stop_challenger(name: &str) -> Option<i32> {
    models::stop_challenger(name).or_raise()
}

#[pg_extern(sql = false)]
fn prune_versions(name: Option<&str>, keep: Option<i32>) -> i64 {
    (|| models::prune_versions(required(name, "name")?, defaulted(keep, "keep")?))().or_raise()
}

#[pg_extern(sql = false)]
fn served_version(model: &str, user_id: i64) -> i32 {
    models::load_arms(Some(model)).map(|a| a.for_user(user_id).version).or_raise()
}

/// Behind the `pgrec.deployments` view: the history of the models the
/// caller may use.
#[pg_extern(sql = false)]
#[allow(clippy::type_complexity)]
fn deployment_list() -> TableIterator<
    'static,
    (
        name!(id, i64),
        name!(name, String),
        name!(version, i32),
        name!(share, Option<f32>),
        name!(action, String),
        name!(at, pgrx::datum::TimestampWithTimeZone),
        name!(by_role, pg_sys::Oid),
    ),
> {
    let rows = models::deployments().or_raise();
    TableIterator::new(rows.into_iter().map(|d| (d.id, d.name, d.version, d.share, d.action, d.at, d.by_role)))
}

#[pg_extern(sql = false)]
fn drop_model(name: &str) -> i32 {
    models::drop_model(name).or_raise() as i32
}

#[pg_extern(sql = false)]
fn grant_model(model: &str, role: &str) {
    (|| models::set_grant(model, crate::catalog::access::role_oid(role)?, true))().or_raise()
}

#[pg_extern(sql = false)]
fn revoke_model(model: &str, role: &str) {
    (|| models::set_grant(model, crate::catalog::access::role_oid(role)?, false))().or_raise()
}

#[pg_extern(sql = false)]
fn distribute_models() -> bool {
    crate::catalog::citus::distribute_models().or_raise()
}

/// Behind the `pgrec.models` view: the versions the caller may use.
#[pg_extern(sql = false)]
#[allow(clippy::type_complexity)]
fn model_list() -> TableIterator<
    'static,
    (
        name!(name, String),
        name!(version, i32),
        name!(algorithm, String),
        name!(deployed, bool),
        name!(users, i64),
        name!(items, i64),
        name!(interactions, i64),
        name!(train_seconds, f64),
        name!(bytes, i64),
        name!(created_at, pgrx::datum::TimestampWithTimeZone),
        name!(params, pgrx::JsonB),
        name!(metrics, pgrx::JsonB),
        name!(owner, pg_sys::Oid),
    ),
> {
    let rows = models::list().or_raise();
    TableIterator::new(rows.into_iter().map(|m| {
        (
            m.name,
            m.version,
            m.algorithm,
            m.deployed,
            m.users,
            m.items,
            m.interactions,
            m.train_seconds,
            m.bytes,
            m.created_at,
            m.params,
            m.metrics,
            m.owner,
        )
    }))
}

/// Behind 0.2.0's `pgrec.models` view: whether the current role may use a model.
#[pg_extern(sql = false)]
fn may_use_model(owner: pg_sys::Oid, readers: Array<'_, pg_sys::Oid>, public: bool) -> bool {
    models::may_use(owner, &readers.iter().flatten().collect::<Vec<_>>(), public)
}

#[pg_extern(sql = false)]
fn recommend(
    user_id: Option<i64>,
    k: Option<i32>,
    model: Option<&str>,
    exclude_seen: Option<bool>,
    candidates: Option<Array<'_, i64>>,
) -> TableIterator<'static, (name!(item_id, i64), name!(score, f32))> {
    let run = || -> Result<Vec<(i64, f32)>> {
        let exclude = defaulted(exclude_seen, "exclude_seen")?;
        let arms = models::load_arms(model)?;
        let s = match user_id {
            Some(u) => arms.for_user(u),
            None => &arms.deployed,
        };
        let k = check_k(k, s.model.n_items())?;
        let Some(user) = user_id else { return Ok(Vec::new()) };
        let pool = candidate_pool(s, candidates);
        // content_knn over one indexed embedding column: the index ranks the
        // table's rows as they are now, new ones included.
        if let (Some(src), Some(&u), None) = (&s.source, s.users.get(&user), &pool) {
            let m = &s.model;
            let seen: Vec<i64> = if exclude && (u as usize) < m.seen.n_rows {
                m.seen.row(u as usize).0.iter().map(|&i| m.item_ids[i as usize]).collect()
            } else {
                Vec::new()
            };
            let profile = m.user_factors.row(u as usize).to_vec();
            if let Some(rows) = features::nearest(src, &profile, &seen, k)? {
                return Ok(rows);
            }
        }
        let recs = match s.users.get(&user) {
            Some(&u) => s.model.recommend(u, k, exclude, pool.as_deref()),
            None => {
                pgrx::notice!("user {user} is not in model \"{}\": recommending the most popular items", s.name);
                s.model.popular_items(k, &[], pool.as_deref())
            }
        };
        Ok(item_rows(s, recs))
    };
    TableIterator::new(run().or_raise())
}

#[pg_extern(sql = false)]
fn recommend_batch(
    user_ids: Option<Array<'_, i64>>,
    k: Option<i32>,
    model: Option<&str>,
    exclude_seen: Option<bool>,
    candidates: Option<Array<'_, i64>>,
) -> TableIterator<'static, (name!(user_id, i64), name!(item_id, i64), name!(score, f32))> {
    let run = || -> Result<Batch> {
        let exclude = defaulted(exclude_seen, "exclude_seen")?;
        let arms = models::load_arms(model)?;
        let k = check_k(k, arms.deployed.model.n_items())?;
        let candidates: Option<Vec<i64>> = candidates.map(|c| c.iter().flatten().collect());
        let ids: Vec<i64> = user_ids.map(|a| a.iter().flatten().collect()).unwrap_or_default();
        let arm = |s: &std::rc::Rc<Served>| {
            let pool = candidates.as_deref().map(|c| s.item_indices(c));
            let popular = s.model.popular_items(k, &[], pool.as_deref());
            Arm { s: s.clone(), pool, popular }
        };
        let share = arms.challenger.as_ref().map_or(0.0, |c| c.1);
        // About 2M result rows in memory at a time, however many users and k.
        let per_chunk = ((1usize << 21) / k).clamp(1, 8192);
        let batch = Batch {
            name: arms.deployed.name.clone(),
            deployed: arm(&arms.deployed),
            challenger: arms.challenger.as_ref().map(|c| arm(&c.0)),
            share,
            k,
            exclude,
            ids: Vec::new().into_iter(),
            per_chunk,
            rows: Vec::new().into_iter(),
        };
        let unknown = ids.iter().filter(|&&u| !batch.arm_of(u).1.s.users.contains_key(&u)).count();
        if unknown > 0 {
            pgrx::notice!(
                "{unknown} of {} users are not in model \"{}\": they get the most popular items",
                ids.len(),
                batch.name
            );
        }
        Ok(Batch { ids: ids.into_iter(), ..batch })
    };
    TableIterator::new(run().or_raise())
}

/// One version a batch serves, with what it needs per chunk.
struct Arm {
    s: std::rc::Rc<Served>,
    pool: Option<Vec<u32>>,
    popular: Vec<(u32, f32)>,
}

/// `recommend(user_ids[], ...)`'s rows, computed a chunk of users at a time
/// as Postgres asks for them: memory stays bounded for any number of users,
/// and Ctrl-C is seen between chunks. Each user is served by the deployed
/// version or, in the challenger's share, by the challenger.
struct Batch {
    name: String,
    deployed: Arm,
    challenger: Option<Arm>,
    share: f32,
    k: usize,
    exclude: bool,
    ids: std::vec::IntoIter<i64>,
    per_chunk: usize,
    rows: std::vec::IntoIter<(i64, i64, f32)>,
}

impl Batch {
    /// The arm user `u` is served by: 0 the deployed version, 1 the challenger.
    fn arm_of(&self, u: i64) -> (usize, &Arm) {
        match &self.challenger {
            Some(c) if models::in_share(&self.name, u, self.share) => (1, c),
            _ => (0, &self.deployed),
        }
    }

    /// Arm `which` (0 the deployed version, 1 the challenger), if there is one.
    fn arm(&self, which: usize) -> Option<&Arm> {
        if which == 0 { Some(&self.deployed) } else { self.challenger.as_ref() }
    }

    fn next_chunk(&mut self) -> Result<bool> {
        let chunk: Vec<i64> = self.ids.by_ref().take(self.per_chunk).collect();
        if chunk.is_empty() {
            return Ok(false);
        }
        pgrx::check_for_interrupts!();
        let (k, exclude) = (self.k, self.exclude);
        let workers = workers()?;
        // Each user's arm, hashed once; then each arm's known users of the
        // chunk, in order, and their lists.
        let arms: Vec<usize> = chunk.iter().map(|&u| self.arm_of(u).0).collect();
        let mut lists: Vec<std::vec::IntoIter<Vec<(u32, f32)>>> = Vec::new();
        for which in 0..2 {
            let Some(a) = self.arm(which) else { break };
            let known: Vec<u32> = chunk
                .iter()
                .zip(&arms)
                .filter(|&(_, &arm)| arm == which)
                .filter_map(|(u, _)| a.s.users.get(u).copied())
                .collect();
            let (m, pool) = (&a.s.model, a.pool.as_deref());
            lists.push(workers.install(|| m.recommend_many(&known, k, exclude, pool)).into_iter());
        }
        let mut out = Vec::new();
        for (u, which) in chunk.into_iter().zip(arms) {
            let a = self.arm(which).unwrap_or(&self.deployed);
            let list = match (a.s.users.contains_key(&u), lists.get_mut(which)) {
                (true, Some(l)) => l.next().unwrap_or_default(),
                _ => a.popular.clone(),
            };
            out.extend(item_rows(&a.s, list).into_iter().map(|(i, sc)| (u, i, sc)));
        }
        self.rows = out.into_iter();
        Ok(true)
    }
}

impl Iterator for Batch {
    type Item = (i64, i64, f32);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.rows.next() {
                return Some(r);
            }
            if !self.next_chunk().or_raise() {
                return None;
            }
        }
    }
}

#[pg_extern(sql = false)]
fn recommend_for_items(
    item_ids: Option<Array<'_, i64>>,
    k: Option<i32>,
    model: Option<&str>,
    candidates: Option<Array<'_, i64>>,
) -> TableIterator<'static, (name!(item_id, i64), name!(score, f32))> {
    let run = || -> Result<Vec<(i64, f32)>> {
        let s = models::load(model)?;
        let k = check_k(k, s.model.n_items())?;
        let pool = candidate_pool(&s, candidates);
        let ids: Vec<i64> = item_ids.map(|a| a.iter().flatten().collect()).unwrap_or_default();
        let liked = s.item_indices(&ids);
        if liked.len() < ids.len() {
            pgrx::notice!(
                "{} of {} items are not in model \"{}\" and were ignored",
                ids.len() - liked.len(),
                ids.len(),
                s.name
            );
        }
        let m = &s.model;
        let mut scores = vec![0f32; m.n_items()];
        if liked.is_empty() || !m.score_liked(&liked, &mut scores) {
            return Ok(item_rows(&s, m.popular_items(k, &liked, pool.as_deref())));
        }
        liked.iter().for_each(|&i| scores[i as usize] = f32::NEG_INFINITY);
        let top = recsys::topk::top_k(&scores, k, pool.as_deref());
        Ok(item_rows(&s, top.into_iter().map(|i| (i, scores[i as usize])).collect()))
    };
    TableIterator::new(run().or_raise())
}

#[pg_extern(sql = false)]
fn similar_items(
    item_id: Option<i64>,
    k: Option<i32>,
    model: Option<&str>,
) -> TableIterator<'static, (name!(item_id, i64), name!(score, f32))> {
    let run = || -> Result<Vec<(i64, f32)>> {
        let s = models::load(model)?;
        let k = check_k(k, s.model.n_items())?;
        let Some(item) = item_id else { return Ok(Vec::new()) };
        let i = *s.items.get(&item).ok_or_else(|| {
            Error::new(ErrorKind::InvalidParameterValue, format!("item {item} is not in model \"{}\"", s.name))
        })?;
        Ok(item_rows(&s, s.model.similar_items(i, k, None)))
    };
    TableIterator::new(run().or_raise())
}

fn factor_row(s: &Served, row: ndarray::ArrayView1<f32>) -> Result<Embedding> {
    if row.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidParameterValue,
            format!("model \"{}\" ({}) has no embeddings", s.name, s.model.algorithm.name()),
        ));
    }
    Ok(Embedding::from_slice(&row.to_vec()))
}

#[pg_extern(sql = false)]
fn user_embedding(model: &str, user_id: i64) -> Option<Embedding> {
    let s = models::load(Some(model)).or_raise();
    let u = *s.users.get(&user_id)?;
    Some(factor_row(&s, s.model.user_factors.row(u as usize)).or_raise())
}

#[pg_extern(sql = false)]
fn item_embedding(model: &str, item_id: i64) -> Option<Embedding> {
    let s = models::load(Some(model)).or_raise();
    let i = *s.items.get(&item_id)?;
    Some(factor_row(&s, s.model.item_factors.row(i as usize)).or_raise())
}

#[pg_extern(sql = false)]
fn export_item_embeddings(model: &str, target: &str) -> i64 {
    let s = models::load(Some(model)).or_raise();
    let f = s.model.factors();
    if f == 0 {
        factor_row(&s, ndarray::ArrayView1::from(&[][..])).or_raise();
    }
    // `schema.table`, or `table` in the schema CREATE TABLE would choose
    // from the caller's search_path; the statements themselves run pinned.
    let table = match target.split_once('.') {
        Some((schema, name)) => pgrx::spi::quote_qualified_identifier(schema, name),
        None => {
            let schema: Option<String> = Spi::connect(|c| {
                c.select("SELECT pg_catalog.current_schema()::text", Some(1), &[]).and_then(|t| t.first().get_one())
            })
            .or_raise_spi();
            let schema = schema
                .ok_or_else(|| {
                    Error::new(ErrorKind::InvalidParameterValue, "no schema has been selected to create in")
                        .with_hint("name the target as schema.table")
                })
                .or_raise();
            pgrx::spi::quote_qualified_identifier(schema, target.to_string())
        }
    };
    let ext = crate::catalog::access::schema().or_raise();
    let ids: Vec<i64> = s.model.item_ids.clone();
    let vecs: Vec<String> = s
        .model
        .item_factors
        .outer_iter()
        .map(|v| format!("{{{}}}", v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")))
        .collect();
    crate::catalog::access::pinned(|| {
        Spi::run(&format!("CREATE TABLE {table} (item_id bigint PRIMARY KEY, embedding {ext}.embedding({f}))"))?;
        Spi::run_with_args(
            &format!(
                "INSERT INTO {table} SELECT i, v::real[]::{ext}.embedding FROM unnest($1::bigint[], $2::text[]) AS t(i, v)"
            ),
            &[ids.into(), vecs.into()],
        )
    })
    .or_raise_spi();
    s.model.n_items() as i64
}

#[pg_extern(sql = false)]
fn evaluate(
    model: Option<&str>,
    test: Option<&str>,
    k: Option<i32>,
    candidates: Option<Array<'_, i64>>,
    user_column: Option<&str>,
    item_column: Option<&str>,
) -> JsonB {
    let run = || -> Result<JsonB> {
        let user_column = defaulted(user_column, "user_column")?;
        let item_column = defaulted(item_column, "item_column")?;
        let s = models::load(Some(required(model, "model")?))?;
        let k = check_k(k, s.model.n_items())?;
        let rows = interactions::read(&Source {
            relation: required(test, "test")?,
            user_column,
            item_column,
            weight_column: None,
            ts_column: None,
            require_weight: false,
        })?;
        let m = &s.model;
        let known: Vec<(u32, u32, f32)> =
            rows.iter().filter_map(|r| Some((*s.users.get(&r.user)?, *s.items.get(&r.item)?, 1.0))).collect();
        if known.len() < rows.len() {
            pgrx::notice!(
                "{} of {} test rows name users or items not in model \"{}\" and were skipped",
                rows.len() - known.len(),
                rows.len(),
                s.name
            );
        }
        let test = recsys::Csr::from_triples(m.n_users(), m.n_items(), known.into_iter());
        let pool = candidate_pool(&s, candidates);
        let workers = workers()?;
        let ks = if k == 10 { vec![10] } else { vec![10, k] };
        let metrics = workers.install(|| metrics::evaluate(m, &m.seen, &test, pool.as_deref(), &ks));
        Ok(JsonB(models::metrics_json(&metrics)))
    };
    run().or_raise()
}

#[pg_extern(sql = false)]
fn add_items(
    model: Option<&str>,
    item_features: Option<&str>,
) -> TableIterator<'static, (name!(name, String), name!(version, i32), name!(added, i64))> {
    let run = || -> Result<_> {
        let started = Instant::now();
        let s = models::load(Some(required(model, "model")?))?;
        let f = features::read(required(item_features, "item_features")?)?;
        let mut m = s.model.clone();
        let added = m.add_items(&f.ids, &f.values)?;
        if added == 0 {
            pgrx::notice!("every item in item_features is already in model \"{}\": no new version", s.name);
            return Ok(vec![(s.name.clone(), s.version, 0)]);
        }
        let version = models::save_with_added_items(&s, &m, added, started.elapsed().as_secs_f64())?;
        Ok(vec![(s.name.clone(), version, added as i64)])
    };
    TableIterator::new(run().or_raise())
}

#[pg_extern(sql = false)]
#[allow(clippy::type_complexity)]
fn update_model(
    name: Option<&str>,
    interactions: Option<&str>,
    user_column: Option<&str>,
    item_column: Option<&str>,
    weight_column: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(name, String),
        name!(version, i32),
        name!(interactions, i64),
        name!(new_users, i64),
        name!(new_items, i64),
        name!(users_updated, i64),
    ),
> {
    let run = || -> Result<_> {
        let started = Instant::now();
        let name = required(name, "name")?;
        // Refused before any data is read, as train() does.
        models::check_may_train(name)?;
        let s = models::load(Some(name))?;
        let rows = interactions::read(&Source {
            relation: required(interactions, "interactions")?,
            user_column: defaulted(user_column, "user_column")?,
            item_column: defaulted(item_column, "item_column")?,
            weight_column,
            ts_column: None,
            require_weight: false,
        })?;
        if rows.is_empty() {
            pgrx::notice!("no interactions to fold into model \"{name}\": no new version");
            return Ok(vec![(s.name.clone(), s.version, 0, 0, 0, 0)]);
        }
        // The updated model, before it is made: every row could name a new
        // user and a new item.
        let m = &s.model;
        let rows_n = rows.len() as u64;
        let bytes = ((m.n_users() + m.n_items()) as u64 + 2 * rows_n) * (m.factors() as u64 + 1) * 4
            + (m.seen.nnz() as u64 + rows_n) * 24
            + m.weights.as_ref().map_or(0, |w| w.nnz() as u64 * 8);
        let limit = guc::max_train_memory_bytes();
        if bytes > limit {
            return Err(Error::new(
                ErrorKind::ProgramLimitExceeded,
                format!(
                    "updating model \"{name}\" with {} rows would need about {} MB, more than pgrec.max_train_memory ({} MB)",
                    rows.len(),
                    mb(bytes),
                    mb(limit)
                ),
            )
            .with_hint("fold in fewer rows at a time, or ask a superuser to raise pgrec.max_train_memory"));
        }
        let pool = workers()?;
        let p = recsys::update::UpdateParams::default();
        let (updated, done) = recsys::update::update(m, &rows, &p, &pool, &mut || {
            pgrx::check_for_interrupts!();
            Ok(())
        })?;
        let version = models::save_updated(&s, &updated, &done, started.elapsed().as_secs_f64())?;
        Ok(vec![(
            s.name.clone(),
            version,
            done.rows as i64,
            done.new_users as i64,
            done.new_items as i64,
            done.users_updated as i64,
        )])
    };
    TableIterator::new(run().or_raise())
}

#[pg_extern(sql = false)]
fn explain(
    model: Option<&str>,
    user_id: Option<i64>,
    item_id: Option<i64>,
    k: Option<i32>,
) -> TableIterator<'static, (name!(rank, i32), name!(weight, f32), name!(hops, i32), name!(path, String))> {
    let run = || -> Result<_> {
        let s = models::load(Some(required(model, "model")?))?;
        let k = check_k(k, 1000)?;
        let g = models::load_graph(&s)?;
        let user = *required(user_id.as_ref(), "user_id")?;
        let item = *required(item_id.as_ref(), "item_id")?;
        let u = *s.users.get(&user).ok_or_else(|| {
            Error::new(ErrorKind::InvalidParameterValue, format!("user {user} is not in model \"{}\"", s.name))
        })?;
        let i = *s.items.get(&item).ok_or_else(|| {
            Error::new(ErrorKind::InvalidParameterValue, format!("item {item} is not in model \"{}\"", s.name))
        })?;
        let m = &s.model;
        let name = |n: Node| match n {
            Node::User(x) => format!("user {}", m.user_ids[x as usize]),
            Node::Item(x) => format!("item {}", m.item_ids[x as usize]),
            Node::Entity(x) => format!("entity {}", g.entity_ids.get(x as usize).copied().unwrap_or_default()),
        };
        Ok(g.paths(u, i, k)
            .into_iter()
            .enumerate()
            .map(|(rank, p)| {
                let mut text = name(p.nodes[0]);
                for (&r, &n) in p.relations.iter().zip(&p.nodes[1..]) {
                    let (rel, inverse) = g.relation_name(r);
                    let hop = if inverse { format!(" <-[{rel}]- ") } else { format!(" -[{rel}]-> ") };
                    text.push_str(&hop);
                    text.push_str(&name(n));
                }
                (rank as i32 + 1, p.weight, p.relations.len() as i32, text)
            })
            .collect::<Vec<_>>())
    };
    TableIterator::new(run().or_raise())
}

trait OrRaiseSpi<T> {
    fn or_raise_spi(self) -> T;
}

impl<T> OrRaiseSpi<T> for std::result::Result<T, pgrx::spi::SpiError> {
    fn or_raise_spi(self) -> T {
        self.map_err(crate::catalog::spi_error).or_raise()
    }
}
