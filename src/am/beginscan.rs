//! `ambeginscan`: a scan descriptor with an empty [`ScanState`] that lives in the
//! scan's memory context (dropped with it, even when the query errors out).

use pgrx::{PgMemoryContexts, pg_guard, pg_sys};

use super::scan::ScanState;

#[pg_guard]
pub unsafe extern "C-unwind" fn ambeginscan(
    index: pg_sys::Relation,
    nkeys: i32,
    norderbys: i32,
) -> pg_sys::IndexScanDesc {
    // SAFETY: RelationGetIndexScan allocates the descriptor (and key arrays) in
    // the current memory context, where the state is also kept.
    unsafe {
        let scan = pg_sys::RelationGetIndexScan(index, nkeys, norderbys);
        let state = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(ScanState::default());
        (*scan).opaque = state.cast();
        scan
    }
}
