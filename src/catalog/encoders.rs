//! The encoder registry `pgrec.encoder_registry` (with the optional copy of
//! the model files in `pgrec.encoder_files`): registering a model folder,
//! dropping it, and loading the encoder a query names through a per-backend
//! cache bounded by `pgrec.encoder_cache_mb`, least recently used out first.
//! The registry is read and written as its owner ([`as_registry_owner`]);
//! replacing or dropping an encoder takes the rights of the role that loaded
//! it, and loading from a path those of `pg_read_server_files`.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use pgrx::prelude::*;

use super::access::{self, as_registry_owner, caller};
use super::spi_error;
use crate::embed::{Encoder, ModelFiles, files::FILES};
use crate::error::{Error, ErrorKind, Result};
use crate::guc;

/// A registry row, as `load_encoder` reports it.
pub struct Registered {
    pub name: String,
    pub architecture: String,
    pub dims: i32,
    pub max_tokens: i32,
    pub stored: bool,
}

fn unknown_encoder(name: &str) -> Error {
    Error::new(ErrorKind::UndefinedObject, format!("encoder \"{name}\" does not exist")).with_hint(
        "load one with SELECT * FROM load_encoder('name', '/path/to/model/folder'); pgrec.encoders lists them",
    )
}

/// Loads the folder at `path` (checking that it makes a working encoder) and
/// registers it as `name`, replacing an encoder of that name. With `store`,
/// the files go into the database too, so replicas and restores need no folder.
pub fn register(name: &str, path: &str, store: bool) -> Result<Registered> {
    if name.is_empty() {
        return Err(Error::new(ErrorKind::InvalidParameterValue, "encoder name must not be empty"));
    }
    access::check_may_read_server_files()?;
    let me = caller();
    as_registry_owner(|| Spi::connect(|client| check_may_replace(client, me, name)))?;
    let files = ModelFiles::from_dir(Path::new(path))?;
    let encoder = Encoder::load(&files)?;
    let reg = Registered {
        name: name.to_string(),
        architecture: encoder.architecture().name().to_string(),
        dims: encoder.dims() as i32,
        max_tokens: encoder.tokenizer().max_tokens as i32,
        stored: store,
    };
    as_registry_owner(|| {
        Spi::connect_mut(|client| {
            // Again, in the transaction that writes: the owner may have changed.
            check_may_replace(client, me, name)?;
            client
            .update(
                "INSERT INTO pgrec.encoder_registry AS r (name, architecture, dims, max_tokens, path, stored, bytes, owner)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8::int8::oid::regrole)
                 ON CONFLICT (name) DO UPDATE SET architecture = excluded.architecture, dims = excluded.dims,
                     max_tokens = excluded.max_tokens, path = excluded.path, stored = excluded.stored,
                     bytes = excluded.bytes, revision = nextval('pgrec.encoder_revisions'), loaded_at = now()",
                None,
                &[
                    name.into(),
                    reg.architecture.as_str().into(),
                    reg.dims.into(),
                    reg.max_tokens.into(),
                    path.into(),
                    store.into(),
                    (files.total_bytes() as i64).into(),
                    (me.to_u32() as i64).into(),
                ],
            )
            .map_err(spi_error)?;
            client
                .update("DELETE FROM pgrec.encoder_files WHERE encoder = $1", None, &[name.into()])
                .map_err(spi_error)?;
            if store {
                for (file, bytes) in &files.files {
                    client
                        .update(
                            "INSERT INTO pgrec.encoder_files (encoder, file, data) VALUES ($1, $2, $3)",
                            None,
                            &[name.into(), file.as_str().into(), bytes.as_slice().into()],
                        )
                        .map_err(spi_error)?;
                }
            }
            Ok::<(), Error>(())
        })
    })?;
    CACHE.with(|c| c.borrow_mut().retain(|e| e.name != name));
    Ok(reg)
}

/// Fails unless `role` may replace or drop encoder `name` (or it does not exist).
fn check_may_replace(client: &pgrx::spi::SpiClient<'_>, role: pg_sys::Oid, name: &str) -> Result<bool> {
    let owner: Option<i64> = client
        .select("SELECT owner::oid::int8 FROM pgrec.encoder_registry WHERE name = $1", Some(1), &[name.into()])
        .and_then(|t| if t.is_empty() { Ok(None) } else { t.first().get_one() })
        .map_err(spi_error)?;
    match owner {
        Some(o) => {
            access::check_owner(role, &format!("encoder \"{name}\""), pg_sys::Oid::from(o as u32))?;
            Ok(true)
        }
        None => Ok(false),
    }
}

pub fn drop_encoder(name: &str) -> Result<()> {
    let me = caller();
    let n = as_registry_owner(|| {
        Spi::connect_mut(|client| {
            if !check_may_replace(client, me, name)? {
                return Ok(0);
            }
            client
                .update("DELETE FROM pgrec.encoder_registry WHERE name = $1", None, &[name.into()])
                .map(|t| t.len())
                .map_err(spi_error)
        })
    })?;
    CACHE.with(|c| c.borrow_mut().retain(|e| e.name != name));
    if n == 0 {
        return Err(unknown_encoder(name));
    }
    Ok(())
}

struct Cached {
    name: String,
    revision: i64,
    bytes: usize,
    encoder: Rc<Encoder>,
}

thread_local! {
    /// Most recently used last.
    static CACHE: RefCell<Vec<Cached>> = const { RefCell::new(Vec::new()) };
}

/// The encoder `name`, from this backend's cache unless it was re-registered.
pub fn load(name: &str) -> Result<Rc<Encoder>> {
    let row: Option<(i64, String, bool)> = as_registry_owner(|| {
        Spi::connect(|client| {
            let t = client
                .select(
                    "SELECT revision, path, stored FROM pgrec.encoder_registry WHERE name = $1",
                    Some(1),
                    &[name.into()],
                )
                .map_err(spi_error)?;
            if t.is_empty() {
                return Ok(None);
            }
            let r = t.first();
            Ok::<_, Error>(Some((
                r.get::<i64>(1).map_err(spi_error)?.unwrap_or(0),
                r.get::<String>(2).map_err(spi_error)?.unwrap_or_default(),
                r.get::<bool>(3).map_err(spi_error)?.unwrap_or(false),
            )))
        })
    })?;
    let (revision, path, stored) = row.ok_or_else(|| unknown_encoder(name))?;
    let hit = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let at = c.iter().position(|e| e.name == name && e.revision == revision)?;
        let e = c.remove(at);
        let enc = e.encoder.clone();
        c.push(e);
        evict(&mut c);
        Some(enc)
    });
    if let Some(enc) = hit {
        return Ok(enc);
    }
    let files = if stored { stored_files(name)? } else { ModelFiles::from_dir(Path::new(&path))? };
    let bytes = files.total_bytes();
    let encoder = Rc::new(Encoder::load(&files)?);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        c.retain(|e| e.name != name);
        c.push(Cached { name: name.to_string(), revision, bytes, encoder: encoder.clone() });
        evict(&mut c);
    });
    Ok(encoder)
}

/// Least recently used out until the cache fits `pgrec.encoder_cache_mb`
/// (checked on every use, so lowering the setting takes effect at once); the
/// encoder in use, the last, always stays.
fn evict(c: &mut Vec<Cached>) {
    let cap = guc::encoder_cache_bytes();
    while c.len() > 1 && c.iter().map(|e| e.bytes).sum::<usize>() > cap {
        c.remove(0);
    }
}

fn stored_files(name: &str) -> Result<ModelFiles> {
    let mut files = ModelFiles::default();
    as_registry_owner(|| {
        Spi::connect(|client| {
            let t = client
                .select("SELECT file, data FROM pgrec.encoder_files WHERE encoder = $1", None, &[name.into()])
                .map_err(spi_error)?;
            for r in t {
                let file: String = r.get(1).map_err(spi_error)?.unwrap_or_default();
                let data: Vec<u8> = r.get(2).map_err(spi_error)?.unwrap_or_default();
                if FILES.contains(&file.as_str()) {
                    files.files.insert(file, data);
                }
            }
            Ok::<(), Error>(())
        })
    })?;
    files.check_required(&format!("stored in the database for encoder \"{name}\""))?;
    Ok(files)
}

/// Encoders this backend holds loaded, least recently used first (for tests).
#[cfg(any(test, feature = "pg_test"))]
pub fn cached_names() -> Vec<String> {
    CACHE.with(|c| c.borrow().iter().map(|e| e.name.clone()).collect())
}
