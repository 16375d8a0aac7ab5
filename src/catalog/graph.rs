//! Reads the knowledge graph of a `kgat` training: the `relations` query's
//! (head, relation, tail) rows — its first three columns, whatever their
//! names; ids of any integer type, the relation as text or an integer — the
//! same from `user_relations` between users, and the optional
//! `item_entities` (item id, entity id) pairs.

use pgrx::prelude::*;

use super::interactions::from_item;
use super::spi_error;
use crate::error::{Error, ErrorKind, Result};

fn null(what: &str, row: usize, source: &str) -> Error {
    Error::new(ErrorKind::NullValueNotAllowed, format!("{what} is null in {source} row {row}"))
        .with_hint(format!("filter out rows with NULLs from the {source}"))
}

/// The (head, relation, tail) triples of the query or table `relations`,
/// named `source` in errors.
pub fn read_triples(relations: &str, source: &str) -> Result<Vec<(i64, String, i64)>> {
    Spi::connect(|client| {
        let from = from_item(client, relations)?;
        let sql = format!(
            "SELECT q.h::pg_catalog.int8, q.r::pg_catalog.text, q.t::pg_catalog.int8 FROM {from} AS q(h, r, t)"
        );
        let table = client.select(&sql, None, &[]).map_err(spi_error)?;
        crate::guc::check_rows_fit(table.len(), source)?;
        let mut rows = Vec::with_capacity(table.len());
        for (k, r) in table.enumerate() {
            let head: i64 = r.get(1).map_err(spi_error)?.ok_or_else(|| null("the head", k + 1, source))?;
            let rel: String = r.get(2).map_err(spi_error)?.ok_or_else(|| null("the relation", k + 1, source))?;
            let tail: i64 = r.get(3).map_err(spi_error)?.ok_or_else(|| null("the tail", k + 1, source))?;
            rows.push((head, rel, tail));
        }
        Ok(rows)
    })
}

/// The pairs of users of `user_relations` for an algorithm without a
/// knowledge graph, as indices of `user_ids`: its first two columns (user,
/// user), or its first and third when it has three or more (kgat's head,
/// relation, tail form, the relation ignored). Also returns how many rows
/// name a user without interactions (left out).
pub fn read_user_pairs(user_relations: &str, user_ids: &[i64]) -> Result<(Vec<(u32, u32)>, usize)> {
    const SOURCE: &str = "user_relations";
    let index: std::collections::HashMap<i64, u32> =
        user_ids.iter().enumerate().map(|(k, &id)| (id, k as u32)).collect();
    Spi::connect(|client| {
        let from = from_item(client, user_relations)?;
        let shape = client.select(&format!("SELECT * FROM {from} q LIMIT 0"), None, &[]).map_err(spi_error)?;
        let sql = match shape.columns().map_err(spi_error)? {
            2 => format!("SELECT q.a::pg_catalog.int8, q.b::pg_catalog.int8 FROM {from} AS q(a, b)"),
            n if n >= 3 => format!("SELECT q.a::pg_catalog.int8, q.t::pg_catalog.int8 FROM {from} AS q(a, r, t)"),
            n => {
                return Err(Error::new(
                    ErrorKind::InvalidParameterValue,
                    format!("user_relations has {n} column, not two (user, user)"),
                )
                .with_hint("pass user_relations => 'SELECT user_id, friend_id FROM ...'"));
            }
        };
        let table = client.select(&sql, None, &[]).map_err(spi_error)?;
        crate::guc::check_rows_fit(table.len(), SOURCE)?;
        let (mut pairs, mut unknown) = (Vec::with_capacity(table.len()), 0usize);
        for (k, r) in table.enumerate() {
            let a: i64 = r.get(1).map_err(spi_error)?.ok_or_else(|| null("a user", k + 1, SOURCE))?;
            let b: i64 = r.get(2).map_err(spi_error)?.ok_or_else(|| null("a user", k + 1, SOURCE))?;
            match (index.get(&a), index.get(&b)) {
                (Some(&a), Some(&b)) => pairs.push((a, b)),
                _ => unknown += 1,
            }
        }
        Ok((pairs, unknown))
    })
}

/// The (item id, entity id) pairs of `item_entities`.
pub fn read_item_entities(item_entities: &str) -> Result<Vec<(i64, i64)>> {
    Spi::connect(|client| {
        let from = from_item(client, item_entities)?;
        let sql = format!("SELECT q.i::pg_catalog.int8, q.e::pg_catalog.int8 FROM {from} AS q(i, e)");
        let table = client.select(&sql, None, &[]).map_err(spi_error)?;
        crate::guc::check_rows_fit(table.len(), "item_entities")?;
        let mut rows = Vec::with_capacity(table.len());
        for (k, r) in table.enumerate() {
            let item: i64 = r.get(1).map_err(spi_error)?.ok_or_else(|| null("the item", k + 1, "item_entities"))?;
            let entity: i64 = r.get(2).map_err(spi_error)?.ok_or_else(|| null("the entity", k + 1, "item_entities"))?;
            rows.push((item, entity));
        }
        Ok(rows)
    })
}
