//! End-to-end benchmark of the `pgrec_hnsw` index in PostgreSQL, on 100,000
//! embedding-shaped vectors (clustered near a 32-dimensional subspace, small
//! noise: `ann::synth`) of 128 and of 384 dimensions, cosine, m = 16,
//! ef_construction = 64: build time, index size, and for ef_search in
//! {10, 20, 40, 80, 160} recall@10 against exact search, p50 latency of a
//! prepared query from one client, and queries/s from pgbench (prepared, query
//! vector read from a small table by a random id) with one and with two clients.
//!
//! pgvector, the peer, cannot be installed on this machine (not in Debian 12's
//! archive, no network beyond the package registries), so its figures are the
//! ones the index issue quotes for pgvector 0.8.6 on this 2-core machine and data
//! of this shape, printed beside ours and labelled as quoted.
//!
//! Run: ./scripts/demo.sh (release build, cluster on 54815), then
//!      cargo bench --bench hnsw_index [-- ROWS [SECONDS_PER_PGBENCH_RUN]]

use std::process::Command;
use std::time::Instant;

use pgrec::ann::synth;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::{Client, NoTls};

const URL: &str = "host=127.0.0.1 port=54815 user=postgres";
const DB: &str = "pgrec_bench";
const QUERIES: usize = 1000;
const RECALL_QUERIES: usize = 200;

// The client-side `embedding` the driver tests use.
#[path = "../tests/common/mod.rs"]
mod common;
use common::Emb;

/// pgvector 0.8.6 on this machine, as quoted in the index issue: build s, index
/// MB, recall@10 at ef_search 10/20/40/80, and pgbench q/s at ef 40 (1, 2 clients).
fn pgvector_quoted(dim: usize) -> (&'static str, &'static str, [f64; 4], Option<(f64, f64)>) {
    if dim == 128 {
        ("22.3", "79", [0.894, 0.974, 0.990, 0.994], None)
    } else {
        ("30.6", "195", [0.840, 0.938, 0.975, 0.979], Some((805.0, 1817.0)))
    }
}

fn connect() -> Client {
    let mut admin = Client::connect(URL, NoTls).expect("demo cluster on 127.0.0.1:54815: run ./scripts/demo.sh first");
    if admin.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DB]).unwrap().is_none() {
        admin.batch_execute(&format!("CREATE DATABASE {DB}")).unwrap();
    }
    let mut c = Client::connect(&format!("{URL} dbname={DB}"), NoTls).unwrap();
    c.batch_execute("CREATE EXTENSION IF NOT EXISTS pgrec").unwrap();
    c
}

fn copy_rows(c: &mut Client, table: &str, rows: &[f32], dim: usize) {
    let ty: Type = c.prepare("SELECT $1::embedding").unwrap().params()[0].clone();
    let sink = c.copy_in(&format!("COPY {table} (id, emb) FROM STDIN BINARY")).unwrap();
    let mut w = BinaryCopyInWriter::new(sink, &[Type::INT4, ty]);
    for (i, v) in rows.chunks(dim).enumerate() {
        w.write(&[&(i as i32 + 1), &Emb(v.to_vec())]).unwrap();
    }
    w.finish().unwrap();
}

/// Loads `hb_DIM` (rows) and `hq_DIM` (query vectors) unless already there.
fn load(c: &mut Client, rows: usize, dim: usize) -> Vec<Emb> {
    let data = synth::embeddings(rows + QUERIES, dim, 42);
    let (base, queries) = data.split_at(rows * dim);
    let have: i64 =
        c.query_one(&format!("SELECT count(*) FROM pg_class WHERE relname = 'hb_{dim}'"), &[]).unwrap().get(0);
    let count: i64 =
        if have > 0 { c.query_one(&format!("SELECT count(*) FROM hb_{dim}"), &[]).unwrap().get(0) } else { 0 };
    if count != rows as i64 {
        eprintln!("loading {rows} x {dim} rows");
        c.batch_execute(&format!(
            "DROP TABLE IF EXISTS hb_{dim}, hq_{dim};
             CREATE TABLE hb_{dim} (id int PRIMARY KEY, emb embedding({dim}));
             CREATE TABLE hq_{dim} (id int PRIMARY KEY, emb embedding({dim}));"
        ))
        .unwrap();
        copy_rows(c, &format!("hb_{dim}"), base, dim);
        copy_rows(c, &format!("hq_{dim}"), queries, dim);
        c.batch_execute(&format!("VACUUM ANALYZE hb_{dim}")).unwrap();
        c.batch_execute(&format!("VACUUM ANALYZE hq_{dim}")).unwrap();
    }
    queries.chunks(dim).take(RECALL_QUERIES).map(|q| Emb(q.to_vec())).collect()
}

fn top10(c: &mut Client, stmt: &postgres::Statement, q: &Emb) -> Vec<i32> {
    c.query(stmt, &[q]).unwrap().iter().map(|r| r.get(0)).collect()
}

fn pgbench(dim: usize, ef: i32, clients: usize, secs: u64) -> f64 {
    let bindir = String::from_utf8(Command::new("pg_config").arg("--bindir").output().unwrap().stdout).unwrap();
    let script = std::env::temp_dir().join(format!("pgrec_hnsw_bench_{dim}.sql"));
    std::fs::write(
        &script,
        format!(
            "\\set id random(1, {QUERIES})\nSELECT id FROM hb_{dim} ORDER BY emb <=> (SELECT emb FROM hq_{dim} WHERE id = :id) LIMIT 10;\n"
        ),
    )
    .unwrap();
    let out = Command::new(format!("{}/pgbench", bindir.trim()))
        .args(["-h", "127.0.0.1", "-p", "54815", "-U", "postgres", "-n", "-M", "prepared"])
        .args(["-c", &clients.to_string(), "-j", &clients.to_string(), "-T", &secs.to_string()])
        .arg("-f")
        .arg(&script)
        .arg(DB)
        .env("PGOPTIONS", format!("-c pgrec.ef_search={ef}"))
        .output()
        .expect("pgbench");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("tps"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("pgbench failed: {text}{}", String::from_utf8_lossy(&out.stderr)))
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let rows = args.first().copied().unwrap_or(100_000) as usize;
    let secs = args.get(1).copied().unwrap_or(10);
    let mut c = connect();
    println!(
        "pgrec_hnsw in PostgreSQL 15, {rows} rows, cosine, m=16, ef_construction=64, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for dim in [128usize, 384] {
        let queries = load(&mut c, rows, dim);
        let exact = c.prepare(&format!("SELECT id FROM hb_{dim} ORDER BY emb <=> $1 LIMIT 10")).unwrap();
        c.batch_execute("SET enable_indexscan = off").unwrap();
        let truth: Vec<Vec<i32>> = queries.iter().map(|q| top10(&mut c, &exact, q)).collect();
        c.batch_execute(&format!(
            "RESET enable_indexscan; DROP INDEX IF EXISTS hb_{dim}_emb; SET maintenance_work_mem = '2GB'"
        ))
        .unwrap();
        c.batch_execute("CHECKPOINT").unwrap();
        let t = Instant::now();
        c.batch_execute(&format!(
            "CREATE INDEX hb_{dim}_emb ON hb_{dim} USING pgrec_hnsw (emb embedding_cosine_ops) WITH (m = 16, ef_construction = 64)"
        ))
        .unwrap();
        let build = t.elapsed().as_secs_f64();
        let size: i64 = c.query_one(&format!("SELECT pg_relation_size('hb_{dim}_emb')"), &[]).unwrap().get(0);
        let (pv_build, pv_size, pv_recall, pv_qps) = pgvector_quoted(dim);
        println!();
        println!(
            "{rows} x {dim}: build {build:.1} s, index {:.0} MB   (pgvector 0.8.6, quoted: {pv_build} s, {pv_size} MB)",
            size as f64 / 1e6
        );
        println!("  ef_search  recall@10  p50 ms  q/s 1 client  q/s 2 clients   pgvector recall@10 (quoted)");
        let knn = c.prepare(&format!("SELECT id FROM hb_{dim} ORDER BY emb <=> $1 LIMIT 10")).unwrap();
        for (i, ef) in [10, 20, 40, 80, 160].into_iter().enumerate() {
            c.batch_execute(&format!("SET pgrec.ef_search = {ef}")).unwrap();
            let mut hits = 0;
            let mut lat = Vec::with_capacity(queries.len());
            for (q, want) in queries.iter().zip(&truth) {
                let t = Instant::now();
                let got = top10(&mut c, &knn, q);
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                hits += got.iter().filter(|x| want.contains(x)).count();
            }
            lat.sort_by(f64::total_cmp);
            let recall = hits as f64 / (10 * queries.len()) as f64;
            let q1 = pgbench(dim, ef, 1, secs);
            let q2 = pgbench(dim, ef, 2, secs);
            let pv = pv_recall.get(i).map_or("-".to_string(), |r| format!("{r:.3}"));
            println!("  {ef:>9}  {recall:>9.3}  {:>6.2}  {q1:>12.0}  {q2:>13.0}   {pv}", lat[lat.len() / 2]);
        }
        if let Some((p1, p2)) = pv_qps {
            println!("  pgvector 0.8.6 (quoted) at ef_search 40: {p1:.0} q/s with 1 client, {p2:.0} with 2");
        }
    }
}
