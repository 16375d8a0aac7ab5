//! The model registry `pgrec.model_versions`: saving a trained model as a new
//! version (with the auto-deploy rule), deploying, dropping, and loading the
//! model a query names, through a per-backend cache that notices when another
//! version gets deployed; and a KGAT model's explanation graph.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::prelude::*;
use pgrx::JsonB;

use super::spi_error;
use crate::error::{Error, ErrorKind, Result};
use crate::recsys::kgat::explain::ExplainGraph;
use crate::recsys::{Algorithm, Metrics, Model, Trained};

/// The metric that decides auto-deploys, and whether lower is better.
fn key_metric(algorithm: Algorithm) -> (&'static str, bool) {
    match algorithm {
        Algorithm::Mf => ("rmse", true),
        _ => ("recall@20", false),
    }
}

fn unknown_model(name: &str) -> Error {
    Error::new(ErrorKind::UndefinedObject, format!("model \"{name}\" does not exist"))
        .with_hint("SELECT name, version FROM pgrec.models lists the trained models")
}

/// What `train()` reports for a saved version.
pub struct Saved {
    pub version: i32,
    pub deployed: bool,
}

/// The next version number of `name`, holding its lock until the transaction
/// ends: concurrent trainings of one name queue here, so each gets its own.
fn next_version(client: &mut pgrx::spi::SpiClient<'_>, name: &str) -> Result<i32> {
    client
        .update("SELECT pg_advisory_xact_lock(hashtext('pgrec.model:' || $1))", None, &[name.into()])
        .map_err(spi_error)?;
    Ok(client
        .select(
            "SELECT coalesce(max(version), 0) + 1 FROM pgrec.model_versions WHERE name = $1",
            Some(1),
            &[name.into()],
        )
        .and_then(|t| t.first().get_one())
        .map_err(spi_error)?
        .unwrap_or(1))
}

/// Stores `t` as the next version of `name`; deploys it if no version is
/// deployed or its key metric beats the deployed one's.
pub fn save(name: &str, params: &serde_json::Value, t: &Trained, interactions: usize, seconds: f64) -> Result<Saved> {
    let algorithm = t.model.algorithm;
    let metrics = metrics_json(&t.metrics);
    let data = t.model.to_bytes();
    let graph = t.explain.as_ref().map(|g| g.to_bytes());
    Spi::connect_mut(|client| {
        let version = next_version(client, name)?;
        let current: Option<JsonB> = client
            .select("SELECT metrics FROM pgrec.model_versions WHERE name = $1 AND deployed", Some(1), &[name.into()])
            .and_then(|t| if t.is_empty() { Ok(None) } else { t.first().get_one() })
            .map_err(spi_error)?;
        let (key, lower_better) = key_metric(algorithm);
        let better = match (&current, t.metrics.get(key)) {
            (None, _) => true,
            (Some(JsonB(cur)), Some(&new)) => match cur.get(key).and_then(|v| v.as_f64()) {
                Some(old) => (new < old) == lower_better && new != old,
                None => true,
            },
            (Some(_), None) => false,
        };
        if better {
            undeploy(client, name)?;
        }
        client
            .update(
                "INSERT INTO pgrec.model_versions (name, version, algorithm, params, metrics, users, items, interactions,
                     train_rows, test_rows, train_seconds, deployed, data, graph)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                None,
                &[
                    name.into(),
                    version.into(),
                    algorithm.name().into(),
                    JsonB(params.clone()).into(),
                    JsonB(metrics).into(),
                    (t.model.n_users() as i64).into(),
                    (t.model.n_items() as i64).into(),
                    (interactions as i64).into(),
                    (t.train_rows as i64).into(),
                    (t.test_rows as i64).into(),
                    seconds.into(),
                    better.into(),
                    data.as_slice().into(),
                    graph.as_deref().into(),
                ],
            )
            .map_err(spi_error)?;
        Ok(Saved { version, deployed: better })
    })
}

/// Stores `model` — served version `s` with `added` items joined from their
/// content — as the next version of the model, deployed in its place, with
/// the source's params (plus `added_items`, `from_version`) and metrics.
pub fn save_with_added_items(s: &Served, model: &Model, added: usize, seconds: f64) -> Result<i32> {
    let data = model.to_bytes();
    Spi::connect_mut(|client| {
        let version = next_version(client, &s.name)?;
        undeploy(client, &s.name)?;
        client
            .update(
                "INSERT INTO pgrec.model_versions (name, version, algorithm, params, metrics, users, items, interactions,
                     train_rows, test_rows, train_seconds, deployed, data)
                 SELECT name, $2, algorithm, params || jsonb_build_object('added_items', $3::bigint, 'from_version', version),
                        metrics, users, $4, interactions, train_rows, test_rows, $5, true, $6
                 FROM pgrec.model_versions WHERE name = $1 AND version = $7",
                None,
                &[
                    s.name.as_str().into(),
                    version.into(),
                    (added as i64).into(),
                    (model.n_items() as i64).into(),
                    seconds.into(),
                    data.as_slice().into(),
                    s.version.into(),
                ],
            )
            .map_err(spi_error)?;
        Ok(version)
    })
}

/// Marks no version of `name` deployed.
fn undeploy(client: &mut pgrx::spi::SpiClient<'_>, name: &str) -> Result<()> {
    client
        .update("UPDATE pgrec.model_versions SET deployed = false WHERE name = $1 AND deployed", None, &[name.into()])
        .map(|_| ())
        .map_err(spi_error)
}

/// Deploys `version` of `name` (the latest if `None`); returns the version.
pub fn deploy(name: &str, version: Option<i32>) -> Result<i32> {
    Spi::connect_mut(|client| {
        let v: Option<i32> = client
            .select(
                "SELECT version FROM pgrec.model_versions WHERE name = $1 AND ($2::int IS NULL OR version = $2)
                 ORDER BY version DESC LIMIT 1",
                Some(1),
                &[name.into(), version.into()],
            )
            .and_then(|t| if t.is_empty() { Ok(None) } else { t.first().get_one() })
            .map_err(spi_error)?;
        let v = match (v, version) {
            (Some(v), _) => v,
            (None, Some(want)) => {
                return Err(Error::new(ErrorKind::UndefinedObject, format!("model \"{name}\" has no version {want}"))
                    .with_hint("SELECT name, version FROM pgrec.models lists the trained versions"))
            }
            (None, None) => return Err(unknown_model(name)),
        };
        // Two statements: the unique index on deployed names is checked row by row.
        undeploy(client, name)?;
        client
            .update(
                "UPDATE pgrec.model_versions SET deployed = true WHERE name = $1 AND version = $2",
                None,
                &[name.into(), v.into()],
            )
            .map_err(spi_error)?;
        Ok(v)
    })
}

/// Deletes every version of `name`; returns how many there were.
pub fn drop_model(name: &str) -> Result<i64> {
    let n = Spi::connect_mut(|client| {
        client
            .update("DELETE FROM pgrec.model_versions WHERE name = $1", None, &[name.into()])
            .map(|t| t.len() as i64)
            .map_err(spi_error)
    })?;
    if n == 0 {
        return Err(unknown_model(name));
    }
    CACHE.with(|c| c.borrow_mut().remove(name));
    Ok(n)
}

/// A model as served: with its external ids indexed.
pub struct Served {
    pub name: String,
    pub version: i32,
    pub model: Model,
    pub users: HashMap<i64, u32>,
    pub items: HashMap<i64, u32>,
}

impl Served {
    /// Internal indices of the known ids among `ids`, in order.
    pub fn item_indices(&self, ids: &[i64]) -> Vec<u32> {
        ids.iter().filter_map(|i| self.items.get(i).copied()).collect()
    }
}

thread_local! {
    /// name → (version, model): one load per backend per deployed version.
    static CACHE: RefCell<HashMap<String, (i32, Rc<Served>)>> = RefCell::new(HashMap::new());
}

/// The deployed model `name`, or the only deployed model when `name` is None.
pub fn load(name: Option<&str>) -> Result<Rc<Served>> {
    let (name, version): (String, i32) = Spi::connect(|client| {
        let t = client
            .select(
                "SELECT name, version FROM pgrec.model_versions WHERE deployed AND ($1::text IS NULL OR name = $1) ORDER BY name",
                Some(3),
                &[name.into()],
            )
            .map_err(spi_error)?;
        let found: Vec<(String, i32)> = t
            .map(|r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<i32>(2)?.unwrap_or_default())))
            .collect::<std::result::Result<_, pgrx::spi::SpiError>>()
            .map_err(spi_error)?;
        match (found.as_slice(), name) {
            ([one], _) => Ok(one.clone()),
            ([], Some(n)) => {
                let exists: bool = client
                    .select("SELECT EXISTS (SELECT 1 FROM pgrec.model_versions WHERE name = $1)", Some(1), &[n.into()])
                    .and_then(|t| t.first().get_one())
                    .map_err(spi_error)?
                    .unwrap_or(false);
                Err(if exists {
                    Error::new(ErrorKind::UndefinedObject, format!("model \"{n}\" has no deployed version"))
                        .with_hint(format!("deploy one with SELECT deploy('{n}')"))
                } else {
                    unknown_model(n)
                })
            }
            ([], None) => Err(Error::new(ErrorKind::UndefinedObject, "no model is deployed")
                .with_hint("train one with SELECT * FROM train('name', 'als', 'interactions')")),
            (many, _) => Err(Error::new(
                ErrorKind::InvalidParameterValue,
                format!(
                    "several models are deployed ({}): name one",
                    many.iter().map(|m| m.0.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )
            .with_hint(format!("pass model => '{}'", many[0].0))),
        }
    })?;
    if let Some(m) = CACHE.with(|c| c.borrow().get(&name).filter(|(v, _)| *v == version).map(|(_, m)| m.clone())) {
        return Ok(m);
    }
    let bytes: Vec<u8> = Spi::get_one_with_args(
        "SELECT data FROM pgrec.model_versions WHERE name = $1 AND version = $2",
        &[name.as_str().into(), version.into()],
    )
    .map_err(spi_error)?
    .ok_or_else(|| unknown_model(&name))?;
    let model = Model::from_bytes(&bytes)?;
    let users = model.user_ids.iter().enumerate().map(|(k, &u)| (u, k as u32)).collect();
    let items = model.item_ids.iter().enumerate().map(|(k, &i)| (i, k as u32)).collect();
    let served = Rc::new(Served { name: name.clone(), version, model, users, items });
    CACHE.with(|c| c.borrow_mut().insert(name, (version, served.clone())));
    Ok(served)
}

thread_local! {
    /// The last explanation graph read, by (name, version): explain() is
    /// called for one model many times in a row.
    static GRAPH: RefCell<Option<(String, i32, Rc<ExplainGraph>)>> = const { RefCell::new(None) };
}

/// The explanation graph stored with version `s.version` of model `s.name`.
pub fn load_graph(s: &Served) -> Result<Rc<ExplainGraph>> {
    let hit = GRAPH
        .with(|c| c.borrow().as_ref().filter(|(n, v, _)| *n == s.name && *v == s.version).map(|(_, _, g)| g.clone()));
    if let Some(g) = hit {
        return Ok(g);
    }
    let bytes: Option<Vec<u8>> = Spi::get_one_with_args(
        "SELECT graph FROM pgrec.model_versions WHERE name = $1 AND version = $2",
        &[s.name.as_str().into(), s.version.into()],
    )
    .map_err(spi_error)?;
    let bytes = bytes.ok_or_else(|| {
        Error::new(
            ErrorKind::FeatureNotSupported,
            format!("model \"{}\" is a {} model: only kgat models can explain", s.name, s.model.algorithm.name()),
        )
        .with_hint("train one with SELECT * FROM train('name', 'kgat', 'interactions', relations => '...')")
    })?;
    let g = Rc::new(ExplainGraph::from_bytes(&bytes)?);
    GRAPH.with(|c| *c.borrow_mut() = Some((s.name.clone(), s.version, g.clone())));
    Ok(g)
}

/// The metrics as a JSON object, keys sorted; `users` (a count) as an integer.
pub fn metrics_json(m: &Metrics) -> serde_json::Value {
    let obj: serde_json::Map<String, serde_json::Value> = m
        .iter()
        .map(|(k, &v)| {
            let v = if k == "users" { serde_json::json!(v as i64) } else { serde_json::json!(v) };
            (k.clone(), v)
        })
        .collect();
    serde_json::Value::Object(obj)
}
