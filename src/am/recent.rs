//! Pins index pages without the shared buffer-mapping lookup where it can.
//!
//! A scan reads a few hundred index pages per query, each through `ReadBuffer`,
//! which hashes the page's tag and looks it up in the shared buffer table under
//! a partition lock. A perf profile of pgbench at ef_search 10 on 100,000 × 384
//! rows with two clients put that lookup at 15% of the server's samples
//! (`hash_search_with_hash_value` under `BufTableLookup`), more than the
//! distance kernel. So each backend remembers which buffer held each block of
//! an index the last time it read it, and asks `ReadRecentBuffer` (PostgreSQL
//! 14+) to pin that buffer: it checks the buffer's tag under the buffer header
//! lock and fails when the page has moved, so a stale guess costs one failed
//! check and a plain `ReadBuffer`, never a wrong page.
//!
//! The guesses are kept between queries for the last few indexes a backend
//! scanned (4 bytes per index block), keyed by the index's file, so REINDEX or
//! TRUNCATE (a new file) starts afresh. Temporary indexes live in local
//! buffers, where the lookup is the backend's own; they use `ReadBuffer`, as
//! builds for PostgreSQL 13 and 14 do. A page pinned this way is counted in
//! the index's `pg_statio` block hits as `ReadBuffer` would count it.

use std::cell::{Cell, RefCell};

use pgrx::pg_sys;

/// An index's physical file: tablespace, database, file number.
type FileKey = (u32, u32, u32);

/// Indexes whose guesses a backend keeps.
const KEPT: usize = 8;

thread_local! {
    /// Guesses of the indexes scanned lately, most recent last. A `Recent`
    /// takes its index's entry out while it lives and puts it back on drop, so
    /// two scans of one index at once (a self-join) each get their own.
    static KEPT_GUESSES: RefCell<Vec<(FileKey, Vec<Cell<pg_sys::Buffer>>)>> = const { RefCell::new(Vec::new()) };
}

/// Reads the pages of one open index, through remembered buffers where it can.
pub struct Recent {
    index: pg_sys::Relation,
    #[cfg(not(any(feature = "pg13", feature = "pg14")))]
    file: FileLocator,
    key: FileKey,
    /// The buffer each block was last found in (0: none yet); empty for a
    /// temporary index.
    guesses: Vec<Cell<pg_sys::Buffer>>,
}

#[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
type FileLocator = pg_sys::RelFileNode;
#[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15")))]
type FileLocator = pg_sys::RelFileLocator;

impl Recent {
    /// Guesses for `index` sized to its `last_block` (from the meta page),
    /// never past the blocks the file really has.
    ///
    /// # Safety
    /// `index` must be an open index relation that outlives the result.
    pub unsafe fn open(index: pg_sys::Relation, last_block: u32) -> Recent {
        // SAFETY: per the contract, rd_rel and the file locator are set on an
        // open relation; the block count is read from the open relation.
        unsafe {
            #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
            let (file, key) = {
                let f = (*index).rd_node;
                (f, (f.spcNode.to_u32(), f.dbNode.to_u32(), f.relNode.to_u32()))
            };
            #[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15")))]
            let (file, key) = {
                let f = (*index).rd_locator;
                (f, (f.spcOid.to_u32(), f.dbOid.to_u32(), f.relNumber.to_u32()))
            };
            let temp = (*(*index).rd_rel).relpersistence as u8 == pg_sys::RELPERSISTENCE_TEMP;
            let off = temp || cfg!(any(feature = "pg13", feature = "pg14"));
            let mut guesses = if off { Vec::new() } else { take(key) };
            let want = last_block as usize + 1;
            if !off && guesses.len() < want {
                // The meta page says how far the index reaches; the file
                // bounds it, so a damaged meta page cannot ask for gigabytes.
                let blocks = pg_sys::RelationGetNumberOfBlocksInFork(index, pg_sys::ForkNumber::MAIN_FORKNUM) as usize;
                guesses.resize_with(want.min(blocks), || Cell::new(pg_sys::InvalidBuffer as pg_sys::Buffer));
            }
            #[cfg(any(feature = "pg13", feature = "pg14"))]
            let _ = file;
            Recent {
                index,
                #[cfg(not(any(feature = "pg13", feature = "pg14")))]
                file,
                key,
                guesses,
            }
        }
    }

    /// Pins `block` of the index (not locked), as `ReadBuffer` would.
    ///
    /// # Safety
    /// `block` must be a block of the index; the caller releases the pin.
    #[inline]
    pub unsafe fn pin(&self, block: u32) -> pg_sys::Buffer {
        let Some(slot) = self.guesses.get(block as usize) else {
            // SAFETY: per the contract.
            return unsafe { pg_sys::ReadBuffer(self.index, block) };
        };
        let guess = slot.get();
        // SAFETY: a non-zero guess is a shared buffer number this backend got
        // from ReadBuffer (so within 1..=NBuffers); ReadRecentBuffer pins it
        // only if it still holds this file's block, else pins nothing.
        #[cfg(not(any(feature = "pg13", feature = "pg14")))]
        unsafe {
            if guess > 0 && pg_sys::ReadRecentBuffer(self.file, pg_sys::ForkNumber::MAIN_FORKNUM, block, guess) {
                self.count_hit();
                return guess;
            }
        }
        // SAFETY: per the contract.
        let buf = unsafe { pg_sys::ReadBuffer(self.index, block) };
        if buf > 0 {
            slot.set(buf);
        }
        buf
    }

    /// Counts a block read and hit in the index's statistics, as `ReadBuffer`
    /// does for a page found in shared buffers (its `pgstat_count_buffer_read`
    /// and `_hit` macros, which the bindings do not carry).
    #[cfg(not(any(feature = "pg13", feature = "pg14")))]
    fn count_hit(&self) {
        // SAFETY: the index is open; pgstat_info is either null or the
        // relation's pending statistics entry, which pgstat_assoc_relation
        // creates when statistics are enabled for it.
        unsafe {
            let rel = self.index;
            if (*rel).pgstat_info.is_null() {
                if !(*rel).pgstat_enabled {
                    return;
                }
                pg_sys::pgstat_assoc_relation(rel);
            }
            let info = (*rel).pgstat_info;
            if info.is_null() {
                return;
            }
            #[cfg(feature = "pg15")]
            let counts = &mut (*info).t_counts;
            #[cfg(feature = "pg15")]
            {
                counts.t_blocks_fetched += 1;
                counts.t_blocks_hit += 1;
            }
            #[cfg(not(feature = "pg15"))]
            {
                let counts = &mut (*info).counts;
                counts.blocks_fetched += 1;
                counts.blocks_hit += 1;
            }
        }
    }
}

/// This index's guesses, taken out of the backend's store (empty if none).
fn take(key: FileKey) -> Vec<Cell<pg_sys::Buffer>> {
    KEPT_GUESSES.with_borrow_mut(|kept| match kept.iter().position(|(k, _)| *k == key) {
        Some(i) => kept.remove(i).1,
        None => Vec::new(),
    })
}

impl Drop for Recent {
    fn drop(&mut self) {
        if self.guesses.is_empty() {
            return;
        }
        let guesses = std::mem::take(&mut self.guesses);
        KEPT_GUESSES.with_borrow_mut(|kept| {
            kept.retain(|(k, _)| *k != self.key);
            if kept.len() >= KEPT {
                kept.remove(0);
            }
            kept.push((self.key, guesses));
        });
    }
}
