-- Item-item recommenders from SQL: EASE (closed form) and item kNN (cosine
-- and BM25) on planted structure, serving through the same functions as the
-- factor models, and the exact error for each bad input. One worker thread;
-- progress NOTICEs are hidden.
CREATE SCHEMA item_item_test;
SET search_path = item_item_test, public;
SET pgrec.threads = 1;
SET client_min_messages = warning;

-- 300 users in 6 taste groups; 180 items, item i in group i % 6. Each user
-- has 24 items of its own group and 4 of the next group's first items.
CREATE TABLE clicks (user_id int, item_id int);
INSERT INTO clicks
SELECT u, CASE WHEN j < 24 THEN ((u * 7 + j * 13) % 30) * 6 + u % 6 ELSE (j - 24) * 6 + (u + 1) % 6 END
FROM generate_series(1, 300) u, generate_series(0, 27) j;

SELECT name, algorithm, deployed FROM train('i_pop', 'popular', 'clicks');
SELECT name, algorithm, deployed FROM train('i_ease', 'ease', 'clicks');
SELECT name, algorithm, deployed FROM train('i_knn', 'item_knn', 'clicks');
SELECT name, algorithm, deployed FROM train('i_bm25', 'item_knn', 'clicks', '{"similarity": "bm25", "neighbors": 40}');
-- Held-out quality: each beats popularity by a wide margin.
SELECT name, (metrics->>'recall@10')::float > (SELECT (metrics->>'recall@10')::float + 0.2 FROM pgrec.model_versions WHERE name = 'i_pop')
           AS beats_popular_by_0_2
FROM pgrec.model_versions WHERE name IN ('i_ease', 'i_knn', 'i_bm25') ORDER BY name;
SELECT name, version, algorithm, users, items, interactions FROM pgrec.models WHERE name LIKE 'i\_%' ORDER BY name;

-- Serving: user 1 (group 1) gets unseen group-1 items; the scores are sums
-- of the weights from the user's items.
SELECT item_id, item_id % 6 AS grp, round(score::numeric, 3) AS score FROM recommend(1, 5, 'i_ease');
SELECT item_id, item_id % 6 AS grp, round(score::numeric, 3) AS score FROM recommend(1, 5, 'i_knn');
SELECT count(*) FILTER (WHERE item_id % 6 = 1) AS in_group, count(*) AS of
FROM recommend(1, 10, 'i_bm25');
SELECT count(*) AS seen_recommended FROM recommend(1, 20, 'i_ease') r JOIN clicks c ON c.user_id = 1 AND c.item_id = r.item_id;
-- Many users at once give what one at a time gives.
SELECT count(*) AS differences FROM (
    (SELECT user_id, item_id FROM recommend(ARRAY[1, 2, 3, 4], 5, 'i_ease')
     EXCEPT SELECT u, item_id FROM generate_series(1, 4) u, recommend(u::bigint, 5, 'i_ease'))
    UNION ALL
    (SELECT u, item_id FROM generate_series(1, 4) u, recommend(u::bigint, 5, 'i_knn')
     EXCEPT SELECT user_id, item_id FROM recommend(ARRAY[1, 2, 3, 4], 5, 'i_knn'))
) d;
-- A new user from liked items, and similar items, stay in the items' group.
SELECT count(*) FILTER (WHERE item_id % 6 = 2) AS in_group, count(*) AS of
FROM recommend_for_items(ARRAY[98, 104, 110], 10, 'i_ease');
SELECT count(*) FILTER (WHERE item_id % 6 = 2) AS in_group, count(*) AS of
FROM similar_items(98, 10, 'i_knn');
SELECT item_id, round(score::numeric, 3) AS score FROM similar_items(98, 3, 'i_knn');
-- Candidates restrict the ranking.
SELECT item_id FROM recommend(1, 3, 'i_ease', candidates => ARRAY[7, 13, 19, 2, 3]) ORDER BY item_id;
-- Evaluation on a holdout the caller supplies.
CREATE TABLE holdout AS SELECT u AS user_id, (u % 30) * 6 + u % 6 AS item_id FROM generate_series(1, 300) u;
SELECT (evaluate('i_ease', 'holdout') ->> 'users')::int AS users;

-- Bad input.
SELECT err($$SELECT user_embedding('i_ease', 1)$$);
SELECT err($$SELECT item_embedding('i_knn', 7)$$);
SELECT err($$SELECT export_item_embeddings('i_ease', 'ease_items')$$);
SELECT err($$SELECT * FROM add_items('i_ease', 'SELECT 1, ARRAY[1, 2]::real[]')$$);
SELECT err($$SELECT * FROM explain('i_ease', 1, 7)$$);
SELECT err($$SELECT * FROM train('x', 'ease', 'clicks', '{"factors": 8}')$$);
SELECT err($$SELECT * FROM train('x', 'bpr', 'clicks', '{"neighbors": 8}')$$);
SELECT err($$SELECT * FROM train('x', 'ease', 'clicks', '{"lambda": 8}')$$);
SELECT err($$SELECT * FROM train('x', 'ease', 'clicks', '{"regularization": 0}')$$);
SELECT err($$SELECT * FROM train('x', 'ease', 'clicks', '{"min_count": 100000}')$$);
SELECT err($$SELECT * FROM train('x', 'item_knn', 'clicks', '{"neighbors": 0}')$$);
SELECT err($$SELECT * FROM train('x', 'item_knn', 'clicks', '{"similarity": "jaccard"}')$$);
SELECT err($$SELECT * FROM train('x', 'item_knn', 'clicks', '{"b": 1}')$$);
SELECT err($$SELECT * FROM train('x', 'item_knn', 'clicks', item_features => 'SELECT 1, ARRAY[1]::real[]')$$);
-- The memory guard refuses a Gram matrix that would not fit, before reading
-- more than the interactions.
SET pgrec.max_train_memory = '16MB';
CREATE TABLE wide AS SELECT u AS user_id, i AS item_id FROM generate_series(1, 2) u, generate_series(1, 3000) i;
SELECT err($$SELECT * FROM train('x', 'ease', 'wide')$$);
RESET pgrec.max_train_memory;
SELECT count(*) AS versions_of_x FROM pgrec.model_versions WHERE name = 'x';

SELECT drop_model(n) FROM unnest(ARRAY['i_pop', 'i_ease', 'i_knn', 'i_bm25']) n;
DROP SCHEMA item_item_test CASCADE;
