//! Index access method `pgrec_hnsw`: the handler that hands Postgres the
//! callbacks, one file per IndexAmRoutine callback, `pages` (the graph as seen
//! through the buffer manager) and `layout` (the page format, pure bytes). The
//! graph algorithms themselves live in `crate::ann`.

mod beginscan;
mod build;
mod buildempty;
mod buildphasename;
mod bulkdelete;
mod costestimate;
mod endscan;
mod gettuple;
mod insert;
pub(crate) mod layout;
pub(crate) mod options;
mod pages;
mod rescan;
mod scan;
mod vacuumcleanup;
mod validate;

use pgrx::prelude::*;
use pgrx::{pg_sys, Internal};

/// Returns the `IndexAmRoutine` for `pgrec_hnsw`. Postgres calls this with no
/// arguments (the SQL declaration's `internal` is a formality), so the wrapper
/// reads none.
#[pg_extern(sql = false)]
fn pgrec_hnsw_handler() -> Internal {
    // SAFETY: makeNode-equivalent allocation in the current memory context,
    // zeroed so every callback and flag not set here is NULL / false.
    let routine = unsafe {
        let p = pg_sys::palloc0(std::mem::size_of::<pg_sys::IndexAmRoutine>()).cast::<pg_sys::IndexAmRoutine>();
        *p = pg_sys::IndexAmRoutine {
            type_: pg_sys::NodeTag::T_IndexAmRoutine,
            // Operators are ordering operators only; no strategy numbers are fixed.
            amstrategies: 0,
            // Support function 1: the distance function the operator class indexes.
            amsupport: 1,
            amoptsprocnum: 0,
            amcanorder: false,
            amcanorderbyop: true,
            amcanbackward: false,
            amcanunique: false,
            amcanmulticol: false,
            amoptionalkey: true,
            amsearcharray: false,
            amsearchnulls: false,
            amstorage: false,
            amclusterable: false,
            ampredlocks: false,
            amcanparallel: false,
            amcaninclude: false,
            amusemaintenanceworkmem: true,
            amparallelvacuumoptions: 0,
            amkeytype: pg_sys::InvalidOid,
            ambuild: Some(build::ambuild),
            ambuildempty: Some(buildempty::ambuildempty),
            aminsert: Some(insert::aminsert),
            ambulkdelete: Some(bulkdelete::ambulkdelete),
            amvacuumcleanup: Some(vacuumcleanup::amvacuumcleanup),
            amcanreturn: None,
            amcostestimate: Some(costestimate::amcostestimate),
            amoptions: Some(options::amoptions),
            amproperty: None,
            ambuildphasename: Some(buildphasename::ambuildphasename),
            amvalidate: Some(validate::amvalidate),
            ambeginscan: Some(beginscan::ambeginscan),
            amrescan: Some(rescan::amrescan),
            amgettuple: Some(gettuple::amgettuple),
            amgetbitmap: None,
            amendscan: Some(endscan::amendscan),
            ammarkpos: None,
            amrestrpos: None,
            amestimateparallelscan: None,
            aminitparallelscan: None,
            amparallelrescan: None,
            ..Default::default()
        };
        p
    };
    Internal::from(Some(pg_sys::Datum::from(routine)))
}
