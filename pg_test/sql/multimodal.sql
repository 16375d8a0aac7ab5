-- Multimodal recommendation: vbpr (BPR plus a learned projection of each
-- item's content vector) and the content-only content_knn, on a fixture where
-- content decides: items belong to topics their vectors show, some items have
-- no interactions at all (cold), and a cold-start split holds out more. Then
-- the image path end to end with the tiny CLIP fixture, and the exact error
-- for each bad input. One worker thread and fixed seeds; NOTICEs hidden.
CREATE SCHEMA mm_test;
SET search_path = mm_test, public;
SET pgrec.threads = 1;
SET client_min_messages = warning;

-- 6 topics of 30 items (item i in topic (i - 1) / 30); an item's vector is its
-- topic's one-hot direction plus a fixed perturbation, and a second column
-- holds two more dimensions. Items 26-30 of each topic have no interactions.
CREATE TABLE items AS
SELECT i AS item_id, (i - 1) / 30 AS topic,
       ARRAY(SELECT (d = (i - 1) / 30)::int + 0.3 * sin(i * 7.1 + d * 3.3) FROM generate_series(0, 5) d)::embedding AS emb,
       ARRAY[cos(i), sin(i)]::embedding AS extra
FROM generate_series(1, 180) i;
-- 120 users, user u likes topic u % 6 and 8 of its first 25 items.
CREATE TABLE likes AS
SELECT DISTINCT u AS user_id, (u % 6) * 30 + 1 + (u / 6 * 7 + k * 3) % 25 AS item_id
FROM generate_series(0, 119) u, generate_series(0, 7) k;
CREATE TABLE cold AS SELECT item_id FROM items WHERE (item_id - 1) % 30 >= 25;
SELECT count(*) AS likes, count(DISTINCT item_id) AS items_with_likes, (SELECT count(*) FROM cold) AS cold_items FROM likes;

SELECT name, algorithm, deployed FROM train('mm_vbpr', 'vbpr', 'likes',
    '{"factors": 8, "content_factors": 8, "iterations": 30, "learning_rate": 0.01, "batch_size": 64, "regularization": 0.001}',
    item_features => 'SELECT item_id, emb FROM items');
SELECT name, algorithm FROM train('mm_knn', 'content_knn', 'likes', item_features => 'SELECT item_id, emb FROM items');
SELECT name, algorithm FROM train('mm_bpr', 'bpr', 'likes', '{"factors": 8, "iterations": 40}');
-- Content-only items join the catalogue: 180 items, 30 without interactions.
SELECT name, items FROM pgrec.model_versions WHERE name LIKE 'mm_%' ORDER BY name;

-- Cold items are recommended from content: among the 30 cold items, user 3
-- (topic 3) gets its topic's 5 first from vbpr and content_knn.
SELECT m AS model, count(*) FILTER (WHERE (r.item_id - 1) / 30 = 3) AS in_topic_of_5
FROM unnest(ARRAY['mm_vbpr', 'mm_knn']) m,
     LATERAL recommend(3, 5, m, candidates => ARRAY(SELECT item_id FROM cold)) r
GROUP BY m ORDER BY m;
-- Without candidates, cold items compete with warm ones; cold_boost gives
-- them exposure: a large boost puts them first.
SELECT name FROM train('mm_boost', 'vbpr', 'likes',
    '{"factors": 8, "content_factors": 8, "iterations": 30, "learning_rate": 0.01, "batch_size": 64, "regularization": 0.001, "cold_boost": 100}',
    item_features => 'SELECT item_id, emb FROM items');
SELECT (SELECT count(*) FROM recommend(3, 5, 'mm_boost') WHERE item_id IN (SELECT item_id FROM cold)) AS boosted_cold_in_top_5,
       (SELECT count(*) FROM recommend(3, 5, 'mm_vbpr') WHERE item_id IN (SELECT item_id FROM cold)) < 5 AS unboosted_fewer;
-- similar_items and recommend_for_items work across warm and cold items.
SELECT count(*) FILTER (WHERE (item_id - 1) / 30 = 2) >= 4 AS same_topic_at_least_4 FROM similar_items(88, 5, 'mm_vbpr');
SELECT count(*) FILTER (WHERE (item_id - 1) / 30 = 2) >= 4 AS same_topic_at_least_4 FROM recommend_for_items(ARRAY[88, 89], 5, 'mm_knn');
-- A product listed after training joins without retraining: add_items makes
-- a new deployed version with the new items scored from their content. Three
-- new topic-3 items (181-183) lead user 3's list among them and the other
-- topics' cold items.
INSERT INTO items
SELECT i, 3, ARRAY(SELECT (d = 3)::int + 0.3 * sin(i * 7.1 + d * 3.3) FROM generate_series(0, 5) d)::embedding, ARRAY[cos(i), sin(i)]::embedding
FROM generate_series(181, 183) i;
SELECT * FROM add_items('mm_vbpr', 'SELECT item_id, emb FROM items');
SELECT version, deployed, items, params->'added_items' AS added, params->'from_version' AS from_version
FROM pgrec.model_versions WHERE name = 'mm_vbpr' ORDER BY version;
SELECT array_agg(item_id ORDER BY item_id) AS top_3 FROM recommend(3, 3, 'mm_vbpr',
    candidates => ARRAY(SELECT item_id FROM cold WHERE (item_id - 1) / 30 <> 3) || ARRAY[181, 182, 183]);
SELECT * FROM add_items('mm_vbpr', 'SELECT item_id, emb FROM items');
SELECT * FROM add_items('mm_knn', 'SELECT item_id, emb FROM items WHERE item_id > 180');
SELECT count(*) = 1 AS nearest_is_topic_3 FROM similar_items(181, 1, 'mm_knn') WHERE item_id BETWEEN 91 AND 120 OR item_id > 180;
SELECT err($$SELECT * FROM add_items('mm_bpr', 'SELECT item_id, emb FROM mm_test.items')$$);
SELECT err($$SELECT * FROM add_items('mm_knn', 'SELECT item_id, extra FROM mm_test.items')$$);

-- content_knn over one embedding column with a pgrec_hnsw cosine index
-- serves recommend() from the table (through the index when Postgres picks
-- it, forced here: the table is small): items added to the table since
-- training are recommended too, with no add_items. Without the index, the
-- model's own vectors serve. Item 190 points exactly along topic 3.
CREATE INDEX items_emb ON items USING pgrec_hnsw (emb embedding_cosine_ops);
INSERT INTO items VALUES (190, 3, '[0,0,0,1,0,0]', '[1,0]');
SET enable_seqscan = off;
CREATE TABLE via_index AS SELECT * FROM recommend(3, 5, 'mm_knn');
RESET enable_seqscan;
DROP INDEX items_emb;
CREATE TABLE in_memory AS SELECT * FROM recommend(3, 5, 'mm_knn');
SELECT (SELECT 190 IN (SELECT item_id FROM via_index)) AS new_item_via_index,
       (SELECT 190 IN (SELECT item_id FROM in_memory)) AS new_item_in_memory,
       (SELECT count(*) FROM via_index JOIN in_memory USING (item_id)) >= 4 AS same_others,
       (SELECT bool_and((item_id - 1) / 30 = 3 OR item_id > 180) FROM via_index) AS all_topic_3,
       (SELECT count(*) FROM via_index v JOIN likes l ON l.user_id = 3 AND l.item_id = v.item_id) AS seen;
DELETE FROM items WHERE item_id = 190;

-- Several embedding columns are concatenated: content_knn's item vectors
-- have 6 + 2 dimensions.
SELECT name FROM train('mm_knn2', 'content_knn', 'likes', item_features => 'SELECT item_id, emb, extra FROM items');
SELECT dims(item_embedding('mm_knn2', 1)) AS dims;

-- The cold-start split: 20% of the items with interactions are held out
-- entirely and ranked among themselves (cold_ metrics); warm metrics rank
-- the rest. BPR knows nothing of held-out items; content does.
CREATE TABLE cold_runs AS
SELECT t.name, t.metrics FROM unnest(ARRAY['bpr', 'content_knn', 'vbpr']) a,
LATERAL train('cs_' || a, a, 'likes',
    CASE a WHEN 'bpr' THEN '{"factors": 8, "iterations": 40, "cold_items": 0.2}'
           WHEN 'vbpr' THEN '{"factors": 8, "content_factors": 8, "iterations": 30, "learning_rate": 0.01, "batch_size": 64, "regularization": 0.001, "cold_items": 0.2}'
           ELSE '{"cold_items": 0.2}' END::jsonb,
    item_features => CASE WHEN a <> 'bpr' THEN 'SELECT item_id, emb FROM items' END) t;
SELECT name, metrics ? 'cold_recall@20' AS has_cold, metrics ? 'recall@20' AS has_warm FROM cold_runs ORDER BY name;
-- About 30 cold items are ranked, so Recall@10 is the telling cut.
SELECT (v.metrics->>'cold_recall@10')::float > (b.metrics->>'cold_recall@10')::float + 0.3 AS vbpr_cold_beats_bpr,
       (k.metrics->>'cold_recall@10')::float > (b.metrics->>'cold_recall@10')::float + 0.3 AS knn_cold_beats_bpr,
       (v.metrics->>'recall@10')::float > (k.metrics->>'recall@10')::float AS vbpr_warm_beats_knn
FROM cold_runs v, cold_runs b, cold_runs k WHERE v.name = 'cs_vbpr' AND b.name = 'cs_bpr' AND k.name = 'cs_content_knn';

-- The image path: tiny CLIP image vectors as item content. Users 1-10 like
-- the shapes images, users 11-20 the gradients; shapes.gif and noise.bmp have
-- no interactions. A shapes fan gets shapes.gif before noise.bmp.
\getenv srcdir PG_ABS_SRCDIR
\set clip :srcdir '/../tests/fixtures/tiny-clip'
SELECT name FROM load_encoder('mm_clip', :'clip');
CREATE TABLE pictures AS
SELECT k AS item_id, f AS file, embed_image('mm_clip', pg_read_binary_file(:'clip' || '/' || f)) AS emb
FROM unnest(ARRAY['gradient.png', 'gradient_rgba.png', 'gray.png', 'noise.bmp', 'shapes.jpg', 'shapes.png',
                  'shapes.gif', 'shapes_lossless.webp']) WITH ORDINALITY AS t(f, k);
CREATE TABLE picks AS
SELECT u AS user_id, i AS item_id FROM generate_series(1, 10) u, unnest(ARRAY[5, 6, 8]) i
UNION ALL SELECT u, i FROM generate_series(11, 20) u, unnest(ARRAY[1, 2, 3]) i;
SELECT name FROM train('mm_pics', 'content_knn', 'picks', '{"test_fraction": 0}', item_features => 'SELECT item_id, emb FROM pictures');
SELECT p.file FROM recommend(1, 1, 'mm_pics', candidates => ARRAY[4, 7]) r JOIN pictures p USING (item_id);
SELECT name FROM train('mm_pics_v', 'vbpr', 'picks',
    '{"test_fraction": 0, "factors": 4, "content_factors": 4, "iterations": 40, "learning_rate": 0.01, "batch_size": 8}',
    item_features => 'SELECT item_id, emb FROM pictures');
-- vbpr scores the two cold pictures from their vectors too: all five unseen
-- pictures come back, and the shapes fan's best cold one is shapes.gif.
SELECT count(*) AS recommended, count(*) FILTER (WHERE item_id IN (4, 7)) AS cold FROM recommend(1, 5, 'mm_pics_v');
SELECT p.file FROM recommend(1, 1, 'mm_pics_v', candidates => ARRAY[4, 7]) r JOIN pictures p USING (item_id);
SELECT drop_encoder('mm_clip');

-- Bad input.
SELECT err($$SELECT * FROM train('bad', 'vbpr', 'mm_test.likes')$$);
SELECT err($$SELECT * FROM train('bad', 'bpr', 'mm_test.likes', item_features => 'mm_test.items')$$);
SELECT err($$SELECT * FROM train('bad', 'vbpr', 'mm_test.likes', item_features => 'SELECT item_id, topic FROM mm_test.items')$$);
SELECT err($$SELECT * FROM train('bad', 'vbpr', 'mm_test.likes', item_features => 'SELECT emb, item_id FROM mm_test.items')$$);
SELECT err($$SELECT * FROM train('bad', 'vbpr', 'mm_test.likes', item_features => 'SELECT item_id FROM mm_test.items')$$);
SELECT err($$SELECT * FROM train('bad', 'vbpr', 'mm_test.likes', item_features => 'SELECT item_id, CASE WHEN item_id = 7 THEN NULL ELSE emb END FROM mm_test.items')$$);
SELECT err($$SELECT * FROM train('bad', 'vbpr', 'mm_test.likes', item_features => 'SELECT item_id, CASE WHEN item_id = 7 THEN ''[1,2]''::embedding ELSE emb END FROM mm_test.items')$$);
SELECT err($$SELECT * FROM train('bad', 'vbpr', 'mm_test.likes', item_features => 'SELECT 1, emb FROM mm_test.items')$$);
SELECT err($$SELECT * FROM train('bad', 'vbpr', 'mm_test.likes', item_features => 'SELECT item_id, emb FROM mm_test.items WHERE false')$$);
SELECT err($$SELECT * FROM train('bad', 'vbpr', 'mm_test.likes', '{"cold_items": 1.5}', item_features => 'mm_test.items')$$);
SELECT err($$SELECT * FROM train('bad', 'bpr', 'mm_test.likes', '{"cold_boost": 1}')$$);
SELECT count(*) AS bad_models FROM pgrec.model_versions WHERE name = 'bad';

DROP SCHEMA mm_test CASCADE;
SELECT sum(drop_model(name)) AS dropped_versions FROM (SELECT DISTINCT name FROM pgrec.model_versions
    WHERE name LIKE 'mm\_%' OR name LIKE 'cs\_%') m;
