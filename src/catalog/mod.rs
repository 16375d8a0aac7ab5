//! SPI access and the registry tables in schema `pgrec` (models, encoders),
//! shared by the API functions: reading a user's interactions relation
//! (`interactions`), a knowledge graph (`graph`) and item content vectors
//! (`features`), and storing, deploying and loading model versions
//! (`models`, with the per-backend cache of served models), and the encoder
//! registry (`encoders`, with its per-backend cache of loaded models); and
//! who pgrec's own SQL runs as, with which search_path (`access`); the
//! registry as Citus reference tables (`citus`).

pub mod access;
pub mod citus;
pub mod encoders;
pub mod features;
pub mod graph;
pub mod interactions;
pub mod models;

use crate::error::{Error, ErrorKind};

/// An SPI failure as a pgrec error (SQL errors inside SPI raise directly).
pub fn spi_error(e: pgrx::spi::SpiError) -> Error {
    Error::new(ErrorKind::DataException, format!("internal query failed: {e}"))
}

/// The first column of the first row `sql` returns, `None` when it returns no
/// row or NULL: the one-value registry and catalogue reads.
pub fn scalar<T: pgrx::FromDatum + pgrx::IntoDatum>(
    client: &pgrx::spi::SpiClient<'_>,
    sql: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
) -> crate::error::Result<Option<T>> {
    client
        .select(sql, Some(1), args)
        .and_then(|t| if t.is_empty() { Ok(None) } else { t.first().get_one() })
        .map_err(spi_error)
}

/// Column `i` of a registry row, which is never NULL there.
pub fn required<T: pgrx::FromDatum + pgrx::IntoDatum>(
    r: &pgrx::spi::SpiHeapTupleData<'_>,
    i: usize,
) -> crate::error::Result<T> {
    r.get(i).map_err(spi_error)?.ok_or_else(|| {
        Error::new(ErrorKind::DataException, format!("internal query failed: column {i} of a registry row is null"))
    })
}
