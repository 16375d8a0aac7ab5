//! What the driver-level test files share: the client-side `embedding` type and
//! a connection to a fresh test database.

#![allow(dead_code)] // each test binary uses its own part of this

use std::error::Error;
use std::sync::OnceLock;

use postgres::error::SqlState;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls};

/// Client-side `embedding`, encoded as pgvector's binary format: int16 dims,
/// int16 reserved, big-endian float4s.
#[derive(Debug, Clone, PartialEq)]
pub struct Emb(pub Vec<f32>);

impl ToSql for Emb {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.extend_from_slice(&(self.0.len() as i16).to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
        for v in &self.0 {
            out.extend_from_slice(&v.to_be_bytes());
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        ty.name() == "embedding"
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Emb {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let dims = i16::from_be_bytes([raw[0], raw[1]]) as usize;
        assert_eq!(raw.len(), 4 + 4 * dims, "wire size");
        Ok(Emb(raw[4..].chunks_exact(4).map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect()))
    }

    fn accepts(ty: &Type) -> bool {
        ty.name() == "embedding"
    }
}

/// A client on database `db`, created afresh with pgrec once per test binary, or
/// None when not configured.
pub fn client(db: &'static str) -> Option<Client> {
    let Ok(base) = std::env::var("PGREC_TEST_URL") else {
        eprintln!("skipped: PGREC_TEST_URL is not set (./scripts/test.sh sets it)");
        return None;
    };
    static SETUP: OnceLock<()> = OnceLock::new();
    SETUP.get_or_init(|| {
        let mut admin = Client::connect(&base, NoTls).expect("connect to PGREC_TEST_URL");
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db}")).unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
        let mut c = Client::connect(&format!("{base} dbname={db}"), NoTls).unwrap();
        c.batch_execute("CREATE EXTENSION pgrec").unwrap();
    });
    Some(Client::connect(&format!("{base} dbname={db}"), NoTls).expect("connect to test database"))
}

pub fn sqlstate(e: &postgres::Error) -> SqlState {
    e.code().cloned().unwrap_or_else(|| panic!("not a server error: {e}"))
}
