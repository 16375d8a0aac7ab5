//! `ambuildphasename`: names of the build's sub-phases, as
//! `pg_stat_progress_create_index.phase` shows them.

use pgrx::pg_guard;

use super::build::{PHASE_GRAPH, PHASE_LOAD, PHASE_WRITE};

#[pg_guard]
pub unsafe extern "C-unwind" fn ambuildphasename(phase: i64) -> *mut std::ffi::c_char {
    let name: &'static std::ffi::CStr = match phase {
        1 => c"initializing",
        PHASE_LOAD => c"loading tuples",
        PHASE_GRAPH => c"building graph",
        PHASE_WRITE => c"writing index pages",
        _ => return std::ptr::null_mut(),
    };
    // Postgres only reads the name; it is 'static.
    name.as_ptr().cast_mut()
}
