//! The graph as it lives in index pages, reached through the buffer manager.
//!
//! [`PageGraph`] implements `ann::Graph` (scans) and `ann::GraphMut` (inserts,
//! VACUUM's repair): every read pins and share-locks one page for as long as it
//! takes to copy out a list or compute one distance, and every change is one
//! GenericXLog record, so the index is crash-safe and replicates. Writers
//! (inserts and VACUUM) are serialised by a heavyweight lock on the meta page
//! ([`WriteLock`]); readers take none and see each page change atomically.

use pgrx::pg_sys;

use super::layout::{self, META_SIZE, Meta, Node, NodeMut, NodeRef};
use super::recent::Recent;
use crate::ann::{BuildParams, Graph, GraphMut, Metric, NodeSet, node_set};
use crate::error::{Error, ErrorKind, Result};
use crate::kernels::{self, Kernels};
use crate::sqlstate::raise;

pub const META_BLOCK: u32 = 0;
/// Rows compared per prefetch batch (see `PageGraph::distances`): few enough
/// that their pins stay in the backend's 8-entry fast pin array (more spill
/// into a hash table, and the executor holds a pin or two of its own).
const PREFETCH_BATCH: usize = 6;
/// `P_NEW`: ask ReadBuffer for a new block at the end of the relation.
pub(super) const P_NEW: u32 = u32::MAX;

fn corrupt(what: String) -> Error {
    Error::new(ErrorKind::DataCorrupted, format!("corrupt pgrec_hnsw index: {what}")).with_hint("REINDEX the index")
}

/// Fills a fresh page with the meta contents, kept below pd_lower so full-page
/// images (which skip the hole between pd_lower and pd_upper) include them.
///
/// # Safety
/// `page` must point to a writable BLCKSZ page buffer.
pub unsafe fn init_meta_page(page: pg_sys::Page, meta: &Meta) {
    // SAFETY: per the contract; PageInit formats the header, then the meta bytes
    // go right after it, well inside the page.
    unsafe {
        pg_sys::PageInit(page, pg_sys::BLCKSZ as usize, 0);
        write_meta_bytes(page, meta);
    }
}

/// # Safety
/// `page` must be an initialised, writable index page.
unsafe fn write_meta_bytes(page: pg_sys::Page, meta: &Meta) {
    // SAFETY: see init_meta_page.
    unsafe {
        let contents = pg_sys::PageGetContents(page).cast::<u8>();
        std::ptr::copy_nonoverlapping(meta.encode().as_ptr(), contents, META_SIZE);
        let header = page.cast::<pg_sys::PageHeaderData>();
        (*header).pd_lower = (contents.offset_from(page.cast::<u8>()) as usize + META_SIZE) as u16;
    }
}

/// Reads the meta page.
///
/// # Safety
/// `index` must be an open `pgrec_hnsw` index with at least its meta page.
pub unsafe fn read_meta(index: pg_sys::Relation) -> Meta {
    // SAFETY: block 0 exists in every built index; it is read under a share lock.
    let res = unsafe {
        let buf = pg_sys::ReadBuffer(index, META_BLOCK);
        pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_SHARE as i32);
        let page = pg_sys::BufferGetPage(buf);
        let bytes = std::slice::from_raw_parts(pg_sys::PageGetContents(page).cast::<u8>(), META_SIZE);
        let meta = Meta::decode(bytes);
        pg_sys::UnlockReleaseBuffer(buf);
        meta
    };
    res.unwrap_or_else(|e| raise(e))
}

/// Holds the index's writer lock (a heavyweight lock on the meta page, so it is
/// released at transaction abort too) for as long as it lives.
pub struct WriteLock(pg_sys::Relation);

impl WriteLock {
    /// # Safety
    /// `index` must be an open index relation that outlives the lock.
    pub unsafe fn acquire(index: pg_sys::Relation) -> WriteLock {
        // SAFETY: per the contract.
        unsafe { pg_sys::LockPage(index, META_BLOCK, pg_sys::ExclusiveLock as pg_sys::LOCKMODE) };
        WriteLock(index)
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        // SAFETY: the lock was taken in acquire on this relation.
        unsafe { pg_sys::UnlockPage(self.0, META_BLOCK, pg_sys::ExclusiveLock as pg_sys::LOCKMODE) };
    }
}

/// One GenericXLog record over up to four buffers, each exclusively locked.
struct Wal {
    state: *mut pg_sys::GenericXLogState,
    buffers: Vec<pg_sys::Buffer>,
}

impl Wal {
    unsafe fn start(index: pg_sys::Relation) -> Wal {
        // SAFETY: index is open; the state is finished in `finish`.
        Wal { state: unsafe { pg_sys::GenericXLogStart(index) }, buffers: Vec::with_capacity(2) }
    }

    /// Registers a pinned buffer, locking it exclusively; returns the page to edit.
    unsafe fn page(&mut self, buf: pg_sys::Buffer, new_page: bool) -> pg_sys::Page {
        let flags = if new_page { pg_sys::GENERIC_XLOG_FULL_IMAGE as i32 } else { 0 };
        // SAFETY: the buffer is pinned by the caller; GenericXLog needs it locked.
        unsafe {
            pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
            self.buffers.push(buf);
            pg_sys::GenericXLogRegisterBuffer(self.state, buf, flags)
        }
    }

    unsafe fn finish(self) {
        // SAFETY: logs and applies the edits, then unlocks and unpins each buffer.
        unsafe {
            pg_sys::GenericXLogFinish(self.state);
            for b in self.buffers {
                pg_sys::UnlockReleaseBuffer(b);
            }
        }
    }
}

/// The bytes of one item of a locked page, or a corruption error.
///
/// # Safety
/// `page` must be a locked, initialised page that outlives the returned slice.
unsafe fn item<'p>(page: pg_sys::Page, r: NodeRef) -> Result<&'p mut [u8]> {
    // SAFETY: the offset is checked against the page's line pointer count before
    // the line pointer is read; the item's length comes from it.
    unsafe {
        let max = pg_sys::PageGetMaxOffsetNumber(page);
        if r.offset == 0 || r.offset > max {
            return Err(corrupt(format!("item ({},{}) beyond the {max} items of its page", r.block, r.offset)));
        }
        let id = pg_sys::PageGetItemId(page, r.offset);
        if (*id).lp_flags() != pg_sys::LP_NORMAL {
            return Err(corrupt(format!("item ({},{}) is not in use", r.block, r.offset)));
        }
        let len = (*id).lp_len() as usize;
        Ok(std::slice::from_raw_parts_mut(pg_sys::PageGetItem(page, id).cast::<u8>(), len))
    }
}

/// The HNSW graph of an open index, read and written through its pages.
pub struct PageGraph {
    index: pg_sys::Relation,
    pub meta: Meta,
    kernels: &'static Kernels,
    recent: Recent,
}

impl PageGraph {
    /// # Safety
    /// `index` must be an open, built `pgrec_hnsw` index that outlives the graph.
    pub unsafe fn open(index: pg_sys::Relation) -> PageGraph {
        // SAFETY: per the contract.
        unsafe {
            let meta = read_meta(index);
            let recent = Recent::open(index, meta.last_block);
            PageGraph { index, meta, kernels: kernels::best(), recent }
        }
    }

    pub fn params(&self) -> BuildParams {
        BuildParams { m: self.meta.m as usize, ef_construction: self.meta.ef_construction as usize }
    }

    pub fn metric(&self) -> Metric {
        self.meta.metric
    }

    /// Runs `f` on node `r` under a share lock on its page.
    pub fn read<R>(&self, r: NodeRef, f: impl FnOnce(Node<'_>) -> R) -> R {
        // SAFETY: the buffer is pinned by `pin` for read_pinned to release.
        unsafe { self.read_pinned(self.recent.pin(r.block), r, f) }.unwrap_or_else(|e| raise(e))
    }

    /// Runs `f` on node `r` of the pinned buffer `buf` under a share lock,
    /// then unlocks and releases the buffer.
    ///
    /// # Safety
    /// `buf` must be a buffer of this index holding `r.block`, pinned by the
    /// caller, who gives the pin up to this call.
    unsafe fn read_pinned<R>(&self, buf: pg_sys::Buffer, r: NodeRef, f: impl FnOnce(Node<'_>) -> R) -> Result<R> {
        let m = self.meta.m as usize;
        // SAFETY: per the contract; the page is share-locked while the item is
        // parsed and used, and nothing escapes `f`.
        unsafe {
            pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_SHARE as i32);
            let res = item(pg_sys::BufferGetPage(buf), r).and_then(|b| Node::parse(b, m)).map(f);
            pg_sys::UnlockReleaseBuffer(buf);
            res
        }
    }

    /// Changes node `r` in place under one WAL record.
    pub fn write(&mut self, r: NodeRef, f: impl FnOnce(&mut NodeMut<'_>)) {
        let m = self.meta.m as usize;
        // SAFETY: the page is pinned, exclusively locked and registered with
        // GenericXLog before the item is edited in GenericXLog's copy of it.
        let res = unsafe {
            let mut wal = Wal::start(self.index);
            let page = wal.page(pg_sys::ReadBuffer(self.index, r.block), false);
            let res = item(page, r).and_then(|b| NodeMut::parse(b, m)).map(|mut n| f(&mut n));
            if res.is_err() {
                pg_sys::GenericXLogAbort(wal.state);
                for b in wal.buffers {
                    pg_sys::UnlockReleaseBuffer(b);
                }
            } else {
                wal.finish();
            }
            res
        };
        res.unwrap_or_else(|e| raise(e))
    }

    /// Writes `self.meta` to the meta page under one WAL record.
    pub fn save_meta(&mut self) {
        // SAFETY: as in `write`, on block 0.
        unsafe {
            let mut wal = Wal::start(self.index);
            let page = wal.page(pg_sys::ReadBuffer(self.index, META_BLOCK), false);
            write_meta_bytes(page, &self.meta);
            wal.finish();
        }
    }

    /// Stores a new node item (with empty or given links) on the last page if it
    /// fits, else on a new page, updating the meta page in the same WAL record.
    pub fn add_node(&mut self, bytes: &[u8]) -> NodeRef {
        let need = bytes.len().div_ceil(8) * 8;
        // SAFETY: buffers are pinned, locked and registered with GenericXLog before
        // any edit; the item is copied by PageAddItemExtended; the extension lock
        // makes the new block ours alone.
        unsafe {
            let mut wal = Wal::start(self.index);
            let mut target = None;
            if self.meta.last_block != 0 {
                let buf = pg_sys::ReadBuffer(self.index, self.meta.last_block);
                pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_SHARE as i32);
                let fits = pg_sys::PageGetFreeSpace(pg_sys::BufferGetPage(buf)) >= need;
                pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_UNLOCK as i32);
                if fits {
                    target = Some((self.meta.last_block, wal.page(buf, false)));
                } else {
                    pg_sys::ReleaseBuffer(buf);
                }
            }
            let (block, page) = match target {
                Some(t) => t,
                None => {
                    pg_sys::LockRelationForExtension(self.index, pg_sys::ExclusiveLock as pg_sys::LOCKMODE);
                    let buf = pg_sys::ReadBufferExtended(
                        self.index,
                        pg_sys::ForkNumber::MAIN_FORKNUM,
                        P_NEW,
                        pg_sys::ReadBufferMode::RBM_NORMAL,
                        std::ptr::null_mut(),
                    );
                    pg_sys::UnlockRelationForExtension(self.index, pg_sys::ExclusiveLock as pg_sys::LOCKMODE);
                    let page = wal.page(buf, true);
                    pg_sys::PageInit(page, pg_sys::BLCKSZ as usize, 0);
                    (pg_sys::BufferGetBlockNumber(buf), page)
                }
            };
            let offset = pg_sys::PageAddItemExtended(page, bytes.as_ptr() as pg_sys::Item, bytes.len(), 0, 0);
            if offset == 0 {
                raise(corrupt(format!("no room for a {}-byte node on block {block}", bytes.len())));
            }
            self.meta.last_block = block;
            self.meta.nodes += 1;
            let meta_page = wal.page(pg_sys::ReadBuffer(self.index, META_BLOCK), false);
            write_meta_bytes(meta_page, &self.meta);
            wal.finish();
            NodeRef { block, offset }
        }
    }

    /// Every node item in the index, in physical order, with what `f` reads of it.
    pub fn scan_nodes<T>(&self, mut f: impl FnMut(NodeRef, Node<'_>) -> T) -> Vec<T> {
        let m = self.meta.m as usize;
        let mut out = Vec::new();
        // SAFETY: each block is pinned and share-locked while its items are read.
        unsafe {
            let blocks = pg_sys::RelationGetNumberOfBlocksInFork(self.index, pg_sys::ForkNumber::MAIN_FORKNUM);
            for block in 1..blocks {
                pgrx::check_for_interrupts!();
                super::vacuum_delay_point();
                let buf = pg_sys::ReadBuffer(self.index, block);
                pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_SHARE as i32);
                let page = pg_sys::BufferGetPage(buf);
                let max = pg_sys::PageGetMaxOffsetNumber(page);
                for offset in 1..=max {
                    let r = NodeRef { block, offset };
                    match item(page, r).and_then(|b| Node::parse(b, m)) {
                        Ok(n) => out.push(f(r, n)),
                        Err(e) => {
                            pg_sys::UnlockReleaseBuffer(buf);
                            raise(e);
                        }
                    }
                }
                pg_sys::UnlockReleaseBuffer(buf);
            }
        }
        out
    }
}

impl Graph for PageGraph {
    type Node = NodeRef;
    type Visited = NodeSet<NodeRef>;

    fn visited(&self) -> NodeSet<NodeRef> {
        node_set(1024)
    }

    fn entry(&self) -> Option<(NodeRef, usize)> {
        self.meta.entry.map(|(r, l)| (r, l as usize))
    }

    fn distance(&self, query: &[f32], node: NodeRef) -> f32 {
        let (metric, k) = (self.meta.metric, self.kernels);
        self.read(node, |n| n.with_vector(|v| metric.distance(k, query, v)))
    }

    /// Compares the rows `PREFETCH_BATCH` at a time in three passes: pin each
    /// page and prefetch its line pointer, prefetch each item, then lock and
    /// compare. The first two passes only start loads, so a batch's cache
    /// misses overlap instead of being paid one after another, as
    /// `distance` alone would.
    fn distances(&self, query: &[f32], nodes: &[NodeRef], out: &mut Vec<f32>) {
        let (metric, k) = (self.meta.metric, self.kernels);
        let item_bytes = layout::node_size(self.meta.dims as usize, 0, 0);
        let linp = std::mem::offset_of!(pg_sys::PageHeaderData, pd_linp);
        let max_offset = (pg_sys::BLCKSZ as usize - linp) / std::mem::size_of::<pg_sys::ItemIdData>();
        let mut bufs = [0 as pg_sys::Buffer; PREFETCH_BATCH];
        for batch in nodes.chunks(PREFETCH_BATCH) {
            // SAFETY: each buffer is pinned (pass 1) before its page is
            // touched and released exactly once (pass 3, or before raising).
            // Pass 2 reads a line pointer without the content lock: once an
            // item is added its line pointer never changes (items are never
            // moved or removed; writers rewrite links and flags inside the
            // item), the offset is bounded to the page, and what is read
            // only chooses an address to prefetch. Pass 3 reads everything it
            // uses again, under a share lock and fully checked.
            unsafe {
                for (b, r) in bufs.iter_mut().zip(batch) {
                    *b = self.recent.pin(r.block);
                    let page = pg_sys::BufferGetPage(*b).cast::<u8>();
                    kernels::prefetch(page.wrapping_add(linp + 4 * usize::from(r.offset).saturating_sub(1)), 4);
                }
                for (b, r) in bufs.iter().zip(batch) {
                    let off = usize::from(r.offset);
                    if off == 0 || off > max_offset {
                        continue;
                    }
                    let page = pg_sys::BufferGetPage(*b).cast::<u8>();
                    let lp = std::ptr::read_volatile(page.add(linp + 4 * (off - 1)).cast::<pg_sys::ItemIdData>());
                    kernels::prefetch(page.wrapping_add(lp.lp_off() as usize), item_bytes);
                }
                for (i, (b, r)) in bufs.iter().zip(batch).enumerate() {
                    match self.read_pinned(*b, *r, |n| n.with_vector(|v| metric.distance(k, query, v))) {
                        Ok(d) => out.push(d),
                        Err(e) => {
                            for rest in &bufs[i + 1..batch.len()] {
                                pg_sys::ReleaseBuffer(*rest);
                            }
                            raise(e);
                        }
                    }
                }
            }
        }
    }

    fn neighbors(&self, node: NodeRef, level: usize, out: &mut Vec<NodeRef>) {
        self.read(node, |n| n.links_into(level, out))
    }
}

impl GraphMut for PageGraph {
    fn node_vector(&self, node: NodeRef, out: &mut Vec<f32>) {
        self.read(node, |n| n.vector_into(out))
    }

    fn set_links(&mut self, node: NodeRef, level: usize, links: &[NodeRef]) {
        self.write(node, |n| n.set_links(level, links))
    }

    fn set_entry(&mut self, node: NodeRef, level: usize) {
        self.meta.entry = Some((node, level as u8));
        self.save_meta();
    }
}

/// The vector an index stores for a row, or `None` if it cannot be indexed
/// (a zero vector under cosine). Checks the dimension count against the index's.
pub fn prepare_for_index(metric: Metric, dims: usize, v: &[f32]) -> Result<Option<Vec<f32>>> {
    if dims != 0 && v.len() != dims {
        return Err(Error::new(ErrorKind::DataException, format!("expected {dims} dimensions, not {}", v.len()))
            .with_hint("a pgrec_hnsw index holds vectors of one dimension count; declare the column as embedding(n)"));
    }
    Ok(metric.prepare(v))
}

/// Converts a heap TID to the node's heap reference and back.
pub fn heap_ref(tid: &pg_sys::ItemPointerData) -> NodeRef {
    NodeRef { block: (u32::from(tid.ip_blkid.bi_hi) << 16) | u32::from(tid.ip_blkid.bi_lo), offset: tid.ip_posid }
}

pub fn heap_tid(r: NodeRef) -> pg_sys::ItemPointerData {
    pg_sys::ItemPointerData {
        ip_blkid: pg_sys::BlockIdData { bi_hi: (r.block >> 16) as u16, bi_lo: (r.block & 0xffff) as u16 },
        ip_posid: r.offset,
    }
}

/// Reads an `embedding` datum of an index tuple.
///
/// # Safety
/// `datum` must be a non-null `embedding` datum valid for the current call.
pub unsafe fn embedding_arg<'a>(datum: pg_sys::Datum) -> &'a [f32] {
    use pgrx::FromDatum;
    // SAFETY: per the contract; detoasted copies live in the current context.
    unsafe { crate::types::datum::EmbeddingRef::from_polymorphic_datum(datum, false, pg_sys::InvalidOid) }
        .map(|e| e.as_slice())
        .unwrap_or_else(|| raise(Error::new(ErrorKind::NullValueNotAllowed, "embedding value is null")))
}

/// The metric an operator class indexes, from its support function 1.
///
/// # Safety
/// `index` must be an open `pgrec_hnsw` index relation.
pub unsafe fn opclass_metric(index: pg_sys::Relation) -> Result<Metric> {
    // SAFETY: every pgrec_hnsw operator class defines support function 1.
    let name = unsafe {
        let proc = pg_sys::index_getprocid(index, 1, 1);
        let p = pg_sys::get_func_name(proc);
        if p.is_null() { String::new() } else { std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned() }
    };
    match name.as_str() {
        "l2_distance" => Ok(Metric::L2),
        "cosine_distance" => Ok(Metric::Cosine),
        "negative_inner_product" => Ok(Metric::InnerProduct),
        other => Err(Error::new(
            ErrorKind::InvalidParameterValue,
            format!("pgrec_hnsw cannot index distance function \"{other}\""),
        )
        .with_hint("use the operator class embedding_l2_ops, embedding_cosine_ops or embedding_ip_ops")),
    }
}

/// Bytes of the node item for a prepared vector with empty links.
pub fn new_node(heap: NodeRef, vector: &[f32], level: usize, m: usize) -> Vec<u8> {
    layout::encode_node(heap, vector, &vec![Vec::new(); level + 1], m)
}
