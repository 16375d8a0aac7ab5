//! Reads the item content of a `vbpr` or `content_knn` training: the
//! `item_features` query's first column is the item id (any integer type),
//! every further column an `embedding` (or a real / double precision array),
//! concatenated in order into one vector per item. And, for serving a
//! content_knn model, the nearest rows of its item table through the table's
//! index — by a query pgrec builds from the relation and columns it recorded
//! at training, never by running the trainer's SQL text again.

use std::ffi::{CStr, CString};

use ndarray::Array2;
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, quote_identifier, quote_qualified_identifier};

use super::access::{self, pinned};
use super::interactions::{INTEGER_TYPES, from_item, type_name};
use super::models::ContentSource;
use super::spi_error;
use crate::error::{Error, ErrorKind, Result};
use crate::recsys::content::ItemFeatures;

/// The OID of the `embedding` type, from the extension's own schema.
fn embedding_type(client: &SpiClient<'_>) -> Result<Option<pg_sys::Oid>> {
    let name = format!("{}.embedding", access::schema()?);
    client
        .select("SELECT pg_catalog.to_regtype($1)::pg_catalog.oid", Some(1), &[name.as_str().into()])
        .and_then(|t| t.first().get_one())
        .map_err(spi_error)
}

pub fn read(item_features: &str) -> Result<ItemFeatures> {
    Spi::connect(|client| {
        let from = from_item(client, item_features)?;
        let shape = client.select(&format!("SELECT * FROM {from} q LIMIT 0"), None, &[]).map_err(spi_error)?;
        let n = shape.columns().map_err(spi_error)?;
        let embedding = embedding_type(client)?;
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
        let cols: Vec<String> = (2..=n).map(|c| format!("q.c{c}::pg_catalog.float4[]")).collect();
        let aliases: Vec<String> = (2..=n).map(|c| format!("c{c}")).collect();
        let sql =
            format!("SELECT q.c1::pg_catalog.int8, {} FROM {from} AS q(c1, {})", cols.join(", "), aliases.join(", "));
        let table = client.select(&sql, None, &[]).map_err(spi_error)?;
        crate::guc::check_rows_fit(table.len(), "item_features")?;
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
                        ));
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

/// The n-th pointer of a Postgres `List` (`None` past its end).
///
/// # Safety
/// `list` is NIL or a valid pointer list.
unsafe fn nth<T>(list: *mut pg_sys::List, n: usize) -> Option<*mut T> {
    // SAFETY: the caller passes NIL or a valid list; n is checked against
    // its length before its element array is read.
    unsafe {
        if list.is_null() || n >= (*list).length as usize {
            return None;
        }
        Some((*(*list).elements.add(n)).ptr_value as *mut T)
    }
}

/// # Safety
/// `list` is NIL or a valid list.
unsafe fn len(list: *mut pg_sys::List) -> usize {
    if list.is_null() {
        0
    } else {
        // SAFETY: a non-NIL list from the caller is valid.
        unsafe { (*list).length as usize }
    }
}

/// Where a content_knn model's single vector column comes from, if its
/// `item_features` reads two plain columns — an integer id and an embedding —
/// of one table or materialized view, with no filter, grouping, limit or
/// join: then ranking that table's rows by its index at serving time gives
/// the same items (and any added since). Anything else is served from the
/// model's own vectors.
pub fn content_source(item_features: &str) -> Result<Option<ContentSource>> {
    Spi::connect(|client| {
        let from = from_item(client, item_features)?;
        let text = if from.starts_with('(') { item_features.to_string() } else { format!("SELECT * FROM {from}") };
        let embedding = embedding_type(client)?;
        let text = CString::new(text)
            .map_err(|_| Error::new(ErrorKind::InvalidParameterValue, "item_features must not contain a zero byte"))?;
        // SAFETY: SPI is connected (inside Spi::connect); the query already
        // ran in `read`, so it parses (an error would be raised as usual).
        // The plan and its analysed Query trees are only read, through
        // bounds-checked list accesses and node tag checks, and freed here.
        unsafe {
            let plan = pg_sys::SPI_prepare(text.as_ptr(), 0, std::ptr::null_mut());
            if plan.is_null() {
                return Ok(None);
            }
            let found = simple_projection(plan, embedding);
            pg_sys::SPI_freeplan(plan);
            Ok(found)
        }
    })
}

/// # Safety
/// `plan` is a valid SPI plan.
unsafe fn simple_projection(plan: pg_sys::SPIPlanPtr, embedding: Option<pg_sys::Oid>) -> Option<ContentSource> {
    // SAFETY: `plan` is valid (the caller's contract); every list is read
    // through `len`/`nth`, which check bounds, and every node's tag is checked
    // before it is cast; nothing is written.
    unsafe {
        let sources = pg_sys::SPI_plan_get_plan_sources(plan);
        if len(sources) != 1 {
            return None;
        }
        let source: *mut pg_sys::CachedPlanSource = nth(sources, 0)?;
        let queries = (*source).query_list;
        if len(queries) != 1 {
            return None;
        }
        let q: *mut pg_sys::Query = nth(queries, 0)?;
        let q = &*q;
        let plain = q.commandType == pg_sys::CmdType::CMD_SELECT
            && q.utilityStmt.is_null()
            && !q.hasAggs
            && !q.hasWindowFuncs
            && !q.hasTargetSRFs
            && !q.hasSubLinks
            && !q.hasDistinctOn
            && !q.hasForUpdate
            && q.cteList.is_null()
            && q.groupClause.is_null()
            && q.groupingSets.is_null()
            && q.havingQual.is_null()
            && q.distinctClause.is_null()
            && q.limitCount.is_null()
            && q.limitOffset.is_null()
            && q.setOperations.is_null()
            && !q.jointree.is_null()
            && (*q.jointree).quals.is_null()
            && len((*q.jointree).fromlist) == 1
            && len(q.rtable) == 1;
        if !plain {
            return None;
        }
        let rte: *mut pg_sys::RangeTblEntry = nth(q.rtable, 0)?;
        let relkind = (*rte).relkind as u8;
        if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION || !matches!(relkind, b'r' | b'p' | b'm') {
            return None;
        }
        let relation = (*rte).relid;
        let mut columns = Vec::new();
        for k in 0..len(q.targetList) {
            let te: *mut pg_sys::TargetEntry = nth(q.targetList, k)?;
            if (*te).resjunk {
                continue;
            }
            let var = (*te).expr as *mut pg_sys::Node;
            if var.is_null() || (*var).type_ != pg_sys::NodeTag::T_Var {
                return None;
            }
            let var = &*(var as *mut pg_sys::Var);
            if var.varno as i64 != 1 || var.varlevelsup != 0 || var.varattno <= 0 {
                return None;
            }
            columns.push((var.varattno, var.vartype));
        }
        let [(id, id_type), (vector, vector_type)] = columns.as_slice() else { return None };
        if !INTEGER_TYPES.contains(id_type) || Some(*vector_type) != embedding {
            return None;
        }
        let name = |att: i16| {
            let p = pg_sys::get_attname(relation, att, true);
            (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
        };
        Some(ContentSource { relation, id_column: name(*id)?, vector_column: name(*vector)? })
    }
}

/// The `k` rows of a content_knn model's item table nearest by cosine to
/// `profile`, without the ids in `exclude`, as (item id, cosine) — if the
/// vector column has a `pgrec_hnsw` index with `embedding_cosine_ops`; `None`
/// without one (the model's own vectors are then faster than a scan of the
/// table) or when the table is gone. Rows added to the table since training
/// are among the answers. The query runs as the caller, who needs SELECT on
/// the table.
pub fn nearest(src: &ContentSource, profile: &[f32], exclude: &[i64], k: usize) -> Result<Option<Vec<(i64, f32)>>> {
    // SAFETY: syscache lookups on the backend's thread; each returns NULL
    // (checked) for a relation that no longer exists.
    let (schema, table) = unsafe {
        let rel = pg_sys::get_rel_name(src.relation);
        if rel.is_null() {
            return Ok(None);
        }
        let nsp = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(src.relation));
        if nsp.is_null() {
            return Ok(None);
        }
        (CStr::from_ptr(nsp).to_string_lossy().into_owned(), CStr::from_ptr(rel).to_string_lossy().into_owned())
    };
    // SAFETY: an ACL lookup on the backend's thread.
    let allowed = unsafe {
        pg_sys::pg_class_aclcheck(src.relation, access::caller(), pg_sys::ACL_SELECT as pg_sys::AclMode)
            == pg_sys::AclResult::ACLCHECK_OK
    };
    if !allowed {
        return Err(Error::new(ErrorKind::InsufficientPrivilege, format!("permission denied for table {table}"))
            .with_hint(format!("this content_knn model ranks the rows of {schema}.{table}: it needs SELECT on it")));
    }
    if !has_cosine_index(src)? {
        return Ok(None);
    }
    let ext = access::schema()?;
    let sql = format!(
        "SELECT q.{id}::pg_catalog.int8, (1 - (q.{v} OPERATOR({ext}.<=>) $1::pg_catalog.float4[]::{ext}.embedding))::real FROM {rel} AS q
         WHERE q.{id}::pg_catalog.int8 <> ALL ($2) ORDER BY q.{v} OPERATOR({ext}.<=>) $1::pg_catalog.float4[]::{ext}.embedding LIMIT $3",
        id = quote_identifier(&src.id_column),
        v = quote_identifier(&src.vector_column),
        rel = quote_qualified_identifier(&schema, &table),
    );
    pinned(|| {
        Spi::connect(|client| {
            let args = || [profile.to_vec().into(), exclude.to_vec().into(), (k as i64).into()];
            let table = client.select(&sql, None, &args()).map_err(spi_error)?;
            // Sized by the rows that came back, not by the caller's k.
            let mut out = Vec::with_capacity(table.len());
            for row in table {
                let id: Option<i64> = row.get(1).map_err(spi_error)?;
                let score: Option<f32> = row.get(2).map_err(spi_error)?;
                if let (Some(id), Some(score)) = (id, score) {
                    out.push((id, score));
                }
            }
            Ok(Some(out))
        })
    })
}

/// Whether `src`'s vector column has a usable `pgrec_hnsw` index for cosine
/// distance (valid, not partial, on the column itself).
fn has_cosine_index(src: &ContentSource) -> Result<bool> {
    pinned(|| {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT EXISTS (
                         SELECT 1 FROM pg_catalog.pg_index i
                         JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
                         JOIN pg_catalog.pg_am a ON a.oid = c.relam
                         JOIN pg_catalog.pg_opclass o ON o.oid = i.indclass[0]
                         JOIN pg_catalog.pg_attribute t ON t.attrelid = i.indrelid AND t.attnum = i.indkey[0]
                         WHERE i.indrelid = $1::pg_catalog.int8::pg_catalog.oid AND i.indisvalid AND i.indpred IS NULL
                           AND a.amname = 'pgrec_hnsw' AND o.opcname = 'embedding_cosine_ops' AND t.attname = $2)",
                    Some(1),
                    &[(src.relation.to_u32() as i64).into(), src.vector_column.as_str().into()],
                )
                .and_then(|t| t.first().get_one::<bool>())
                .map(|b| b.unwrap_or(false))
                .map_err(spi_error)
        })
    })
}
