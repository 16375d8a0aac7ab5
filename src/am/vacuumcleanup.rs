//! `amvacuumcleanup`: the statistics VACUUM and ANALYZE report for the index.
//! After a bulk delete they are already known; otherwise live nodes are counted.

use pgrx::{pg_guard, pg_sys};

use super::pages::PageGraph;

#[pg_guard]
pub unsafe extern "C-unwind" fn amvacuumcleanup(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
) -> *mut pg_sys::IndexBulkDeleteResult {
    // SAFETY: Postgres passes valid vacuum info; stats is NULL or from ambulkdelete.
    unsafe {
        if (*info).analyze_only || !stats.is_null() {
            return stats;
        }
        let index = (*info).index;
        let g = PageGraph::open(index);
        let live = g.scan_nodes(|_, n| !n.is_deleted()).into_iter().filter(|&l| l).count();
        let stats: *mut pg_sys::IndexBulkDeleteResult =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::IndexBulkDeleteResult>()).cast();
        (*stats).num_pages = pg_sys::RelationGetNumberOfBlocksInFork(index, pg_sys::ForkNumber::MAIN_FORKNUM);
        (*stats).num_index_tuples = live as f64;
        stats
    }
}
