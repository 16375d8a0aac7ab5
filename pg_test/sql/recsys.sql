-- Recommenders from SQL: training each algorithm on planted structure, the
-- registry and deploy rules, serving (one user, many, a new user from liked
-- items, similar items, embeddings), evaluation on a user's holdout, and the
-- exact error for each bad input. One worker thread and fixed seeds make every
-- result reproducible; progress NOTICEs (with timings) are hidden.
CREATE SCHEMA recsys_test;
SET search_path = recsys_test, public;
SET pgrec.threads = 1;
SET client_min_messages = warning;

-- 300 users in 6 taste groups; 180 items, item i in group i % 6. Each user
-- rates 24 items of its own group (4 or 5 stars) and 4 of the next group's
-- first items (1 star).
CREATE TABLE ratings (user_id int, item_id int, rating real, ts int);
INSERT INTO ratings
SELECT u, it, r, u * 100 + j FROM (
    SELECT u, j,
           CASE WHEN j < 24 THEN ((u * 7 + j * 13) % 30) * 6 + u % 6
                ELSE (j - 24) * 6 + (u + 1) % 6 END AS it,
           CASE WHEN j < 24 THEN 4 + (u + j) % 2 ELSE 1 END AS r
    FROM generate_series(1, 300) u, generate_series(0, 27) j
) s;
SELECT count(*) AS rows, count(DISTINCT (user_id, item_id)) AS pairs FROM ratings;

-- Training: each returns its name, version, whether it was deployed, metrics.
SELECT name, version, algorithm, deployed, (metrics->>'users')::int AS test_users
FROM train('pop', 'popular', 'ratings');
SELECT name, version, deployed FROM train('taste', 'bpr', 'ratings', '{"factors": 16, "iterations": 30}');
SELECT name, version, deployed FROM train('taste_als', 'als', 'SELECT user_id, item_id FROM ratings', '{"factors": 16, "iterations": 8}');
SELECT name, version, deployed, (metrics->>'rmse')::float < 0.8 AS rmse_below_0_8
FROM train('stars', 'mf', 'ratings', '{"factors": 8, "iterations": 40}');
-- Held-out quality: personalised models beat popularity by a wide margin.
SELECT name, (metrics->>'recall@10')::float > 0.3 AS recall_10_above_0_3,
       (metrics->>'recall@10')::float > (SELECT (metrics->>'recall@10')::float + 0.2 FROM pgrec.model_versions WHERE name = 'pop')
           AS beats_popular_by_0_2
FROM pgrec.model_versions WHERE name IN ('taste', 'taste_als') ORDER BY name;
SELECT array_agg(key ORDER BY key) AS metric_names FROM pgrec.model_versions, jsonb_object_keys(metrics) key WHERE name = 'taste';
-- Leave-last-out by timestamp: one test row per user.
SELECT (metrics->>'users')::int AS test_users FROM train('taste_ts', 'bpr', 'ratings', '{"factors": 8, "iterations": 2}', ts_column => 'ts');
SELECT train_rows, test_rows FROM pgrec.model_versions WHERE name = 'taste_ts';

-- The registry.
SELECT name, version, algorithm, deployed, users, items, interactions FROM pgrec.models ORDER BY name, version;
-- A new version deploys itself only if its recall@20 beats the deployed one.
SELECT version, deployed FROM train('taste', 'bpr', 'ratings', '{"factors": 2, "iterations": 1}');
-- Serving follows deploys: this session caches the deployed version (16
-- factors) and reloads when another (2 factors) is deployed, and back.
SELECT dims(user_embedding('taste', 1)) AS factors_v1;
SELECT deploy('taste', 2);
SELECT version FROM pgrec.model_versions WHERE name = 'taste' AND deployed;
SELECT dims(user_embedding('taste', 1)) AS factors_v2;
SELECT deploy('taste', 1);
SELECT version FROM pgrec.model_versions WHERE name = 'taste' AND deployed;
SELECT dims(user_embedding('taste', 1)) AS factors_v1_again;
SELECT drop_model('taste_ts');

-- Serving. Several models are deployed, so calls name one.
-- User 5 has rated 24 of group 5's 30 items, and items 0, 6, 12, 18 of group
-- 0: the 6 unseen items of its own group rank first, then group 0's.
SELECT count(*) AS recs, count(*) FILTER (WHERE r.item_id % 6 = 5) AS own_group,
       count(*) FILTER (WHERE r.item_id % 6 IN (0, 5)) >= 8 AS mostly_in_taste,
       count(*) FILTER (WHERE (5, r.item_id) IN (SELECT user_id, item_id FROM ratings)) AS already_seen
FROM recommend(5, 10, model => 'taste') r;
SELECT count(*) FILTER (WHERE (5, r.item_id) IN (SELECT user_id, item_id FROM ratings)) > 0 AS seen_when_asked
FROM recommend(5, 30, model => 'taste', exclude_seen => false) r;
-- Popularity is deterministic: the most-rated items first.
SELECT item_id, score FROM recommend(7, 5, model => 'pop');
-- Only among candidates.
SELECT bool_and(item_id IN (6, 12, 18, 24, 30)) AS only_candidates, count(*)
FROM recommend(6, 3, model => 'taste', candidates => ARRAY[6, 12, 18, 24, 30]::bigint[]);
-- Many users at once: 10 rows each.
SELECT user_id, count(*) FROM recommend(ARRAY[1, 2, 3]::bigint[], 10, model => 'taste_als') GROUP BY user_id ORDER BY user_id;
-- A new user who liked three items of group 2 gets group 2.
SELECT count(*) FILTER (WHERE item_id % 6 = 2) >= 8 AS follows_the_taste, bool_and(item_id NOT IN (2, 8, 14)) AS not_the_liked
FROM recommend_for_items(ARRAY[2, 8, 14]::bigint[], 10, model => 'taste_als');
-- Item 33 is rated by group 3 only (items 0-23 also by the group before).
SELECT count(*) FILTER (WHERE item_id % 6 = 3) >= 9 AS same_group FROM similar_items(33, 10, model => 'taste');
-- An unknown user gets the popular items, with a NOTICE.
SET client_min_messages = notice;
SELECT item_id FROM recommend(999999, 3, model => 'pop');
SET client_min_messages = warning;
-- Embeddings, exported to a table that pgrec_hnsw can index.
SELECT dims(user_embedding('taste', 1)), dims(item_embedding('taste', 6)), item_embedding('taste', 424242) IS NULL AS unknown_is_null;
SELECT export_item_embeddings('taste', 'taste_items');
CREATE INDEX ON taste_items USING pgrec_hnsw (embedding embedding_ip_ops);
SELECT count(*) FROM taste_items;
-- Evaluation on a holdout the user supplies: for users 1..50, the unrated items
-- of their own group, which a good model ranks high.
CREATE TABLE holdout AS
SELECT u AS user_id, i AS item_id FROM generate_series(1, 50) u, generate_series(0, 179) i
WHERE i % 6 = u % 6 AND NOT EXISTS (SELECT 1 FROM ratings r WHERE r.user_id = u AND r.item_id = i);
SELECT (m->>'users')::int AS users, (m->>'recall@10')::float > 0.8 AS recall_10_above_0_8, m ? 'ndcg@20' AS has_ndcg
FROM evaluate('taste', 'holdout') m;
SELECT (m->>'recall@10')::float < 0.2 AS popularity_does_not FROM evaluate('pop', 'holdout') m;

-- Bad input: nothing is written.
SELECT err($$SELECT * FROM train('x', 'svd', 'ratings')$$);
SELECT err($$SELECT * FROM train('x', 'bpr', 'ratings', '{"factor": 8}')$$);
SELECT err($$SELECT * FROM train('x', 'bpr', 'ratings', '{"iterations": 0}')$$);
SELECT err($$SELECT * FROM train('x', 'bpr', 'no_such_table')$$);
SELECT err($$SELECT * FROM train('x', 'bpr', 'ratings', user_column => 'uid')$$);
SELECT err($$SELECT * FROM train('x', 'bpr', 'SELECT user_id::text AS user_id, item_id FROM ratings')$$);
SELECT err($$SELECT * FROM train('x', 'bpr', 'SELECT NULL::int AS user_id, item_id FROM ratings')$$);
SELECT err($$SELECT * FROM train('x', 'als', 'SELECT user_id, item_id, -1 AS weight FROM ratings')$$);
SELECT err($$SELECT * FROM train('x', 'als', 'SELECT user_id, item_id, ''NaN''::float8 AS weight FROM ratings')$$);
SELECT err($$SELECT * FROM train('x', 'bpr', 'SELECT user_id, item_id FROM ratings WHERE false')$$);
SELECT err($$SELECT * FROM train('x', 'mf', 'SELECT user_id, item_id FROM ratings')$$);
SELECT err($$SELECT * FROM train(NULL, 'bpr', 'ratings')$$);
SELECT count(*) AS versions_of_x FROM pgrec.model_versions WHERE name = 'x';
SELECT err($$SELECT * FROM recommend(1)$$);
SELECT err($$SELECT * FROM recommend(1, 0, model => 'taste')$$);
-- Defaults live in the SQL declarations only: an explicit NULL is refused.
SELECT err($$SELECT * FROM recommend(1, NULL, model => 'taste')$$);
SELECT err($$SELECT * FROM recommend(1, model => 'taste', exclude_seen => NULL)$$);
SELECT err($$SELECT * FROM recommend(ARRAY[1, 2], model => 'taste', exclude_seen => NULL)$$);
SELECT err($$SELECT * FROM train('x', 'bpr', 'ratings', params => NULL)$$);
SELECT err($$SELECT * FROM train('x', 'bpr', 'ratings', user_column => NULL)$$);
SELECT err($$SELECT evaluate('taste', 'holdout', item_column => NULL)$$);
SELECT err($$SELECT * FROM recommend(1, model => 'nope')$$);
SELECT err($$SELECT * FROM similar_items(424242, model => 'taste')$$);
SELECT err($$SELECT deploy('taste', 99)$$);
SELECT err($$SELECT drop_model('nope')$$);
SELECT err($$SELECT user_embedding('pop', 1)$$);

-- Declared properties of the recommender functions.
SELECT p.proname, p.provolatile, p.proisstrict, p.proparallel, pg_get_function_result(p.oid) AS result
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'pgrec'
WHERE p.proname IN ('train', 'tune', 'deploy', 'drop_model', 'recommend', 'recommend_for_items', 'similar_items',
                    'user_embedding', 'item_embedding', 'export_item_embeddings', 'evaluate')
ORDER BY 1, 5;
