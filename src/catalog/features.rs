//! Reads the item content of a `vbpr` or `content_knn` training: the
//! `item_features` query's first column is the item id (any integer type),
//! every further column an `embedding` (or a real / double precision array),
//! concatenated in order into one vector per item. And, for serving a
//! content_knn model, the nearest rows of that query through its index.

use ndarray::Array2;
use pgrx::prelude::*;

use super::interactions::{from_item, type_name, INTEGER_TYPES};
use super::spi_error;
use crate::error::{Error, ErrorKind, Result};
use crate::recsys::content::ItemFeatures;

pub fn read(item_features: &str) -> Result<ItemFeatures> {
    Spi::connect(|client| {
        let from = from_item(client, item_features)?;
        let shape = client.select(&format!("SELECT * FROM {from} q LIMIT 0"), None, &[]).map_err(spi_error)?;
        let n = shape.columns().map_err(spi_error)?;
        let embedding: Option<pg_sys::Oid> = client
            .select("SELECT to_regtype('embedding')::oid", Some(1), &[])
            .and_then(|t| t.first().get_one())
            .map_err(spi_error)?;
        let vector_types = [embedding, Some(pg_sys::FLOAT4ARRAYOID), Some(pg_sys::FLOAT8ARRAYOID)];
        let mut names = Vec::with_capacity(n);
        for c in 1..=n {
            let name = shape.column_name(c).map_err(spi_error)?;
            let ty = shape.column_type_oid(c).map_err(spi_error)?.value();
            let ok = if c == 1 { INTEGER_TYPES.contains(&ty) } else { vector_types.contains(&Some(ty)) };
            if !ok {
                let want = if c == 1 { "an integer item id" } else { "an embedding" };
                return Err(Error::new(
                    ErrorKind::DatatypeMismatch,
                    format!("column \"{name}\" of item_features must be {want}, not {}", type_name(client, ty)),
                )
                .with_hint("item_features is 'SELECT item_id, embedding_column [, more embedding columns] FROM ...'"));
            }
            names.push(name);
        }
        if n < 2 {
            return Err(Error::new(ErrorKind::DatatypeMismatch, "item_features has no embedding column")
                .with_hint("item_features is 'SELECT item_id, embedding_column [, more embedding columns] FROM ...'"));
        }
        let cols: Vec<String> = (2..=n).map(|c| format!("q.c{c}::real[]")).collect();
        let aliases: Vec<String> = (2..=n).map(|c| format!("c{c}")).collect();
        let sql = format!("SELECT q.c1::int8, {} FROM {from} AS q(c1, {})", cols.join(", "), aliases.join(", "));
        let table = client.select(&sql, None, &[]).map_err(spi_error)?;
        let mut ids = Vec::with_capacity(table.len());
        let mut values: Vec<f32> = Vec::new();
        let mut dims: Vec<Option<usize>> = vec![None; n - 1];
        for (k, r) in table.enumerate() {
            let id: i64 = r.get(1).map_err(spi_error)?.ok_or_else(|| {
                Error::new(
                    ErrorKind::NullValueNotAllowed,
                    format!("the item id is null in item_features row {}", k + 1),
                )
                .with_hint("filter out rows with NULLs from the item_features")
            })?;
            for c in 2..=n {
                let v: Vec<f32> = r.get(c).map_err(spi_error)?.ok_or_else(|| {
                    Error::new(
                        ErrorKind::NullValueNotAllowed,
                        format!("\"{}\" is null for item {id} in item_features", names[c - 1]),
                    )
                    .with_hint("filter out rows with NULLs from the item_features, or give those items a vector")
                })?;
                match dims[c - 2] {
                    None => dims[c - 2] = Some(v.len()),
                    Some(d) if d != v.len() => {
                        return Err(Error::new(
                            ErrorKind::DataException,
                            format!("\"{}\" of item {id} has {} dimensions, earlier rows {d}", names[c - 1], v.len()),
                        ))
                    }
                    Some(_) => {}
                }
                values.extend_from_slice(&v);
            }
            ids.push(id);
        }
        if ids.is_empty() {
            return Err(Error::new(ErrorKind::DataException, "item_features is empty")
                .with_hint("item_features must return a vector for at least one item"));
        }
        let width = dims.iter().map(|d| d.unwrap_or(0)).sum();
        let values = Array2::from_shape_vec((ids.len(), width), values)
            .map_err(|e| Error::new(ErrorKind::DataException, format!("item_features: {e}")))?;
        let mut f = ItemFeatures::new(ids, values)?;
        f.columns = n - 1;
        Ok(f)
    })
}

/// The `k` rows of `source` (a content_knn model's `item_features`: item id,
/// one embedding) nearest by cosine to `profile`, without the ids in
/// `exclude`, as (item id, cosine) — if Postgres answers that with an index
/// (a `pgrec_hnsw` index with `embedding_cosine_ops` on the column); `None`
/// when it would scan every row, which the model's own vectors do faster.
/// Rows added to the table since training are among the answers.
pub fn nearest(source: &str, profile: &[f32], exclude: &[i64], k: usize) -> Result<Option<Vec<(i64, f32)>>> {
    Spi::connect(|client| {
        let from = from_item(client, source)?;
        let sql = format!(
            "SELECT q.i::int8, (1 - (q.e <=> $1::real[]::embedding))::real FROM {from} AS q(i, e)
             WHERE q.i::int8 <> ALL ($2) ORDER BY q.e <=> $1::real[]::embedding LIMIT $3"
        );
        let args = || [profile.to_vec().into(), exclude.to_vec().into(), (k as i64).into()];
        let plan = client.select(&format!("EXPLAIN {sql}"), None, &args()).map_err(spi_error)?;
        let mut indexed = false;
        for row in plan {
            let line: Option<String> = row.get(1).map_err(spi_error)?;
            indexed |= line.is_some_and(|l| l.contains("Index Scan"));
        }
        if !indexed {
            return Ok(None);
        }
        let table = client.select(&sql, None, &args()).map_err(spi_error)?;
        let mut out = Vec::with_capacity(k);
        for row in table {
            let id: Option<i64> = row.get(1).map_err(spi_error)?;
            let score: Option<f32> = row.get(2).map_err(spi_error)?;
            if let (Some(id), Some(score)) = (id, score) {
                out.push((id, score));
            }
        }
        Ok(Some(out))
    })
}
