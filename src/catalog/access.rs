//! Who pgrec's own SQL runs as, and with which search_path; and the privilege
//! checks, done here in Rust on role OIDs so that no SQL a user can shadow
//! decides them.
//!
//! Every SQL text pgrec writes itself runs under [`pinned`]: search_path is
//! `pg_catalog, pg_temp` for its duration (as a function's `SET search_path`
//! clause would make it), so no function or operator a user created in a
//! schema of their search_path can stand in for a built-in one. The registry
//! tables are read and written only under [`as_registry_owner`], which also
//! runs as the extension's owner: no other role needs privileges on them, and
//! the caller's rights to a model are checked in Rust before, and only when
//! the extension's SQL in this database is the version this library reads.

use std::ffi::CString;

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::spi_error;
use crate::error::{Error, ErrorKind, Result};

/// Restores the search_path and the user id when a pinned section ends
/// normally. After an ERROR it does nothing: the (sub)transaction's abort
/// resets both, as it does for functions with `SET` clauses.
struct Restore {
    nest_level: i32,
    user: Option<(pg_sys::Oid, i32)>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        // SAFETY: restores exactly what `enter` saved, on the backend's own
        // thread, in the order Postgres' fmgr_security_definer uses.
        unsafe {
            pg_sys::AtEOXact_GUC(true, self.nest_level);
            if let Some((user, context)) = self.user {
                pg_sys::SetUserIdAndSecContext(user, context);
            }
        }
    }
}

fn pin_search_path() -> Restore {
    // SAFETY: opens a GUC nest level on the backend's thread; the returned
    // Restore closes it.
    let nest_level = unsafe { pg_sys::NewGUCNestLevel() };
    let restore = Restore { nest_level, user: None };
    set_in_level(c"search_path", c"pg_catalog, pg_temp");
    restore
}

/// Runs `f` with search_path `pg_catalog, pg_temp`, as the calling role.
pub fn pinned<R>(f: impl FnOnce() -> R) -> R {
    let _restore = pin_search_path();
    f()
}

/// Runs `f` pinned, with client_min_messages at warning: for pgrec's own DDL
/// whose NOTICEs (another extension's advice about steps pgrec takes itself)
/// would only mislead the caller.
pub fn pinned_quiet<R>(f: impl FnOnce() -> R) -> R {
    let _restore = pin_search_path();
    set_in_level(c"client_min_messages", c"warning");
    f()
}

/// Sets `name` to `value` until the GUC nest level opened by the enclosing
/// [`pin_search_path`] ends.
fn set_in_level(name: &std::ffi::CStr, value: &std::ffi::CStr) {
    // SAFETY: called on the backend's thread inside a nest level that a
    // `Restore` closes; GUC_ACTION_SAVE is the form function SET clauses use;
    // both are valid C strings.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            pgrx::PgLogLevel::ERROR as i32,
            false,
        );
    }
}

/// The calling role (`current_user`).
pub fn caller() -> pg_sys::Oid {
    // SAFETY: reads a backend global.
    unsafe { pg_sys::GetUserId() }
}

/// The extension's schema, owner and installed SQL version.
pub struct Extension {
    pub schema: String,
    pub owner: pg_sys::Oid,
    pub version: String,
}

/// The SQL version this library was built for (`default_version` in
/// pgrec.control is the crate's version).
pub const LIBRARY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The error for a database whose pgrec SQL is not this library's version:
/// its catalogue (tables, function signatures) is not what this code reads.
pub fn version_mismatch(installed: &str) -> Error {
    Error::new(
        ErrorKind::ObjectNotInPrerequisiteState,
        format!("the pgrec library is {LIBRARY_VERSION} but the extension in this database is {installed}"),
    )
    .with_hint("ALTER EXTENSION pgrec UPDATE")
}

/// Fails unless the extension in this database is this library's version.
pub fn check_version() -> Result<()> {
    pinned(extension)?.check_version()
}

impl Extension {
    fn check_version(&self) -> Result<()> {
        if self.version == LIBRARY_VERSION { Ok(()) } else { Err(version_mismatch(&self.version)) }
    }
}

/// A statement planned once per backend and kept (`SPI_keepplan`), for the
/// registry reads every serving call makes. Postgres re-plans it when the
/// tables it reads change; it always runs pinned, so its plan never depends
/// on a caller's search_path.
pub struct Kept {
    sql: &'static str,
    args: &'static [pgrx::PgOid],
    plan: std::cell::RefCell<Option<pgrx::spi::OwnedPreparedStatement>>,
}

impl Kept {
    pub const fn new(sql: &'static str, args: &'static [pgrx::PgOid]) -> Kept {
        Kept { sql, args, plan: std::cell::RefCell::new(None) }
    }

    pub fn select<'conn>(
        &self,
        client: &pgrx::spi::SpiClient<'conn>,
        limit: Option<i64>,
        args: &[pgrx::datum::DatumWithOid<'_>],
    ) -> Result<pgrx::spi::SpiTupleTable<'conn>> {
        if self.plan.borrow().is_none() {
            let p = client.prepare(self.sql, self.args).map_err(spi_error)?;
            *self.plan.borrow_mut() = Some(p.keep());
        }
        let plan = self.plan.borrow();
        let p = plan.as_ref().ok_or_else(|| Error::new(ErrorKind::DataException, "internal query failed: no plan"))?;
        client.select(p, limit, args).map_err(spi_error)
    }
}

thread_local! {
    /// Not a cache of the answer: `ALTER EXTENSION pgrec UPDATE` changes the
    /// version in place, and pg_extension sends no invalidations to follow.
    static EXTENSION: Kept = const {
        Kept::new(
            "SELECT n.nspname::text, e.extowner::int8, e.extversion FROM pg_catalog.pg_extension e
             JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pgrec'",
            &[],
        )
    };
}

/// The extension's schema, owner and version. Must run pinned.
fn extension() -> Result<Extension> {
    Spi::connect(|client| {
        let t = EXTENSION.with(|k| k.select(client, Some(1), &[]))?;
        if t.is_empty() {
            return Err(Error::new(
                ErrorKind::UndefinedObject,
                "extension \"pgrec\" is not installed in this database",
            )
            .with_hint("CREATE EXTENSION pgrec"));
        }
        let r = t.first();
        Ok(Extension {
            schema: r.get::<String>(1).map_err(spi_error)?.unwrap_or_default(),
            owner: pg_sys::Oid::from(r.get::<i64>(2).map_err(spi_error)?.unwrap_or_default() as u32),
            version: r.get::<String>(3).map_err(spi_error)?.unwrap_or_default(),
        })
    })
}

/// The extension's schema, quoted for use in SQL text (`public`, `"my schema"`).
pub fn schema() -> Result<String> {
    Ok(pgrx::spi::quote_identifier(pinned(extension)?.schema))
}

/// Runs `f` pinned and as the extension's owner, who owns the registry
/// tables. `f` must only run pgrec's own SQL on them.
pub fn as_registry_owner<R>(f: impl FnOnce() -> Result<R>) -> Result<R> {
    let mut restore = pin_search_path();
    let ext = extension()?;
    ext.check_version()?;
    let owner = ext.owner;
    let (mut user, mut context) = (pg_sys::Oid::INVALID, 0);
    // SAFETY: saves and switches the user id on the backend's thread, with
    // SECURITY_LOCAL_USERID_CHANGE as SECURITY DEFINER functions do; `restore`
    // puts the saved values back.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
        pg_sys::SetUserIdAndSecContext(owner, context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
    }
    restore.user = Some((user, context));
    allow_nested_citus_reads();
    f()
}

/// On a Citus node, a `recommend()` that Citus pushed down into a shard's
/// query reads the registry, which is then a reference table
/// (`pgrec.distribute_models`): Citus refuses such nested queries unless
/// `citus.allow_nested_distributed_execution` is on. Its worry is a
/// distributed table whose shards move meanwhile; a reference table has a
/// copy on every node, so the read is local. Set only for the registry's own
/// SQL, at the GUC nest level the caller's `Restore` ends, and only where
/// Citus is loaded (setting an unknown name would create a placeholder).
fn allow_nested_citus_reads() {
    const NAME: &std::ffi::CStr = c"citus.allow_nested_distributed_execution";
    // SAFETY: GetConfigOption with missing_ok returns NULL for an unknown name.
    if unsafe { pg_sys::GetConfigOption(NAME.as_ptr(), true, false) }.is_null() {
        return;
    }
    set_in_level(NAME, c"on");
}

/// Whether `role` has the privileges of `of` (is it, a member of it that
/// inherits, or a superuser).
pub fn has_privs_of(role: pg_sys::Oid, of: pg_sys::Oid) -> bool {
    // SAFETY: a catalog lookup on the backend's thread.
    unsafe { pg_sys::has_privs_of_role(role, of) }
}

/// The role's name, for messages (its OID when it no longer exists).
pub fn role_name(role: pg_sys::Oid) -> String {
    // SAFETY: GetUserNameFromId with noerr returns NULL or a palloc'd C string.
    unsafe {
        let p = pg_sys::GetUserNameFromId(role, true);
        if p.is_null() {
            format!("{}", role.to_u32())
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// Whether role `role` exists.
pub fn role_exists(role: pg_sys::Oid) -> bool {
    // SAFETY: GetUserNameFromId with noerr returns NULL for a missing role.
    !unsafe { pg_sys::GetUserNameFromId(role, true) }.is_null()
}

/// Role `role` as regrole's text form reads it back (a quoted name): the
/// registry writes roles by name, so that each Citus node stores its own OID.
pub fn role_ref(role: pg_sys::Oid) -> String {
    pgrx::spi::quote_identifier(role_name(role))
}

/// Relation `rel` as regclass's text form reads it back: its schema and name,
/// quoted; an error if it no longer exists.
pub fn relation_ref(rel: pg_sys::Oid) -> Result<String> {
    // SAFETY: catalog lookups on the backend's thread; each returns NULL (or
    // InvalidOid) for a missing relation, checked before use, and palloc'd
    // C strings otherwise.
    let (schema, name) = unsafe {
        let name = pg_sys::get_rel_name(rel);
        let schema = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(rel));
        if name.is_null() || schema.is_null() {
            return Err(Error::new(
                ErrorKind::UndefinedObject,
                format!("relation with OID {} does not exist", rel.to_u32()),
            ));
        }
        (
            std::ffi::CStr::from_ptr(schema).to_string_lossy().into_owned(),
            std::ffi::CStr::from_ptr(name).to_string_lossy().into_owned(),
        )
    };
    Ok(format!("{}.{}", pgrx::spi::quote_identifier(schema), pgrx::spi::quote_identifier(name)))
}

/// The OID of role `name` (`None` for `public`).
pub fn role_oid(name: &str) -> Result<Option<pg_sys::Oid>> {
    if name.eq_ignore_ascii_case("public") {
        return Ok(None);
    }
    let c = CString::new(name)
        .map_err(|_| Error::new(ErrorKind::InvalidParameterValue, "role name must not contain a zero byte"))?;
    // SAFETY: get_role_oid with missing_ok returns InvalidOid instead of raising.
    let oid = unsafe { pg_sys::get_role_oid(c.as_ptr(), true) };
    if oid == pg_sys::Oid::INVALID {
        return Err(Error::new(ErrorKind::UndefinedObject, format!("role \"{name}\" does not exist")));
    }
    Ok(Some(oid))
}

/// Reading a path on the server is for superusers and roles with the
/// privileges of `pg_read_server_files`, as for `COPY FROM` a file.
pub fn check_may_read_server_files() -> Result<()> {
    let me = caller();
    if has_privs_of(me, pg_sys::Oid::from(pg_sys::ROLE_PG_READ_SERVER_FILES)) {
        return Ok(());
    }
    Err(Error::new(ErrorKind::InsufficientPrivilege, "permission denied to load an encoder from a file on the server")
        .with_hint("only superusers and members of pg_read_server_files may load encoders from a path"))
}

/// `role` may change what `owner` owns: it is a superuser, the owner, or a
/// member of the owner role.
pub fn check_owner(role: pg_sys::Oid, what: &str, owner: pg_sys::Oid) -> Result<()> {
    if has_privs_of(role, owner) {
        return Ok(());
    }
    Err(Error::new(ErrorKind::InsufficientPrivilege, format!("must be owner of {what}"))
        .with_hint(format!("{what} belongs to role \"{}\"; ask it, or a superuser", role_name(owner))))
}
