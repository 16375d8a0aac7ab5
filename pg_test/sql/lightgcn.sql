-- LightGCN from SQL: trained on planted structure, with and without social
-- edges (user_relations), serving through the factor models' functions, and
-- the exact error for each bad input. One worker thread; progress NOTICEs
-- are hidden except where a test reads them.
CREATE SCHEMA lightgcn_test;
SET search_path = lightgcn_test, public;
SET pgrec.threads = 1;
SET client_min_messages = warning;

-- 300 users in 6 taste groups; 180 items, item i in group i % 6. Each user
-- has 24 items of its own group and 4 of the next group's first items.
CREATE TABLE clicks (user_id int, item_id int);
INSERT INTO clicks
SELECT u, CASE WHEN j < 24 THEN ((u * 7 + j * 13) % 30) * 6 + u % 6 ELSE (j - 24) * 6 + (u + 1) % 6 END
FROM generate_series(1, 300) u, generate_series(0, 27) j;
-- A newcomer (user 1000) with one item of group 0 and one of group 3, whose
-- friends are the users of group 0.
INSERT INTO clicks VALUES (1000, 0), (1000, 3);
CREATE TABLE follows (user_id bigint, friend_id bigint);
INSERT INTO follows SELECT 1000, u FROM generate_series(6, 300, 6) u;

SELECT name, algorithm, deployed FROM train('g_pop', 'popular', 'clicks');
SELECT name, algorithm, deployed FROM train('g_gcn', 'lightgcn', 'clicks',
    '{"factors": 16, "iterations": 20, "batch_size": 256, "learning_rate": 0.01}');
-- Held-out quality: far above popularity.
SELECT (metrics->>'recall@10')::float > (SELECT (metrics->>'recall@10')::float + 0.3 FROM pgrec.model_versions WHERE name = 'g_pop')
       AS beats_popular_by_0_3
FROM pgrec.model_versions WHERE name = 'g_gcn';
SELECT name, version, algorithm, users, items, interactions, params FROM pgrec.models WHERE name = 'g_gcn';

-- Serving: user 1 (group 1) gets unseen group-1 items; many users at once
-- give what one at a time gives; embeddings have the factors' size.
SELECT count(*) FILTER (WHERE item_id % 6 = 1) AS in_group, count(*) AS of FROM recommend(1, 10, 'g_gcn');
SELECT count(*) AS seen_recommended FROM recommend(1, 20, 'g_gcn') r JOIN clicks c ON c.user_id = 1 AND c.item_id = r.item_id;
SELECT count(*) AS differences FROM (
    SELECT user_id, item_id FROM recommend(ARRAY[1, 2, 3, 4], 5, 'g_gcn')
    EXCEPT SELECT u, item_id FROM generate_series(1, 4) u, recommend(u::bigint, 5, 'g_gcn')
) d;
SELECT count(*) FILTER (WHERE item_id % 6 = 2) AS in_group, count(*) AS of
FROM recommend_for_items(ARRAY[98, 104, 110], 10, 'g_gcn');
SELECT count(*) FILTER (WHERE item_id % 6 = 2) AS in_group, count(*) AS of FROM similar_items(98, 10, 'g_gcn');
SELECT dims(user_embedding('g_gcn', 1)) AS user_dims, dims(item_embedding('g_gcn', 98)) AS item_dims;

-- Social edges: the newcomer's friends pull group 0 into their top 10.
SELECT name, deployed FROM train('g_alone', 'lightgcn', 'clicks',
    '{"factors": 16, "iterations": 20, "batch_size": 256, "learning_rate": 0.01, "test_fraction": 0}');
-- What was read is said before training; the memory guard (factors and
-- layers drive it) then stops this one before anything large is allocated.
SET client_min_messages = notice;
SET pgrec.max_train_memory = '16MB';
SELECT name, deployed FROM train('g_notice', 'lightgcn', 'clicks', '{"factors": 1024, "layers": 8}',
    user_relations => 'SELECT user_id, friend_id FROM follows UNION ALL SELECT 1000, 99999');
RESET pgrec.max_train_memory;
SET client_min_messages = warning;
SELECT name, deployed FROM train('g_social', 'lightgcn', 'clicks',
    '{"factors": 16, "iterations": 20, "batch_size": 256, "learning_rate": 0.01, "test_fraction": 0}',
    user_relations => 'follows');
SELECT (SELECT count(*) FROM recommend(1000, 10, 'g_social') WHERE item_id % 6 = 0)
     - (SELECT count(*) FROM recommend(1000, 10, 'g_alone') WHERE item_id % 6 = 0) >= 3 AS friends_pull_group_0;
-- kgat's (head, relation, tail) form is read too, the relation ignored.
SELECT name, deployed FROM train('g_social3', 'lightgcn', 'clicks',
    '{"factors": 16, "iterations": 20, "batch_size": 256, "learning_rate": 0.01, "test_fraction": 0}',
    user_relations => 'SELECT user_id, ''follows'', friend_id FROM follows');
SELECT count(*) AS differences FROM (
    (SELECT item_id, score FROM recommend(1000, 10, 'g_social3') EXCEPT SELECT item_id, score FROM recommend(1000, 10, 'g_social'))
    UNION ALL
    (SELECT item_id, score FROM recommend(1000, 10, 'g_social') EXCEPT SELECT item_id, score FROM recommend(1000, 10, 'g_social3'))
) d;

-- Bad input.
\set VERBOSITY default
SELECT * FROM train('bad', 'lightgcn', 'clicks', '{"layers": 9}');
SELECT * FROM train('bad', 'lightgcn', 'clicks', '{"layers": [64, 32]}');
SELECT * FROM train('bad', 'lightgcn', 'clicks', '{"learning_rate": 0}');
SELECT * FROM train('bad', 'lightgcn', 'clicks', '{"negatives": 5}');
SELECT * FROM train('bad', 'lightgcn', 'clicks', user_relations => 'SELECT user_id FROM follows');
SELECT * FROM train('bad', 'lightgcn', 'clicks', user_relations => 'SELECT user_id, NULL::bigint FROM follows');
SELECT * FROM train('bad', 'lightgcn', 'clicks', relations => 'follows');
SELECT * FROM train('bad', 'bpr', 'clicks', user_relations => 'follows');
SELECT * FROM explain('g_gcn', 1, 98);
\set VERBOSITY terse

DROP SCHEMA lightgcn_test CASCADE;
SELECT drop_model(name) FROM (VALUES ('g_pop'), ('g_gcn'), ('g_alone'), ('g_social'), ('g_social3')) v(name);
RESET search_path;
RESET client_min_messages;
