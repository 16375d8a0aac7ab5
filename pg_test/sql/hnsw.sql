-- The pgrec_hnsw index: planner use, agreement with exact search, iterative
-- scans under filters, inserts, VACUUM, NULLs, unlogged tables, REINDEX and
-- CONCURRENTLY, and the exact error for each bad option or input. Its tables
-- live in a schema of their own, apart from the other tests' tables.
CREATE SCHEMA hnsw_test;
SET search_path = hnsw_test, public;

-- knn_check(query) runs a k-NN query with the index forced and with it disabled
-- and says whether the ids agree; on disagreement it shows both lists.
CREATE FUNCTION knn_check(q text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE a int[]; b int[];
BEGIN
    SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = on; SET LOCAL enable_bitmapscan = off;
    EXECUTE format('SELECT array_agg(id) FROM (%s) s', q) INTO a;
    SET LOCAL enable_seqscan = on; SET LOCAL enable_indexscan = off;
    EXECUTE format('SELECT array_agg(id) FROM (%s) s', q) INTO b;
    RESET enable_seqscan; RESET enable_indexscan; RESET enable_bitmapscan;
    RETURN CASE WHEN a = b THEN 'identical, ' || cardinality(a) || ' rows' ELSE 'index ' || a::text || ' / exact ' || b::text END;
END $f$;

-- A tiny table, small enough that ef_search covers it: the index is exact.
CREATE TABLE tiny (id int PRIMARY KEY, e embedding(3));
INSERT INTO tiny SELECT i, ARRAY[sin(i) * 2, cos(i * 1.3), (i % 5) - 2]::real[] FROM generate_series(1, 30) i;
CREATE INDEX tiny_l2 ON tiny USING pgrec_hnsw (e embedding_l2_ops);
CREATE INDEX tiny_cos ON tiny USING pgrec_hnsw (e embedding_cosine_ops);
CREATE INDEX tiny_ip ON tiny USING pgrec_hnsw (e embedding_ip_ops) WITH (m = 4, ef_construction = 8);
SELECT knn_check($$SELECT id FROM tiny ORDER BY e <-> '[1,0,-1]' LIMIT 10$$) AS l2,
       knn_check($$SELECT id FROM tiny ORDER BY e <=> '[1,0,-1]' LIMIT 10$$) AS cosine,
       knn_check($$SELECT id FROM tiny ORDER BY e <#> '[1,0,-1]' LIMIT 10$$) AS ip;
-- Every row comes back once, in the same order as an exact scan.
SELECT knn_check($$SELECT id FROM tiny ORDER BY e <-> '[0,1,0]'$$) AS all_rows;
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM tiny ORDER BY e <=> '[1,0,-1]' LIMIT 3;
EXPLAIN (COSTS OFF) SELECT id FROM tiny ORDER BY e <#> '[1,0,-1]' LIMIT 3;
-- A distance the index was not built for cannot use it.
EXPLAIN (COSTS OFF) SELECT id FROM tiny ORDER BY e <+> '[1,0,-1]' LIMIT 3;
RESET enable_seqscan;
SELECT amname, opcname, opcdefault, amvalidate(c.oid)
FROM pg_opclass c JOIN pg_am a ON a.oid = c.opcmethod WHERE amname = 'pgrec_hnsw' ORDER BY opcname;

-- A larger table: the planner picks the index by cost alone.
CREATE TABLE items (id int PRIMARY KEY, cat int, e embedding(8));
INSERT INTO items SELECT i, i % 50, ARRAY(SELECT sin(i * k + k) FROM generate_series(1, 8) k)::real[]
FROM generate_series(1, 5000) i;
CREATE INDEX items_e ON items USING pgrec_hnsw (e);
ANALYZE items;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY e <-> (SELECT e FROM items WHERE id = 1) LIMIT 10;
-- Without an ORDER BY distance the index is never used.
EXPLAIN (COSTS OFF) SELECT id FROM items WHERE e IS NOT NULL LIMIT 10;
SELECT knn_check($$SELECT id FROM items ORDER BY e <-> (SELECT e FROM items WHERE id = 7) LIMIT 10$$) AS top10;

-- A filter passing 2% of rows still gets its LIMIT from a narrow search: the
-- scan widens until enough rows pass.
SET pgrec.ef_search = 10;
EXPLAIN (COSTS OFF) SELECT id FROM items WHERE cat = 7 ORDER BY e <-> (SELECT e FROM items WHERE id = 3) LIMIT 20;
SELECT count(*) AS filtered_rows FROM (SELECT id FROM items WHERE cat = 7 ORDER BY e <-> (SELECT e FROM items WHERE id = 3) LIMIT 20) s;
-- ... and the whole table when asked for it, each row once.
SELECT count(*), count(DISTINCT id) FROM (SELECT id FROM items ORDER BY e <-> '[1,1,1,1,1,1,1,1]' LIMIT 100000) s;
-- pgrec.max_scan_tuples bounds that work.
SET pgrec.max_scan_tuples = 100;
SELECT count(*) AS capped FROM (SELECT id FROM items ORDER BY e <-> '[1,1,1,1,1,1,1,1]' LIMIT 1000) s;
RESET pgrec.max_scan_tuples;
RESET pgrec.ef_search;

-- Inserts after the build, NULLs (not indexed), updates and VACUUM.
INSERT INTO items SELECT i, i % 50, ARRAY(SELECT cos(i * k) FROM generate_series(1, 8) k)::real[]
FROM generate_series(5001, 6000) i;
INSERT INTO items VALUES (6001, 1, NULL);
SELECT knn_check($$SELECT id FROM items ORDER BY e <-> (SELECT e FROM items WHERE id = 5500) LIMIT 10$$) AS after_insert;
DELETE FROM items WHERE id % 5 = 0;
UPDATE items SET e = e * '[2,2,2,2,2,2,2,2]' WHERE id % 7 = 0;
VACUUM items;
SET enable_seqscan = off;
-- Every live, non-NULL row is reachable once (VACUUM links again any node whose
-- every in-link died), and no deleted row comes back.
SELECT count(*) AS reachable, count(*) = count(DISTINCT id) AS once, count(*) FILTER (WHERE id % 5 = 0) AS deleted_returned
FROM (SELECT id FROM items ORDER BY e <-> '[0,0,0,0,0,0,0,0]' LIMIT 100000) s;
RESET enable_seqscan;
SELECT count(*) AS non_null_rows FROM items WHERE e IS NOT NULL;
SELECT knn_check($$SELECT id FROM items ORDER BY e <-> (SELECT e FROM items WHERE id = 14) LIMIT 10$$) AS after_vacuum;
REINDEX INDEX items_e;
SELECT knn_check($$SELECT id FROM items ORDER BY e <-> (SELECT e FROM items WHERE id = 14) LIMIT 10$$) AS after_reindex;
-- Two scans of one index open at once (each outer row's neighbours through a
-- second scan), and an index of a temporary table (local buffers): scans pin
-- pages through the buffers that last held them, where they can.
SELECT knn_check($$SELECT a.id * 10000 + b.id AS id FROM (SELECT id, e FROM items ORDER BY e <-> (SELECT e FROM items WHERE id = 14) LIMIT 3) a,
    LATERAL (SELECT id FROM items i ORDER BY i.e <-> a.e LIMIT 3) b$$) AS nested_scans;
-- Pages pinned through a remembered buffer still count in the index's
-- statistics: the second of two scans (whose pages this backend has just
-- read) adds at least one block read per page it compares, far over 20.
SELECT count(*) AS first_scan FROM (SELECT id FROM items ORDER BY e <-> (SELECT e FROM items WHERE id = 21) LIMIT 10) s;
SELECT pg_stat_force_next_flush();
CREATE TEMP TABLE reads_before AS SELECT idx_blks_hit + idx_blks_read AS n FROM pg_statio_user_indexes WHERE indexrelname = 'items_e';
SELECT count(*) AS second_scan FROM (SELECT id FROM items ORDER BY e <-> (SELECT e FROM items WHERE id = 21) LIMIT 10) s;
SELECT pg_stat_force_next_flush();
SELECT (SELECT idx_blks_hit + idx_blks_read FROM pg_statio_user_indexes WHERE indexrelname = 'items_e') - n > 20 AS reads_counted
FROM reads_before;
CREATE TEMP TABLE temp_items AS SELECT * FROM items WHERE id <= 2000;
CREATE INDEX ON temp_items USING pgrec_hnsw (e);
SELECT knn_check($$SELECT id FROM temp_items ORDER BY e <-> (SELECT e FROM items WHERE id = 14) LIMIT 10$$) AS temp_index,
       knn_check($$SELECT id FROM temp_items ORDER BY e <-> (SELECT e FROM items WHERE id = 99) LIMIT 10$$) AS temp_again;
DROP INDEX items_e;
CREATE INDEX CONCURRENTLY items_e ON items USING pgrec_hnsw (e embedding_l2_ops);
SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_e'::regclass;
SELECT knn_check($$SELECT id FROM items ORDER BY e <-> (SELECT e FROM items WHERE id = 21) LIMIT 10$$) AS concurrently;

-- A graph larger than maintenance_work_mem is finished one insert at a time.
CREATE TABLE wide (id int PRIMARY KEY, e embedding(128));
INSERT INTO wide SELECT i, ARRAY(SELECT sin(i * 0.01 * k) FROM generate_series(1, 128) k)::real[]
FROM generate_series(1, 2000) i;
SET maintenance_work_mem = '1MB';
CREATE INDEX wide_e ON wide USING pgrec_hnsw (e);
RESET maintenance_work_mem;
SELECT knn_check($$SELECT id FROM wide ORDER BY e <-> (SELECT e FROM wide WHERE id = 1999) LIMIT 5$$) AS spilled_build;
SET enable_seqscan = off;
SELECT count(*) AS reachable FROM (SELECT id FROM wide ORDER BY e <-> (SELECT e FROM wide WHERE id = 1) LIMIT 100000) s;
RESET enable_seqscan;

-- Unlogged tables (the index's init fork) and an index on an empty table.
CREATE UNLOGGED TABLE scratch (id int, e embedding);
CREATE INDEX scratch_e ON scratch USING pgrec_hnsw (e embedding_cosine_ops);
INSERT INTO scratch SELECT i, ARRAY[i, 10.5 - i]::real[] FROM generate_series(1, 9) i;
-- A zero vector has no cosine direction: not indexed.
INSERT INTO scratch VALUES (0, '[0,0]');
SELECT knn_check($$SELECT id FROM scratch WHERE id > 0 ORDER BY e <=> '[1,1]' LIMIT 4$$) AS unlogged;
-- The first vector fixes the index's dimensions when the column has none.
SELECT err($$INSERT INTO scratch VALUES (20, '[1,2,3]')$$);

-- Bad options, settings and inputs.
SELECT err($$CREATE INDEX ON tiny USING pgrec_hnsw (e) WITH (m = 1)$$);
SELECT err($$CREATE INDEX ON tiny USING pgrec_hnsw (e) WITH (m = 101)$$);
SELECT err($$CREATE INDEX ON tiny USING pgrec_hnsw (e) WITH (ef_construction = 3)$$);
SELECT err($$CREATE INDEX ON tiny USING pgrec_hnsw (e) WITH (m = 40, ef_construction = 64)$$);
SELECT err($$CREATE INDEX ON tiny USING pgrec_hnsw (e) WITH (lists = 3)$$);
SELECT err($$CREATE INDEX ON tiny USING pgrec_hnsw (id)$$);
SELECT err($$CREATE INDEX ON tiny USING pgrec_hnsw (e, id)$$);
SELECT err($$SET pgrec.ef_search = 0$$);
SELECT err($$SET pgrec.ef_search = 1001$$);
SELECT err($$SET pgrec.max_scan_tuples = 0$$);
CREATE TABLE big (e embedding(1700));
SELECT err($$CREATE INDEX ON big USING pgrec_hnsw (e)$$);
CREATE TABLE loose (id int, e embedding);
INSERT INTO loose VALUES (1, '[1,2]'), (2, '[1,2,3]');
SELECT err($$CREATE INDEX ON loose USING pgrec_hnsw (e)$$);
DELETE FROM loose WHERE id = 2;
CREATE INDEX loose_e ON loose USING pgrec_hnsw (e);
SELECT err($$INSERT INTO loose VALUES (3, '[1,2,3]')$$);
SET enable_seqscan = off;
SELECT err($$SELECT id FROM loose ORDER BY e <-> '[1,2,3]' LIMIT 1$$);
RESET enable_seqscan;
