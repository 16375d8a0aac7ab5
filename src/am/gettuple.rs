//! `amgettuple`: the next nearest heap row. The first call prepares the query
//! and runs the HNSW search with `pgrec.ef_search`; when those candidates run out
//! (a `WHERE` filter rejected them, or LIMIT is larger), the stream searches
//! again with a doubled ef, up to `pgrec.max_scan_tuples` rows in all.

use pgrx::{pg_guard, pg_sys};

use super::pages::{PageGraph, embedding_arg, heap_tid};
use super::scan::ScanState;
use crate::ann::Stream;
use crate::error::{Error, ErrorKind};
use crate::guc;
use crate::sqlstate::raise;

/// Reads the ORDER BY value and opens the graph; false when nothing can match.
///
/// # Safety
/// `scan` must be a pgrec_hnsw scan with its order-by keys set by amrescan.
unsafe fn start(scan: pg_sys::IndexScanDesc, st: &mut ScanState) -> bool {
    st.started = true;
    // SAFETY: per the contract.
    unsafe {
        if (*scan).numberOfOrderBys < 1 {
            raise(
                Error::new(ErrorKind::InvalidParameterValue, "a pgrec_hnsw index scan needs an ORDER BY distance")
                    .with_hint("write ORDER BY emb <-> value LIMIT k"),
            );
        }
        let key = &*(*scan).orderByData;
        if key.sk_flags & pg_sys::SK_ISNULL as i32 != 0 {
            return false;
        }
        let v = embedding_arg(key.sk_argument);
        let g = PageGraph::open((*scan).indexRelation);
        let dims = g.meta.dims as usize;
        if dims != 0 && v.len() != dims {
            raise(Error::new(
                ErrorKind::DataException,
                format!("different embedding dimensions {dims} and {}", v.len()),
            ));
        }
        let Some(q) = g.metric().prepare(v) else { return false };
        st.query = q;
        st.graph = Some(g);
        st.stream = Some(Stream::new(guc::EF_SEARCH.get() as usize, guc::MAX_SCAN_TUPLES.get() as usize));
        true
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amgettuple(scan: pg_sys::IndexScanDesc, _dir: pg_sys::ScanDirection::Type) -> bool {
    // SAFETY: opaque is the ScanState beginscan made.
    unsafe {
        let st = &mut *(*scan).opaque.cast::<ScanState>();
        if !st.started && !start(scan, st) {
            return false;
        }
        let (Some(g), Some(stream)) = (st.graph.as_ref(), st.stream.as_mut()) else { return false };
        loop {
            let Some(next) = stream.next(g, &st.query) else { return false };
            let (deleted, heap) = g.read(next.node, |n| (n.is_deleted(), n.heap()));
            if deleted {
                continue;
            }
            if stream.produced() % 1024 == 0 {
                pgrx::check_for_interrupts!();
            }
            (*scan).xs_heaptid = heap_tid(heap);
            (*scan).xs_recheck = false;
            (*scan).xs_recheckorderby = false;
            return true;
        }
    }
}
