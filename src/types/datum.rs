//! How an `embedding` lives in Postgres memory, and the glue that lets
//! `#[pg_extern]` functions take and return it.
//!
//! Layout (same as pgvector's `vector`, so dumps and binary copies line up): a
//! 4-byte varlena header, a u16 dimension count, a reserved u16, then the f32
//! elements. Arguments are borrowed after detoasting ([`EmbeddingRef`]); results
//! are built straight into palloc'd memory ([`Embedding`]), so no Rust-side copy
//! is made on either path.

use std::mem::size_of;
use std::ptr::NonNull;

use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::datum::{Datum, FromDatum};
use pgrx::nullable::Nullable;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::error::{Error, ErrorKind};
use crate::sqlstate::raise;
use crate::types::vector::MAX_DIM;

#[repr(C)]
struct Header {
    _vl_len: u32,
    dim: u16,
    _reserved: u16,
}

const HEADER: usize = size_of::<Header>();

fn total_size(dims: usize) -> usize {
    HEADER + dims * size_of::<f32>()
}

/// A borrowed `embedding` argument, detoasted and 4-byte aligned.
#[derive(Clone, Copy)]
pub struct EmbeddingRef<'a> {
    header: NonNull<Header>,
    values: &'a [f32],
}

impl<'a> EmbeddingRef<'a> {
    pub fn as_slice(&self) -> &'a [f32] {
        self.values
    }

    /// Reads a detoasted varlena, checking that its size agrees with its dimension
    /// count so a damaged value is reported instead of read out of bounds.
    ///
    /// # Safety
    /// `p` must point to a detoasted (4-byte header) varlena that lives for `'a`.
    unsafe fn from_varlena(p: *mut pg_sys::varlena) -> Self {
        // SAFETY: the caller guarantees a readable 4-byte-header varlena.
        let size = unsafe { pgrx::varlena::varsize_4b(p) };
        if size < HEADER {
            raise(corrupt(format!("a value of {size} bytes is shorter than the embedding header")));
        }
        let mut header = p.cast::<Header>();
        if header.align_offset(std::mem::align_of::<Header>()) != 0 {
            // SAFETY: palloc returns MAXALIGN'd memory of the requested size, and the
            // source has `size` readable bytes.
            unsafe {
                let copy = pg_sys::palloc(size).cast::<u8>();
                std::ptr::copy_nonoverlapping(p.cast::<u8>(), copy, size);
                header = copy.cast::<Header>();
            }
        }
        // SAFETY: `header` is aligned and at least HEADER bytes long (checked above).
        let dims = unsafe { (*header).dim } as usize;
        if dims == 0 || dims > MAX_DIM || total_size(dims) != size {
            raise(corrupt(format!("{size} bytes do not hold {dims} dimensions")));
        }
        // SAFETY: the size check proves `dims` f32s follow the header, and the
        // header's 4-byte alignment carries over to the data at offset 8.
        let values = unsafe { std::slice::from_raw_parts(header.cast::<u8>().add(HEADER).cast::<f32>(), dims) };
        // SAFETY: `header` came from a non-null pointer (or palloc, which never returns null).
        EmbeddingRef { header: unsafe { NonNull::new_unchecked(header) }, values }
    }
}

fn corrupt(what: String) -> Error {
    Error::new(ErrorKind::DataCorrupted, format!("corrupt embedding value: {what}"))
        .with_hint("the stored value was damaged; restore the row from a backup or re-embed it")
}

impl FromDatum for EmbeddingRef<'_> {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _typoid: pg_sys::Oid) -> Option<Self> {
        if is_null {
            return None;
        }
        let p: *mut pg_sys::varlena = datum.cast_mut_ptr();
        // SAFETY: a non-null datum of type embedding is a varlena pointer. The common
        // case, a plain inline value with a 4-byte header, is read in place (what the
        // PG_DETOAST_DATUM macro does), sparing a guarded FFI call per row in scans;
        // anything else is detoasted into the current memory context. Both outlive
        // the function call that borrows them.
        unsafe {
            let p = if pgrx::varlena::varatt_is_4b_u(p) { p } else { pg_sys::pg_detoast_datum(p) };
            Some(Self::from_varlena(p))
        }
    }
}

// SAFETY: an embedding argument is a varlena datum, which `from_polymorphic_datum`
// (above) reads as `ArgAbi` requires: detoasted, borrowed for the call only.
unsafe impl<'fcx> ArgAbi<'fcx> for EmbeddingRef<'fcx> {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        // SAFETY: pgrx calls this only for arguments declared as embedding; the SQL
        // functions are STRICT, so the argument is never NULL here.
        unsafe { arg.unbox_arg_using_from_datum() }.unwrap_or_else(|| {
            raise(Error::new(ErrorKind::NullValueNotAllowed, format!("embedding argument {index} is null")))
        })
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        // SAFETY: as above; NULL is handled by `from_polymorphic_datum`.
        unsafe { arg.unbox_arg_using_from_datum() }.into()
    }
}

// SAFETY: the datum returned is a pointer to a complete varlena, as `BoxRet`
// requires of a by-reference type.
unsafe impl BoxRet for EmbeddingRef<'_> {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        // SAFETY: the pointer is a valid embedding varlena in a memory context that
        // outlives the call, which is all Postgres needs of a returned by-ref datum.
        unsafe { fcinfo.return_raw_datum(pg_sys::Datum::from(self.header.as_ptr())) }
    }
}

/// A new `embedding` in palloc'd memory, ready to be returned to Postgres.
pub struct Embedding(NonNull<Header>);

impl Embedding {
    /// Copies `values` into a fresh varlena. Callers validate first (dimension
    /// count and finiteness); this only re-checks the hard size limit.
    pub fn from_slice(values: &[f32]) -> Self {
        if let Err(e) = crate::types::vector::check_dims(values.len()) {
            raise(e);
        }
        let size = total_size(values.len());
        // SAFETY: palloc0 returns zeroed, MAXALIGN'd memory of `size` bytes (or
        // raises out-of-memory itself); we write the header and exactly
        // `values.len()` f32s into it.
        unsafe {
            let p = pg_sys::palloc0(size).cast::<Header>();
            pgrx::varlena::set_varsize_4b(p.cast(), size as i32);
            (*p).dim = values.len() as u16;
            std::ptr::copy_nonoverlapping(values.as_ptr(), p.cast::<u8>().add(HEADER).cast::<f32>(), values.len());
            Embedding(NonNull::new_unchecked(p))
        }
    }
}

// SAFETY: as for `EmbeddingRef`: a pointer to a complete palloc'd varlena.
unsafe impl BoxRet for Embedding {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        // SAFETY: `self.0` is a complete embedding varlena in the current memory context.
        unsafe { fcinfo.return_raw_datum(pg_sys::Datum::from(self.0.as_ptr())) }
    }
}

/// An `embedding[]` to return, built from new embeddings (None = NULL).
pub struct EmbeddingArray(pub Vec<Option<Embedding>>);

// SAFETY: returns a pointer to a complete array varlena built by Postgres'
// own construct_md_array from complete embedding varlenas.
unsafe impl BoxRet for EmbeddingArray {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        // SAFETY: called by Postgres' function manager, so `flinfo` is set and
        // names this function, whose declared result is an array of embedding;
        // each element is a complete embedding varlena (int4-aligned, by
        // reference, variable length, as CREATE TYPE declares it).
        unsafe {
            let fc = fcinfo.as_mut_ptr();
            let elem = pg_sys::get_element_type(pg_sys::get_func_rettype((*(*fc).flinfo).fn_oid));
            let mut nulls: Vec<bool> = self.0.iter().map(Option::is_none).collect();
            let mut datums: Vec<pg_sys::Datum> = self
                .0
                .into_iter()
                .map(|e| e.map_or(pg_sys::Datum::from(0usize), |e| pg_sys::Datum::from(e.0.as_ptr())))
                .collect();
            let mut dims = [datums.len() as std::ffi::c_int];
            let mut lbs = [1 as std::ffi::c_int];
            let arr = pg_sys::construct_md_array(
                datums.as_mut_ptr(),
                nulls.as_mut_ptr(),
                1,
                dims.as_mut_ptr(),
                lbs.as_mut_ptr(),
                elem,
                -1,
                false,
                b'i' as std::ffi::c_char,
            );
            fcinfo.return_raw_datum(pg_sys::Datum::from(arr))
        }
    }
}

impl_sql_translatable!(EmbeddingRef<'_>, "embedding");
impl_sql_translatable!(Embedding, "embedding");
impl_sql_translatable!(EmbeddingArray, "embedding[]");

#[cfg(test)]
mod tests {
    #[test]
    fn header_layout_matches_pgvector() {
        assert_eq!(super::HEADER, 8);
        assert_eq!(super::total_size(3), 20);
    }
}
