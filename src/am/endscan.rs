//! `amendscan`: frees the scan's graph handle and candidates now rather than at
//! the end of the query.

use pgrx::{pg_guard, pg_sys};

use super::scan::ScanState;

#[pg_guard]
pub unsafe extern "C-unwind" fn amendscan(scan: pg_sys::IndexScanDesc) {
    // SAFETY: opaque is the ScanState beginscan made; its memory is freed with
    // the scan's context.
    unsafe { *(*scan).opaque.cast::<ScanState>() = ScanState::default() };
}
