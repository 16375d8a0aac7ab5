-- The checks of scripts/citus-test.sh, run on the coordinator; each failure
-- raises an error naming what differed (ON_ERROR_STOP ends the run there).
SET client_min_messages = warning;
DROP TABLE IF EXISTS ct_items, ct_local, ct_queries, ct_clicks CASCADE;

-- A 32-dimensional point near the centre of cluster `i % 40`.
SET client_min_messages = error;  -- Citus warns that a temporary function stays on the coordinator: it should.
CREATE FUNCTION pg_temp.point(i int) RETURNS embedding LANGUAGE sql VOLATILE AS $$
    SELECT array_agg(((i % 40) * 0.37 * d % 1.0 + (random() - 0.5) * 0.2)::real ORDER BY d)::embedding
      FROM generate_series(1, 32) d
$$;
SET client_min_messages = warning;

-- 20,000 rows in 40 clusters (deterministic), a category each.
SELECT setseed(0.42);
CREATE TABLE ct_local AS SELECT i AS id, i % 7 AS category, pg_temp.point(i) AS v FROM generate_series(1, 20000) i;
CREATE TABLE ct_items (LIKE ct_local);
-- Two shards, one per worker: each holds 10,000 rows, so its own search is a real one.
SELECT create_distributed_table('ct_items', 'id', shard_count => 2);
INSERT INTO ct_items SELECT * FROM ct_local;
CREATE INDEX ct_local_v ON ct_local USING pgrec_hnsw (v embedding_l2_ops);
CREATE INDEX ct_items_v ON ct_items USING pgrec_hnsw (v embedding_l2_ops);
CREATE TABLE ct_queries AS SELECT q AS qid, pg_temp.point(q) AS v FROM generate_series(1, 50) q;

-- Every shard has the index.
DO $$
DECLARE shards int; indexed int;
BEGIN
    SELECT count(*) INTO shards FROM pg_dist_shard WHERE logicalrelid = 'ct_items'::regclass;
    SELECT count(*) INTO indexed FROM run_command_on_shards('ct_items',
        $c$SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
              JOIN pg_am a ON a.oid = c.relam
            WHERE i.indrelid = '%s'::regclass AND a.amname = 'pgrec_hnsw'$c$) r WHERE r.result = '1';
    IF shards <> 2 OR indexed <> shards THEN
        RAISE EXCEPTION 'pgrec_hnsw index on % of % shards', indexed, shards;
    END IF;
END $$;

-- The nearest-neighbour query runs as an index scan on the shards.
DO $$
DECLARE line text; q text := (SELECT v::text FROM ct_queries WHERE qid = 1);
BEGIN
    FOR line IN EXECUTE format('EXPLAIN (COSTS OFF) SELECT id FROM ct_items ORDER BY v <-> %L::embedding LIMIT 10', q)
    LOOP
        IF line LIKE '%Index Scan using ct_items_v_%' THEN
            RETURN;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'no index scan on the shards in the distributed plan';
END $$;

-- recall@10 of an index over `tbl` at `ef` against exact search (an ORDER BY
-- the index cannot serve), over the 50 queries. SET LOCAL, which Citus sends
-- to the workers under citus.propagate_set_commands = 'local'.
-- (Citus warns that a temporary function stays on the coordinator: it should.)
SET client_min_messages = error;
CREATE FUNCTION pg_temp.recall(tbl regclass, ef int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE q record; hits int; total int := 0;
BEGIN
    EXECUTE format('SET LOCAL pgrec.ef_search = %s', ef);
    FOR q IN SELECT * FROM ct_queries LOOP
        EXECUTE format('SELECT count(*) FROM (SELECT id FROM %s ORDER BY v <-> $1 LIMIT 10) a
                          JOIN (SELECT id FROM %s ORDER BY (v <-> $1) + 0 LIMIT 10) b USING (id)', tbl, tbl)
            INTO hits USING q.v;
        total := total + hits;
    END LOOP;
    RETURN total / (10.0 * (SELECT count(*) FROM ct_queries));
END $$;
SET client_min_messages = warning;

SET citus.propagate_set_commands = 'local';
SET client_min_messages = notice;
DO $$
DECLARE ef int; single float8; dist float8;
BEGIN
    FOREACH ef IN ARRAY ARRAY[10, 40] LOOP
        single := pg_temp.recall('ct_local', ef);
        dist := pg_temp.recall('ct_items', ef);
        RAISE NOTICE 'recall@10 at ef_search %: single node %, distributed %', ef, single, dist;
        IF dist < single - 0.01 THEN
            RAISE EXCEPTION 'distributed recall % below the single node''s % at ef_search %', dist, single, ef;
        END IF;
    END LOOP;
END $$;

SET client_min_messages = warning;

-- pgrec.ef_search reaches the workers: SET LOCAL under propagation, and a
-- database default through ALTER DATABASE (which Citus propagates).
CREATE FUNCTION ct_expect_setting(want text, how text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE seen text[];
BEGIN
    SELECT array_agg(DISTINCT s) INTO seen FROM (SELECT current_setting('pgrec.ef_search') s FROM ct_items) x;
    IF seen IS DISTINCT FROM ARRAY[want] THEN
        RAISE EXCEPTION '% reached the shards as %', how, seen;
    END IF;
END $$;
BEGIN;
SET LOCAL pgrec.ef_search = 55;
SELECT ct_expect_setting('55', 'SET LOCAL pgrec.ef_search = 55');
COMMIT;
ALTER DATABASE pgrec_citus SET pgrec.ef_search = 66;
\c
SET client_min_messages = warning;
SELECT ct_expect_setting('66', 'ALTER DATABASE ... SET pgrec.ef_search = 66');
DROP FUNCTION ct_expect_setting;
ALTER DATABASE pgrec_citus RESET pgrec.ef_search;

-- A filtered search still returns k rows, all of the category.
DO $$
DECLARE n int; bad int;
BEGIN
    SELECT count(*), count(*) FILTER (WHERE category <> 3) INTO n, bad FROM (
        SELECT id, category FROM ct_items WHERE category = 3
         ORDER BY v <-> (SELECT v FROM ct_queries WHERE qid = 2) LIMIT 10) r;
    IF n <> 10 OR bad <> 0 THEN
        RAISE EXCEPTION 'filtered search returned % rows, % of another category', n, bad;
    END IF;
END $$;

-- train() on the coordinator reads a distributed interactions table.
CREATE TABLE ct_clicks (user_id bigint, item_id bigint);
SELECT create_distributed_table('ct_clicks', 'user_id');
INSERT INTO ct_clicks SELECT u, (u * 7 + k * 13) % 300 FROM generate_series(1, 500) u, generate_series(1, 12) k;
SELECT drop_model('ct_shop') FROM pgrec.models WHERE name = 'ct_shop';
DO $$
DECLARE users bigint; got int;
BEGIN
    PERFORM * FROM train('ct_shop', 'als', 'ct_clicks');
    SELECT count(*) INTO got FROM recommend(3, 5, 'ct_shop');
    IF got <> 5 THEN
        RAISE EXCEPTION 'recommend() after training on a distributed table returned % rows', got;
    END IF;
END $$;
SELECT drop_model('ct_shop');
DROP TABLE ct_items, ct_local, ct_queries, ct_clicks;
