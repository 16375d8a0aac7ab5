//! `amoptions`: the index's reloptions `m` and `ef_construction`, their
//! registration (once per backend, from `_PG_init`) and how the other callbacks
//! read them. Postgres checks the bounds and names the option in its error.

use std::sync::atomic::{AtomicU32, Ordering};

use pgrx::pg_guard;
use pgrx::pg_sys;

use crate::ann::BuildParams;
use crate::error::{Error, ErrorKind, Result};

/// Defaults and bounds, as documented in the README.
pub const M_DEFAULT: i32 = BuildParams::DEFAULT_M as i32;
pub const M_MIN: i32 = 2;
pub const M_MAX: i32 = 100;
pub const EF_CONSTRUCTION_DEFAULT: i32 = BuildParams::DEFAULT_EF_CONSTRUCTION as i32;
pub const EF_CONSTRUCTION_MIN: i32 = 4;
pub const EF_CONSTRUCTION_MAX: i32 = 1000;

static KIND: AtomicU32 = AtomicU32::new(0);

/// The parsed reloptions as Postgres stores them in `rd_options`.
#[repr(C)]
struct HnswOptions {
    vl_len_: i32,
    m: i32,
    ef_construction: i32,
}

/// Registers the reloption kind and its two options; called from `_PG_init`.
pub fn register() {
    // SAFETY: called once per backend while the library loads, on the main
    // thread; the strings are 'static.
    unsafe {
        let kind = pg_sys::add_reloption_kind();
        KIND.store(kind, Ordering::Relaxed);
        pg_sys::add_int_reloption(
            kind,
            c"m".as_ptr(),
            c"Neighbours per node on the upper graph layers (layer 0 keeps 2 * m)".as_ptr(),
            M_DEFAULT,
            M_MIN,
            M_MAX,
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        );
        pg_sys::add_int_reloption(
            kind,
            c"ef_construction".as_ptr(),
            c"Candidate list size while building the graph".as_ptr(),
            EF_CONSTRUCTION_DEFAULT,
            EF_CONSTRUCTION_MIN,
            EF_CONSTRUCTION_MAX,
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
        );
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amoptions(reloptions: pg_sys::Datum, validate: bool) -> *mut pg_sys::bytea {
    let table = [
        pg_sys::relopt_parse_elt {
            optname: c"m".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_INT,
            offset: std::mem::offset_of!(HnswOptions, m) as i32,
            // PostgreSQL 18: no flag records whether the option was given.
            #[cfg(feature = "pg18")]
            isset_offset: 0,
        },
        pg_sys::relopt_parse_elt {
            optname: c"ef_construction".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_INT,
            offset: std::mem::offset_of!(HnswOptions, ef_construction) as i32,
            #[cfg(feature = "pg18")]
            isset_offset: 0,
        },
    ];
    // SAFETY: the table describes HnswOptions exactly; build_reloptions pallocs
    // the result (or returns NULL when there are no options).
    unsafe {
        pg_sys::build_reloptions(
            reloptions,
            validate,
            KIND.load(Ordering::Relaxed),
            std::mem::size_of::<HnswOptions>(),
            table.as_ptr(),
            table.len() as i32,
        )
        .cast()
    }
}

/// The index's build parameters, defaults filled in, checked against each other.
///
/// # Safety
/// `index` must be an open `pgrec_hnsw` index relation.
pub unsafe fn params(index: pg_sys::Relation) -> Result<BuildParams> {
    // SAFETY: rd_options is NULL or the struct amoptions built for this index.
    let (m, efc) = unsafe {
        let opts = (*index).rd_options.cast::<HnswOptions>();
        if opts.is_null() { (M_DEFAULT, EF_CONSTRUCTION_DEFAULT) } else { ((*opts).m, (*opts).ef_construction) }
    };
    if efc < 2 * m {
        return Err(Error::new(
            ErrorKind::InvalidParameterValue,
            format!("ef_construction ({efc}) must be at least 2 * m ({})", 2 * m),
        )
        .with_hint("raise ef_construction or lower m"));
    }
    Ok(BuildParams { m: m as usize, ef_construction: efc as usize })
}
