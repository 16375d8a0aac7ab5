//! In-process tests run by `cargo pgrx test`: behaviour that needs a live server
//! (storage and typmods, casts, planner paths such as parallel aggregation) and the
//! exact error message for each bad input. Golden SQL tests in `pg_test/` cover the
//! same surface as psql users see it, SQLSTATEs included.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn text(q: &str) -> String {
        Spi::get_one::<String>(q).expect("query failed").expect("query returned NULL")
    }

    fn float(q: &str) -> f64 {
        Spi::get_one::<f64>(q).expect("query failed").expect("query returned NULL")
    }

    #[pg_test]
    fn text_round_trip_and_pgvector_form() {
        assert_eq!(text("SELECT '[1,2.5,-3]'::embedding::text"), "[1,2.5,-3]");
        assert_eq!(text("SELECT ' [ 1 , 2 ] '::embedding::text"), "[1,2]");
        assert_eq!(text("SELECT '[1e20,1e-7,0.1]'::embedding::text"), "[1e20,1e-7,0.1]");
    }

    #[pg_test]
    fn stored_values_survive_toast_and_typmod() {
        Spi::run("CREATE TABLE t (id int, e embedding(3), w embedding)").unwrap();
        Spi::run("INSERT INTO t VALUES (1, '[1,2,3]', NULL), (2, ARRAY[4,5,6], (SELECT array_agg(i)::real[] FROM generate_series(1,4000) i)::embedding)").unwrap();
        assert_eq!(text("SELECT e::text FROM t WHERE id = 2"), "[4,5,6]");
        // 4000 dims = 16 kB: stored out of line (STORAGE external), read back intact.
        assert_eq!(float("SELECT (w::real[])[4000]::float8 FROM t WHERE id = 2"), 4000.0);
        assert_eq!(Spi::get_one::<i32>("SELECT dims(w) FROM t WHERE id = 2").unwrap(), Some(4000));
        assert_eq!(
            text(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'e'"
            ),
            "embedding(3)"
        );
    }

    #[pg_test(error = "expected 3 dimensions, not 4")]
    fn typmod_rejects_wrong_length_on_insert() {
        Spi::run("CREATE TABLE t (e embedding(3))").unwrap();
        Spi::run("INSERT INTO t VALUES ('[1,2,3,4]')").unwrap();
    }

    #[pg_test(error = "expected 2 dimensions, not 3")]
    fn typmod_rejects_wrong_length_from_expression() {
        Spi::run("CREATE TABLE t (e embedding(2))").unwrap();
        Spi::run("INSERT INTO t SELECT '[1,2,3]'::embedding").unwrap();
    }

    #[pg_test(error = "array must not contain nulls (element 2 is null)")]
    fn array_cast_rejects_null_elements() {
        Spi::run("SELECT ARRAY[1,NULL,3]::real[]::embedding").unwrap();
    }

    #[pg_test(error = "different embedding dimensions 2 and 3")]
    fn operators_reject_mixed_dimensions() {
        Spi::run("SELECT '[1,2]'::embedding <-> '[1,2,3]'").unwrap();
    }

    #[pg_test(error = "embedding cannot have more than 16000 dimensions, got 16001")]
    fn arrays_beyond_the_dimension_limit_are_rejected() {
        Spi::run("SELECT array_agg(1)::embedding FROM generate_series(1, 16001)").unwrap();
    }

    #[pg_test]
    fn casts_from_every_array_type_agree() {
        for src in ["ARRAY[1.5,2,3]::real[]", "ARRAY[1.5,2,3]::float8[]", "ARRAY[1.5,2,3]::numeric[]"] {
            assert_eq!(text(&format!("SELECT ({src})::embedding::text")), "[1.5,2,3]", "{src}");
        }
        assert_eq!(text("SELECT ARRAY[1,2,3]::embedding::text"), "[1,2,3]");
        assert_eq!(text("SELECT '[1,2]'::embedding::real[]::text"), "{1,2}");
        assert_eq!(text("SELECT '[1,2]'::embedding::float8[]::text"), "{1,2}");
    }

    #[pg_test]
    fn distances_match_their_definitions() {
        assert_eq!(float("SELECT '[0,0]'::embedding <-> '[3,4]'"), 5.0);
        assert_eq!(float("SELECT '[1,2,3]'::embedding <#> '[4,-5,6]'"), -12.0);
        assert_eq!(float("SELECT inner_product('[1,2,3]', '[4,-5,6]')"), 12.0);
        assert_eq!(float("SELECT '[1,2,3]'::embedding <+> '[4,-5,6]'"), 13.0);
        assert_eq!(float("SELECT '[1,0]'::embedding <=> '[0,1]'"), 1.0);
        assert_eq!(float("SELECT norm('[3,4]')"), 5.0);
    }

    #[pg_test]
    fn parallel_avg_equals_serial_avg() {
        Spi::run(
            "CREATE TABLE p AS SELECT i, ARRAY[i % 7, i % 11, 1]::embedding AS e FROM generate_series(1, 100000) i",
        )
        .unwrap();
        Spi::run("ANALYZE p").unwrap();
        let serial = text("SELECT avg(e)::text FROM p");
        Spi::run("SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0; SET LOCAL min_parallel_table_scan_size = 0; SET LOCAL max_parallel_workers_per_gather = 2").unwrap();
        let plan = text("EXPLAIN (COSTS OFF) SELECT avg(e) FROM p");
        assert!(plan.contains("Partial Aggregate") || plan.contains("Finalize"), "{plan}");
        assert_eq!(text("SELECT avg(e)::text FROM p"), serial);
        assert_eq!(text("SELECT sum(e)::text FROM p WHERE i <= 3"), "[6,6,3]");
        assert_eq!(serial, text("SELECT ARRAY[avg(i % 7), avg(i % 11), 1]::embedding::text FROM p"));
    }

    #[pg_test]
    fn ordering_supports_distinct_group_by_and_btree() {
        Spi::run("CREATE TABLE o (e embedding)").unwrap();
        Spi::run("INSERT INTO o VALUES ('[2,1]'), ('[1,2]'), ('[1,2]'), ('[1]'), ('[1,2,0]')").unwrap();
        assert_eq!(
            text("SELECT string_agg(e::text, ' ' ORDER BY e) FROM (SELECT DISTINCT e FROM o) s"),
            "[1] [1,2] [1,2,0] [2,1]"
        );
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM (SELECT e FROM o GROUP BY e) s").unwrap(), Some(4));
        Spi::run("CREATE INDEX ON o (e)").unwrap();
        assert_eq!(Spi::get_one::<bool>("SELECT '[1,2]'::embedding = '[1,2]'").unwrap(), Some(true));
    }

    #[pg_test]
    fn exact_nearest_neighbours_by_sequential_scan() {
        Spi::run("CREATE TABLE items (id int, emb embedding(2))").unwrap();
        Spi::run("INSERT INTO items SELECT i, ARRAY[cos(i), sin(i)] FROM generate_series(1, 1000) i").unwrap();
        // Direction of item 17; its cosine neighbours are the angles closest mod 2π.
        let got = text(
            "SELECT string_agg(id::text, ',') FROM (SELECT id FROM items ORDER BY emb <=> ARRAY[cos(17), sin(17)]::embedding LIMIT 3) s",
        );
        let want = text(
            "SELECT string_agg(id::text, ',') FROM (SELECT i AS id FROM generate_series(1, 1000) i ORDER BY 1 - cos(i - 17) LIMIT 3) s",
        );
        assert_eq!(got, want);
    }

    /// The per-backend encoder cache: one load per connection, reloaded after
    /// re-registration, and bounded by pgrec.encoder_cache_mb (the encoder in
    /// use always stays).
    #[pg_test]
    fn encoder_cache_is_bounded_and_follows_the_registry() {
        use crate::catalog::encoders::cached_names;
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-clip");
        for name in ["clip_a", "clip_b"] {
            Spi::run(&format!("SELECT * FROM load_encoder('{name}', '{dir}')")).unwrap();
        }
        let embed = |name: &str| {
            Spi::get_one::<i32>(&format!("SELECT dims(embed_text('{name}', 'a photo of a cat'))")).unwrap()
        };
        assert_eq!(embed("clip_a"), Some(16));
        assert_eq!(embed("clip_b"), Some(16));
        assert_eq!(cached_names(), vec!["clip_a", "clip_b"], "1 GB holds both");
        assert_eq!(embed("clip_a"), Some(16));
        assert_eq!(cached_names(), vec!["clip_b", "clip_a"], "most recently used last");
        // The tiny model is 0.2 MB: a 0 MB cap keeps only the encoder in use.
        Spi::run("SET pgrec.encoder_cache_mb = 0").unwrap();
        assert_eq!(embed("clip_b"), Some(16));
        assert_eq!(cached_names(), vec!["clip_b"]);
        // Re-registering under the same name drops the loaded copy.
        Spi::run(&format!("SELECT * FROM load_encoder('clip_b', '{dir}')")).unwrap();
        assert!(cached_names().is_empty());
        Spi::run("SELECT drop_encoder('clip_a'), drop_encoder('clip_b')").unwrap();
    }
}
