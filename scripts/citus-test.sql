-- The checks of scripts/citus-test.sh, run on the coordinator; each failure
-- raises an error naming what differed (ON_ERROR_STOP ends the run there).
-- Query results are not the output; the checks raise errors and the NOTICEs report.
\o /dev/null
SET client_min_messages = warning;
DROP TABLE IF EXISTS ct_items, ct_local, ct_queries, ct_clicks, ct_users, ct_seen CASCADE;
DROP FUNCTION IF EXISTS ct_answers, ct_pushed_count, ct_expect_refused, ct_expect_setting;
-- A fresh pgrec each run: the checks below distribute its model registry.
DROP EXTENSION IF EXISTS pgrec CASCADE;
CREATE EXTENSION pgrec;

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

-- train() on the coordinator reads a distributed interactions table, as a
-- role that is not a superuser; the roles' OIDs differ between the nodes
-- (the workers' OID counters are moved on first), as they do in practice.
DROP ROLE IF EXISTS ct_trainer;
DROP ROLE IF EXISTS ct_reader;
SELECT run_command_on_workers($c$SELECT count(pg_catalog.lo_unlink(pg_catalog.lo_create(0))) FROM generate_series(1, 50)$c$);
CREATE ROLE ct_trainer LOGIN;  -- Citus connects to the workers as the role itself
CREATE ROLE ct_reader LOGIN;
CREATE TABLE ct_clicks (user_id bigint, item_id bigint);
SELECT create_distributed_table('ct_clicks', 'user_id');
INSERT INTO ct_clicks SELECT u, (u * 7 + k * 13) % 300 FROM generate_series(1, 500) u, generate_series(1, 12) k;
CREATE TABLE ct_users (id bigint);
SELECT create_distributed_table('ct_users', 'id', colocate_with => 'ct_clicks');
INSERT INTO ct_users SELECT generate_series(1, 500);
GRANT SELECT ON ct_clicks, ct_users TO ct_trainer, ct_reader;

SET ROLE ct_trainer;
-- Two versions that rank differently; version 2 deployed.
SELECT count(*) FROM train('ct_shop', 'bpr', 'ct_clicks', '{"factors": 8, "seed": 1}');
SELECT count(*) FROM train('ct_shop', 'als', 'ct_clicks', '{"factors": 16, "seed": 2}');
SELECT deploy('ct_shop', 2);
DO $$
BEGIN
    IF (SELECT count(*) FROM recommend(3, 5, 'ct_shop')) <> 5 THEN
        RAISE EXCEPTION 'recommend() after training on a distributed table did not return 5 rows';
    END IF;
END $$;
RESET ROLE;

-- The registry becomes reference tables; a second call says so and does nothing.
DO $$
BEGIN
    IF NOT pgrec.distribute_models() OR pgrec.distribute_models() THEN
        RAISE EXCEPTION 'pgrec.distribute_models() did not distribute once, then report it done';
    END IF;
    IF (SELECT count(*) FROM pg_dist_partition
         WHERE logicalrelid IN ('pgrec.model_acl'::regclass, 'pgrec.model_versions'::regclass)
           AND partmethod = 'n') <> 2 THEN
        RAISE EXCEPTION 'the model registry is not two reference tables';
    END IF;
END $$;

-- Every node holds the owner by name, under its own OID.
DO $$
DECLARE here oid := 'ct_trainer'::regrole; seen text; oids text;
BEGIN
    SELECT string_agg(result, ',') INTO seen FROM run_command_on_workers(
        $c$SELECT owner::text FROM pgrec.model_acl WHERE name = 'ct_shop'$c$);
    IF seen <> 'ct_trainer,ct_trainer' THEN
        RAISE EXCEPTION 'the workers hold model ct_shop''s owner as %', seen;
    END IF;
    SELECT string_agg(result, ',') INTO oids FROM run_command_on_workers($c$SELECT 'ct_trainer'::regrole::oid::text$c$);
    IF oids = here || ',' || here THEN
        RAISE EXCEPTION 'ct_trainer has the same OID (%) on every node: the check above proves nothing', here;
    END IF;
END $$;

-- recommend() inside a query pushed down to the workers, routed by user id,
-- answers as on the coordinator; the plan shows it running on a shard.
CREATE FUNCTION ct_answers(pushed boolean) RETURNS text LANGUAGE plpgsql AS $$
DECLARE got text;
BEGIN
    IF pushed THEN
        SELECT string_agg(r.item_id::text, ',' ORDER BY r.score DESC, r.item_id) INTO got
          FROM ct_users u, LATERAL recommend(u.id, 5, 'ct_shop') r WHERE u.id = 3;
    ELSE
        SELECT string_agg(item_id::text, ',' ORDER BY score DESC, item_id) INTO got FROM recommend(3, 5, 'ct_shop');
    END IF;
    RETURN got;
END $$;
CREATE TABLE ct_seen (what text PRIMARY KEY, answers text);
GRANT ALL ON ct_seen TO ct_trainer;
DO $$
DECLARE n bigint; line text; pushed boolean := false;
BEGIN
    SET LOCAL ROLE ct_trainer;
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF)
        SELECT r.* FROM ct_users u, LATERAL recommend(u.id, 5, ''ct_shop'') r WHERE u.id = 3'
    LOOP
        pushed := pushed OR line LIKE '%Function Scan on recommend%';
    END LOOP;
    IF NOT pushed THEN
        RAISE EXCEPTION 'recommend() is not in the plan of a shard';
    END IF;
    IF ct_answers(true) IS DISTINCT FROM ct_answers(false) THEN
        RAISE EXCEPTION 'version 2 on a worker answers [%], on the coordinator [%]', ct_answers(true), ct_answers(false);
    END IF;
    INSERT INTO ct_seen VALUES ('v2', ct_answers(false));
    -- Every user, on whichever shard holds them.
    SELECT count(*) INTO n FROM ct_users u, LATERAL recommend(u.id, 5, 'ct_shop') r;
    IF n <> 2500 THEN
        RAISE EXCEPTION 'recommend() for all 500 users across the shards returned % rows', n;
    END IF;
END $$;

-- A deploy on the coordinator reaches the workers when it commits: inside
-- its transaction the workers still serve the committed version, and a
-- rollback leaves them with it.
SET ROLE ct_trainer;
BEGIN;
SELECT deploy('ct_shop', 1);
INSERT INTO ct_seen VALUES ('v1 in the deploying transaction, coordinator', ct_answers(false)),
                           ('v1 in the deploying transaction, worker', ct_answers(true));
ROLLBACK;
INSERT INTO ct_seen VALUES ('after the rollback, worker', ct_answers(true));
SELECT deploy('ct_shop', 1);
INSERT INTO ct_seen VALUES ('v1, coordinator', ct_answers(false)), ('v1, worker', ct_answers(true));
RESET ROLE;
DO $$
DECLARE v2 text := (SELECT answers FROM ct_seen WHERE what = 'v2');
        v1 text := (SELECT answers FROM ct_seen WHERE what = 'v1, coordinator');
BEGIN
    IF v1 = v2 THEN
        RAISE EXCEPTION 'versions 1 and 2 answer alike ([%]): the deploy checks prove nothing', v1;
    END IF;
    IF (SELECT answers FROM ct_seen WHERE what = 'v1, worker') IS DISTINCT FROM v1 THEN
        RAISE EXCEPTION 'after deploying version 1 a worker answers [%], the coordinator [%]',
            (SELECT answers FROM ct_seen WHERE what = 'v1, worker'), v1;
    END IF;
    IF (SELECT answers FROM ct_seen WHERE what = 'after the rollback, worker') IS DISTINCT FROM v2 THEN
        RAISE EXCEPTION 'a rolled-back deploy reached a worker';
    END IF;
    IF EXISTS (SELECT FROM ct_seen WHERE what LIKE 'v1 in %') THEN
        RAISE EXCEPTION 'rows of a rolled-back transaction are in ct_seen';
    END IF;
END $$;
-- (The in-transaction answers rolled back with it; checked here instead.)
SET ROLE ct_trainer;
BEGIN;
SELECT deploy('ct_shop', 2);
DO $$
BEGIN
    IF ct_answers(true) IS DISTINCT FROM (SELECT answers FROM ct_seen WHERE what = 'v1, worker') THEN
        RAISE EXCEPTION 'a worker served the deploy of version 2 before it committed';
    END IF;
    IF ct_answers(false) IS DISTINCT FROM (SELECT answers FROM ct_seen WHERE what = 'v2') THEN
        RAISE EXCEPTION 'the coordinator does not serve version 2 inside the transaction that deployed it';
    END IF;
END $$;
ROLLBACK;
RESET ROLE;

-- Grants reach the workers: a reader is refused there until granted, and again after a revoke.
CREATE FUNCTION ct_pushed_count() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM ct_users u, LATERAL recommend(u.id, 5, 'ct_shop') r WHERE u.id = 3
$$;
CREATE FUNCTION ct_expect_refused(why text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ct_pushed_count();
    RAISE EXCEPTION 'ct_reader used model ct_shop on a worker %', why;
EXCEPTION WHEN insufficient_privilege THEN
    NULL;
END $$;
SET ROLE ct_reader;
SELECT ct_expect_refused('before any grant');
RESET ROLE;
SET ROLE ct_trainer;
SELECT grant_model('ct_shop', 'ct_reader');
SET ROLE ct_reader;
DO $$
BEGIN
    IF ct_pushed_count() <> 5 THEN
        RAISE EXCEPTION 'granted ct_reader got % rows on a worker', ct_pushed_count();
    END IF;
    IF (SELECT count(*) FROM pgrec.models WHERE name = 'ct_shop') <> 2 THEN
        RAISE EXCEPTION 'granted ct_reader sees % versions of ct_shop in pgrec.models',
            (SELECT count(*) FROM pgrec.models WHERE name = 'ct_shop');
    END IF;
END $$;
SET ROLE ct_trainer;
SELECT revoke_model('ct_shop', 'ct_reader');
SET ROLE ct_reader;
SELECT ct_expect_refused('after the revoke');
RESET ROLE;

SET ROLE ct_trainer;
SELECT drop_model('ct_shop');
RESET ROLE;
DROP FUNCTION ct_answers, ct_pushed_count, ct_expect_refused;
DROP TABLE ct_items, ct_local, ct_queries, ct_clicks, ct_users, ct_seen;
DROP ROLE ct_trainer;
DROP ROLE ct_reader;
