//! `amrescan`: takes the (new) ORDER BY value and starts the scan afresh; the
//! search itself waits for the first `amgettuple`.

use pgrx::{pg_guard, pg_sys};

use super::scan::ScanState;

#[pg_guard]
pub unsafe extern "C-unwind" fn amrescan(
    scan: pg_sys::IndexScanDesc,
    _keys: pg_sys::ScanKey,
    _nkeys: i32,
    orderbys: pg_sys::ScanKey,
    norderbys: i32,
) {
    // SAFETY: orderByData has room for the norderbys keys beginscan was given;
    // opaque is the ScanState beginscan made.
    unsafe {
        if !orderbys.is_null() && norderbys > 0 {
            std::ptr::copy(orderbys, (*scan).orderByData, norderbys as usize);
        }
        *(*scan).opaque.cast::<ScanState>() = ScanState::default();
    }
}
