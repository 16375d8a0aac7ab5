//! Reads the interactions a model trains or is evaluated on, from a table or
//! view name or a SELECT, with configurable column names: ids of any integer
//! type, an optional non-negative weight (or rating) and an optional timestamp
//! (integer, or a date/time type read as epoch seconds).

use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use super::spi_error;
use crate::error::{Error, ErrorKind, Result};
use crate::recsys::Row;

/// What to read and how the columns are named.
pub struct Source<'a> {
    pub relation: &'a str,
    pub user_column: &'a str,
    pub item_column: &'a str,
    /// `None`: the `weight` or `rating` column if there is one, else 1.
    pub weight_column: Option<&'a str>,
    pub ts_column: Option<&'a str>,
    /// The weight must come from a column (explicit ratings).
    pub require_weight: bool,
}

pub(super) const INTEGER_TYPES: [pg_sys::Oid; 3] = [pg_sys::INT2OID, pg_sys::INT4OID, pg_sys::INT8OID];

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The FROM item for `relation`: a parenthesised query, or a relation name
/// checked to exist and re-quoted by Postgres.
pub(super) fn from_item(client: &SpiClient<'_>, relation: &str) -> Result<String> {
    let t = relation.trim_start().to_ascii_lowercase();
    if ["select", "with", "values", "table"]
        .iter()
        .any(|k| t.starts_with(k) && t[k.len()..].starts_with(|c: char| !c.is_alphanumeric() && c != '_'))
    {
        return Ok(format!("({relation})"));
    }
    let name: Option<String> = client
        .select("SELECT pg_catalog.to_regclass($1)::pg_catalog.text", Some(1), &[relation.into()])
        .and_then(|t| t.first().get_one())
        .map_err(spi_error)?;
    name.ok_or_else(|| {
        Error::new(ErrorKind::UndefinedTable, format!("relation \"{relation}\" does not exist"))
            .with_hint("pass a table or view name, or a query such as 'SELECT user_id, item_id FROM ...'")
    })
}

/// Reads every row; errors name the missing column, the wrong type, the NULL id.
pub fn read(src: &Source<'_>) -> Result<Vec<Row>> {
    Spi::connect(|client| {
        let from = from_item(client, src.relation)?;
        let shape = client.select(&format!("SELECT * FROM {from} q LIMIT 0"), None, &[]).map_err(spi_error)?;
        let n = shape.columns().map_err(spi_error)?;
        let mut cols: Vec<(String, pg_sys::Oid)> = Vec::with_capacity(n);
        for i in 1..=n {
            let name = shape.column_name(i).map_err(spi_error)?;
            let ty = shape.column_type_oid(i).map_err(spi_error)?.value();
            cols.push((name, ty));
        }
        let names = cols.iter().map(|c| c.0.as_str()).collect::<Vec<_>>().join(", ");
        let find = |want: &str, role: &str| -> Result<pg_sys::Oid> {
            cols.iter().find(|c| c.0 == want).map(|c| c.1).ok_or_else(|| {
                Error::new(
                    ErrorKind::UndefinedColumn,
                    format!("column \"{want}\" ({role}) does not exist in the interactions"),
                )
                .with_hint(format!("the interactions have columns {names}; name yours with {role}_column => '...'"))
            })
        };
        let integer = |want: &str, role: &str| -> Result<()> {
            let ty = find(want, role)?;
            if INTEGER_TYPES.contains(&ty) {
                Ok(())
            } else {
                Err(Error::new(
                    ErrorKind::DatatypeMismatch,
                    format!("column \"{want}\" ({role}) must be an integer type, not {}", type_name(client, ty)),
                )
                .with_hint("map other ids to integers first, e.g. with a lookup table and a join"))
            }
        };
        integer(src.user_column, "user")?;
        integer(src.item_column, "item")?;
        let weight = match src.weight_column {
            Some(w) => {
                find(w, "weight")?;
                Some(w.to_string())
            }
            None => ["weight", "rating"].iter().find(|w| cols.iter().any(|c| c.0 == **w)).map(|w| w.to_string()),
        };
        if src.require_weight && weight.is_none() {
            return Err(Error::new(ErrorKind::UndefinedColumn, "explicit ratings need a rating column").with_hint(
                format!("the interactions have columns {names}; name the ratings with weight_column => '...'"),
            ));
        }
        let weight_expr =
            weight.map_or("1::pg_catalog.float8".to_string(), |w| format!("q.{}::pg_catalog.float8", quote_ident(&w)));
        let ts_expr = match src.ts_column {
            Some(t) => {
                let ty = find(t, "ts")?;
                if INTEGER_TYPES.contains(&ty) {
                    format!("q.{}::pg_catalog.int8", quote_ident(t))
                } else if [pg_sys::DATEOID, pg_sys::TIMESTAMPOID, pg_sys::TIMESTAMPTZOID].contains(&ty) {
                    format!("extract(epoch from q.{})::pg_catalog.int8", quote_ident(t))
                } else {
                    return Err(Error::new(
                        ErrorKind::DatatypeMismatch,
                        format!(
                            "column \"{t}\" (ts) must be an integer, date, timestamp or timestamptz, not {}",
                            type_name(client, ty)
                        ),
                    )
                    .with_hint("cast it in a query, e.g. interactions => 'SELECT user_id, item_id, ts::timestamptz AS ts FROM ...'"));
                }
            }
            None => "NULL::pg_catalog.int8".to_string(),
        };
        let sql = format!(
            "SELECT q.{}::pg_catalog.int8, q.{}::pg_catalog.int8, {weight_expr}, {ts_expr} FROM {from} q",
            quote_ident(src.user_column),
            quote_ident(src.item_column)
        );
        let table = client.select(&sql, None, &[]).map_err(spi_error)?;
        crate::guc::check_rows_fit(table.len(), "interactions")?;
        let mut rows = Vec::with_capacity(table.len());
        for (k, r) in table.enumerate() {
            let null = |what: &str| {
                Error::new(ErrorKind::NullValueNotAllowed, format!("{what} is null in interaction row {}", k + 1))
                    .with_hint("filter out rows with NULL ids, e.g. WHERE user_id IS NOT NULL AND item_id IS NOT NULL")
            };
            let user: i64 = r.get(1).map_err(spi_error)?.ok_or_else(|| null(src.user_column))?;
            let item: i64 = r.get(2).map_err(spi_error)?.ok_or_else(|| null(src.item_column))?;
            let weight: f64 = r.get(3).map_err(spi_error)?.ok_or_else(|| null("the weight"))?;
            let ts: Option<i64> = r.get(4).map_err(spi_error)?;
            if src.ts_column.is_some() && ts.is_none() {
                return Err(null(src.ts_column.unwrap_or("ts")));
            }
            rows.push(Row { user, item, weight: weight as f32, ts });
        }
        Ok(rows)
    })
}

pub(super) fn type_name(client: &SpiClient<'_>, ty: pg_sys::Oid) -> String {
    client
        .select("SELECT pg_catalog.format_type($1, NULL)", Some(1), &[ty.into()])
        .and_then(|t| t.first().get_one::<String>())
        .ok()
        .flatten()
        .unwrap_or_else(|| format!("type {ty:?}"))
}
