//! `ambuildempty`: the init fork of an index on an unlogged table, which is a
//! meta page alone; it is WAL-logged so the empty index survives a crash.

use pgrx::{pg_guard, pg_sys};

use super::layout::Meta;
use super::options;
use super::pages::{init_meta_page, opclass_metric};
use crate::sqlstate::OrRaise;

#[pg_guard]
pub unsafe extern "C-unwind" fn ambuildempty(index: pg_sys::Relation) {
    // SAFETY: the index is open; block 0 of its new init fork is ours, locked
    // while it is formatted, and logged as a full page.
    unsafe {
        let params = options::params(index).or_raise();
        let typmod = super::column_typmod(index);
        let meta = Meta {
            dims: if typmod > 0 { typmod as u16 } else { 0 },
            metric: opclass_metric(index).or_raise(),
            m: params.m as u16,
            ef_construction: params.ef_construction as u16,
            entry: None,
            last_block: 0,
            nodes: 0,
        };
        let buf = pg_sys::ReadBufferExtended(
            index,
            pg_sys::ForkNumber::INIT_FORKNUM,
            u32::MAX,
            pg_sys::ReadBufferMode::RBM_NORMAL,
            std::ptr::null_mut(),
        );
        pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
        init_meta_page(pg_sys::BufferGetPage(buf), &meta);
        pg_sys::MarkBufferDirty(buf);
        pg_sys::log_newpage_buffer(buf, true);
        pg_sys::UnlockReleaseBuffer(buf);
    }
}
