//! `ambuild`: reads the table once, builds the graph in memory with every core
//! (rayon workers run pure `ann` code; this thread checks for cancellation and
//! reports progress between batches), then writes it out page by page and
//! WAL-logs the pages in bulk.
//!
//! If the graph would outgrow `maintenance_work_mem`, what was read so far is
//! built and written, a NOTICE says so, and the remaining rows are inserted one
//! at a time through the pages (then any row those inserts cut off from the
//! graph is linked again): slower, never wrong.

use pgrx::{PgMemoryContexts, pg_guard, pg_sys};

use super::insert::insert_vector;
use super::layout::{self, Meta, NodeRef, PAGE_SPACE, check_fits};
use super::options;
use super::pages::{P_NEW, PageGraph, embedding_arg, heap_ref, init_meta_page, opclass_metric, prepare_for_index};
use crate::ann::{BuildParams, Graph, Hnsw, Metric, link_unreachable};
use crate::error::{Error, ErrorKind};
use crate::guc;
use crate::sqlstate::{OrRaise, raise};

/// Sub-phases shown in pg_stat_progress_create_index (see `buildphasename`).
pub const PHASE_LOAD: i64 = 2;
pub const PHASE_GRAPH: i64 = 3;
pub const PHASE_WRITE: i64 = 4;

fn progress(param: u32, value: i64) {
    // SAFETY: plain backend-local bookkeeping; a no-op outside a progress command.
    unsafe { pg_sys::pgstat_progress_update_param(param as i32, value) };
}

struct BuildState {
    index: pg_sys::Relation,
    metric: Metric,
    params: BuildParams,
    dims: usize,
    /// Prepared vectors, row-major, and the heap row of each.
    vectors: Vec<f32>,
    heap: Vec<NodeRef>,
    /// Bytes the in-memory graph may use (maintenance_work_mem).
    budget: usize,
    /// Set once the budget is exceeded: later rows go straight to the pages.
    spilled: Option<PageGraph>,
    heap_tuples: f64,
    index_tuples: f64,
    tuple_cx: PgMemoryContexts,
    /// Started with the table scan: each phase's time is reported at DEBUG1,
    /// so a slow build shows where it went (`SET client_min_messages = debug1`).
    clock: std::time::Instant,
}

/// Runs one build phase and reports its seconds at DEBUG1 as `pgrec_hnsw
/// build WHAT in N s` (the table scan, which has no closure of its own, uses
/// [`BuildState::clock`]).
fn timed<T>(what: &str, phase: impl FnOnce() -> T) -> T {
    let clock = std::time::Instant::now();
    let out = phase();
    pgrx::debug1!("pgrec_hnsw build {what} in {:.2} s", clock.elapsed().as_secs_f64());
    out
}

impl BuildState {
    /// Memory the graph needs per node: the vector, its layer-0 links (an id,
    /// a distance and a flag each) and bookkeeping (upper layers add 1/(m-1)
    /// on average).
    fn bytes_per_node(&self) -> usize {
        4 * self.dims + crate::ann::LINK_BYTES * 2 * self.params.m + 96
    }

    fn add(&mut self, heap: NodeRef, v: &[f32]) {
        if self.dims == 0 {
            check_fits(v.len(), self.params.m).or_raise();
            self.dims = v.len();
        }
        if let Some(g) = self.spilled.as_mut() {
            if insert_vector(g, heap, v) {
                self.index_tuples += 1.0;
            }
            return;
        }
        let Some(p) = prepare_for_index(self.metric, self.dims, v).or_raise() else {
            return;
        };
        self.vectors.extend_from_slice(&p);
        self.heap.push(heap);
        self.index_tuples += 1.0;
        if self.heap.len() * self.bytes_per_node() > self.budget {
            let n = self.heap.len();
            pgrx::notice!(
                "pgrec_hnsw graph no longer fits into maintenance_work_mem after {n} rows; the rest are inserted one at a time, which is slower: raise maintenance_work_mem to build it in memory"
            );
            self.flush();
            // SAFETY: the index now has its meta page; it stays open for the build.
            self.spilled = Some(unsafe { PageGraph::open(self.index) });
        }
    }

    /// Builds the graph over the rows read so far and writes every page.
    fn flush(&mut self) {
        let n = self.heap.len();
        progress(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_GRAPH);
        progress(pg_sys::PROGRESS_CREATEIDX_TUPLES_TOTAL, n as i64);
        pgrx::debug1!("pgrec_hnsw build read {n} rows in {:.2} s", self.clock.elapsed().as_secs_f64());
        let vectors = std::mem::take(&mut self.vectors);
        let dims = self.dims.max(1);
        let g = timed("made the graph", || {
            Hnsw::build(self.metric, self.params, dims, vectors, guc::threads(), |done| {
                pgrx::check_for_interrupts!();
                progress(pg_sys::PROGRESS_CREATEIDX_TUPLES_DONE, done as i64);
                Ok(())
            })
            .or_raise()
        });
        pgrx::debug1!("pgrec_hnsw build linked {} rows again that pruning had cut off", g.relinked());
        progress(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_WRITE);
        // SAFETY: the index is open and empty (checked in ambuild).
        timed("wrote its pages", || unsafe { write_pages(self.index, &g, &self.heap, self.dims) });
        self.heap = Vec::new();
    }
}

/// Writes the meta page and every node, in node order, into fresh blocks.
///
/// # Safety
/// `index` must be an open, empty index relation.
unsafe fn write_pages(index: pg_sys::Relation, g: &Hnsw, heap: &[NodeRef], dims: usize) {
    let m = g.params().m;
    let refs =
        layout::place((0..g.len() as u32).map(|i| layout::node_size(dims, g.level(i), m)), PAGE_SPACE).or_raise();
    let meta = Meta {
        dims: dims as u16,
        metric: g.metric(),
        m: m as u16,
        ef_construction: g.params().ef_construction as u16,
        entry: g.entry().map(|(e, l)| (refs[e as usize], l as u8)),
        last_block: refs.last().map_or(0, |r| r.block),
        nodes: g.len() as u64,
    };
    // SAFETY: each new buffer is exclusively locked while formatted and filled;
    // the items are copied into the page by PageAddItemExtended.
    unsafe {
        let new_buffer = || {
            let buf = pg_sys::ReadBufferExtended(
                index,
                pg_sys::ForkNumber::MAIN_FORKNUM,
                P_NEW,
                pg_sys::ReadBufferMode::RBM_NORMAL,
                std::ptr::null_mut(),
            );
            pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
            buf
        };
        let done = |buf: pg_sys::Buffer| {
            pg_sys::MarkBufferDirty(buf);
            pg_sys::UnlockReleaseBuffer(buf);
        };
        let buf = new_buffer();
        init_meta_page(pg_sys::BufferGetPage(buf), &meta);
        done(buf);

        let mut current: Option<(u32, pg_sys::Buffer)> = None;
        let mut links = Vec::new();
        for (i, r) in refs.iter().enumerate() {
            let node = i as u32;
            if current.map(|(b, _)| b) != Some(r.block) {
                if let Some((_, buf)) = current.take() {
                    done(buf);
                }
                pgrx::check_for_interrupts!();
                let buf = new_buffer();
                pg_sys::PageInit(pg_sys::BufferGetPage(buf), pg_sys::BLCKSZ as usize, 0);
                current = Some((r.block, buf));
            }
            let lists: Vec<Vec<NodeRef>> = (0..=g.level(node))
                .map(|lv| {
                    links.clear();
                    g.neighbors(node, lv, &mut links);
                    links.iter().map(|&x| refs[x as usize]).collect()
                })
                .collect();
            let bytes = layout::encode_node(heap[i], g.vector(node), &lists, m);
            let Some((_, buf)) = current else { unreachable!("a page is open") };
            let off = pg_sys::PageAddItemExtended(
                pg_sys::BufferGetPage(buf),
                bytes.as_ptr() as pg_sys::Item,
                bytes.len(),
                0,
                0,
            );
            if off != r.offset {
                raise(Error::new(
                    ErrorKind::DataCorrupted,
                    format!(
                        "pgrec_hnsw build placed node {i} at ({},{off}), planned ({},{})",
                        r.block, r.block, r.offset
                    ),
                ));
            }
        }
        if let Some((_, buf)) = current {
            done(buf);
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn build_callback(
    _index: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    _alive: bool,
    state: *mut std::ffi::c_void,
) {
    // SAFETY: `state` is the BuildState ambuild passed in; values/isnull hold the
    // one indexed column of this row; the tuple context is reset after each row.
    unsafe {
        let st = &mut *state.cast::<BuildState>();
        st.heap_tuples += 1.0;
        if *isnull {
            return;
        }
        let heap = heap_ref(&*tid);
        let mut cx = PgMemoryContexts::For(st.tuple_cx.value());
        cx.switch_to(|_| {
            let v = embedding_arg(*values);
            st.add(heap, v);
        });
        st.tuple_cx.reset();
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn ambuild(
    heap: pg_sys::Relation,
    index: pg_sys::Relation,
    index_info: *mut pg_sys::IndexInfo,
) -> *mut pg_sys::IndexBuildResult {
    // SAFETY: Postgres hands an open heap, an open, empty index and its info.
    unsafe {
        if pg_sys::RelationGetNumberOfBlocksInFork(index, pg_sys::ForkNumber::MAIN_FORKNUM) != 0 {
            raise(Error::new(ErrorKind::DataCorrupted, "pgrec_hnsw index to build is not empty"));
        }
        let metric = opclass_metric(index).or_raise();
        let params = options::params(index).or_raise();
        let typmod = super::column_typmod(index);
        let dims = if typmod > 0 { typmod as usize } else { 0 };
        if dims > 0 {
            check_fits(dims, params.m).or_raise();
        }
        let mut st = BuildState {
            index,
            metric,
            params,
            dims,
            vectors: Vec::new(),
            heap: Vec::new(),
            budget: (pg_sys::maintenance_work_mem as usize).saturating_mul(1024),
            spilled: None,
            heap_tuples: 0.0,
            index_tuples: 0.0,
            tuple_cx: PgMemoryContexts::new("pgrec_hnsw build tuple"),
            clock: std::time::Instant::now(),
        };
        progress(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_LOAD);
        pg_sys::table_index_build_scan(
            heap,
            index,
            index_info,
            true,
            true,
            Some(build_callback),
            (&mut st as *mut BuildState).cast(),
            std::ptr::null_mut(),
        );
        match st.spilled.as_mut() {
            None => st.flush(),
            // Rows inserted one at a time can lose every in-link to later
            // inserts' pruning (2–3 builds in 30 of the regress test's spilled
            // index left one row unreachable); link them again, as VACUUM does.
            Some(g) => {
                let levels: Vec<(NodeRef, usize)> = g.scan_nodes(|r, n| (r, n.level()));
                let params = g.params();
                let relinked = link_unreachable(g, &levels, |_| false, params);
                pgrx::debug1!("pgrec_hnsw build linked {relinked} unreachable nodes again");
            }
        }
        if (*(*index).rd_rel).relpersistence == pg_sys::RELPERSISTENCE_PERMANENT as std::ffi::c_char {
            let blocks = pg_sys::RelationGetNumberOfBlocksInFork(index, pg_sys::ForkNumber::MAIN_FORKNUM);
            timed(&format!("logged {blocks} pages"), || {
                pg_sys::log_newpage_range(index, pg_sys::ForkNumber::MAIN_FORKNUM, 0, blocks, true)
            });
        }
        let result =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::IndexBuildResult>()).cast::<pg_sys::IndexBuildResult>();
        (*result).heap_tuples = st.heap_tuples;
        (*result).index_tuples = st.index_tuples;
        result
    }
}
