//! `pgrec.distribute_models()`: the model registry as Citus reference tables,
//! so that every node holds a copy and `recommend()` answers inside queries
//! Citus pushes down to its workers.
//!
//! The registry's roles and relations are of text-only types
//! (`pgrec.role_ref`, `pgrec.relation_ref`), so Citus's copies carry names,
//! which each node reads back into its own OIDs; no view depends on the
//! tables (`pgrec.models` reads through `pgrec.model_list()`), which Citus
//! would otherwise drop and recreate, and cannot for an extension's view.

use pgrx::prelude::*;

use super::access::{self, pinned_quiet};
use super::{scalar, spi_error};
use crate::error::{Error, ErrorKind, Result};

// The deployment history too: its reads join the ACL, and Citus joins a local
// table with a reference table only once the coordinator is in its metadata.
const TABLES: [&str; 3] = ["pgrec.model_acl", "pgrec.model_versions", "pgrec.deployment_log"];

/// Makes the registry reference tables; false (and a NOTICE) when it already
/// is. Superusers only: it changes the extension's own objects.
pub fn distribute_models() -> Result<bool> {
    // SAFETY: reads the backend's current user state.
    if !unsafe { pg_sys::superuser() } {
        return Err(Error::new(
            ErrorKind::InsufficientPrivilege,
            "permission denied to distribute pgrec's model registry",
        )
        .with_hint("a superuser runs SELECT pgrec.distribute_models() once, on the Citus coordinator"));
    }
    access::check_version()?;
    let done = pinned_quiet(|| {
        Spi::connect_mut(|client| {
            let citus: bool =
                scalar(client, "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus')", &[])?
                    .unwrap_or(false);
            if !citus {
                return Err(Error::new(
                    ErrorKind::ObjectNotInPrerequisiteState,
                    "extension \"citus\" is not installed in this database",
                )
                .with_hint("pgrec.distribute_models() is for a Citus coordinator: CREATE EXTENSION citus first"));
            }
            let todo: Vec<String> = scalar(
                client,
                "SELECT array_agg(t) FROM unnest($1::text[]) t
                 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition WHERE logicalrelid = t::regclass)",
                &[TABLES.to_vec().into()],
            )?
            .unwrap_or_default();
            if todo.is_empty() {
                return Ok(false);
            }
            for table in todo {
                client
                    .update("SELECT pg_catalog.create_reference_table($1::regclass)", None, &[table.as_str().into()])
                    .map_err(spi_error)?;
                // The coordinator's own copy of the rows now lies unused
                // under the distributed table.
                client
                    .update(
                        "SELECT pg_catalog.truncate_local_data_after_distributing_table($1::regclass)",
                        None,
                        &[table.as_str().into()],
                    )
                    .map_err(spi_error)?;
            }
            Ok(true)
        })
    })?;
    if done {
        pgrx::notice!("pgrec's model registry is now Citus reference tables: every node serves the models");
    } else {
        pgrx::notice!("pgrec's model registry is already Citus reference tables");
    }
    Ok(done)
}
