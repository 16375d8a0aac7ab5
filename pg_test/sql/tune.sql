-- tune(): a search over params on a validation split of the training part,
-- the best trained on all of it as a new version, the trials in
-- pgrec.trials; time-ordered data is split by time. One worker thread;
-- progress NOTICEs (with timings) are hidden: tests/recsys.rs reads them.
CREATE SCHEMA tune_test;
SET search_path = tune_test, public;
SET pgrec.threads = 1;
SET client_min_messages = warning;

-- 300 users in 6 taste groups; 180 items, item i in group i % 6. Each user
-- has 24 items of its own group and 4 of the next group's first items; ts
-- orders each user's rows.
CREATE TABLE clicks (user_id int, item_id int, ts int);
INSERT INTO clicks
SELECT u, CASE WHEN j < 24 THEN ((u * 7 + j * 13) % 30) * 6 + u % 6 ELSE (j - 24) * 6 + (u + 1) % 6 END, j
FROM generate_series(1, 300) u, generate_series(0, 27) j;

-- A grid of two factor counts and two regularizations (4 points, fewer than
-- the 10 trials allowed: each once); the best is stored and deployed.
SELECT name, version, algorithm, deployed, params
FROM tune('t_als', 'als', 'SELECT user_id, item_id FROM clicks',
          '{"factors": [2, 16], "regularization": [0.1, 1]}', params => '{"iterations": 5}');
SELECT trial, chosen, params, recall_20 IS NOT NULL AS scored, error FROM pgrec.trials WHERE name = 't_als' ORDER BY trial;
-- The chosen trial has the best validation recall, 16 factors beat 2, and
-- the stored version's params are the chosen trial's.
SELECT (SELECT params FROM pgrec.trials WHERE name = 't_als' AND chosen)
     = (SELECT params FROM pgrec.trials WHERE name = 't_als' ORDER BY recall_20 DESC, trial LIMIT 1) AS chose_the_best,
       (SELECT params->>'factors' FROM pgrec.trials WHERE name = 't_als' AND chosen) AS factors,
       (SELECT params FROM pgrec.models WHERE name = 't_als')
     = (SELECT params FROM pgrec.trials WHERE name = 't_als' AND chosen) AS stored_params;
-- The version's metrics are on the held-out test part, as train()'s.
SELECT (metrics->>'recall@20')::float > 0.3 AS good_on_test, metrics ? 'recall@20' AS has_test_metrics
FROM pgrec.models WHERE name = 't_als';
SELECT count(*) AS recommendations FROM recommend(1, 5, 't_als');

-- A trial that diverges (a learning rate of 10) is kept with its error.
SELECT name, version, deployed FROM tune('t_bpr', 'bpr', 'clicks',
    '{"learning_rate": [0.05, 10]}', params => '{"iterations": 2, "factors": 4}');
SELECT trial, chosen, params->>'learning_rate' AS lr, error IS NOT NULL AS failed FROM pgrec.trials WHERE name = 't_bpr' ORDER BY trial;
-- Random draws from ranges (5 trials), the same again for the same seed.
SELECT version FROM tune('t_rand', 'bpr', 'clicks',
    '{"factors": {"min": 4, "max": 32}, "regularization": {"min": 0.001, "max": 1, "log": true}}', 5,
    '{"iterations": 2, "seed": 7}');
SELECT count(*) AS trials, count(DISTINCT params) AS distinct_params,
       bool_and((params->>'factors')::int BETWEEN 4 AND 32 AND params->'factors' = to_jsonb((params->>'factors')::int)) AS integers_in_range,
       bool_and((params->>'regularization')::float BETWEEN 0.001 AND 1) AS reg_in_range
FROM pgrec.trials WHERE name = 't_rand';
SELECT version FROM tune('t_rand', 'bpr', 'clicks',
    '{"factors": {"min": 4, "max": 32}, "regularization": {"min": 0.001, "max": 1, "log": true}}', 5,
    '{"iterations": 2, "seed": 7}');
SELECT count(*) AS differences FROM (
    (SELECT trial, params, recall_20 FROM pgrec.trials WHERE name = 't_rand' AND version = 1
     EXCEPT SELECT trial, params, recall_20 FROM pgrec.trials WHERE name = 't_rand' AND version = 2)
    UNION ALL
    (SELECT trial, params, recall_20 FROM pgrec.trials WHERE name = 't_rand' AND version = 2
     EXCEPT SELECT trial, params, recall_20 FROM pgrec.trials WHERE name = 't_rand' AND version = 1)
) d;

-- Time-ordered data: the test part is each user's latest rows (ts 22-27),
-- the validation part the latest of the rest (ts 18-21), never earlier rows.
SELECT name, version, params FROM tune('t_ts', 'item_knn', 'clicks', '{"neighbors": [5, 50]}', ts_column => 'ts');
SELECT trial, chosen, params, recall_20 FROM pgrec.trials WHERE name = 't_ts' ORDER BY trial;
-- train() keeps no trials.
SELECT count(*) AS trials_of_train FROM pgrec.models m JOIN pgrec.trials t USING (name, version) WHERE m.name = 't_plain';
SELECT name FROM train('t_plain', 'popular', 'clicks');
SELECT count(*) AS trials_of_train FROM pgrec.trials WHERE name = 't_plain';

-- Bad input.
\set VERBOSITY default
SELECT * FROM tune('bad', 'als', 'clicks', '[1]');
SELECT * FROM tune('bad', 'als', 'clicks', '{}');
SELECT * FROM tune('bad', 'als', 'clicks', '{"factors": [4]}', 0);
SELECT * FROM tune('bad', 'als', 'clicks', '{"factors": [4]}', 1001);
SELECT * FROM tune('bad', 'als', 'clicks', NULL);
SELECT * FROM tune('bad', 'als', 'clicks', '{"factors": [4]}', NULL);
SELECT * FROM tune('bad', 'als', 'clicks', '{"test_fraction": [0.1, 0.3]}');
SELECT * FROM tune('bad', 'als', 'clicks', '{"factors": [4]}', params => '{"test_fraction": 0}');
SELECT * FROM tune('bad', 'als', 'clicks', '{"factors": [4]}', params => '{"factors": 8}');
SELECT * FROM tune('bad', 'als', 'clicks', '{"factors": [4, 0]}');
SELECT * FROM tune('bad', 'als', 'clicks', '{"layers": [1, 2]}');
SELECT * FROM tune('bad', 'als', 'clicks', '{"factors": {"min": 8, "max": 4}}');
SELECT * FROM tune('bad', 'kgat', 'clicks', '{"pretrain": ["t_als"]}', relations => 'SELECT 1, 2, 3');
SELECT * FROM tune('bad', 'bpr', 'clicks', '{"learning_rate": [10]}', params => '{"iterations": 2}');
\set VERBOSITY terse
SELECT count(*) AS versions_of_bad FROM pgrec.models WHERE name = 'bad';

DROP SCHEMA tune_test CASCADE;
SELECT drop_model(name) FROM (VALUES ('t_als'), ('t_bpr'), ('t_rand'), ('t_ts'), ('t_plain')) v(name);
RESET search_path;
RESET client_min_messages;
