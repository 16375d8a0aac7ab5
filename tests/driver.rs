//! Integration tests through a real client driver (the `postgres` crate), the way
//! applications use pgrec: binary parameters and results (so `embedding_send` and
//! `embedding_recv` are on the wire), prepared statements, and SQLSTATEs as a
//! driver reports them. `scripts/test.sh` starts a cluster with pgrec installed and
//! sets `PGREC_TEST_URL`; without it these tests say so and do nothing.

mod common;

use common::{Emb, sqlstate};
use postgres::error::SqlState;

const DB: &str = "pgrec_driver";

fn client() -> Option<postgres::Client> {
    common::client(DB)
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
