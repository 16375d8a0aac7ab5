//! `pgrec_hnsw` beside pgvector's `hnsw`, in one PostgreSQL 15, on the same
//! rows: build time (both in parallel on this machine's cores: pgrec with
//! `pgrec.threads`, pgvector with `max_parallel_maintenance_workers` = cores − 1),
//! index size, inserts/s (2,000 rows, one statement each, into a 20,000-row
//! index), and for ef_search in {10, 20, 40, 80, 160} recall@10 against
//! exact search, p50 latency of a prepared query from one client, and
//! queries/s from pgbench (prepared, the query vector read from a table by a
//! random id) with one and with two clients, the median of 3 runs taken in
//! turn with the other index's once both exist; then q/s at equal recall: for
//! each point of either curve, the other index's smallest ef_search (from 10,
//! the LIMIT) with at least that recall, both measured by pgbench in turns.
//!
//! Data (`ann::synth`, embedding-shaped: 100 clusters near a 32-dimensional
//! subspace), m = 16, ef_construction = 64, maintenance_work_mem = 2 GB:
//!   l2      50,000 × 128, L2, 1,000 held-out queries (the index issue's set)
//!   cos384  100,000 × 384, cosine, 1,000 queries
//!   l2-1m   1,000,000 × 128, L2, 100 queries (build time and size above all)
//!
//! pgvector 0.8.6 is built from ../shared/peers/pgvector-0.8.6.tar.gz and
//! installed into the cluster's PostgreSQL when it is missing (needs root or
//! sudo); without the archive the pgvector columns say "absent" and only pgrec
//! is measured.
//!
//! Run: ./scripts/demo.sh (release build, cluster on 54815), then
//!      cargo bench --bench hnsw_index [-- CASE... [SECONDS_PER_PGBENCH_RUN]]
//!      (default: l2 cos384, 10 s per pgbench run)

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use pgrec::ann::synth;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::{Client, NoTls};

const URL: &str = "host=127.0.0.1 port=54815 user=postgres";
const DB: &str = "pgrec_bench";
const PGVECTOR: &str = "pgvector-0.8.6";
const EFS: [i32; 5] = [10, 20, 40, 80, 160];

// The client-side `embedding` the driver tests use.
#[path = "../tests/common/mod.rs"]
mod common;
use common::Emb;

struct Case {
    tag: &'static str,
    rows: usize,
    dim: usize,
    cosine: bool,
    queries: usize,
}

const CASES: [Case; 3] = [
    Case { tag: "l2", rows: 50_000, dim: 128, cosine: false, queries: 1000 },
    Case { tag: "cos384", rows: 100_000, dim: 384, cosine: true, queries: 1000 },
    Case { tag: "l2_1m", rows: 1_000_000, dim: 128, cosine: false, queries: 100 },
];

fn pg_config(arg: &str) -> String {
    let out = Command::new("pg_config").arg(arg).output().expect("pg_config");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Builds and installs pgvector from the peers folder unless the server has it;
/// false when it is neither installed nor buildable here.
fn ensure_pgvector(c: &mut Client) -> bool {
    let have = |c: &mut Client| {
        c.query_opt("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'", &[]).unwrap().is_some()
    };
    if !have(c) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let tarball = root.join("../shared/peers").join(format!("{PGVECTOR}.tar.gz"));
        if !tarball.exists() {
            println!("pgvector: {} not found, so only pgrec is measured", tarball.display());
            return false;
        }
        let dir = root.join("target/peers");
        std::fs::create_dir_all(&dir).unwrap();
        eprintln!("building {PGVECTOR} from {}", tarball.display());
        // as_root (scripts/common.sh) installs with sudo unless this is root.
        let script = format!(
            "set -e; source '{}/scripts/common.sh'; tar xzf '{}' -C '{}'; cd '{}/{PGVECTOR}';
             make -s OPTFLAGS='' >/dev/null; as_root make -s install >/dev/null",
            root.display(),
            tarball.display(),
            dir.display(),
            dir.display()
        );
        let ok = Command::new("bash").args(["-c", &script]).status().map(|s| s.success()).unwrap_or(false);
        if !ok || !have(c) {
            println!("pgvector: building {PGVECTOR} failed, so only pgrec is measured");
            return false;
        }
    }
    c.batch_execute("CREATE EXTENSION IF NOT EXISTS vector").unwrap();
    let v: String = c.query_one("SELECT extversion FROM pg_extension WHERE extname = 'vector'", &[]).unwrap().get(0);
    println!("pgvector {v} installed in the same server");
    true
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

/// Loads the rows (`hb_TAG`, with an `embedding` and, when pgvector is there, a
/// `vector` column holding the same floats) and query vectors (`hq_TAG`) unless
/// already there; returns the query vectors.
fn load(c: &mut Client, case: &Case, pgvector: bool) -> Vec<Emb> {
    let (tag, dim) = (case.tag, case.dim);
    let data = synth::embeddings(case.rows + case.queries, dim, 42);
    let (base, queries) = data.split_at(case.rows * dim);
    let have: i64 =
        c.query_one(&format!("SELECT count(*) FROM pg_class WHERE relname = 'hb_{tag}'"), &[]).unwrap().get(0);
    let count: i64 =
        if have > 0 { c.query_one(&format!("SELECT count(*) FROM hb_{tag}"), &[]).unwrap().get(0) } else { 0 };
    if count != case.rows as i64 {
        eprintln!("loading {} x {dim} rows", case.rows);
        c.batch_execute(&format!(
            "DROP TABLE IF EXISTS hb_{tag}, hq_{tag};
             CREATE TABLE hb_{tag} (id int PRIMARY KEY, emb embedding({dim}));
             CREATE TABLE hq_{tag} (id int PRIMARY KEY, emb embedding({dim}));"
        ))
        .unwrap();
        copy_rows(c, &format!("hb_{tag}"), base, dim);
        copy_rows(c, &format!("hq_{tag}"), queries, dim);
    }
    if pgvector {
        let has_v: i64 = c
            .query_one(
                &format!("SELECT count(*) FROM pg_attribute WHERE attrelid = 'hb_{tag}'::regclass AND attname = 'v'"),
                &[],
            )
            .unwrap()
            .get(0);
        if has_v == 0 {
            c.batch_execute(&format!(
                "ALTER TABLE hb_{tag} ADD COLUMN v vector({dim}); UPDATE hb_{tag} SET v = emb::real[]::vector;
                 ALTER TABLE hq_{tag} ADD COLUMN v vector({dim}); UPDATE hq_{tag} SET v = emb::real[]::vector;"
            ))
            .unwrap();
            // (VACUUM cannot share a multi-statement batch: it would be one transaction.)
            c.batch_execute(&format!("VACUUM FULL hb_{tag}")).unwrap();
            c.batch_execute(&format!("VACUUM FULL hq_{tag}")).unwrap();
        }
        // Two 384-dimensional vectors make a row longer than TOAST's 2 kB
        // threshold, and the toaster would move the first column (pgrec's)
        // out of line: both stay in the row, so neither build reads TOAST.
        let toasted: i64 = c
            .query_one(
                &format!("SELECT coalesce(pg_relation_size(nullif(reltoastrelid, 0)), 0) FROM pg_class WHERE relname = 'hb_{tag}'"),
                &[],
            )
            .unwrap()
            .get(0);
        if toasted > 0 {
            c.batch_execute(&format!(
                "ALTER TABLE hb_{tag} ALTER COLUMN emb SET STORAGE PLAIN, ALTER COLUMN v SET STORAGE PLAIN"
            ))
            .unwrap();
            c.batch_execute(&format!("VACUUM FULL hb_{tag}")).unwrap();
        }
    }
    c.batch_execute(&format!("VACUUM ANALYZE hb_{tag}")).unwrap();
    c.batch_execute(&format!("VACUUM ANALYZE hq_{tag}")).unwrap();
    queries.chunks(dim).map(|q| Emb(q.to_vec())).collect()
}

struct Peer {
    name: &'static str,
    column: &'static str,
    op: &'static str,
    ef_guc: &'static str,
    am: &'static str,
    opclass: &'static str,
    /// The column's SQL type.
    ty: String,
}

fn peers(case: &Case) -> [Peer; 2] {
    let op = if case.cosine { "<=>" } else { "<->" };
    [
        Peer {
            name: "pgrec_hnsw",
            column: "emb",
            op,
            ef_guc: "pgrec.ef_search",
            am: "pgrec_hnsw",
            opclass: if case.cosine { "embedding_cosine_ops" } else { "embedding_l2_ops" },
            ty: format!("embedding({})", case.dim),
        },
        Peer {
            name: "pgvector hnsw",
            column: "v",
            op,
            ef_guc: "hnsw.ef_search",
            am: "hnsw",
            opclass: if case.cosine { "vector_cosine_ops" } else { "vector_l2_ops" },
            ty: format!("vector({})", case.dim),
        },
    ]
}

fn pgbench(tag: &str, p: &Peer, ef: i32, clients: usize, secs: u64, queries: usize) -> f64 {
    let script = std::env::temp_dir().join(format!("pgrec_hnsw_bench_{tag}_{}.sql", p.column));
    std::fs::write(
        &script,
        format!(
            "\\set id random(1, {queries})\nSELECT id FROM hb_{tag} ORDER BY {c} {op} (SELECT {c} FROM hq_{tag} WHERE id = :id) LIMIT 10;\n",
            c = p.column,
            op = p.op
        ),
    )
    .unwrap();
    let out = Command::new(format!("{}/pgbench", pg_config("--bindir")))
        .args(["-h", "127.0.0.1", "-p", "54815", "-U", "postgres", "-n", "-M", "prepared"])
        .args(["-c", &clients.to_string(), "-j", &clients.to_string(), "-T", &secs.to_string()])
        .arg("-f")
        .arg(&script)
        .arg(DB)
        .env("PGOPTIONS", format!("-c {}={ef}", p.ef_guc))
        .output()
        .expect("pgbench");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("tps"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("pgbench failed: {text}{}", String::from_utf8_lossy(&out.stderr)))
}

/// (ef, recall, p50 ms, q/s 1 client, q/s 2 clients) per ef_search.
type Curve = Vec<(i32, f64, f64, f64, f64)>;

fn knn(c: &mut Client, case: &Case, p: &Peer) -> postgres::Statement {
    c.prepare(&format!("SELECT id FROM hb_{} ORDER BY {} {} $1::real[]::{} LIMIT 10", case.tag, p.column, p.op, p.ty))
        .unwrap()
}

/// Recall@10 and p50 ms of a peer's index at one ef_search.
fn recall_at(c: &mut Client, case: &Case, p: &Peer, ef: i32, queries: &[Emb], truth: &[Vec<i32>]) -> (f64, f64) {
    let knn = knn(c, case, p);
    c.batch_execute(&format!("SET {} = {ef}", p.ef_guc)).unwrap();
    let mut hits = 0;
    let mut lat = Vec::with_capacity(queries.len());
    for (q, want) in queries.iter().zip(truth) {
        let t = Instant::now();
        let got: Vec<i32> = c.query(&knn, &[&q.0]).unwrap().iter().map(|r| r.get(0)).collect();
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        hits += got.iter().filter(|x| want.contains(x)).count();
    }
    lat.sort_by(f64::total_cmp);
    (hits as f64 / (10 * queries.len()) as f64, lat[lat.len() / 2])
}

fn measure(c: &mut Client, case: &Case, p: &Peer, queries: &[Emb], truth: &[Vec<i32>]) -> Curve {
    EFS.into_iter()
        .map(|ef| {
            let (recall, p50) = recall_at(c, case, p, ef, queries, truth);
            (ef, recall, p50, 0.0, 0.0)
        })
        .collect()
}

/// The smallest ef_search of `p` from 10 (the LIMIT: below it a search
/// returns fewer rows) up to the curve's last point whose recall@10 is at
/// least `target`, found by bisection between the curve's points (recall
/// grows with ef_search); None when even the last point falls short.
fn cheapest_ef(
    c: &mut Client,
    case: &Case,
    p: &Peer,
    curve: &Curve,
    target: f64,
    queries: &[Emb],
    truth: &[Vec<i32>],
) -> Option<(i32, f64)> {
    let at = curve.iter().position(|pt| pt.1 >= target)?;
    let (mut lo, mut hi, mut best) = (if at == 0 { 10 } else { curve[at - 1].0 + 1 }, curve[at].0, curve[at].1);
    while lo < hi {
        let mid = (lo + hi) / 2;
        let (r, _) = recall_at(c, case, p, mid, queries, truth);
        if r >= target {
            (hi, best) = (mid, r);
        } else {
            lo = mid + 1;
        }
    }
    Some((hi, best))
}

/// pgbench runs per ef_search, peer and client count; the median is reported.
const RUNS: usize = 3;

/// Fills in each curve's q/s once both indexes exist: for each ef_search,
/// [`RUNS`] rounds in which every peer runs with one client and then two,
/// so that this machine's speed, which drifts by tens of percent over
/// minutes, weighs on both alike (measured one peer after the other, a
/// peer's first runs read up to half the q/s of its later ones).
fn throughput(c: &mut Client, case: &Case, curves: &mut [(&str, Curve)], secs: u64) {
    c.batch_execute("CHECKPOINT").unwrap();
    let ps = peers(case);
    let active: Vec<&Peer> = curves.iter().filter_map(|(n, _)| ps.iter().find(|p| p.name == *n)).collect();
    for p in &active {
        pgbench(case.tag, p, EFS[0], 2, secs.min(3), case.queries);
    }
    for (i, ef) in EFS.into_iter().enumerate() {
        let mut runs = vec![(Vec::new(), Vec::new()); active.len()];
        for _ in 0..RUNS {
            for (p, r) in active.iter().zip(&mut runs) {
                r.0.push(pgbench(case.tag, p, ef, 1, secs, case.queries));
                r.1.push(pgbench(case.tag, p, ef, 2, secs, case.queries));
            }
        }
        for ((_, cv), (q1, q2)) in curves.iter_mut().zip(runs) {
            cv[i].3 = median(q1);
            cv[i].4 = median(q2);
        }
    }
}

/// (whose point, pgrec's (ef_search, recall), pgvector's).
type Pair = (&'static str, (i32, f64), (i32, f64));

/// Queries/s at equal recall: for each point of either curve, the other
/// index's cheapest ef_search with at least that recall, then both measured
/// by pgbench in turns ([`RUNS`] rounds, medians). Pairs the comparison by
/// what a user gets, not by the setting's name: at one ef_search the two
/// graphs find different shares of the true neighbours.
fn equal_recall(
    c: &mut Client,
    case: &Case,
    ours: &Curve,
    theirs: &Curve,
    queries: &[Emb],
    truth: &[Vec<i32>],
    secs: u64,
) {
    let [pr, pv] = peers(case);
    let mut pairs: Vec<Pair> = Vec::new();
    for pt in theirs {
        match cheapest_ef(c, case, &pr, ours, pt.1, queries, truth) {
            Some(o) => pairs.push(("pgvector", o, (pt.0, pt.1))),
            None => println!("  pgvector ef {:>3} recall {:.4}: no pgrec ef_search up to 160 reaches it", pt.0, pt.1),
        }
    }
    for pt in ours {
        match cheapest_ef(c, case, &pv, theirs, pt.1, queries, truth) {
            Some(v) => pairs.push(("pgrec", (pt.0, pt.1), v)),
            None => println!("  pgrec ef {:>3} recall {:.4}: no pgvector ef_search up to 160 reaches it", pt.0, pt.1),
        }
    }
    pairs.sort_by_key(|p| (p.1.0, p.2.0));
    pairs.dedup_by_key(|p| (p.1.0, p.2.0));
    println!(
        "  at equal recall (each point of either curve, the other index's cheapest ef_search with at least its recall):"
    );
    println!(
        "  {:>8}  {:>27}  {:>29}  {:>15}  {:>15}",
        "point of", "pgrec ef / recall", "pgvector ef / recall", "1 client q/s", "2 clients q/s"
    );
    for (whose, (oef, or), (vef, vr)) in pairs {
        let mut q = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
        for _ in 0..RUNS {
            for (k, (p, ef)) in [(&pr, oef), (&pv, vef)].into_iter().enumerate() {
                q[k][0].push(pgbench(case.tag, p, ef, 1, secs, case.queries));
                q[k][1].push(pgbench(case.tag, p, ef, 2, secs, case.queries));
            }
        }
        let [[o1, o2], [v1, v2]] = q.map(|r| r.map(median));
        println!(
            "  {whose:>8}  {oef:>19} / {or:.4}  {vef:>21} / {vr:.4}  {o1:>6.0} / {v1:>6.0}  {o2:>6.0} / {v2:>6.0}"
        );
    }
    println!("  (q/s columns: pgrec / pgvector)");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Rows per second inserted one statement at a time, through the index,
/// into a copy of the first rows: INSERT_AFTER rows indexed by a build, then
/// the next INSERTED rows.
fn insert_rate(c: &mut Client, case: &Case, p: &Peer) -> f64 {
    const INSERT_AFTER: i32 = 20_000;
    const INSERTED: i32 = 2_000;
    let (tag, col) = (case.tag, p.column);
    c.batch_execute(&format!(
        "DROP TABLE IF EXISTS hi_{tag}; CREATE TABLE hi_{tag} (id int PRIMARY KEY, {col} {ty});
         INSERT INTO hi_{tag} SELECT id, {col} FROM hb_{tag} WHERE id <= {INSERT_AFTER};
         CREATE INDEX ON hi_{tag} USING {am} ({col} {opclass}) WITH (m = 16, ef_construction = 64)",
        ty = p.ty,
        am = p.am,
        opclass = p.opclass
    ))
    .unwrap();
    let insert = c.prepare(&format!("INSERT INTO hi_{tag} SELECT id, {col} FROM hb_{tag} WHERE id = $1")).unwrap();
    let t = Instant::now();
    for id in INSERT_AFTER + 1..=INSERT_AFTER + INSERTED {
        c.execute(&insert, &[&id]).unwrap();
    }
    let rate = f64::from(INSERTED) / t.elapsed().as_secs_f64();
    c.batch_execute(&format!("DROP TABLE hi_{tag}")).unwrap();
    rate
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let secs: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(10);
    let mut chosen: Vec<&Case> = CASES.iter().filter(|c| args.iter().any(|a| a == c.tag)).collect();
    if chosen.is_empty() {
        chosen = CASES.iter().take(2).collect();
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut c = connect();
    let server: String = c.query_one("SHOW server_version", &[]).unwrap().get(0);
    println!("pgrec_hnsw and pgvector's hnsw in PostgreSQL {server}, m = 16, ef_construction = 64, {cores} cores");
    let pgvector = ensure_pgvector(&mut c);
    for case in chosen {
        let tag = case.tag;
        let queries = load(&mut c, case, pgvector);
        let op = if case.cosine { "<=>" } else { "<->" };
        let exact = c.prepare(&format!("SELECT id FROM hb_{tag} ORDER BY emb {op} $1 LIMIT 10")).unwrap();
        c.batch_execute("SET enable_indexscan = off; SET enable_bitmapscan = off").unwrap();
        eprintln!("exact top 10 of {} queries", queries.len());
        let truth: Vec<Vec<i32>> =
            queries.iter().map(|q| c.query(&exact, &[q]).unwrap().iter().map(|r| r.get(0)).collect()).collect();
        c.batch_execute(&format!(
            "RESET enable_indexscan; RESET enable_bitmapscan; SET maintenance_work_mem = '2GB';
             SET pgrec.threads = {cores}; SET max_parallel_maintenance_workers = {}",
            cores - 1
        ))
        .unwrap();
        println!();
        println!(
            "{} rows x {}, {}, {} queries",
            case.rows,
            case.dim,
            if case.cosine { "cosine" } else { "L2" },
            queries.len()
        );
        let mut curves = Vec::new();
        for p in peers(case).iter().filter(|p| pgvector || p.column == "emb") {
            let index = format!("hb_{tag}_{}", p.column);
            c.batch_execute(&format!("DROP INDEX IF EXISTS {index}; CHECKPOINT")).unwrap();
            let t = Instant::now();
            c.batch_execute(&format!(
                "CREATE INDEX {index} ON hb_{tag} USING {} ({} {}) WITH (m = 16, ef_construction = 64)",
                p.am, p.column, p.opclass
            ))
            .unwrap();
            let build = t.elapsed().as_secs_f64();
            let size: i64 = c.query_one(&format!("SELECT pg_relation_size('{index}')"), &[]).unwrap().get(0);
            let inserts = insert_rate(&mut c, case, p);
            println!(
                "  {:<14} build {build:>7.1} s   index {:>6.0} MB   inserts {inserts:>5.0} rows/s",
                p.name,
                size as f64 / 1e6
            );
            curves.push((p.name, measure(&mut c, case, p, &queries, &truth)));
        }
        throughput(&mut c, case, &mut curves, secs);
        println!(
            "  ef_search  {}",
            curves
                .iter()
                .map(|(n, _)| format!("{n:>14}: recall@10  p50 ms  q/s 1 client  q/s 2 clients"))
                .collect::<Vec<_>>()
                .join("   ")
        );
        for (i, ef) in EFS.iter().enumerate() {
            let cols: Vec<String> = curves
                .iter()
                .map(|(_, cv)| {
                    let (_, r, p50, q1, q2) = cv[i];
                    format!("{:>14}  {r:>9.4}  {p50:>6.2}  {q1:>12.0}  {q2:>13.0}", "")
                })
                .collect();
            println!("  {ef:>9}  {}", cols.join("   "));
        }
        if let [(_, ours), (_, theirs)] = &curves[..] {
            equal_recall(&mut c, case, ours, theirs, &queries, &truth, secs);
        }
    }
}
