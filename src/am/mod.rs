//! Index access method `pgrec_hnsw`: the handler that hands Postgres the
//! callbacks, one file per IndexAmRoutine callback, `pages` (the graph as seen
//! through the buffer manager), `recent` (pins pages through the buffers that
//! last held them) and `layout` (the page format, pure bytes). The
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
mod recent;
mod rescan;
mod scan;
mod vacuumcleanup;
mod validate;

use pgrx::prelude::*;
use pgrx::{Internal, pg_sys};

/// The type modifier (dimensions) of the index's one column, from the
/// catalogue: the tuple descriptor's layout differs between versions (18
/// keeps compact attributes beside it).
///
/// # Safety
/// `index` is an open relation.
pub(crate) unsafe fn column_typmod(index: pg_sys::Relation) -> i32 {
    let (mut ty, mut typmod, mut collation) = (pg_sys::InvalidOid, -1, pg_sys::InvalidOid);
    // SAFETY: a syscache lookup of attribute 1 of an open index, which exists.
    unsafe { pg_sys::get_atttypetypmodcoll((*index).rd_id, 1, &mut ty, &mut typmod, &mut collation) };
    typmod
}

/// Lets vacuum's cost-based delay act between pages (18 asks whether it is
/// ANALYZE that calls).
pub(crate) fn vacuum_delay_point() {
    // SAFETY: called on the backend's thread during a vacuum or index scan.
    unsafe {
        #[cfg(feature = "pg18")]
        pg_sys::vacuum_delay_point(false);
        #[cfg(not(feature = "pg18"))]
        pg_sys::vacuum_delay_point();
    }
}

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
            // Fields newer than 15, tested on 16 and 18 (./scripts/test.sh
            // --pg N) at their zero values: amsummarizing (16: not a BRIN-like
            // summary), amcanbuildparallel (17: the build is already parallel
            // inside ambuild, on pgrec's own threads), aminsertcleanup (17:
            // inserts keep no state), and 18's amcanhash, amconsistentequality,
            // amconsistentordering, amtranslatestrategy/amtranslatecmptype and
            // amgettreeheight (no equality or btree semantics; no tree height).
            ..Default::default()
        };
        p
    };
    Internal::from(Some(pg_sys::Datum::from(routine)))
}
