//! `ambulkdelete`: VACUUM's pass over the index. Every node whose heap row is
//! dead is found (the callback decides), the lists that pointed to dead nodes
//! are repaired with their neighbours' neighbours (`ann::repair_after_delete`),
//! live nodes no search reaches any more are linked again
//! (`ann::link_unreachable`), the entry point moves off a dead node, and dead
//! nodes are flagged so no scan returns their heap TIDs again (VACUUM may reuse
//! them for new rows).
//!
//! The same pass serves CREATE INDEX CONCURRENTLY's validation, which uses the
//! callback to collect every indexed TID and deletes nothing.

use std::collections::HashSet;

use pgrx::{pg_guard, pg_sys};

use super::layout::NodeRef;
use super::pages::{PageGraph, WriteLock, heap_tid};
use crate::ann::{link_unreachable, repair_after_delete};

#[pg_guard]
pub unsafe extern "C-unwind" fn ambulkdelete(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
    callback: pg_sys::IndexBulkDeleteCallback,
    callback_state: *mut std::ffi::c_void,
) -> *mut pg_sys::IndexBulkDeleteResult {
    // SAFETY: Postgres passes valid vacuum info and callback; stats is NULL or
    // ours from an earlier pass; the index stays open for the call.
    unsafe {
        let index = (*info).index;
        let stats = if stats.is_null() {
            pg_sys::palloc0(std::mem::size_of::<pg_sys::IndexBulkDeleteResult>()).cast()
        } else {
            stats
        };
        let _lock = WriteLock::acquire(index);
        let mut g = PageGraph::open(index);
        let Some(is_dead_row) = callback else { return stats };
        // (node, level, deleted before, dead now)
        let nodes: Vec<(NodeRef, usize, bool, bool)> = g.scan_nodes(|r, n| {
            let mut tid = heap_tid(n.heap());
            let gone = n.is_deleted();
            // Vacuum's own lookup of dead heap rows (a TID store probe or a
            // binary search) raises no error, so nothing can unwind out of it.
            #[allow(ffi_unwind_calls)]
            let dead = !gone && is_dead_row(&mut tid, callback_state);
            (r, n.level(), gone, dead)
        });
        let dead: HashSet<NodeRef> = nodes.iter().filter(|n| n.2 || n.3).map(|n| n.0).collect();
        let newly_dead: Vec<NodeRef> = nodes.iter().filter(|n| n.3).map(|n| n.0).collect();
        let live = nodes.len() - dead.len();
        if !newly_dead.is_empty() {
            let levels: Vec<(NodeRef, usize)> = nodes.iter().map(|n| (n.0, n.1)).collect();
            let params = g.params();
            repair_after_delete(&mut g, &levels, |r| dead.contains(&r), params);
            // A node (or a whole cluster) whose every in-link died is linked again.
            let relinked = link_unreachable(&mut g, &levels, |r| dead.contains(&r), params);
            if relinked > 0 {
                pgrx::debug1!("pgrec_hnsw: {relinked} nodes unreachable after VACUUM were linked again");
            }
            if live == 0 {
                g.meta.entry = None;
                g.save_meta();
            }
            for (i, &r) in newly_dead.iter().enumerate() {
                if i % 256 == 0 {
                    pgrx::check_for_interrupts!();
                    super::vacuum_delay_point();
                }
                g.write(r, |n| n.mark_deleted());
            }
        }
        (*stats).num_pages = pg_sys::RelationGetNumberOfBlocksInFork(index, pg_sys::ForkNumber::MAIN_FORKNUM);
        (*stats).num_index_tuples = live as f64;
        (*stats).tuples_removed += newly_dead.len() as f64;
        stats
    }
}
