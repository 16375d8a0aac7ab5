//! `aminsert`: links one new row into the graph on the pages, under the index's
//! writer lock. The build's fallback (a graph beyond maintenance_work_mem) uses
//! the same path.

use pgrx::pg_guard;
use pgrx::pg_sys;

use super::layout::{NodeRef, check_fits};
use super::pages::{PageGraph, WriteLock, embedding_arg, heap_ref, new_node, prepare_for_index};
use crate::ann::link_new_node;
use crate::sqlstate::OrRaise;

/// Seed of the level draw; a node's level comes from its insertion number.
pub const LEVEL_SEED: u64 = 0x5eed;

/// Checks `v` against the index, then stores and links it. Returns false when the
/// vector cannot be indexed (a zero vector under cosine).
pub fn insert_vector(g: &mut PageGraph, heap: NodeRef, v: &[f32]) -> bool {
    let Some(prepared) = prepare_for_index(g.metric(), g.meta.dims as usize, v).or_raise() else {
        return false;
    };
    let params = g.params();
    if g.meta.dims == 0 {
        check_fits(v.len(), params.m).or_raise();
        g.meta.dims = v.len() as u16;
    }
    let level = params.level_for(g.meta.nodes, LEVEL_SEED);
    let node = g.add_node(&new_node(heap, &prepared, level, params.m));
    link_new_node(g, node, &prepared, level, params);
    true
}

#[pg_guard]
#[allow(clippy::too_many_arguments)] // the signature Postgres calls
pub unsafe extern "C-unwind" fn aminsert(
    index: pg_sys::Relation,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    heap_tid: pg_sys::ItemPointer,
    _heap: pg_sys::Relation,
    _check_unique: pg_sys::IndexUniqueCheck::Type,
    #[cfg(not(feature = "pg13"))] _index_unchanged: bool,
    _index_info: *mut pg_sys::IndexInfo,
) -> bool {
    // SAFETY: Postgres passes one value/null pair (the index has one column) and
    // a valid heap TID; the index is open for the whole call.
    unsafe {
        if *isnull {
            return false;
        }
        let v = embedding_arg(*values);
        let _lock = WriteLock::acquire(index);
        let mut g = PageGraph::open(index);
        insert_vector(&mut g, heap_ref(&*heap_tid), v);
    }
    // Not a uniqueness check: the return value is ignored.
    false
}
