//! `amcostestimate`: what an HNSW scan costs the planner.
//!
//! The whole search happens before the first row comes back, so its cost is all
//! startup cost. A search computes distances to about ef_search·m nodes (plus
//! m per layer on the way down), never more than the index holds; each costs a
//! buffer access and a distance call, the same per-row charge a sequential scan
//! pays for `ORDER BY emb <-> q`, since the pages a search touches are re-read by
//! every search and stay cached. Descending the layers costs a random page read
//! per layer. Heap fetches are left to the planner: selectivity 1 says the scan
//! can return every row, and LIMIT k charges only k of them. So a table of a few
//! hundred rows is about a tie, and on anything larger the index wins, as it does
//! in practice; without an ORDER BY the index is never used.

use pgrx::{pg_guard, pg_sys};

use crate::guc;

/// Cost that keeps the planner off a path (the planner's own `disable_cost`).
const DISABLE_COST: f64 = 1.0e10;

#[pg_guard]
#[allow(clippy::too_many_arguments)] // the signature Postgres calls
pub unsafe extern "C-unwind" fn amcostestimate(
    _root: *mut pg_sys::PlannerInfo,
    path: *mut pg_sys::IndexPath,
    _loop_count: f64,
    startup: *mut pg_sys::Cost,
    total: *mut pg_sys::Cost,
    selectivity: *mut pg_sys::Selectivity,
    correlation: *mut f64,
    pages: *mut f64,
) {
    // SAFETY: the planner passes a valid path and output pointers; the index is
    // locked by the planner, so opening it with NoLock is safe.
    unsafe {
        *correlation = 0.0;
        if (*path).indexorderbys.is_null() {
            *startup = DISABLE_COST;
            *total = DISABLE_COST;
            *selectivity = 0.0;
            *pages = 0.0;
            return;
        }
        let info = (*path).indexinfo;
        let tuples = (*info).tuples.max(1.0);
        let index = pg_sys::index_open((*info).indexoid, pg_sys::NoLock as pg_sys::LOCKMODE);
        let m = super::options::params(index).map_or(16.0, |p| p.m as f64);
        pg_sys::index_close(index, pg_sys::NoLock as pg_sys::LOCKMODE);
        let ef = f64::from(guc::EF_SEARCH.get());
        let layers = tuples.ln() / m.ln();
        let visited = (ef * m + m * layers.max(0.0)).min(tuples);
        let cost = visited * (pg_sys::cpu_index_tuple_cost + pg_sys::cpu_operator_cost)
            + (layers.ceil().max(0.0) + 1.0) * pg_sys::random_page_cost;
        *startup = cost;
        *total = cost;
        *selectivity = 1.0;
        *pages = visited.min(f64::from((*info).pages));
    }
}
