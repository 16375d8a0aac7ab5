-- Functions, operators, aggregates and ordering on embeddings, and exact
-- nearest-neighbour search by sequential scan.

-- Distances and their operators.
SELECT l2_distance('[0,0]', '[3,4]'), '[0,0]'::embedding <-> '[3,4]' AS op;
SELECT cosine_distance('[1,0]', '[0,1]'), '[1,1]'::embedding <=> '[-1,-1]' AS opposite, '[1,2]'::embedding <=> '[2,4]' AS parallel;
SELECT inner_product('[1,2,3]', '[4,-5,6]'), '[1,2,3]'::embedding <#> '[4,-5,6]' AS negative_op;
SELECT l1_distance('[1,2,3]', '[4,-5,6]'), '[1,2,3]'::embedding <+> '[4,-5,6]' AS op;
-- A zero vector has no direction: cosine distance is NaN, as in pgvector.
SELECT '[0,0]'::embedding <=> '[1,1]' AS zero_cosine;
-- Helpers.
SELECT dims('[1,2,3]'), norm('[3,4]'), l2_normalize('[3,4]'), l2_normalize('[0,0]');
SELECT subvector('[1,2,3,4,5]', 2, 3), subvector('[1,2,3,4,5]', 4, 10);
SELECT err($$SELECT subvector('[1,2,3]', 4, 1)$$);
SELECT err($$SELECT subvector('[1,2,3]', 1, 0)$$);
-- Element-wise arithmetic.
SELECT '[1,2]'::embedding + '[3,4]' AS sum, '[1,2]'::embedding - '[3,4]' AS diff, '[1,2]'::embedding * '[3,4]' AS prod;
SELECT err($$SELECT '[3e38]'::embedding + '[3e38]'$$);
-- Operands of different dimensions.
SELECT err($$SELECT '[1,2]'::embedding <-> '[1,2,3]'$$);
SELECT err($$SELECT '[1,2]'::embedding <=> '[1,2,3]'$$);
SELECT err($$SELECT '[1,2]'::embedding <#> '[1,2,3]'$$);
SELECT err($$SELECT '[1,2]'::embedding <+> '[1,2,3]'$$);
SELECT err($$SELECT '[1,2]'::embedding + '[1,2,3]'$$);
SELECT err($$SELECT '[1,2]'::embedding - '[1,2,3]'$$);
SELECT err($$SELECT '[1,2]'::embedding * '[1,2,3]'$$);
-- NULL in, NULL out (STRICT).
SELECT NULL::embedding <-> '[1]' IS NULL AS strict_null;

-- Aggregates.
CREATE TABLE a (g int, e embedding);
INSERT INTO a VALUES (1, '[1,2]'), (1, '[3,6]'), (2, '[10,10]'), (2, NULL);
SELECT g, avg(e), sum(e), count(e) FROM a GROUP BY g ORDER BY g;
SELECT avg(e) IS NULL AS avg_of_nothing, sum(e) IS NULL AS sum_of_nothing FROM a WHERE false;
SELECT err($$SELECT avg(e) FROM (VALUES ('[1,2]'::embedding), ('[1,2,3]')) v(e)$$);
SELECT err($$SELECT sum(e) FROM (VALUES ('[1,2]'::embedding), ('[1,2,3]')) v(e)$$);
-- Declared properties: volatility, strictness, parallel safety of every
-- function on embeddings (the index AM handler, which Postgres alone calls, and
-- the recommender and encoder functions, which read tables, are checked elsewhere).
SELECT p.proname, p.provolatile, p.proisstrict, p.proparallel
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'pgrec'
WHERE p.prorettype <> 'index_am_handler'::regtype AND p.pronamespace <> 'pgrec'::regnamespace
  AND p.proname NOT IN ('train', 'tune', 'deploy', 'rollback_model', 'deploy_challenger', 'stop_challenger', 'served_version', 'update_model', 'prune_versions', 'drop_model', 'grant_model', 'revoke_model', 'recommend', 'recommend_for_items', 'similar_items',
                        'user_embedding', 'item_embedding', 'export_item_embeddings', 'evaluate', 'explain', 'add_items',
                        'load_encoder', 'drop_encoder', 'embed_text', 'tokenize', 'token_count',
                        'embed_image', 'zero_shot_classify')
  AND (p.provolatile <> 'i' OR NOT (p.proisstrict OR p.prokind = 'a') OR p.proparallel <> 's')
ORDER BY 1;
SELECT aggfnoid::regprocedure, aggtransfn, aggcombinefn, aggfinalfn, aggtranstype::regtype, proparallel
FROM pg_aggregate JOIN pg_proc ON pg_proc.oid = aggfnoid
WHERE aggfnoid IN ('avg(embedding)'::regprocedure, 'sum(embedding)'::regprocedure) ORDER BY 1::text;

-- Equality and btree ordering: ORDER BY, DISTINCT, GROUP BY, btree indexes.
CREATE TABLE o (e embedding);
INSERT INTO o VALUES ('[2,1]'), ('[1,2]'), ('[1,2]'), ('[1]'), ('[1,2,0]');
SELECT e FROM o ORDER BY e;
SELECT DISTINCT e FROM o ORDER BY e DESC;
SELECT e, count(*) FROM o GROUP BY e ORDER BY e;
CREATE INDEX o_e ON o (e);
SET enable_seqscan = off;
SELECT e FROM o WHERE e = '[1,2]';
RESET enable_seqscan;
SELECT '[1,2]'::embedding < '[1,3]' AS lt, '[1,2]'::embedding = '[1,2]' AS eq, '[1,2]'::embedding <> '[1,2,0]' AS ne;

-- Exact top-k by sequential scan: every metric agrees with a brute-force ranking.
CREATE TABLE items (id int, emb embedding(3));
INSERT INTO items SELECT i, ARRAY[sin(i), cos(i * 1.3), sin(i * 0.7)] FROM generate_series(1, 2000) i;
SELECT id FROM items ORDER BY emb <-> '[0.5,0.5,0.5]' LIMIT 5;
SELECT id FROM items ORDER BY emb <=> '[0.5,0.5,0.5]' LIMIT 5;
SELECT id FROM items ORDER BY emb <#> '[0.5,0.5,0.5]' LIMIT 5;
SELECT id FROM items ORDER BY emb <+> '[0.5,0.5,0.5]' LIMIT 5;
-- The same rankings computed from the array form with plain SQL.
WITH v AS (SELECT id, emb::real[] AS x FROM items)
SELECT id FROM v ORDER BY sqrt((x[1]-0.5)^2 + (x[2]-0.5)^2 + (x[3]-0.5)^2) LIMIT 5;
WITH v AS (SELECT id, emb::real[] AS x FROM items)
SELECT id FROM v ORDER BY 1 - (x[1] + x[2] + x[3]) * 0.5 / sqrt(x[1]^2 + x[2]^2 + x[3]^2) / sqrt(0.75) LIMIT 5;
WITH v AS (SELECT id, emb::real[] AS x FROM items)
SELECT id FROM v ORDER BY -(x[1]*0.5 + x[2]*0.5 + x[3]*0.5) LIMIT 5;
WITH v AS (SELECT id, emb::real[] AS x FROM items)
SELECT id FROM v ORDER BY abs(x[1]-0.5) + abs(x[2]-0.5) + abs(x[3]-0.5) LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY emb <=> '[0.5,0.5,0.5]' LIMIT 10;
