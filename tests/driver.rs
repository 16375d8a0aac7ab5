//! Integration tests through a real client driver (the `postgres` crate), the way
//! applications use pgrec: binary parameters and results (so `embedding_send` and
//! `embedding_recv` are on the wire), prepared statements, and SQLSTATEs as a
//! driver reports them. `scripts/test.sh` starts a cluster with pgrec installed and
//! sets `PGREC_TEST_URL`; without it these tests say so and do nothing.

use std::error::Error;
use std::sync::OnceLock;

use postgres::error::SqlState;
use postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use postgres::{Client, NoTls};

const DB: &str = "pgrec_driver";

/// Client-side `embedding`, encoded as pgvector's binary format: int16 dims,
/// int16 reserved, big-endian float4s.
#[derive(Debug, Clone, PartialEq)]
struct Emb(Vec<f32>);

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

/// A client on a fresh database with pgrec created, or None when not configured.
fn client() -> Option<Client> {
    let Ok(base) = std::env::var("PGREC_TEST_URL") else {
        eprintln!("skipped: PGREC_TEST_URL is not set (./scripts/test.sh sets it)");
        return None;
    };
    static SETUP: OnceLock<()> = OnceLock::new();
    SETUP.get_or_init(|| {
        let mut admin = Client::connect(&base, NoTls).expect("connect to PGREC_TEST_URL");
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {DB}")).unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {DB}")).unwrap();
        let mut c = Client::connect(&format!("{base} dbname={DB}"), NoTls).unwrap();
        c.batch_execute("CREATE EXTENSION pgrec").unwrap();
    });
    Some(Client::connect(&format!("{base} dbname={DB}"), NoTls).expect("connect to test database"))
}

fn sqlstate(e: &postgres::Error) -> SqlState {
    e.code().cloned().unwrap_or_else(|| panic!("not a server error: {e}"))
}

#[test]
fn binary_parameters_and_results_round_trip_exactly() {
    let Some(mut c) = client() else { return };
    c.batch_execute("CREATE TEMP TABLE t (id int, e embedding(4))").unwrap();
    let vals = Emb(vec![1.0, -2.5, 3e10, f32::MIN_POSITIVE]);
    c.execute("INSERT INTO t VALUES (1, $1)", &[&vals]).unwrap();
    let back: Emb = c.query_one("SELECT e FROM t WHERE id = 1", &[]).unwrap().get(0);
    assert_eq!(back, vals);
    // Text form seen by the same driver matches pgvector's.
    let text: String = c.query_one("SELECT e::text FROM t", &[]).unwrap().get(0);
    assert_eq!(text, "[1,-2.5,3e10,1.1754944e-38]");
    // And text in, binary out.
    let parsed: Emb = c.query_one("SELECT $1::text::embedding", &[&"[0.5, 2]"]).unwrap().get(0);
    assert_eq!(parsed, Emb(vec![0.5, 2.0]));
}

#[test]
fn prepared_nearest_neighbour_query_matches_brute_force() {
    let Some(mut c) = client() else { return };
    c.batch_execute("CREATE TEMP TABLE items (id int, emb embedding(8))").unwrap();
    let rows: Vec<Vec<f32>> =
        (0..500).map(|i| (0..8).map(|d| ((i * 7 + d * 13) % 17) as f32 - 8.0).collect()).collect();
    let insert = c.prepare("INSERT INTO items VALUES ($1, $2)").unwrap();
    for (i, r) in rows.iter().enumerate() {
        c.execute(&insert, &[&(i as i32), &Emb(r.clone())]).unwrap();
    }
    let q: Vec<f32> = vec![1.0, -2.0, 3.0, 0.5, 0.0, 2.0, -1.0, 4.0];
    let knn = c.prepare("SELECT id, emb <-> $1 FROM items ORDER BY emb <-> $1, id LIMIT 10").unwrap();
    let got: Vec<(i32, f64)> =
        c.query(&knn, &[&Emb(q.clone())]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();

    let mut want: Vec<(i32, f64)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (i as i32, r.iter().zip(&q).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>().sqrt()))
        .collect();
    want.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    want.truncate(10);
    for ((gi, gd), (wi, wd)) in got.iter().zip(&want) {
        assert_eq!(gi, wi);
        assert!((gd - wd).abs() < 1e-6, "{gd} vs {wd}");
    }
    assert_eq!(got.len(), 10);
}

#[test]
fn bad_input_reaches_the_driver_with_its_sqlstate() {
    let Some(mut c) = client() else { return };
    c.batch_execute("CREATE TEMP TABLE t (e embedding(3))").unwrap();
    let cases: &[(&str, SqlState, &str)] = &[
        ("SELECT '[1,2'::embedding", SqlState::INVALID_TEXT_REPRESENTATION, "invalid input syntax for type embedding"),
        ("SELECT '[]'::embedding", SqlState::DATA_EXCEPTION, "embedding must have at least 1 dimension"),
        ("SELECT '[NaN]'::embedding", SqlState::DATA_EXCEPTION, "nan is not allowed in an embedding (element 1)"),
        ("SELECT '[1e39]'::embedding", SqlState::NUMERIC_VALUE_OUT_OF_RANGE, "\"1e39\" is out of range"),
        ("INSERT INTO t VALUES ('[1,2,3,4]')", SqlState::DATA_EXCEPTION, "expected 3 dimensions, not 4"),
        ("SELECT '[1]'::embedding <-> '[1,2]'", SqlState::DATA_EXCEPTION, "different embedding dimensions 1 and 2"),
        ("SELECT ARRAY[1,NULL]::real[]::embedding", SqlState::NULL_VALUE_NOT_ALLOWED, "array must not contain nulls"),
        (
            "SELECT array_agg(1)::embedding FROM generate_series(1,16001)",
            SqlState::PROGRAM_LIMIT_EXCEEDED,
            "more than 16000 dimensions",
        ),
    ];
    for (sql, code, msg) in cases {
        let e = c.batch_execute(sql).expect_err(sql);
        assert_eq!(&sqlstate(&e), code, "{sql}: {e}");
        let db = e.as_db_error().unwrap();
        assert!(db.message().contains(msg), "{sql}: {}", db.message());
    }
    // A NaN smuggled in through the binary protocol is refused by embedding_recv.
    let e = c.execute("INSERT INTO t VALUES ($1)", &[&Emb(vec![1.0, f32::NAN, 3.0])]).expect_err("nan over the wire");
    assert_eq!(sqlstate(&e), SqlState::DATA_EXCEPTION);
    // As is a vector of the wrong length for the column.
    let e = c.execute("INSERT INTO t VALUES ($1)", &[&Emb(vec![1.0, 2.0])]).expect_err("wrong dims over the wire");
    assert_eq!(e.as_db_error().unwrap().message(), "expected 3 dimensions, not 2");
}
