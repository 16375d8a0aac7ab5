//! pgrec handed to roles that are not superusers, as a DBA would: an
//! application role with only the grants the README's "Privileges" section
//! names, a trainer, and a hostile role that tries what the review found —
//! allocations sized from k, SQL planted in a model for a superuser to run,
//! shadowed functions and operators, other roles' models, unbounded training
//! memory, encoders that ignore Ctrl-C, diverged models, stale caches,
//! parallel plans, guard settings. Every test ends by checking that the
//! postmaster never restarted. `scripts/test.sh` sets `PGREC_TEST_URL`.

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::{Client, NoTls};

const DB: &str = "pgrec_security";
const APP: &str = "pgrec_sec_app";
const TRAINER: &str = "pgrec_sec_trainer";
const HOSTILE: &str = "pgrec_sec_hostile";

/// The postmaster's start time when the tier began.
static STARTED: OnceLock<String> = OnceLock::new();

fn url() -> Option<String> {
    std::env::var("PGREC_TEST_URL").ok()
}

fn connect(role: &str) -> Client {
    let mut c = Client::connect(&format!("{} dbname={DB} user={role}", url().unwrap()), NoTls).unwrap();
    c.batch_execute("SET client_min_messages = warning").unwrap();
    c
}

/// The superuser's client, once the roles and the trainer's data exist.
fn admin() -> Option<Client> {
    let mut c = common::client(DB)?;
    c.batch_execute("SET client_min_messages = warning").unwrap();
    STARTED.get_or_init(|| {
        for r in [APP, TRAINER, HOSTILE] {
            c.batch_execute(&format!(
                "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{r}') THEN DROP OWNED BY {r}; END IF; END $$;
                 DROP ROLE IF EXISTS {r}; CREATE ROLE {r} LOGIN"
            ))
            .unwrap();
        }
        // The documented grants: the app role needs none beyond what PUBLIC
        // has (EXECUTE on pgrec's functions, USAGE on schema pgrec) plus
        // SELECT on the tables a content model ranks; trainers need SELECT
        // on their interactions and CREATE to keep their own tables.
        c.batch_execute(&format!(
            "GRANT CREATE ON DATABASE {DB} TO {TRAINER}, {HOSTILE};
             GRANT CREATE ON SCHEMA public TO {TRAINER};"
        ))
        .unwrap();
        connect(HOSTILE)
            .batch_execute(
                "CREATE SCHEMA hostile;
                 CREATE TABLE hostile.clicks AS SELECT u AS user_id, (u * 3 + j) % 60 AS item_id FROM generate_series(1, 20) u, generate_series(1, 5) j;",
            )
            .unwrap();
        let mut t = connect(TRAINER);
        t.batch_execute(&format!(
            "CREATE SCHEMA trainer;
             CREATE TABLE trainer.clicks AS
                 SELECT u AS user_id, (u * 7 + j * 13) % 60 AS item_id FROM generate_series(1, 40) u, generate_series(1, 8) j;
             CREATE TABLE trainer.items (item_id bigint, emb embedding(4));
             INSERT INTO trainer.items SELECT i, ARRAY[1 + i % 3, i % 5, (i % 7) - 3, 1]::real[] FROM generate_series(0, 59) i;
             CREATE INDEX ON trainer.items USING pgrec_hnsw (emb embedding_cosine_ops);
             GRANT USAGE ON SCHEMA trainer TO {APP};
             SELECT count(*) FROM train('shop', 'bpr', 'trainer.clicks', '{{\"factors\": 8, \"iterations\": 5}}');
             SELECT count(*) FROM train('cknn', 'content_knn', 'trainer.clicks', item_features => 'SELECT item_id, emb FROM trainer.items');"
        ))
        .unwrap();
        c.query_one("SELECT pg_postmaster_start_time()::text", &[]).unwrap().get(0)
    });
    Some(c)
}

/// Fails the test if the server restarted since the tier began.
fn assert_no_restart() {
    let mut c = common::client(DB).unwrap();
    let now: String = c.query_one("SELECT pg_postmaster_start_time()::text", &[]).unwrap().get(0);
    assert_eq!(&now, STARTED.get().unwrap(), "the postmaster restarted");
}

fn code(r: Result<impl Sized, postgres::Error>) -> SqlState {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => common::sqlstate(&e),
    }
}

fn message(r: Result<impl Sized, postgres::Error>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string()),
    }
}

fn count(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

fn is_superuser(c: &mut Client, role: &str) -> bool {
    c.query_one("SELECT rolsuper FROM pg_roles WHERE rolname = $1", &[&role]).unwrap().get(0)
}

#[test]
fn k_and_user_counts_from_the_caller_never_size_an_allocation() {
    let Some(_admin) = admin() else { return };
    let mut app = connect(TRAINER);
    let items = count(&mut app, "SELECT items FROM pgrec.models WHERE name = 'shop'");
    // k beyond the catalogue: every item once (none are seen by user 1? the
    // unseen ones), no abort.
    let n = count(&mut app, "SELECT count(*) FROM recommend(ARRAY[1]::bigint[], 2147483647, 'shop')");
    let seen = count(&mut app, "SELECT count(DISTINCT item_id) FROM trainer.clicks WHERE user_id = 1");
    assert_eq!(n, items - seen);
    let n = count(
        &mut app,
        "SELECT count(*) FROM recommend(ARRAY(SELECT generate_series(1, 300)::bigint), 5000000, 'shop')",
    );
    // 40 known users get their unseen items, 260 unknown ones every item.
    let known = count(
        &mut app,
        &format!(
            "SELECT sum({items} - n)::int8 FROM (SELECT count(DISTINCT item_id) n FROM trainer.clicks GROUP BY user_id) s"
        ),
    );
    assert_eq!(n, known + 260 * items);
    assert_eq!(count(&mut app, "SELECT count(*) FROM recommend(1, 2147483647, 'shop')"), items - seen);
    app.batch_execute("SET enable_seqscan = off").unwrap();
    let n = count(&mut app, "SELECT count(*) FROM recommend(1, 2147483647, 'cknn')");
    assert!(n > 0 && n <= 60, "{n}");
    assert_eq!(count(&mut app, "SELECT count(*) FROM similar_items(1, 2147483647, 'shop')"), items - 1);
    assert_eq!(count(&mut app, "SELECT count(*) FROM recommend_for_items(ARRAY[1, 2], 2147483647, 'shop')"), items - 2);
    assert_eq!(code(app.query("SELECT * FROM recommend(1, NULL, 'shop')", &[])), SqlState::NULL_VALUE_NOT_ALLOWED);
    assert_eq!(code(app.query("SELECT * FROM recommend(1, 0, 'shop')", &[])), SqlState::INVALID_PARAMETER_VALUE);
    assert_no_restart();
}

#[test]
fn serving_never_runs_sql_text_another_role_wrote() {
    let Some(mut c) = admin() else { return };
    let mut h = connect(HOSTILE);
    // The trojan: a filter that makes its author superuser when a superuser
    // evaluates it.
    h.batch_execute(&format!(
        "CREATE TABLE hostile.items (item_id bigint, emb embedding(4));
         INSERT INTO hostile.items SELECT i, ARRAY[1 + i % 3, i % 5, 1, 1]::real[] FROM generate_series(0, 59) i;
         CREATE FUNCTION hostile.ok() RETURNS boolean LANGUAGE plpgsql AS $$
         BEGIN
             IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
                 EXECUTE 'ALTER ROLE {HOSTILE} SUPERUSER';
             END IF;
             RETURN true;
         END $$;
         SELECT count(*) FROM train('trojan', 'content_knn', 'hostile.clicks',
             item_features => 'SELECT item_id, emb FROM hostile.items WHERE hostile.ok()');
         SELECT grant_model('trojan', 'public');"
    ))
    .unwrap();
    c.batch_execute("SET enable_seqscan = off").unwrap();
    let n = count(&mut c, "SELECT count(*) FROM recommend(1, 3, 'trojan')");
    assert_eq!(n, 3);
    assert!(!is_superuser(&mut c, HOSTILE), "a superuser's recommend() ran the trainer's SQL");
    // The registry holds no SQL text for it to run: the filtered query was
    // not recorded as an index source at all.
    let source: Option<String> =
        c.query_one("SELECT source::text FROM pgrec.model_versions WHERE name = 'trojan'", &[]).unwrap().get(0);
    assert_eq!(source, None);
    assert_no_restart();
}

#[test]
fn content_knn_serves_its_table_through_the_index_with_the_callers_rights() {
    let Some(mut c) = admin() else { return };
    let mut t = connect(TRAINER);
    let source: String =
        c.query_one("SELECT source::text FROM pgrec.model_versions WHERE name = 'cknn'", &[]).unwrap().get(0);
    assert_eq!(source, "trainer.items");
    t.batch_execute(&format!("SELECT grant_model('cknn', '{APP}')")).unwrap();
    let mut app = connect(APP);
    app.batch_execute("SET enable_seqscan = off").unwrap();
    // Granted the model but not the table it ranks: a clear 42501.
    let r = app.query("SELECT * FROM recommend(1, 3, 'cknn')", &[]);
    assert_eq!(code(r), SqlState::INSUFFICIENT_PRIVILEGE);
    t.batch_execute(&format!("GRANT SELECT ON trainer.items TO {APP}")).unwrap();
    assert_eq!(count(&mut app, "SELECT count(*) FROM recommend(1, 3, 'cknn')"), 3);
    assert_no_restart();
}

#[test]
fn shadowed_functions_and_operators_change_nothing_pgrec_runs() {
    let Some(mut c) = admin() else { return };
    let mut h = connect(HOSTILE);
    h.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS shadow;
         CREATE FUNCTION shadow.pg_has_role(name, text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
         CREATE FUNCTION shadow.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
         BEGIN
             IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
                 EXECUTE 'ALTER ROLE {HOSTILE} SUPERUSER';
             END IF;
             RETURN $1 OPERATOR(pg_catalog.=) $2;
         END $$;
         CREATE OPERATOR shadow.= (LEFTARG = text, RIGHTARG = text, FUNCTION = shadow.text_eq);
         GRANT USAGE ON SCHEMA shadow TO PUBLIC;
         GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA shadow TO PUBLIC;"
    ))
    .unwrap();
    // load_encoder's file check: the shadowing pg_has_role would say yes.
    h.batch_execute("SET search_path = shadow, public, pg_catalog").unwrap();
    let r = h.query("SELECT * FROM load_encoder('probe', '/etc')", &[]);
    assert_eq!(code(r), SqlState::INSUFFICIENT_PRIVILEGE);
    // A superuser whose search_path puts the shadowing operator first.
    c.batch_execute("SET search_path = shadow, public, pg_catalog").unwrap();
    c.batch_execute(&format!("SELECT grant_model('shop', '{APP}')")).unwrap();
    assert_eq!(count(&mut c, "SELECT count(*) FROM recommend(1, 3, 'shop')"), 3);
    c.query("SELECT deploy('shop')", &[]).unwrap();
    c.query("SELECT * FROM pgrec.models", &[]).unwrap();
    c.batch_execute("RESET search_path").unwrap();
    assert!(!is_superuser(&mut c, HOSTILE), "pgrec's SQL called an operator from the caller's search_path");
    assert_no_restart();
}

#[test]
fn models_belong_to_their_trainer() {
    let Some(mut c) = admin() else { return };
    let mut t = connect(TRAINER);
    t.batch_execute("SELECT count(*) FROM train('owned', 'popular', 'trainer.clicks')").unwrap();
    let mut h = connect(HOSTILE);
    // Not granted: no use, no change, and nothing in the registry to read.
    for sql in [
        "SELECT * FROM recommend(1, 3, 'owned')",
        "SELECT * FROM similar_items(1, 3, 'owned')",
        "SELECT user_embedding('owned', 1)",
        "SELECT deploy('owned')",
        "SELECT drop_model('owned')",
        "SELECT grant_model('owned', 'public')",
        "SELECT * FROM add_items('owned', 'SELECT 1, ''[1]''::embedding')",
        "SELECT * FROM train('owned', 'popular', 'hostile.clicks')",
        "SELECT evaluate('owned', 'hostile.clicks')",
        "SELECT export_item_embeddings('owned', 'stolen')",
        "SELECT * FROM train('mine', 'kgat', 'hostile.clicks', '{\"pretrain\": \"owned\"}', relations => 'SELECT 1, 2, 3')",
        "SELECT count(*) FROM pgrec.model_versions",
        "SELECT count(*) FROM pgrec.model_acl",
        "SELECT rollback_model('owned')",
        "SELECT deploy_challenger('owned', 1, 0.5)",
        "SELECT stop_challenger('owned')",
        "SELECT served_version('owned', 1)",
        "SELECT * FROM update_model('owned', 'hostile.clicks')",
        "SELECT prune_versions('owned')",
        "SELECT count(*) FROM pgrec.deployment_log",
    ] {
        let r = h.query(sql, &[]);
        assert_eq!(code(r), SqlState::INSUFFICIENT_PRIVILEGE, "{sql}");
    }
    // train() refuses before reading: a table the hostile role cannot read
    // would otherwise raise its own 42501 about the table.
    let m = message(h.query("SELECT * FROM train('owned', 'popular', 'trainer.clicks')", &[]));
    assert_eq!(m, "must be owner of model \"owned\"");
    let visible = count(&mut h, "SELECT count(*) FROM pgrec.models WHERE name IN ('owned', 'cknn')");
    assert_eq!(visible, 0);
    let history = count(&mut h, "SELECT count(*) FROM pgrec.deployments WHERE name IN ('owned', 'cknn')");
    assert_eq!(history, 0);
    // Granted: used, still not changed; revoked: gone again.
    t.batch_execute(&format!("SELECT grant_model('owned', '{HOSTILE}')")).unwrap();
    assert_eq!(count(&mut h, "SELECT count(*) FROM recommend(1, 3, 'owned')"), 3);
    // Granting twice lists the role once; a role dropped after its grant
    // leaves the list at the next change, so its OID can never stand for
    // another role.
    t.batch_execute(&format!("SELECT grant_model('owned', '{HOSTILE}')")).unwrap();
    c.batch_execute("DROP ROLE IF EXISTS sec_gone; CREATE ROLE sec_gone").unwrap();
    t.batch_execute("SELECT grant_model('owned', 'sec_gone')").unwrap();
    let readers = "SELECT readers::text FROM pgrec.model_acl WHERE name = 'owned'";
    let listed: String = c.query_one(readers, &[]).unwrap().get(0);
    assert_eq!(listed, format!("{{{HOSTILE},sec_gone}}"));
    c.batch_execute("DROP ROLE sec_gone").unwrap();
    assert_eq!(count(&mut h, "SELECT count(*) FROM pgrec.models WHERE name = 'owned'"), 1);
    assert_eq!(code(h.query("SELECT deploy('owned')", &[])), SqlState::INSUFFICIENT_PRIVILEGE);
    t.batch_execute(&format!("SELECT revoke_model('owned', '{HOSTILE}')")).unwrap();
    assert_eq!(code(h.query("SELECT * FROM recommend(1, 3, 'owned')", &[])), SqlState::INSUFFICIENT_PRIVILEGE);
    let listed: String = c.query_one(readers, &[]).unwrap().get(0);
    assert_eq!(listed, "{}");
    // Members of the owner role act as the owner; superusers may do anything.
    c.batch_execute(&format!("GRANT {TRAINER} TO {APP}")).unwrap();
    let mut app = connect(APP);
    assert_eq!(count(&mut app, "SELECT deploy('owned')::int8"), 1);
    c.batch_execute(&format!("REVOKE {TRAINER} FROM {APP}")).unwrap();
    assert_eq!(count(&mut c, "SELECT deploy('owned')::int8"), 1);
    let owner: String = c.query_one("SELECT owner::text FROM pgrec.models WHERE name = 'owned'", &[]).unwrap().get(0);
    assert_eq!(owner, TRAINER);
    assert_eq!(count(&mut t, "SELECT drop_model('owned')::int8"), 1);
    assert_eq!(count(&mut c, "SELECT count(*) FROM pgrec.model_acl WHERE name = 'owned'"), 0);
    assert_no_restart();
}

#[test]
fn distributing_the_registry_is_for_superusers_on_citus() {
    let Some(mut c) = admin() else { return };
    let mut h = connect(HOSTILE);
    let sql = "SELECT pgrec.distribute_models()";
    assert_eq!(message(h.query(sql, &[])), "permission denied to distribute pgrec's model registry");
    assert_eq!(code(h.query(sql, &[])), SqlState::INSUFFICIENT_PRIVILEGE);
    // This cluster has no Citus (scripts/citus-test.sh checks the real thing).
    assert_eq!(message(c.query(sql, &[])), "extension \"citus\" is not installed in this database");
    assert_eq!(code(c.query(sql, &[])), SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE);
    assert_no_restart();
}

#[test]
fn training_memory_is_estimated_and_bounded_before_allocating() {
    let Some(mut c) = admin() else { return };
    let mut t = connect(TRAINER);
    t.batch_execute(
        "CREATE TABLE IF NOT EXISTS trainer.kg AS
             SELECT i AS head, 'r' || (i % 1000) AS relation, 1000 + i AS tail FROM generate_series(0, 2999) i",
    )
    .unwrap();
    let began = Instant::now();
    let r = t.query(
        "SELECT * FROM train('huge', 'kgat', 'trainer.clicks', '{\"factors\": 1024, \"relation_dim\": 1024, \"layers\": [8]}',
             relations => 'trainer.kg')",
        &[],
    );
    let m = message(r);
    assert!(
        m.starts_with("training kgat would need about ") && m.ends_with("more than pgrec.max_train_memory (4096 MB)"),
        "{m}"
    );
    assert!(began.elapsed() < Duration::from_secs(20), "{:?}", began.elapsed());
    assert_eq!(code(t.query("SET pgrec.max_train_memory = '64GB'", &[])), SqlState::INSUFFICIENT_PRIVILEGE);
    assert_eq!(count(&mut c, "SELECT count(*) FROM pgrec.model_versions WHERE name = 'huge'"), 0);
    assert_no_restart();
}

#[test]
fn diverged_trainings_stop_with_an_error_and_store_nothing() {
    let Some(mut c) = admin() else { return };
    let mut t = connect(TRAINER);
    let m = message(t.query(
        "SELECT * FROM train('nan', 'bpr', 'trainer.clicks', '{\"learning_rate\": 10, \"iterations\": 20}')",
        &[],
    ));
    assert!(m.starts_with("bpr training diverged: "), "{m}");
    t.batch_execute("CREATE TABLE IF NOT EXISTS trainer.heavy AS SELECT user_id, item_id, CASE WHEN item_id % 2 = 0 THEN 3e38 ELSE 1 END::real AS weight FROM trainer.clicks").unwrap();
    for algorithm in ["als", "mf"] {
        let r = t.query(
            &format!("SELECT * FROM train('nan', '{algorithm}', 'trainer.heavy', '{{\"iterations\": 3}}')"),
            &[],
        );
        assert_eq!(code(r), SqlState::NUMERIC_VALUE_OUT_OF_RANGE, "{algorithm}");
    }
    assert_eq!(count(&mut c, "SELECT count(*) FROM pgrec.model_versions WHERE name = 'nan'"), 0);
    // A timestamp column of the wrong type is named, not a raw 42883.
    let r = t.query(
        "SELECT * FROM train('ts', 'bpr', 'SELECT user_id, item_id, user_id::text AS ts FROM trainer.clicks', ts_column => 'ts')",
        &[],
    );
    let m = message(r);
    assert_eq!(m, "column \"ts\" (ts) must be an integer, date, timestamp or timestamptz, not text");
    // Rows beyond what pgrec.max_train_memory can hold are refused before
    // they are copied.
    c.batch_execute("SET pgrec.max_train_memory = 16").unwrap();
    let r = c.query(
        "SELECT * FROM train('rows', 'popular', 'SELECT 1 AS user_id, i AS item_id FROM generate_series(1, 200000) i')",
        &[],
    );
    assert_eq!(
        message(r),
        "200000 rows of interactions would need about 19 MB, more than pgrec.max_train_memory (16 MB)"
    );
    c.batch_execute("RESET pgrec.max_train_memory").unwrap();
    assert_no_restart();
}

#[test]
fn another_sessions_drop_and_retrain_is_seen_at_once() {
    let Some(mut c) = admin() else { return };
    let mut t = connect(TRAINER);
    t.batch_execute(
        "CREATE TABLE IF NOT EXISTS trainer.a AS SELECT u AS user_id, 1 + (u % 2) AS item_id FROM generate_series(1, 9) u;
         CREATE TABLE IF NOT EXISTS trainer.b AS SELECT u AS user_id, 7 AS item_id FROM generate_series(1, 9) u;
         SELECT count(*) FROM train('fresh', 'popular', 'trainer.a', '{\"test_fraction\": 0}')",
    )
    .unwrap();
    let top =
        |c: &mut Client| -> i64 { c.query_one("SELECT item_id FROM recommend(100, 1, 'fresh')", &[]).unwrap().get(0) };
    assert_eq!(top(&mut t), 2);
    c.batch_execute("SELECT drop_model('fresh'); SELECT count(*) FROM train('fresh', 'popular', 'trainer.b', '{\"test_fraction\": 0}')")
        .unwrap();
    c.batch_execute(&format!("SELECT grant_model('fresh', '{TRAINER}')")).unwrap();
    // Same name, version 1 again, other items: the open session sees it.
    assert_eq!(top(&mut t), 7);
    assert_no_restart();
}

#[test]
fn serving_functions_work_in_parallel_plans() {
    let Some(mut c) = admin() else { return };
    let clip = clip_copy("parallel", |_| {});
    c.execute("SELECT * FROM load_encoder('par_enc', $1)", &[&clip]).unwrap();
    c.batch_execute(
        "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
         SET max_parallel_workers_per_gather = 2; SET enable_seqscan = on",
    )
    .unwrap();
    // The leader runs these functions while the plan's workers scan: the
    // whole statement is in parallel mode. (Restricted functions in a
    // filter keep the planner from a parallel plan at all: run for errors.)
    for (sql, parallel) in [
        ("SELECT count(*) FROM trainer.clicks t JOIN recommend(1, 50, 'shop') r ON t.item_id = r.item_id", true),
        ("SELECT count(*) FROM trainer.clicks t JOIN similar_items(1, 50, 'shop') r ON t.item_id = r.item_id", true),
        (
            "SELECT count(*) FROM trainer.clicks t JOIN recommend(ARRAY[1, 2], 50, 'shop') r ON t.item_id = r.item_id",
            true,
        ),
        (
            "SELECT count(*) FROM trainer.clicks t JOIN recommend_for_items(ARRAY[1], 50, 'shop') r ON t.item_id = r.item_id",
            true,
        ),
        ("SELECT count(*) FROM trainer.clicks t JOIN pgrec.models m ON m.name = 'shop'", true),
        ("SELECT count(*) FROM trainer.clicks t JOIN recommend(1, 50, 'cknn') r ON t.item_id = r.item_id", true),
        ("SELECT count(*) FROM trainer.clicks t JOIN unnest(tokenize('par_enc', 'a red shoe')) w ON true", true),
        (
            "SELECT count(*) FROM trainer.clicks t JOIN unnest(embed_text('par_enc', ARRAY['a red shoe'])) e ON true",
            true,
        ),
        ("SELECT count(*) FROM trainer.clicks t WHERE user_embedding('shop', t.user_id) IS NOT NULL", false),
        ("SELECT count(*) FROM trainer.clicks t WHERE item_embedding('shop', t.item_id) IS NOT NULL", false),
    ] {
        let plan: Vec<String> =
            c.query(&format!("EXPLAIN {sql}"), &[]).unwrap().iter().map(|r| r.get::<_, String>(0)).collect();
        assert!(!parallel || plan.iter().any(|l| l.contains("Gather")), "not a parallel plan: {plan:?}");
        let n = count(&mut c, sql);
        assert!(n > 0, "{sql}");
    }
    let _ = std::fs::remove_dir_all(clip);
    assert_no_restart();
}

#[test]
fn guard_settings_are_for_superusers_and_the_prefix_is_reserved() {
    let Some(mut c) = admin() else { return };
    let mut h = connect(HOSTILE);
    // Settings are checked once the library is loaded in the session (a
    // value set before that is dropped with a warning when it loads).
    h.batch_execute("SELECT dims('[1]'::embedding)").unwrap();
    for s in
        ["pgrec.max_image_pixels = 2000000000", "pgrec.encoder_cache_mb = 100000", "pgrec.max_train_memory = '1TB'"]
    {
        assert_eq!(code(h.query(&format!("SET {s}"), &[])), SqlState::INSUFFICIENT_PRIVILEGE, "{s}");
    }
    // Any role may ask for threads; no more than the cores are started.
    h.batch_execute(
        "SET pgrec.threads = 1024;
         SELECT count(*) FROM train('h_threads', 'bpr', 'hostile.clicks', '{\"iterations\": 2}')",
    )
    .unwrap();
    assert_eq!(count(&mut h, "SELECT count(*) FROM recommend(ARRAY[1, 2, 3]::bigint[], 2, 'h_threads')"), 6);
    assert_eq!(code(h.query("SET pgrec.no_such_setting = 1", &[])), SqlState::INVALID_NAME);
    c.batch_execute("SET pgrec.max_image_pixels = 1000").unwrap();
    // An error raised inside pgrec's SPI reaches the client without the Rust
    // backtrace pgrx would attach (the test cluster runs with RUST_BACKTRACE=1).
    let e = h.query("SELECT * FROM train('bt', 'bpr', 'SELECT 1 / 0 AS user_id, 1 AS item_id')", &[]).unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code(), &SqlState::DIVISION_BY_ZERO);
    assert!(db.detail().is_none_or(|d| !d.contains("pgrx") && !d.contains(".rs:")), "{:?}", db.detail());
    assert_no_restart();
}

/// A copy of the tiny CLIP fixture the server can read, with `edit` applied
/// to its config.json.
fn clip_copy(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip");
    let dir = std::env::temp_dir().join(format!("pgrec-security-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["model.safetensors", "tokenizer.json", "preprocessor_config.json", "config.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(dir.join("config.json"), serde_json::to_vec(&config).unwrap()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for p in [dir.clone()].into_iter().chain(std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path())) {
        let mode = if p.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    dir.to_string_lossy().into_owned()
}

#[test]
fn encoders_honour_cancel_and_read_only_what_the_model_can_use() {
    let Some(mut c) = admin() else { return };
    let minilm = std::env::var("PGREC_MINILM_DIR").expect("PGREC_MINILM_DIR (scripts/test.sh sets it)");
    c.execute("SELECT * FROM load_encoder('sec_minilm', $1)", &[&minilm]).unwrap();
    let mut t = connect(TRAINER);
    // The session reads the stored model once (tens of MB, seconds on a busy
    // machine) before any timing below starts.
    t.query_one("SELECT dims(embed_text('sec_minilm', 'warm'))", &[]).unwrap();
    t.batch_execute("SET statement_timeout = '2s'").unwrap();
    let began = Instant::now();
    let r = t
        .query("SELECT embed_text('sec_minilm', ARRAY(SELECT repeat('word ', 200) FROM generate_series(1, 600)))", &[]);
    assert_eq!(code(r), SqlState::QUERY_CANCELED);
    assert!(began.elapsed() < Duration::from_secs(8), "{:?}", began.elapsed());
    // 16 MB of text: only what 256 tokens can span is tokenized.
    let began = Instant::now();
    let dims: i32 =
        t.query_one("SELECT dims(embed_text('sec_minilm', repeat('lorem ipsum ', 1400000)))", &[]).unwrap().get(0);
    assert_eq!(dims, 384);
    assert!(began.elapsed() < Duration::from_secs(2), "{:?}", began.elapsed());
    // Counting every token of it is interruptible.
    let began = Instant::now();
    match t.query_one("SELECT token_count('sec_minilm', repeat('lorem ipsum ', 1400000))", &[]) {
        Ok(row) => assert_eq!(row.get::<_, i32>(0), 2 + 2 * 1_400_000),
        Err(e) => assert_eq!(common::sqlstate(&e), SqlState::QUERY_CANCELED),
    }
    assert!(began.elapsed() < Duration::from_secs(8), "{:?}", began.elapsed());
    // Only its loader (or a superuser) may replace or drop an encoder.
    let mut h = connect(HOSTILE);
    assert_eq!(code(h.query("SELECT drop_encoder('sec_minilm')", &[])), SqlState::INSUFFICIENT_PRIVILEGE);
    assert_no_restart();
}

#[test]
fn encoder_configs_are_checked_at_load_and_caches_follow_reloads() {
    let Some(mut c) = admin() else { return };
    let bad = clip_copy("zero-heads", |cfg| cfg["text_config"]["num_attention_heads"] = 0.into());
    let m = message(c.query("SELECT * FROM load_encoder('sec_bad', $1)", &[&bad]));
    assert!(m.contains("num_attention_heads is 0"), "{m}");
    assert_eq!(code(c.query("SELECT * FROM load_encoder('sec_bad', $1)", &[&bad])), SqlState::INVALID_PARAMETER_VALUE);
    let clip = clip_copy("plain", |_| {});
    let minilm = std::env::var("PGREC_MINILM_DIR").expect("PGREC_MINILM_DIR (scripts/test.sh sets it)");
    c.execute("SELECT * FROM load_encoder('sec_swap', $1)", &[&minilm]).unwrap();
    let mut t = connect(TRAINER);
    let dims = |t: &mut Client| -> i32 {
        t.query_one("SELECT dims(embed_text('sec_swap', 'a red shoe'))", &[]).unwrap().get(0)
    };
    assert_eq!(dims(&mut t), 384);
    // Dropped and loaded again under the same name from another session.
    c.execute("SELECT drop_encoder('sec_swap')", &[]).unwrap();
    c.execute("SELECT * FROM load_encoder('sec_swap', $1)", &[&clip]).unwrap();
    let clip_dims: i32 = c.query_one("SELECT dims FROM pgrec.encoders WHERE name = 'sec_swap'", &[]).unwrap().get(0);
    assert_ne!(clip_dims, 384);
    assert_eq!(dims(&mut t), clip_dims);
    let _ = std::fs::remove_dir_all(bad);
    let _ = std::fs::remove_dir_all(clip);
    assert_no_restart();
}

/// Values to try for an argument of SQL type `ty`: NULL, empties, extremes,
/// NaN and infinities, huge inputs, wrong shapes.
fn extremes(ty: &str) -> Vec<&'static str> {
    let mut v = vec!["NULL"];
    v.extend(match ty {
        "bigint" => vec!["0", "-1", "9223372036854775807", "-9223372036854775808"],
        "integer" => vec!["0", "-1", "2147483647", "-2147483648", "100000"],
        "boolean" => vec!["true", "false"],
        "text" => vec![
            "''",
            "'nope'",
            "repeat('x', 100000)",
            "'SELECT 1'",
            "'trainer.clicks'",
            "'pg_catalog.pg_authid'",
            "'\"'",
        ],
        "jsonb" => vec![
            "'{}'",
            "'[]'",
            "'null'",
            "'{\"factors\": 1000000000}'",
            "'{\"factors\": 1024, \"iterations\": 10000}'",
            "'{\"iterations\": -1}'",
            "'{\"learning_rate\": 1e308}'",
            "'{\"unknown\": 1}'",
            "'{\"layers\": [1024, 1024, 1024, 1024, 1024, 1024, 1024, 1024], \"factors\": 1024}'",
        ],
        "bigint[]" => {
            vec!["'{}'", "'{NULL}'", "ARRAY[9223372036854775807]", "ARRAY(SELECT generate_series(1, 200000))::bigint[]"]
        }
        "text[]" => {
            vec!["'{}'", "'{NULL}'", "ARRAY[repeat('a b ', 20000)]", "ARRAY(SELECT 'x' FROM generate_series(1, 5000))"]
        }
        "embedding" => vec!["'[0,0,0,0]'", "'[1]'", "'[3e38,3e38,3e38,3e38]'", "'[-3e38,3e38,-3e38,3e38]'"],
        "embedding[]" => vec!["'{}'", "ARRAY['[1]'::embedding, '[1,2]']"],
        "double precision[]" => {
            vec!["'{}'", "'{NaN}'", "'{Infinity,1,2}'", "'{0,0,0}'", "'{1e308,1e308}'", "'{{1,2},{3,4}}'", "'{NULL,1}'"]
        }
        "real[]" | "numeric[]" | "integer[]" => {
            vec!["'{}'", "'{NULL}'", "'{1,NULL}'", "'{{1,2},{3,4}}'", "ARRAY(SELECT 1 FROM generate_series(1, 16001))"]
        }
        "bytea" => vec!["''", "'\\x00'", "'\\x89504e470d0a1a0a'", "decode(repeat('ff', 100000), 'hex')"],
        "bytea[]" => vec!["'{}'", "ARRAY[''::bytea]"],
        "cstring" => vec!["''", "'['", "'[1e99]'", "'[NaN]'", "'[1,2'", "repeat('1,', 20000)"],
        "cstring[]" => vec!["'{}'", "'{abc}'", "'{-1}'", "'{99999999999}'", "'{1,2}'"],
        "oid" => vec!["0", "4294967295"],
        "regrole" => vec!["0", "'postgres'"],
        "regrole[]" => vec!["'{}'", "ARRAY[0::oid::regrole]"],
        _ => vec![],
    });
    v
}

/// A value of type `ty` for argument `name` that the call might accept.
fn usual(name: &str, ty: &str) -> &'static str {
    match (name, ty) {
        ("model" | "name", _) => "'sweep'",
        ("algorithm", _) => "'bpr'",
        ("interactions" | "test", _) => "'trainer.clicks'",
        ("encoder", _) => "'sweep_enc'",
        ("params", _) => "'{\"iterations\": 1}'",
        ("search", _) => "'{\"factors\": [4, 8]}'",
        ("template", _) => "'a photo of a {}'",
        ("path", _) => "'/nonexistent'",
        ("target", _) => "'sweep_export'",
        ("role", _) => "'public'",
        ("user_column", _) => "'user_id'",
        ("item_column", _) => "'item_id'",
        (_, "text") => "'hello'",
        (_, "bigint") => "1",
        (_, "integer") => "2",
        (_, "boolean") => "false",
        (_, "embedding") => "'[1,2,3,4]'",
        (_, "double precision[]") => "'{1,1,2,3,4}'",
        (_, "real[]" | "numeric[]" | "integer[]") => "'{1,2,3,4}'",
        (_, "bigint[]") => "'{1,2}'",
        (_, "text[]") => "'{cat,dog}'",
        (_, "bytea") => "'\\x00'",
        (_, "cstring") => "'[1,2]'",
        (_, "cstring[]") => "'{4}'",
        (_, "oid") => "0",
        (_, "regrole") => "'postgres'",
        (_, "regrole[]") => "'{}'",
        _ => "NULL",
    }
}

#[test]
fn every_function_answers_bad_input_with_an_error_or_a_result() {
    let Some(mut c) = admin() else { return };
    let clip = clip_copy("sweep", |_| {});
    c.execute("SELECT * FROM load_encoder('sweep_enc', $1)", &[&clip]).unwrap();
    c.batch_execute(&format!("SELECT grant_model('shop', '{TRAINER}')")).unwrap();
    let functions: Vec<(String, Vec<(String, String)>)> = c
        .query(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname), coalesce((SELECT array_agg(coalesce(p.proargnames[i], 'arg' || i) ORDER BY i)
                                         FROM generate_series(1, p.pronargs) i), '{}'),
                    coalesce((SELECT array_agg(format_type(p.proargtypes[i - 1], NULL) ORDER BY i)
                              FROM generate_series(1, p.pronargs) i), '{}')
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
             JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'pgrec'
             WHERE p.prokind = 'f' AND NOT 'internal'::regtype = ANY (p.proargtypes::oid[])
             ORDER BY p.proname IN ('drop_model', 'drop_encoder'), 1, 2",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| {
            let names: Vec<String> = r.get(1);
            let types: Vec<String> = r.get(2);
            (r.get(0), names.into_iter().zip(types).collect())
        })
        .collect();
    assert!(functions.len() >= 50, "{} functions", functions.len());
    let mut t = connect(TRAINER);
    let mut failures = Vec::new();
    let (mut calls, mut ok) = (0, 0);
    for (f, args) in &functions {
        for (k, (_, ty)) in args.iter().enumerate() {
            for value in extremes(ty) {
                let list: Vec<String> = args
                    .iter()
                    .enumerate()
                    .map(|(j, (n, ty))| format!("{}::{ty}", if j == k { value } else { usual(n, ty) }))
                    .collect();
                let sql = format!("SELECT count(*) FROM (SELECT {f}({})) s", list.join(", "));
                calls += 1;
                let _ = t.batch_execute(
                    "SET statement_timeout = '5s'; SELECT count(*) FROM (SELECT 1 WHERE NOT EXISTS
                       (SELECT 1 FROM pgrec.models WHERE name = 'sweep')) s,
                       LATERAL train('sweep', 'bpr', 'trainer.clicks', '{\"iterations\": 1, \"factors\": 4}') t",
                );
                match t.batch_execute(&sql) {
                    Ok(()) => ok += 1,
                    Err(e) => match e.code() {
                        Some(code) if *code == SqlState::INTERNAL_ERROR => failures.push(format!("{sql}: XX000 {e}")),
                        Some(code) => {
                            if std::env::var("SWEEP_DEBUG").is_ok() {
                                eprintln!("{} {sql}: {e}", code.code());
                            }
                        }
                        None => {
                            failures.push(format!("{sql}: connection lost: {e}"));
                            t = connect(TRAINER);
                        }
                    },
                }
            }
        }
    }
    eprintln!("{calls} calls over {} functions, {ok} answered with a result", functions.len());
    assert!(failures.is_empty(), "{} of {calls} calls failed:\n{}", failures.len(), failures.join("\n"));
    let _ = std::fs::remove_dir_all(clip);
    assert_no_restart();
}
