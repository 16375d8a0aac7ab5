//! Upgrades keep data: a database created with the oldest released SQL
//! (0.1.0, `sql/released/`) holding an `embedding` column with a
//! `pgrec_hnsw` index, a model of every algorithm and an encoder stored in
//! the database, then `ALTER EXTENSION pgrec UPDATE` against today's library.
//! The updated catalogue must equal a fresh install's, and everything must
//! answer as in a fresh database holding the same models. Before the update,
//! today's library refuses the old catalogue with a clear error (never an
//! argument-unboxing failure). `scripts/test.sh` installs the released
//! scripts and sets `PGREC_TEST_URL`.

mod common;

use std::io::{Read, Write};

use postgres::error::SqlState;
use postgres::{Client, NoTls};

const FRESH: &str = "pgrec_upgrade_fresh";
const OLD: &str = "pgrec_upgrade_old";
const MISMATCH: &str = "pgrec_upgrade_mismatch";
const OLDEST: &str = "0.1.0";

/// A client on `db`, created afresh (without the extension).
fn fresh_db(db: &str) -> Option<Client> {
    let Ok(base) = std::env::var("PGREC_TEST_URL") else {
        eprintln!("skipped: PGREC_TEST_URL is not set (./scripts/test.sh sets it)");
        return None;
    };
    let mut admin = Client::connect(&base, NoTls).unwrap();
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db}")).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
    let mut c = Client::connect(&format!("{base} dbname={db}"), NoTls).unwrap();
    c.batch_execute("SET client_min_messages = warning").unwrap();
    Some(c)
}

/// Every object of the extension, described with what defines it, one line
/// each, sorted: equal for two databases whose pgrec catalogues are equal.
const CATALOG: &str = r#"
WITH x AS (SELECT oid FROM pg_extension WHERE extname = 'pgrec'),
members AS (
    SELECT d.classid, d.objid FROM pg_depend d, x
    WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = x.oid AND d.deptype = 'e'
),
rels AS (SELECT objid AS oid FROM members WHERE classid = 'pg_class'::regclass)
SELECT line FROM (
    SELECT 'member ' || pg_describe_object(classid, objid, 0) AS line FROM members
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure || ' returns ' || pg_get_function_result(p.oid)
           || ' args ' || pg_get_function_arguments(p.oid) || ' ' || p.provolatile::text || p.proisstrict::text
           || p.proparallel::text || ' ' || coalesce(p.prosrc, '') || ' acl ' || coalesce(p.proacl::text, '-')
           || ' comment ' || coalesce(obj_description(p.oid, 'pg_proc'), '-')
    FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
    UNION ALL
    SELECT 'relation ' || c.oid::regclass || ' ' || c.relkind::text || ' acl ' || coalesce(c.relacl::text, '-')
           || ' comment ' || coalesce(obj_description(c.oid, 'pg_class'), '-')
    FROM pg_class c JOIN rels r ON r.oid = c.oid
    UNION ALL
    SELECT 'column ' || c.oid::regclass || '.' || a.attname || ' #' || a.attnum || ' ' || format_type(a.atttypid, a.atttypmod)
           || ' notnull ' || a.attnotnull || ' storage ' || a.attstorage::text
           || ' default ' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '-')
           || ' comment ' || coalesce(col_description(c.oid, a.attnum), '-')
    FROM pg_class c JOIN rels r ON r.oid = c.oid
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
    UNION ALL
    SELECT 'constraint ' || n.conrelid::regclass || ' ' || n.conname || ' ' || pg_get_constraintdef(n.oid)
    FROM pg_constraint n JOIN rels r ON r.oid = n.conrelid
    UNION ALL
    SELECT 'index ' || regexp_replace(pg_get_indexdef(i.indexrelid), 'INDEX \S+ ON', 'INDEX ON')
    FROM pg_index i JOIN rels r ON r.oid = i.indrelid
    UNION ALL
    SELECT 'view ' || c.oid::regclass || ' ' || pg_get_viewdef(c.oid)
    FROM pg_class c JOIN rels r ON r.oid = c.oid WHERE c.relkind = 'v'
    UNION ALL
    SELECT 'config ' || unnest(extconfig)::regclass::text FROM pg_extension WHERE extname = 'pgrec'
    UNION ALL
    SELECT 'schema pgrec acl ' || coalesce(nspacl::text, '-') FROM pg_namespace WHERE nspname = 'pgrec'
) s ORDER BY line
"#;

fn catalog(c: &mut Client) -> Vec<String> {
    c.query(CATALOG, &[]).unwrap().iter().map(|r| r.get(0)).collect()
}

/// Copies the rows `select` returns on `from` into `into_table` on `to`.
fn copy_rows(from: &mut Client, select: &str, to: &mut Client, into_table: &str) {
    let mut data = Vec::new();
    from.copy_out(&format!("COPY ({select}) TO STDOUT")).unwrap().read_to_end(&mut data).unwrap();
    let mut w = to.copy_in(&format!("COPY {into_table} FROM STDIN")).unwrap();
    w.write_all(&data).unwrap();
    w.finish().unwrap();
}

const MODELS: [&str; 7] = ["m_als", "m_bpr", "m_mf", "m_popular", "m_kgat", "m_vbpr", "m_knn"];

/// Tables both databases train on or serve from.
const DATA: &str = "
    CREATE TABLE clicks AS
        SELECT u AS user_id, (u * 7 + j * 13) % 60 AS item_id, 1 + (u + j) % 5 AS rating
        FROM generate_series(1, 60) u, generate_series(1, 8) j;
    CREATE TABLE items (item_id bigint, emb embedding(4));
    INSERT INTO items SELECT i, ARRAY[1 + i % 3, i % 5, (i % 7) - 3, 1]::real[] FROM generate_series(0, 59) i;
    CREATE TABLE kg AS SELECT i AS head, 'r' || (i % 3) AS relation, 100 + i % 10 AS tail FROM generate_series(0, 59) i;
    CREATE TABLE vecs AS SELECT i AS id, ARRAY[sin(i), cos(i), sin(i * 0.3), cos(i * 0.7)]::real[]::embedding AS v
        FROM generate_series(1, 2000) i;
    CREATE INDEX vecs_v ON vecs USING pgrec_hnsw (v embedding_l2_ops);";

fn clip_dir() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip").to_string_lossy().into_owned()
}

/// What a database answers: each model's top 5 for two users, the KGAT
/// explanation, the stored encoder's vector, the index's top 5.
fn answers(c: &mut Client) -> Vec<String> {
    let mut out = Vec::new();
    for m in MODELS {
        for u in [1i64, 2] {
            let rows = c.query("SELECT item_id, score FROM recommend($1::bigint, 5, $2::text)", &[&u, &m]).unwrap();
            let items: Vec<String> =
                rows.iter().map(|r| format!("{}:{:.5}", r.get::<_, i64>(0), r.get::<_, f32>(1))).collect();
            assert_eq!(items.len(), 5, "{m}");
            out.push(format!("{m} user {u}: {}", items.join(" ")));
        }
    }
    let item: i64 = c.query_one("SELECT item_id FROM recommend(1, 1, 'm_kgat')", &[]).unwrap().get(0);
    for r in c.query("SELECT path FROM explain('m_kgat', 1, $1, 2)", &[&item]).unwrap() {
        out.push(format!("explain {}", r.get::<_, String>(0)));
    }
    let v: String = c.query_one("SELECT embed_text('enc', 'a red shoe')::text", &[]).unwrap().get(0);
    out.push(format!("encoder {v}"));
    c.batch_execute("SET enable_seqscan = off").unwrap();
    let q =
        "SELECT string_agg(id::text, ' ') FROM (SELECT id FROM vecs ORDER BY v <-> '[0.5, 0.5, 0.1, 0.9]' LIMIT 5) s";
    let plan: Vec<String> = c.query(&format!("EXPLAIN {q}"), &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert!(plan.iter().any(|l| l.contains("vecs_v")), "{plan:?}");
    let indexed: String = c.query_one(q, &[]).unwrap().get(0);
    c.batch_execute("RESET enable_seqscan; SET enable_indexscan = off").unwrap();
    let scanned: String = c.query_one(q, &[]).unwrap().get(0);
    c.batch_execute("RESET enable_indexscan").unwrap();
    assert_eq!(indexed, scanned);
    out.push(format!("index {indexed}"));
    out
}

#[test]
fn update_from_the_oldest_release_keeps_data_and_matches_a_fresh_install() {
    let Some(mut fresh) = fresh_db(FRESH) else { return };
    let mut old = fresh_db(OLD).unwrap();

    // Today's version, with a model of every algorithm and a stored encoder.
    fresh.batch_execute("CREATE EXTENSION pgrec").unwrap();
    fresh.batch_execute(DATA).unwrap();
    fresh
        .batch_execute(
            "SELECT count(*) FROM train('m_als', 'als', 'clicks', '{\"iterations\": 2}');
             SELECT count(*) FROM train('m_bpr', 'bpr', 'clicks', '{\"iterations\": 3}');
             SELECT count(*) FROM train('m_mf', 'mf', 'clicks', '{\"iterations\": 3}', weight_column => 'rating');
             SELECT count(*) FROM train('m_popular', 'popular', 'clicks');
             SELECT count(*) FROM train('m_kgat', 'kgat', 'clicks', '{\"iterations\": 2, \"factors\": 8, \"layers\": [8]}',
                 relations => 'kg');
             SELECT count(*) FROM train('m_vbpr', 'vbpr', 'clicks', '{\"iterations\": 2}',
                 item_features => 'SELECT item_id, emb FROM items');
             SELECT count(*) FROM train('m_knn', 'content_knn', 'clicks',
                 item_features => 'SELECT item_id, emb FROM items WHERE item_id >= 0');",
        )
        .unwrap();
    fresh.execute("SELECT * FROM load_encoder('enc', $1, store_in_database => true)", &[&clip_dir()]).unwrap();

    // The oldest release, holding the same models and encoder as 0.1.0 stored them.
    old.batch_execute(&format!("CREATE EXTENSION pgrec VERSION '{OLDEST}'")).unwrap();
    old.batch_execute(DATA).unwrap();
    let cols = "name, version, algorithm, params, metrics, users, items, interactions, train_rows, test_rows, \
                train_seconds, created_at, deployed, data, graph";
    copy_rows(
        &mut fresh,
        &format!("SELECT {cols} FROM pgrec.model_versions"),
        &mut old,
        &format!("pgrec.model_versions ({cols})"),
    );
    let cols = "name, architecture, dims, max_tokens, path, stored, bytes, revision, loaded_at";
    copy_rows(
        &mut fresh,
        &format!("SELECT {cols} FROM pgrec.encoder_registry"),
        &mut old,
        &format!("pgrec.encoder_registry ({cols})"),
    );
    copy_rows(&mut fresh, "SELECT encoder, file, data FROM pgrec.encoder_files", &mut old, "pgrec.encoder_files");

    // Today's library on the old catalogue: a clear error, before any work.
    for sql in [
        "SELECT * FROM recommend(1, 5, 'm_bpr')",
        "SELECT * FROM train('x', 'bpr', 'clicks')",
        "SELECT embed_text('enc', 'a red shoe')",
    ] {
        let e = old.query(sql, &[]).unwrap_err();
        let db = e.as_db_error().unwrap();
        assert_eq!(db.code(), &SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE, "{sql}");
        assert_eq!(
            db.message(),
            format!(
                "the pgrec library is {} but the extension in this database is {OLDEST}",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(db.hint(), Some("ALTER EXTENSION pgrec UPDATE"));
    }

    old.batch_execute("ALTER EXTENSION pgrec UPDATE").unwrap();
    let v: String = old.query_one("SELECT extversion FROM pg_extension WHERE extname = 'pgrec'", &[]).unwrap().get(0);
    assert_eq!(v, env!("CARGO_PKG_VERSION"));

    // (a) the same catalogue as a fresh install.
    let (want, got) = (catalog(&mut fresh), catalog(&mut old));
    let missing: Vec<&String> = want.iter().filter(|l| !got.contains(l)).collect();
    let extra: Vec<&String> = got.iter().filter(|l| !want.contains(l)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "after the update\nmissing: {missing:#?}\nextra: {extra:#?}");
    assert!(want.len() > 100, "{} catalogue lines", want.len());

    // (b) the data intact and served as in the fresh database.
    assert_eq!(answers(&mut old), answers(&mut fresh));
    let owners: Vec<String> =
        old.query("SELECT DISTINCT owner::text FROM pgrec.models", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(owners, vec!["postgres".to_string()]);
    // And it goes on: a new version, a grant, a re-registered encoder.
    let version: i32 = old
        .query_one("SELECT version FROM train('m_bpr', 'bpr', 'clicks', '{\"iterations\": 2}')", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, 2);
    old.batch_execute("SELECT grant_model('m_bpr', 'public')").unwrap();
    old.execute("SELECT * FROM load_encoder('enc', $1)", &[&clip_dir()]).unwrap();
    let rev: i64 = old.query_one("SELECT revision FROM pgrec.encoder_registry WHERE name = 'enc'", &[]).unwrap().get(0);
    assert!(rev > 1, "{rev}");
}

#[test]
fn an_older_train_signature_is_reported_not_unboxed() {
    let Some(mut c) = fresh_db(MISMATCH) else { return };
    c.batch_execute(&format!("CREATE EXTENSION pgrec VERSION '{OLDEST}'")).unwrap();
    // train() as builds before the first release declared it: 8 arguments.
    c.batch_execute(
        "CREATE TABLE clicks (user_id int, item_id int);
         ALTER EXTENSION pgrec DROP FUNCTION train(text, text, text, jsonb, text, text, text, text, text, text, text, text);
         DROP FUNCTION train(text, text, text, jsonb, text, text, text, text, text, text, text, text);
         CREATE FUNCTION train(name text, algorithm text, interactions text, params jsonb DEFAULT '{}',
                               user_column text DEFAULT 'user_id', item_column text DEFAULT 'item_id',
                               weight_column text DEFAULT NULL, ts_column text DEFAULT NULL)
             RETURNS TABLE(name text, version integer, algorithm text, deployed boolean, metrics jsonb)
             AS '$libdir/pgrec', 'train_wrapper' LANGUAGE C VOLATILE;",
    )
    .unwrap();
    let e = c.query("SELECT * FROM train('x', 'bpr', 'clicks')", &[]).unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code(), &SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE);
    assert_eq!(
        db.message(),
        format!("the pgrec library is {} but the extension in this database is {OLDEST}", env!("CARGO_PKG_VERSION"))
    );
}
