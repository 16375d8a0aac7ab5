//! SQL functions over `embedding` values: metrics behind the distance operators,
//! element-wise arithmetic, btree comparison, and the `avg`/`sum` aggregate steps.

use std::cmp::Ordering;

use pgrx::prelude::*;

use crate::kernels;
use crate::sqlstate::OrRaise;
use crate::types::datum::{Embedding, EmbeddingRef};
use crate::types::vector;

/// Both operands as slices, after checking they have the same dimensions.
fn pair<'a>(a: &EmbeddingRef<'a>, b: &EmbeddingRef<'a>) -> (&'a [f32], &'a [f32]) {
    let (a, b) = (a.as_slice(), b.as_slice());
    vector::check_same_dims(a, b).or_raise();
    (a, b)
}

#[pg_extern(sql = false)]
fn dims(v: EmbeddingRef<'_>) -> i32 {
    v.as_slice().len() as i32
}

#[pg_extern(sql = false)]
fn norm(v: EmbeddingRef<'_>) -> f64 {
    f64::from(kernels::norm_squared(v.as_slice())).sqrt()
}

#[pg_extern(sql = false)]
fn l2_normalize(v: EmbeddingRef<'_>) -> Embedding {
    Embedding::from_slice(&vector::l2_normalize(v.as_slice()))
}

#[pg_extern(sql = false)]
fn subvector(v: EmbeddingRef<'_>, start: i32, count: i32) -> Embedding {
    Embedding::from_slice(&vector::subvector(v.as_slice(), start, count).or_raise())
}

#[pg_extern(sql = false)]
fn l2_distance(a: EmbeddingRef<'_>, b: EmbeddingRef<'_>) -> f64 {
    let (a, b) = pair(&a, &b);
    kernels::l2_distance(a, b)
}

#[pg_extern(sql = false)]
fn cosine_distance(a: EmbeddingRef<'_>, b: EmbeddingRef<'_>) -> f64 {
    let (a, b) = pair(&a, &b);
    kernels::cosine_distance(a, b)
}

#[pg_extern(sql = false)]
fn inner_product(a: EmbeddingRef<'_>, b: EmbeddingRef<'_>) -> f64 {
    let (a, b) = pair(&a, &b);
    f64::from(kernels::dot(a, b))
}

/// Behind `<#>`: negated so that ascending order puts the largest product first.
#[pg_extern(sql = false)]
fn negative_inner_product(a: EmbeddingRef<'_>, b: EmbeddingRef<'_>) -> f64 {
    let (a, b) = pair(&a, &b);
    -f64::from(kernels::dot(a, b))
}

#[pg_extern(sql = false)]
fn l1_distance(a: EmbeddingRef<'_>, b: EmbeddingRef<'_>) -> f64 {
    let (a, b) = pair(&a, &b);
    f64::from(kernels::l1(a, b))
}

#[pg_extern(sql = false)]
fn embedding_add(a: EmbeddingRef<'_>, b: EmbeddingRef<'_>) -> Embedding {
    Embedding::from_slice(&vector::add(a.as_slice(), b.as_slice()).or_raise())
}

#[pg_extern(sql = false)]
fn embedding_sub(a: EmbeddingRef<'_>, b: EmbeddingRef<'_>) -> Embedding {
    Embedding::from_slice(&vector::sub(a.as_slice(), b.as_slice()).or_raise())
}

#[pg_extern(sql = false)]
fn embedding_mul(a: EmbeddingRef<'_>, b: EmbeddingRef<'_>) -> Embedding {
    Embedding::from_slice(&vector::mul(a.as_slice(), b.as_slice()).or_raise())
}

fn cmp(a: &EmbeddingRef<'_>, b: &EmbeddingRef<'_>) -> Ordering {
    vector::compare(a.as_slice(), b.as_slice())
}

#[pg_extern(sql = false)]
fn embedding_cmp(a: EmbeddingRef<'_>, b: EmbeddingRef<'_>) -> i32 {
    cmp(&a, &b) as i32
}

#[pg_extern(sql = false)]
fn embedding_lt(a: EmbeddingRef<'_>, b: EmbeddingRef<'_>) -> bool {
    cmp(&a, &b).is_lt()
}

#[pg_extern(sql = false)]
fn embedding_le(a: EmbeddingRef<'_>, b: EmbeddingRef<'_>) -> bool {
    cmp(&a, &b).is_le()
}

#[pg_extern(sql = false)]
fn embedding_eq(a: EmbeddingRef<'_>, b: EmbeddingRef<'_>) -> bool {
    cmp(&a, &b).is_eq()
}

#[pg_extern(sql = false)]
fn embedding_ne(a: EmbeddingRef<'_>, b: EmbeddingRef<'_>) -> bool {
    cmp(&a, &b).is_ne()
}

#[pg_extern(sql = false)]
fn embedding_ge(a: EmbeddingRef<'_>, b: EmbeddingRef<'_>) -> bool {
    cmp(&a, &b).is_ge()
}

#[pg_extern(sql = false)]
fn embedding_gt(a: EmbeddingRef<'_>, b: EmbeddingRef<'_>) -> bool {
    cmp(&a, &b).is_gt()
}

#[pg_extern(sql = false)]
fn embedding_accum(state: Vec<f64>, v: EmbeddingRef<'_>) -> Vec<f64> {
    let mut state = state;
    vector::avg_accum(&mut state, v.as_slice()).or_raise();
    state
}

#[pg_extern(sql = false)]
fn embedding_combine(a: Vec<f64>, b: Vec<f64>) -> Vec<f64> {
    let mut a = a;
    vector::avg_combine(&mut a, &b).or_raise();
    a
}

#[pg_extern(sql = false)]
fn embedding_avg(state: Vec<f64>) -> Option<Embedding> {
    vector::avg_final(&state).map(|v| Embedding::from_slice(&v))
}
