//! Every user-callable SQL function, grouped by what it works on. Functions are
//! declared with `sql = false`: their DDL (volatility, strictness, parallel
//! safety, operators, aggregates) is hand-written in `sql/`.

mod embedding;
mod encoders;
mod recsys;

use std::cell::RefCell;
use std::rc::Rc;

use crate::error::{Error, ErrorKind, Result};
use crate::guc;

/// `v`, or the error naming `what` as a NULL that is not allowed.
fn required<T>(v: Option<T>, what: &str) -> Result<T> {
    v.ok_or_else(|| Error::new(ErrorKind::NullValueNotAllowed, format!("{what} must not be null")))
}

/// `v` for an argument whose default lives in the SQL declaration (`DEFAULT …`
/// in `sql/`) and nowhere else: a NULL passed explicitly is an error, not a
/// second copy of that default written here.
fn defaulted<T>(v: Option<T>, what: &str) -> Result<T> {
    required(v, what).map_err(|e| e.with_hint(format!("leave {what} out for the default")))
}

thread_local! {
    /// The worker pool, kept while `pgrec.threads` stays the same: starting
    /// threads on every call would cost more than embedding a short text or
    /// scoring one batch.
    static POOL: RefCell<Option<(usize, Rc<rayon::ThreadPool>)>> = const { RefCell::new(None) };
}

/// Worker threads for a call's pure-core work (`pgrec.threads` of them).
fn workers() -> Result<Rc<rayon::ThreadPool>> {
    let n = guc::threads();
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if let Some((k, pool)) = p.as_ref()
            && *k == n
        {
            return Ok(pool.clone());
        }
        let pool =
            Rc::new(rayon::ThreadPoolBuilder::new().num_threads(n).build().map_err(|e| {
                Error::new(ErrorKind::InvalidParameterValue, format!("cannot start worker threads: {e}"))
            })?);
        *p = Some((n, pool.clone()));
        Ok(pool)
    })
}
