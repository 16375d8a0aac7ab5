//! The model registry `pgrec.model_versions` (one row per version) and
//! `pgrec.model_acl` (one per model: its owner and the roles granted its use):
//! saving a trained model as a new version (with the auto-deploy rule),
//! deploying, rolling back and A/B serving (a challenger version for a share
//! of the users), each recorded in `pgrec.deployment_log`; dropping,
//! granting, and loading the versions a query serves through a per-backend
//! cache keyed on the version's never-reused id; and a KGAT model's
//! explanation graph. Every access goes through
//! [`access::as_registry_owner`], after the caller's rights to the model are
//! checked here.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::JsonB;
use pgrx::prelude::*;

use super::access::{self, Kept, as_registry_owner, caller};
use super::{required, scalar, spi_error};
use crate::error::{Error, ErrorKind, Result};
use crate::recsys::kgat::explain::ExplainGraph;
use crate::recsys::{Metrics, Model, Trained};

fn unknown_model(name: &str) -> Error {
    Error::new(ErrorKind::UndefinedObject, format!("model \"{name}\" does not exist"))
        .with_hint("SELECT name, version FROM pgrec.models lists the models you may use")
}

fn denied(name: &str) -> Error {
    Error::new(ErrorKind::InsufficientPrivilege, format!("permission denied for model \"{name}\""))
        .with_hint(format!("its owner can run SELECT grant_model('{name}', current_user)"))
}

type Oid = pg_sys::Oid;

fn oid(v: Option<i64>) -> Oid {
    Oid::from(v.unwrap_or(0) as u32)
}

/// Who may use and change a model.
struct Acl {
    owner: Oid,
    readers: Vec<Oid>,
    public: bool,
}

impl Acl {
    /// From `owner::oid::int8, readers::oid[]::int8[], public` at columns
    /// `at`, `at + 1`, `at + 2` of a registry row.
    fn read(r: &pgrx::spi::SpiHeapTupleData<'_>, at: usize) -> Result<Acl> {
        let readers: Vec<i64> = r.get(at + 1).map_err(spi_error)?.unwrap_or_default();
        Ok(Acl {
            owner: oid(r.get(at).map_err(spi_error)?),
            readers: readers.into_iter().map(|o| oid(Some(o))).collect(),
            public: r.get(at + 2).map_err(spi_error)?.unwrap_or(false),
        })
    }

    fn may_use(&self, role: Oid) -> bool {
        self.public
            || access::has_privs_of(role, self.owner)
            || self.readers.iter().any(|&r| access::has_privs_of(role, r))
    }
}

/// `pgrec.model_acl`'s row for `name`; run as the registry owner.
fn acl(client: &pgrx::spi::SpiClient<'_>, name: &str) -> Result<Option<Acl>> {
    let t = client
        .select(
            "SELECT owner::oid::int8, readers::oid[]::int8[], public FROM pgrec.model_acl WHERE name = $1",
            Some(1),
            &[name.into()],
        )
        .map_err(spi_error)?;
    t.into_iter().next().map(|r| Acl::read(&r, 1)).transpose()
}

/// Fails unless `role` may change model `name` (absent models may be made).
fn check_may_change(client: &pgrx::spi::SpiClient<'_>, role: Oid, name: &str) -> Result<Option<Acl>> {
    let a = acl(client, name)?;
    if let Some(a) = &a {
        access::check_owner(role, &format!("model \"{name}\""), a.owner)?;
    }
    Ok(a)
}

/// `train()` asks before reading any data: the caller may write a new
/// version of `name` (it does not exist yet, or the caller owns it).
pub fn check_may_train(name: &str) -> Result<()> {
    let me = caller();
    as_registry_owner(|| Spi::connect(|client| check_may_change(client, me, name).map(|_| ())))
}

/// The SQL function `pgrec.may_use_model`, behind the `pgrec.models` view.
pub fn may_use(owner: Oid, readers: &[Oid], public: bool) -> bool {
    Acl { owner, readers: readers.to_vec(), public }.may_use(caller())
}

/// One version as `pgrec.models` lists it.
pub struct Listed {
    pub name: String,
    pub version: i32,
    pub algorithm: String,
    pub deployed: bool,
    pub users: i64,
    pub items: i64,
    pub interactions: i64,
    pub train_seconds: f64,
    pub bytes: i64,
    pub created_at: pgrx::datum::TimestampWithTimeZone,
    pub params: JsonB,
    pub metrics: JsonB,
    pub owner: Oid,
}

/// Reads `columns` of every version (`v`, joined with its ACL `a`) that
/// `filter` keeps, as the registry owner, and calls `row` for those the
/// caller may use, in name and version order; `columns` come after the
/// ACL's three, so the first is column 4. Read as the owner, so the
/// caller needs no rights on the tables: on Citus a view over them would
/// read their shards as the caller.
fn each_usable(
    columns: &str,
    filter: &str,
    mut row: impl FnMut(&pgrx::spi::SpiHeapTupleData<'_>, &Acl) -> Result<()>,
) -> Result<()> {
    let me = caller();
    as_registry_owner(|| {
        Spi::connect(|client| {
            let t = client
                .select(
                    &format!(
                        "SELECT a.owner::oid::int8, a.readers::oid[]::int8[], a.public, {columns}
                         FROM pgrec.model_versions v JOIN pgrec.model_acl a ON a.name = v.name
                         {filter} ORDER BY v.name, v.version"
                    ),
                    None,
                    &[],
                )
                .map_err(spi_error)?;
            for r in t {
                let acl = Acl::read(&r, 1)?;
                if acl.may_use(me) {
                    row(&r, &acl)?;
                }
            }
            Ok(())
        })
    })
}

/// Every version of the models the caller may use, by name and version.
pub fn list() -> Result<Vec<Listed>> {
    let mut out = Vec::new();
    each_usable(
        "v.name, v.version, v.algorithm, v.deployed, v.users, v.items, v.interactions, v.train_seconds, \
         pg_catalog.octet_length(v.data)::bigint + coalesce(pg_catalog.octet_length(v.graph), 0), \
         v.created_at, v.params, v.metrics",
        "",
        |r, acl| {
            out.push(Listed {
                name: required(r, 4)?,
                version: required(r, 5)?,
                algorithm: required(r, 6)?,
                deployed: required(r, 7)?,
                users: required(r, 8)?,
                items: required(r, 9)?,
                interactions: required(r, 10)?,
                train_seconds: required(r, 11)?,
                bytes: required(r, 12)?,
                created_at: required(r, 13)?,
                params: required(r, 14)?,
                metrics: required(r, 15)?,
                owner: acl.owner,
            });
            Ok(())
        },
    )?;
    Ok(out)
}

/// One trial of a `tune()` call, as `pgrec.trials` shows it.
pub struct ListedTrial {
    pub name: String,
    pub version: i32,
    pub trial: i32,
    pub params: JsonB,
    pub metrics: Option<JsonB>,
    pub error: Option<String>,
    pub seconds: f64,
    pub chosen: bool,
}

/// The trials of the tuned versions the caller may use.
pub fn list_trials() -> Result<Vec<ListedTrial>> {
    let mut out = Vec::new();
    each_usable("v.name, v.version, v.trials", "WHERE v.trials IS NOT NULL", |r, _| {
        let (name, version): (String, i32) = (required(r, 4)?, required(r, 5)?);
        let JsonB(trials): JsonB = required(r, 6)?;
        for (k, t) in trials.as_array().into_iter().flatten().enumerate() {
            out.push(ListedTrial {
                name: name.clone(),
                version,
                trial: k as i32 + 1,
                params: JsonB(t.get("params").cloned().unwrap_or_default()),
                metrics: t.get("metrics").filter(|m| !m.is_null()).cloned().map(JsonB),
                error: t.get("error").and_then(|e| e.as_str()).map(str::to_string),
                seconds: t.get("seconds").and_then(|x| x.as_f64()).unwrap_or_default(),
                chosen: t.get("chosen").and_then(|x| x.as_bool()).unwrap_or_default(),
            });
        }
        Ok(())
    })?;
    Ok(out)
}

/// What `train()` reports for a saved version.
pub struct Saved {
    pub version: i32,
    pub deployed: bool,
}

/// A content_knn model's item table and its id and vector columns, from
/// which serving builds its own index query.
#[derive(Clone, Debug, PartialEq)]
pub struct ContentSource {
    pub relation: Oid,
    pub id_column: String,
    pub vector_column: String,
}

/// `bytes` if PostgreSQL can store them as one value (under 1 GB), else
/// the error that says so (rather than failing deep in the datum code).
fn storable(name: &str, bytes: Vec<u8>) -> Result<Vec<u8>> {
    // A varlena's length field holds 30 bits, header included.
    const MAX: usize = (1 << 30) - 1 - 4;
    if bytes.len() <= MAX {
        return Ok(bytes);
    }
    Err(Error::new(
        ErrorKind::ProgramLimitExceeded,
        format!(
            "model \"{name}\" would take {} MB stored, more than the 1 GB PostgreSQL keeps in one value",
            bytes.len().div_ceil(1 << 20)
        ),
    )
    .with_hint("train with fewer factors, or on fewer users and items"))
}

/// Takes model `name`'s lock until the transaction ends. With no foreign key
/// between the registry's tables (see sql/recsys.sql), this lock is what keeps
/// a version from being saved for a model being dropped meanwhile.
fn lock_model(client: &mut pgrx::spi::SpiClient<'_>, name: &str) -> Result<()> {
    client
        .update("SELECT pg_advisory_xact_lock(hashtext('pgrec.model:' || $1))", None, &[name.into()])
        .map(|_| ())
        .map_err(spi_error)
}

/// The next version number of `name`, holding its lock until the transaction
/// ends: concurrent trainings of one name queue here, so each gets its own.
fn next_version(client: &mut pgrx::spi::SpiClient<'_>, name: &str) -> Result<i32> {
    lock_model(client, name)?;
    Ok(scalar(
        client,
        "SELECT coalesce(max(version), 0) + 1 FROM pgrec.model_versions WHERE name = $1",
        &[name.into()],
    )?
    .unwrap_or(1))
}

/// Stores `t` as the next version of `name`; deploys it if no version is
/// deployed or its key metric beats the deployed one's. The first version
/// makes the caller the model's owner; later ones need its rights.
pub fn save(
    name: &str,
    params: &serde_json::Value,
    t: &Trained,
    interactions: usize,
    seconds: f64,
    source: Option<&ContentSource>,
    trials: Option<&serde_json::Value>,
) -> Result<Saved> {
    let me = caller();
    let algorithm = t.model.algorithm;
    let metrics = metrics_json(&t.metrics);
    let data = storable(name, t.model.to_bytes())?;
    let graph = t.explain.as_ref().map(|g| storable(name, g.to_bytes())).transpose()?;
    let source_ref = source.map(|s| access::relation_ref(s.relation)).transpose()?;
    as_registry_owner(|| {
        Spi::connect_mut(|client| {
            let version = next_version(client, name)?;
            // Checked again under the lock: the owner may have changed since
            // training began.
            if check_may_change(client, me, name)?.is_none() {
                client
                    .update(
                        "INSERT INTO pgrec.model_acl (name, owner) VALUES ($1, $2::text::pgrec.role_ref)",
                        None,
                        &[name.into(), access::role_ref(me).into()],
                    )
                    .map_err(spi_error)?;
            }
            let current: Option<JsonB> = scalar(
                client,
                "SELECT metrics FROM pgrec.model_versions WHERE name = $1 AND deployed",
                &[name.into()],
            )?;
            let (key, lower_better) = algorithm.key_metric();
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
                         train_rows, test_rows, train_seconds, deployed, data, graph, source, source_columns, trials)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::text::pgrec.relation_ref, $16, $17)",
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
                        source_ref.as_deref().into(),
                        source.map(|s| vec![s.id_column.clone(), s.vector_column.clone()]).into(),
                        trials.map(|t| JsonB(t.clone())).into(),
                    ],
                )
                .map_err(spi_error)?;
            if better {
                record(client, me, name, version, None, "train")?;
            }
            Ok(Saved { version, deployed: better })
        })
    })
}

/// Stores `model` — served version `s` with `added` items joined from their
/// content — as the next version of the model, deployed in its place.
pub fn save_with_added_items(s: &Served, model: &Model, added: usize, seconds: f64) -> Result<i32> {
    let patch = serde_json::json!({ "added_items": added, "from_version": s.version });
    save_derived(s, model, patch, 0, seconds, "add_items")
}

/// Stores `model` — served version `s` with new interactions folded in
/// (`done`) — as the next version of the model, deployed in its place.
pub fn save_updated(s: &Served, model: &Model, done: &crate::recsys::update::Updated, seconds: f64) -> Result<i32> {
    let patch = serde_json::json!({
        "updated_from": s.version,
        "update_rows": done.rows,
        "update_new_users": done.new_users,
        "update_new_items": done.new_items,
    });
    save_derived(s, model, patch, done.rows, seconds, "update")
}

/// Stores `model`, made from served version `s` without training, as the
/// next version of the model, deployed in its place and recorded as
/// `action`: the source's params with `patch` added, its held-out metrics,
/// and `new_interactions` more interactions.
fn save_derived(
    s: &Served,
    model: &Model,
    patch: serde_json::Value,
    new_interactions: usize,
    seconds: f64,
    action: &str,
) -> Result<i32> {
    let data = storable(&s.name, model.to_bytes())?;
    change_model(&s.name, |client, me| {
        let version = next_version(client, &s.name)?;
        undeploy(client, &s.name)?;
        client
            .update(
                "INSERT INTO pgrec.model_versions (name, version, algorithm, params, metrics, users, items, interactions,
                     train_rows, test_rows, train_seconds, deployed, data, source, source_columns)
                 SELECT name, $2, algorithm, params || $3, metrics, $4, $5, interactions + $6, train_rows, test_rows,
                        $7, true, $8, source, source_columns
                 FROM pgrec.model_versions WHERE name = $1 AND version = $9",
                None,
                &[
                    s.name.as_str().into(),
                    version.into(),
                    JsonB(patch).into(),
                    (model.n_users() as i64).into(),
                    (model.n_items() as i64).into(),
                    (new_interactions as i64).into(),
                    seconds.into(),
                    data.as_slice().into(),
                    s.version.into(),
                ],
            )
            .map_err(spi_error)?;
        record(client, me, &s.name, version, None, action)?;
        Ok(version)
    })
}

/// Adds a row to `name`'s deployment history: `version` now serves
/// everyone (`share` None) or that share of the users.
fn record(
    client: &mut pgrx::spi::SpiClient<'_>,
    me: Oid,
    name: &str,
    version: i32,
    share: Option<f32>,
    action: &str,
) -> Result<()> {
    client
        .update(
            "INSERT INTO pgrec.deployment_log (name, version, share, action, by_role)
             VALUES ($1, $2, $3, $4, $5::text::pgrec.role_ref)",
            None,
            &[name.into(), version.into(), share.into(), action.into(), access::role_ref(me).into()],
        )
        .map(|_| ())
        .map_err(spi_error)
}

/// Marks no version of `name` deployed.
fn undeploy(client: &mut pgrx::spi::SpiClient<'_>, name: &str) -> Result<()> {
    client
        .update("UPDATE pgrec.model_versions SET deployed = false WHERE name = $1 AND deployed", None, &[name.into()])
        .map(|_| ())
        .map_err(spi_error)
}

/// Deploys `version` of `name` (the latest if `None`); returns the version.
/// A challenger stops: the deployed version serves everyone.
pub fn deploy(name: &str, version: Option<i32>) -> Result<i32> {
    change_model(name, |client, me| {
        let v = existing_version(client, name, version)?;
        make_deployed(client, me, name, v, "deploy")?;
        Ok(v)
    })
}

/// Runs `f` on the registry, as its owner, under model `name`'s lock, once
/// the caller (passed on as `me`) is found to own the model.
fn change_model<T>(name: &str, f: impl FnOnce(&mut pgrx::spi::SpiClient<'_>, Oid) -> Result<T>) -> Result<T> {
    let me = caller();
    as_registry_owner(|| {
        Spi::connect_mut(|client| {
            lock_model(client, name)?;
            if check_may_change(client, me, name)?.is_none() {
                return Err(unknown_model(name));
            }
            f(client, me)
        })
    })
}

/// `version` of `name` (the latest if `None`), which must exist.
fn existing_version(client: &pgrx::spi::SpiClient<'_>, name: &str, version: Option<i32>) -> Result<i32> {
    let v: Option<i32> = scalar(
        client,
        "SELECT version FROM pgrec.model_versions WHERE name = $1 AND ($2::int IS NULL OR version = $2)
         ORDER BY version DESC LIMIT 1",
        &[name.into(), version.into()],
    )?;
    match (v, version) {
        (Some(v), _) => Ok(v),
        (None, Some(want)) => {
            Err(Error::new(ErrorKind::UndefinedObject, format!("model \"{name}\" has no version {want}"))
                .with_hint("SELECT name, version FROM pgrec.models lists the trained versions"))
        }
        (None, None) => Err(unknown_model(name)),
    }
}

/// Makes `v` the version of `name` that serves everyone, ending any
/// challenger, and records it as `action`. Under the model's lock.
fn make_deployed(client: &mut pgrx::spi::SpiClient<'_>, me: Oid, name: &str, v: i32, action: &str) -> Result<()> {
    // One statement each: the unique indexes on deployed and challenger
    // names are checked row by row, and a challenger may not be deployed.
    end_challenger(client, name)?;
    undeploy(client, name)?;
    client
        .update(
            "UPDATE pgrec.model_versions SET deployed = true WHERE name = $1 AND version = $2",
            None,
            &[name.into(), v.into()],
        )
        .map_err(spi_error)?;
    record(client, me, name, v, None, action)
}

/// Ends `name`'s challenger, if it has one; returns its version.
fn end_challenger(client: &mut pgrx::spi::SpiClient<'_>, name: &str) -> Result<Option<i32>> {
    let t = client
        .update(
            "UPDATE pgrec.model_versions SET share = NULL WHERE name = $1 AND share IS NOT NULL RETURNING version",
            None,
            &[name.into()],
        )
        .map_err(spi_error)?;
    match t.into_iter().next() {
        Some(r) => r.get::<i32>(1).map_err(spi_error),
        None => Ok(None),
    }
}

/// The deployed version of `name`, if any.
fn deployed_version(client: &pgrx::spi::SpiClient<'_>, name: &str) -> Result<Option<i32>> {
    scalar(client, "SELECT version FROM pgrec.model_versions WHERE name = $1 AND deployed", &[name.into()])
}

/// Deploys again the version that served everyone before the current one
/// (the latest such entry of the history with another version): a second
/// rollback returns to where the first began. Returns the version.
pub fn rollback(name: &str) -> Result<i32> {
    change_model(name, |client, me| {
        let current = deployed_version(client, name)?;
        let previous: Option<i32> = scalar(
            client,
            "SELECT l.version FROM pgrec.deployment_log l
             WHERE l.name = $1 AND l.share IS NULL AND l.action <> 'stop_challenger'
               AND l.version IS DISTINCT FROM $2
               AND EXISTS (SELECT FROM pgrec.model_versions v WHERE v.name = l.name AND v.version = l.version)
             ORDER BY l.id DESC LIMIT 1",
            &[name.into(), current.into()],
        )?;
        let Some(v) = previous else {
            return Err(Error::new(
                ErrorKind::ObjectNotInPrerequisiteState,
                format!("model \"{name}\" has no earlier deployment to roll back to"),
            )
            .with_hint(format!("SELECT * FROM pgrec.deployments WHERE name = '{name}' shows its history")));
        };
        make_deployed(client, me, name, v, "rollback")?;
        Ok(v)
    })
}

/// Serves `version` of `name` to `share` of the users (0 < share < 1, the
/// same users for a given share, and a larger share keeps them) and the
/// deployed version to the rest. Returns the version.
pub fn deploy_challenger(name: &str, version: i32, share: f32) -> Result<i32> {
    if !(share > 0.0 && share < 1.0) {
        return Err(Error::new(
            ErrorKind::InvalidParameterValue,
            format!("share must be between 0 and 1 (both excluded), got {share}"),
        )
        .with_hint(format!("deploy('{name}', {version}) serves a version to every user")));
    }
    change_model(name, |client, me| {
        let v = existing_version(client, name, Some(version))?;
        match deployed_version(client, name)? {
            Some(d) if d == v => {
                return Err(Error::new(
                    ErrorKind::InvalidParameterValue,
                    format!("version {v} of model \"{name}\" is the deployed version"),
                )
                .with_hint("a challenger is another version, served to a share of the users"));
            }
            Some(_) => {}
            None => {
                return Err(Error::new(
                    ErrorKind::ObjectNotInPrerequisiteState,
                    format!("model \"{name}\" has no deployed version to share its users with"),
                )
                .with_hint(format!("deploy one first with SELECT deploy('{name}')")));
            }
        }
        end_challenger(client, name)?;
        client
            .update(
                "UPDATE pgrec.model_versions SET share = $3 WHERE name = $1 AND version = $2",
                None,
                &[name.into(), v.into(), share.into()],
            )
            .map_err(spi_error)?;
        record(client, me, name, v, Some(share), "challenger")?;
        Ok(v)
    })
}

/// Deletes the versions of `name` but the newest `keep`, the deployed one
/// and a challenger; returns how many. Their history rows stay (a rollback
/// skips versions that are gone).
pub fn prune_versions(name: &str, keep: i32) -> Result<i64> {
    if keep < 0 {
        return Err(Error::new(ErrorKind::InvalidParameterValue, format!("keep must be at least 0, got {keep}"))
            .with_hint("keep 0 leaves the deployed version and a challenger only"));
    }
    change_model(name, |client, _| {
        client
            .update(
                "DELETE FROM pgrec.model_versions v WHERE v.name = $1 AND NOT v.deployed AND v.share IS NULL
                   AND v.version NOT IN (SELECT n.version FROM pgrec.model_versions n WHERE n.name = $1
                                         ORDER BY n.version DESC LIMIT $2)",
                None,
                &[name.into(), i64::from(keep).into()],
            )
            .map(|t| t.len() as i64)
            .map_err(spi_error)
    })
}

/// Ends `name`'s challenger; returns its version (None if it had none).
pub fn stop_challenger(name: &str) -> Result<Option<i32>> {
    change_model(name, |client, me| {
        let v = end_challenger(client, name)?;
        if let Some(v) = v {
            record(client, me, name, v, None, "stop_challenger")?;
        }
        Ok(v)
    })
}

/// One row of `pgrec.deployments`.
pub struct Deployment {
    pub id: i64,
    pub name: String,
    pub version: i32,
    pub share: Option<f32>,
    pub action: String,
    pub at: pgrx::datum::TimestampWithTimeZone,
    pub by_role: Oid,
}

/// The deployment history of the models the caller may use, oldest first.
pub fn deployments() -> Result<Vec<Deployment>> {
    let me = caller();
    as_registry_owner(|| {
        Spi::connect(|client| {
            let t = client
                .select(
                    "SELECT a.owner::oid::int8, a.readers::oid[]::int8[], a.public,
                            l.id, l.name, l.version, l.share, l.action, l.at, l.by_role::oid::int8
                     FROM pgrec.deployment_log l JOIN pgrec.model_acl a ON a.name = l.name ORDER BY l.id",
                    None,
                    &[],
                )
                .map_err(spi_error)?;
            let mut out = Vec::new();
            for r in t {
                if !Acl::read(&r, 1)?.may_use(me) {
                    continue;
                }
                out.push(Deployment {
                    id: required(&r, 4)?,
                    name: required(&r, 5)?,
                    version: required(&r, 6)?,
                    share: r.get(7).map_err(spi_error)?,
                    action: required(&r, 8)?,
                    at: required(&r, 9)?,
                    by_role: oid(r.get(10).map_err(spi_error)?),
                });
            }
            Ok(out)
        })
    })
}

/// Deletes every version of `name`; returns how many there were.
pub fn drop_model(name: &str) -> Result<i64> {
    let me = caller();
    let n = as_registry_owner(|| {
        Spi::connect_mut(|client| {
            lock_model(client, name)?;
            if check_may_change(client, me, name)?.is_none() {
                return Err(unknown_model(name));
            }
            let n = client
                .update("DELETE FROM pgrec.model_versions WHERE name = $1", None, &[name.into()])
                .map(|t| t.len() as i64)
                .map_err(spi_error)?;
            client.update("DELETE FROM pgrec.model_acl WHERE name = $1", None, &[name.into()]).map_err(spi_error)?;
            client
                .update("DELETE FROM pgrec.deployment_log WHERE name = $1", None, &[name.into()])
                .map_err(spi_error)?;
            Ok(n)
        })
    })?;
    CACHE.with(|c| c.borrow_mut().remove(name));
    Ok(n)
}

/// Lets `role` (`None`: every role) use model `name`, or (`grant` false)
/// takes that back. Only the model's owner may.
///
/// The readers are written as a whole list of role names, computed here from
/// the row read under the model's lock: SQL that compared stored roles would
/// compare OIDs, and on Citus the value would be this node's OID applied to
/// every node's copy. Roles dropped since their grant leave the list.
pub fn set_grant(name: &str, role: Option<Oid>, grant: bool) -> Result<()> {
    let me = caller();
    as_registry_owner(|| {
        Spi::connect_mut(|client| {
            lock_model(client, name)?;
            let Some(acl) = check_may_change(client, me, name)? else {
                return Err(unknown_model(name));
            };
            let Some(r) = role else {
                client
                    .update(
                        "UPDATE pgrec.model_acl SET public = $2 WHERE name = $1",
                        None,
                        &[name.into(), grant.into()],
                    )
                    .map_err(spi_error)?;
                return Ok(());
            };
            let had = acl.readers.contains(&r);
            let mut readers: Vec<Oid> =
                acl.readers.into_iter().filter(|&o| (grant || o != r) && access::role_exists(o)).collect();
            if grant && !had {
                readers.push(r);
            }
            let names: Vec<String> = readers.into_iter().map(access::role_ref).collect();
            client
                .update(
                    "UPDATE pgrec.model_acl SET readers = $2::text[]::pgrec.role_ref[] WHERE name = $1",
                    None,
                    &[name.into(), names.into()],
                )
                .map_err(spi_error)?;
            Ok(())
        })
    })
}

/// A model as served: with its external ids indexed.
pub struct Served {
    pub name: String,
    pub version: i32,
    /// The version's registry id, never reused.
    pub id: i64,
    pub model: Model,
    pub users: HashMap<i64, u32>,
    pub items: HashMap<i64, u32>,
    pub source: Option<ContentSource>,
}

impl Served {
    /// Internal indices of the known ids among `ids`, in order.
    pub fn item_indices(&self, ids: &[i64]) -> Vec<u32> {
        ids.iter().filter_map(|i| self.items.get(i).copied()).collect()
    }
}

/// The versions a model serves, by version id (never reused).
type Loaded = Vec<(i64, Rc<Served>)>;

thread_local! {
    /// name → the versions it serves: one load per backend per served version.
    static CACHE: RefCell<HashMap<String, Loaded>> = RefCell::new(HashMap::new());
}

/// A served version as the registry lists it: the deployed one, or the
/// challenger with its share of the users.
struct Deployed {
    name: String,
    version: i32,
    id: i64,
    acl: Acl,
    source: Option<ContentSource>,
    share: Option<f32>,
}

thread_local! {
    /// `read_deployed`'s statement: it runs on every `recommend()`.
    static DEPLOYED: Kept = const {
        Kept::new(
            "SELECT v.name, v.version, v.id, a.owner::oid::int8, a.readers::oid[]::int8[], a.public,
                    v.source::oid::int8, v.source_columns, v.share
             FROM pgrec.model_versions v JOIN pgrec.model_acl a ON a.name = v.name
             WHERE (v.deployed OR v.share IS NOT NULL) AND ($1::text IS NULL OR v.name = $1) ORDER BY v.name",
            &[pgrx::PgOid::BuiltIn(pgrx::PgBuiltInOids::TEXTOID)],
        )
    };
}

fn read_deployed(name: Option<&str>) -> Result<Vec<Deployed>> {
    Spi::connect(|client| {
        let t = DEPLOYED.with(|k| k.select(client, None, &[name.into()]))?;
        let mut out = Vec::new();
        for r in t {
            let columns: Vec<String> = r.get(8).map_err(spi_error)?.unwrap_or_default();
            let relation: Option<i64> = r.get(7).map_err(spi_error)?;
            let source = match (relation, columns.as_slice()) {
                (Some(rel), [id, vector]) => Some(ContentSource {
                    relation: oid(Some(rel)),
                    id_column: id.clone(),
                    vector_column: vector.clone(),
                }),
                _ => None,
            };
            out.push(Deployed {
                name: r.get(1).map_err(spi_error)?.unwrap_or_default(),
                version: r.get(2).map_err(spi_error)?.unwrap_or_default(),
                id: r.get(3).map_err(spi_error)?.unwrap_or_default(),
                acl: Acl::read(&r, 4)?,
                source,
                share: r.get(9).map_err(spi_error)?,
            });
        }
        Ok(out)
    })
}

/// What a model serves: its deployed version, and a challenger with the
/// share of users it gets.
pub struct Arms {
    pub deployed: Rc<Served>,
    pub challenger: Option<(Rc<Served>, f32)>,
}

impl Arms {
    /// The version `user` is served.
    pub fn for_user(&self, user: i64) -> &Rc<Served> {
        match &self.challenger {
            Some((c, share)) if in_share(&self.deployed.name, user, *share) => c,
            _ => &self.deployed,
        }
    }
}

/// Whether `user` falls in the first `share` of model `name`'s users: a hash
/// of the id salted with the name (FNV-1a, then splitmix64's finaliser), so
/// a user's arm is the same on every connection and server, differs between
/// models, and a user stays in when the share grows.
pub fn in_share(name: &str, user: i64, share: f32) -> bool {
    let salt = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let x = crate::rng::mix64(crate::rng::mix64(salt) ^ user as u64);
    // The top 53 bits as a fraction of 1.
    ((x >> 11) as f64) * (1.0 / (1u64 << 53) as f64) < f64::from(share)
}

/// The deployed model `name`, or the only deployed model the caller may use
/// when `name` is None.
pub fn load(name: Option<&str>) -> Result<Rc<Served>> {
    Ok(load_arms(name)?.deployed)
}

/// Like [`load`], with the model's challenger if it has one (what
/// `recommend()` serves).
pub fn load_arms(name: Option<&str>) -> Result<Arms> {
    let me = caller();
    let found = as_registry_owner(|| {
        let all = read_deployed(name)?;
        if !all.iter().any(|d| d.share.is_none())
            && let Some(n) = name
        {
            return Spi::connect(|client| match acl(client, n)? {
                Some(a) if !a.may_use(me) => Err(denied(n)),
                Some(_) => {
                    Err(Error::new(ErrorKind::UndefinedObject, format!("model \"{n}\" has no deployed version"))
                        .with_hint(format!("deploy one with SELECT deploy('{n}')")))
                }
                None => Err(unknown_model(n)),
            });
        }
        Ok(all)
    })?;
    let usable: Vec<&Deployed> = found.iter().filter(|d| d.share.is_none() && d.acl.may_use(me)).collect();
    let d = match (usable.as_slice(), name) {
        ([one], _) => *one,
        ([], Some(n)) => return Err(denied(n)),
        ([], None) => {
            return Err(Error::new(ErrorKind::UndefinedObject, "no model is deployed")
                .with_hint("train one with SELECT * FROM train('name', 'als', 'interactions')"));
        }
        (many, _) => {
            return Err(Error::new(
                ErrorKind::InvalidParameterValue,
                format!(
                    "several models are deployed ({}): name one",
                    many.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )
            .with_hint(format!("pass model => '{}'", many[0].name)));
        }
    };
    let challenger = found.iter().find(|c| c.name == d.name && c.share.is_some());
    let keep = [Some(d.id), challenger.map(|c| c.id)];
    Ok(Arms {
        deployed: fetch(d, &keep)?,
        challenger: challenger.map(|c| Ok::<_, Error>((fetch(c, &keep)?, c.share.unwrap_or(0.0)))).transpose()?,
    })
}

/// Version `d` from the cache or the registry; the cache keeps `d.name`'s
/// versions whose ids are in `keep` (those it serves now).
fn fetch(d: &Deployed, keep: &[Option<i64>]) -> Result<Rc<Served>> {
    let cached = CACHE
        .with(|c| c.borrow().get(&d.name).and_then(|v| v.iter().find(|(id, _)| *id == d.id).map(|(_, m)| m.clone())));
    if let Some(m) = cached {
        return Ok(m);
    }
    let bytes: Vec<u8> = as_registry_owner(|| {
        Spi::connect(|client| {
            let t = client
                .select("SELECT data FROM pgrec.model_versions WHERE id = $1", Some(1), &[d.id.into()])
                .map_err(spi_error)?;
            if t.is_empty() {
                return Err(unknown_model(&d.name));
            }
            t.first().get::<Vec<u8>>(1).map_err(spi_error)?.ok_or_else(|| unknown_model(&d.name))
        })
    })?;
    let model = Model::from_bytes(&bytes)
        .map_err(|e| Error { message: format!("model \"{}\" version {}: {}", d.name, d.version, e.message), ..e })?;
    drop(bytes);
    let users = model.user_ids.iter().enumerate().map(|(k, &u)| (u, k as u32)).collect();
    let items = model.item_ids.iter().enumerate().map(|(k, &i)| (i, k as u32)).collect();
    let served = Rc::new(Served {
        name: d.name.clone(),
        version: d.version,
        id: d.id,
        model,
        users,
        items,
        source: d.source.clone(),
    });
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let versions = c.entry(d.name.clone()).or_default();
        versions.retain(|(id, _)| keep.contains(&Some(*id)));
        versions.push((d.id, served.clone()));
    });
    Ok(served)
}

thread_local! {
    /// The last explanation graph read, by version id: explain() is called
    /// for one model many times in a row.
    static GRAPH: RefCell<Option<(i64, Rc<ExplainGraph>)>> = const { RefCell::new(None) };
}

/// The explanation graph stored with the version `s` serves.
pub fn load_graph(s: &Served) -> Result<Rc<ExplainGraph>> {
    let hit = GRAPH.with(|c| c.borrow().as_ref().filter(|(id, _)| *id == s.id).map(|(_, g)| g.clone()));
    if let Some(g) = hit {
        return Ok(g);
    }
    let bytes: Option<Vec<u8>> = as_registry_owner(|| {
        Spi::connect(|client| {
            let t = client
                .select("SELECT graph FROM pgrec.model_versions WHERE id = $1", Some(1), &[s.id.into()])
                .map_err(spi_error)?;
            if t.is_empty() {
                return Ok(None);
            }
            t.first().get::<Vec<u8>>(1).map_err(spi_error)
        })
    })?;
    let bytes = bytes.ok_or_else(|| {
        Error::new(
            ErrorKind::FeatureNotSupported,
            format!(
                "model \"{}\" is {} {} model: only kgat models can explain",
                s.name,
                s.model.algorithm.article(),
                s.model.algorithm.name()
            ),
        )
        .with_hint("train one with SELECT * FROM train('name', 'kgat', 'interactions', relations => '...')")
    })?;
    let g = Rc::new(ExplainGraph::from_bytes(&bytes)?);
    GRAPH.with(|c| *c.borrow_mut() = Some((s.id, g.clone())));
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

#[cfg(test)]
mod tests {
    use super::in_share;

    #[test]
    fn a_share_takes_that_fraction_of_users_and_keeps_them_as_it_grows() {
        let users = 0..100_000i64;
        for share in [0.01f32, 0.1, 0.3, 0.5, 0.9] {
            let n = users.clone().filter(|&u| in_share("m", u, share)).count() as f64;
            assert!((n / 1e5 - f64::from(share)).abs() < 0.005, "share {share}: {n}");
        }
        // A user in a share stays in any larger one.
        for u in users.clone().step_by(7) {
            if in_share("m", u, 0.2) {
                assert!(in_share("m", u, 0.21) && in_share("m", u, 0.8), "user {u}");
            }
        }
        // Another model's split is another set of users (about half overlap
        // at 50%), and consecutive ids do not come in runs.
        let both = users.clone().filter(|&u| in_share("m", u, 0.5) == in_share("n", u, 0.5)).count();
        assert!((45_000..55_000).contains(&both), "{both}");
        let runs = (0..10_000i64).filter(|&u| in_share("m", u, 0.5) != in_share("m", u + 1, 0.5)).count();
        assert!((4_500..5_500).contains(&runs), "{runs}");
    }
}

#[cfg(test)]
mod storable_tests {
    use super::storable;

    #[test]
    fn a_model_over_one_gigabyte_is_refused_before_it_reaches_the_datum_code() {
        // Zeroed allocations: the pages are never touched.
        let max = (1usize << 30) - 5;
        assert_eq!(storable("m", vec![0u8; max]).map(|b| b.len()).ok(), Some(max));
        let e = storable("m", vec![0u8; max + 1]).unwrap_err();
        assert_eq!(
            e.message,
            "model \"m\" would take 1024 MB stored, more than the 1 GB PostgreSQL keeps in one value"
        );
    }
}
