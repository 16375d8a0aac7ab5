//! The `embedding` type's support functions: text and binary I/O, the `(n)` type
//! modifier, the length-coercion cast, and casts from and to arrays. The SQL that
//! binds them (`CREATE TYPE`, `CREATE CAST`) is hand-written in `sql/embedding.sql`,
//! which refers to each function by its `<name>_wrapper` symbol.

use std::ffi::{CStr, CString};

use pgrx::datum::{AnyNumeric, Array, Internal};
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::error::{Error, ErrorKind, Result};
use crate::sqlstate::OrRaise;
use crate::types::datum::{Embedding, EmbeddingRef};
use crate::types::vector;

#[pg_extern(sql = false)]
fn embedding_in(input: &CStr, _typioparam: pg_sys::Oid, typmod: i32) -> Embedding {
    let text = input.to_str().map_err(|_| {
        Error::new(ErrorKind::InvalidTextRepresentation, "invalid input syntax for type embedding: not valid UTF-8")
    });
    let values = text.and_then(vector::parse).or_raise();
    vector::check_typmod(values.len(), typmod).or_raise();
    Embedding::from_slice(&values)
}

#[pg_extern(sql = false)]
fn embedding_out(v: EmbeddingRef<'_>) -> CString {
    // The formatter only emits digits, signs, '.', 'e', brackets and commas.
    CString::new(vector::format(v.as_slice())).unwrap_or_default()
}

#[pg_extern(sql = false)]
fn embedding_typmod_in(mods: Array<'_, &CStr>) -> i32 {
    let arr = mods.into_array_type().cast_mut();
    let mut n: std::ffi::c_int = 0;
    // SAFETY: `arr` is the cstring[] Postgres passed us; ArrayGetIntegerTypmods
    // validates it (raising a Postgres error on bad input) and returns n int32s.
    let values = unsafe {
        let p = pg_sys::ArrayGetIntegerTypmods(arr, &mut n);
        std::slice::from_raw_parts(p, n.max(0) as usize)
    };
    vector::typmod_from(values).or_raise()
}

#[pg_extern(sql = false)]
fn embedding_typmod_out(typmod: i32) -> CString {
    let s = if typmod > 0 { format!("({typmod})") } else { String::new() };
    CString::new(s).unwrap_or_default()
}

#[pg_extern(sql = false)]
fn embedding_recv(mut buf: Internal, _typioparam: pg_sys::Oid, typmod: i32) -> Embedding {
    // SAFETY: the receive function's first argument is always a StringInfo.
    let Some(buf) = (unsafe { buf.get_mut::<pg_sys::StringInfoData>() }) else {
        crate::sqlstate::raise(Error::new(
            ErrorKind::InvalidBinaryRepresentation,
            "invalid binary embedding: no buffer",
        ));
    };
    let (start, end) = (buf.cursor.max(0) as usize, buf.len.max(0) as usize);
    // SAFETY: a StringInfo holds `len` initialised bytes at `data`; cursor <= len.
    let bytes = unsafe { std::slice::from_raw_parts(buf.data.cast::<u8>().add(start), end.saturating_sub(start)) };
    let (values, used) = vector::decode_binary(bytes).or_raise();
    buf.cursor += used as i32;
    vector::check_typmod(values.len(), typmod).or_raise();
    Embedding::from_slice(&values)
}

#[pg_extern(sql = false)]
fn embedding_send(v: EmbeddingRef<'_>) -> Vec<u8> {
    vector::encode_binary(v.as_slice())
}

/// Length coercion: enforces `embedding(n)` on assignment and explicit casts.
/// Returns the argument itself when it fits, so no copy is made.
#[pg_extern(sql = false)]
fn embedding_typmod_cast<'a>(v: EmbeddingRef<'a>, typmod: i32, _explicit: bool) -> EmbeddingRef<'a> {
    vector::check_typmod(v.as_slice().len(), typmod).or_raise();
    v
}

/// Builds an embedding from array elements, naming the first bad one.
fn from_elements(values: impl Iterator<Item = Option<f64>>, ndim: i32, typmod: i32) -> Result<Vec<f32>> {
    if ndim > 1 {
        return Err(Error::new(
            ErrorKind::DataException,
            format!("array must be 1-dimensional to become an embedding, got {ndim} dimensions"),
        )
        .with_hint("pass a flat array such as ARRAY[1,2,3], or unnest the rows first"));
    }
    let mut out = Vec::new();
    for (i, v) in values.enumerate() {
        let pos = i + 1;
        if pos > vector::MAX_DIM {
            vector::check_dims(pos)?;
        }
        let Some(v) = v else {
            return Err(Error::new(
                ErrorKind::NullValueNotAllowed,
                format!("array must not contain nulls (element {pos} is null)"),
            )
            .with_hint("filter the nulls out or replace them with coalesce(x, 0)"));
        };
        out.push(vector::narrow(pos, v, &format_args!("{v:e}"))?);
    }
    vector::check_dims(out.len())?;
    vector::check_typmod(out.len(), typmod)?;
    Ok(out)
}

fn array_to_embedding<T: FromDatum + pgrx::datum::UnboxDatum>(
    arr: Array<'_, T>,
    typmod: i32,
    to_f64: impl for<'x> Fn(T::As<'x>) -> f64,
) -> Embedding {
    let values: Vec<Option<f64>> = arr.iter().map(|v| v.map(&to_f64)).collect();
    // SAFETY: `into_array_type` hands back the detoasted ArrayType pgrx read from.
    let ndim = unsafe { (*arr.into_array_type()).ndim };
    let out = from_elements(values.into_iter(), ndim, typmod).or_raise();
    Embedding::from_slice(&out)
}

#[pg_extern(sql = false)]
fn float4_array_to_embedding(arr: Array<'_, f32>, typmod: i32, _explicit: bool) -> Embedding {
    array_to_embedding(arr, typmod, f64::from)
}

#[pg_extern(sql = false)]
fn float8_array_to_embedding(arr: Array<'_, f64>, typmod: i32, _explicit: bool) -> Embedding {
    array_to_embedding(arr, typmod, |v| v)
}

#[pg_extern(sql = false)]
fn int4_array_to_embedding(arr: Array<'_, i32>, typmod: i32, _explicit: bool) -> Embedding {
    array_to_embedding(arr, typmod, f64::from)
}

#[pg_extern(sql = false)]
fn numeric_array_to_embedding(arr: Array<'_, AnyNumeric>, typmod: i32, _explicit: bool) -> Embedding {
    // numeric NaN and ±Infinity convert to their float counterparts and are then
    // rejected by `narrow`; a numeric too large for a double is out of range anyway.
    array_to_embedding(arr, typmod, |v| f64::try_from(v).unwrap_or(f64::MAX))
}

#[pg_extern(sql = false)]
fn embedding_to_float4(v: EmbeddingRef<'_>, _typmod: i32, _explicit: bool) -> Vec<f32> {
    v.as_slice().to_vec()
}

#[pg_extern(sql = false)]
fn embedding_to_float8(v: EmbeddingRef<'_>, _typmod: i32, _explicit: bool) -> Vec<f64> {
    v.as_slice().iter().map(|&x| f64::from(x)).collect()
}
