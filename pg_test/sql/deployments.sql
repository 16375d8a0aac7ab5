-- Deployment history, rollback and A/B serving: every change of what a model
-- serves is in pgrec.deployments; rollback_model() goes back to the version
-- served before; deploy_challenger() serves another version to a fixed share
-- of the users, which recommend() (one user or many) and served_version()
-- follow; deploy() and stop_challenger() end it. Then the exact error for
-- each bad input, and what another role may do.
CREATE SCHEMA deploy_test;
SET search_path = deploy_test, public;
SET pgrec.threads = 1;
SET client_min_messages = warning;

-- 200 users in 4 taste groups over 80 items (item i in group i % 4); each
-- user has 12 items of its own group.
CREATE TABLE clicks (user_id int, item_id int);
INSERT INTO clicks
SELECT u, ((u * 7 + j * 3) % 20) * 4 + u % 4 FROM generate_series(1, 200) u, generate_series(0, 11) j;

-- Version 1 deploys itself (the first); version 2 (a poor one) does not.
SELECT version, deployed FROM train('ab', 'bpr', 'clicks', '{"factors": 8, "iterations": 20}');
SELECT version, deployed FROM train('ab', 'bpr', 'clicks', '{"factors": 2, "iterations": 1}');
SELECT version, deployed FROM train('ab', 'popular', 'clicks');
SELECT name, version, share, action, by_role FROM pgrec.deployments;

-- Rollback goes back to the version that served before, and a second one
-- returns; each is recorded.
SELECT deploy('ab', 2);
SELECT rollback_model('ab') AS rolled_back_to;
SELECT rollback_model('ab') AS rolled_back_to;
SELECT deploy('ab', 3);
SELECT rollback_model('ab') AS rolled_back_to;
SELECT version FROM pgrec.models WHERE name = 'ab' AND deployed;
SELECT version, action FROM pgrec.deployments WHERE name = 'ab';

SELECT deploy('ab', 1);
-- Version 3 (popularity) as challenger for 30% of the users: each user's
-- version is fixed by the id, about 30% of them get it, and recommend() for
-- each user is what its version serves.
SELECT deploy_challenger('ab', 3, 0.3);
SELECT version, share, action FROM pgrec.deployments WHERE name = 'ab' ORDER BY version DESC, action LIMIT 1;
CREATE TABLE arms AS SELECT u AS user_id, served_version('ab', u) AS version FROM generate_series(1, 200) u;
SELECT version, count(*) FROM arms GROUP BY version ORDER BY version;
SELECT count(*) BETWEEN 45 AND 75 AS about_30_percent FROM arms WHERE version = 3;
SELECT count(*) AS same_on_a_second_ask FROM arms WHERE served_version('ab', user_id) = version;
-- Popularity recommends the same items to everyone not already having them;
-- the personalised version does not: so each arm is seen in its lists.
CREATE TABLE served AS
SELECT a.user_id, a.version, r.item_id, r.score
FROM arms a, recommend(a.user_id::bigint, 5, 'ab') r;
SELECT version, count(DISTINCT user_id) AS users,
       bool_and(item_id % 4 = user_id % 4) AS own_group_only
FROM served GROUP BY version ORDER BY version;
-- The batch form serves each user the same as a call of their own (its
-- scores come from a matrix product, so they may differ in the last bit).
CREATE TABLE served_batch AS
SELECT * FROM recommend((SELECT array_agg(user_id::bigint) FROM arms), 5, 'ab');
SELECT count(*) FILTER (WHERE s.score IS NULL OR b.score IS NULL) AS differing,
       max(abs(s.score - b.score)) < 1e-5 AS same_scores
FROM served s FULL JOIN served_batch b USING (user_id, item_id);
-- What the challenger's users got is what version 3 serves once deployed.
CREATE TABLE v3_users AS SELECT user_id, item_id, score FROM served WHERE version = 3;
-- A larger share keeps the users it had.
SELECT deploy_challenger('ab', 3, 0.6);
SELECT count(*) AS kept FROM arms WHERE version = 3 AND served_version('ab', user_id) = 3;
SELECT count(*) > (SELECT count(*) FROM arms WHERE version = 3) AS more_users FROM arms WHERE served_version('ab', user_id) = 3;
-- Stopping serves the deployed version to everyone again; a second stop has
-- nothing to stop.
SELECT stop_challenger('ab');
SELECT stop_challenger('ab') IS NULL AS nothing_to_stop;
SELECT count(DISTINCT served_version('ab', u)) AS versions_served FROM generate_series(1, 200) u;
-- Deploying a version ends a challenger too: the deployed one serves all.
SELECT deploy_challenger('ab', 2, 0.5);
SELECT deploy('ab', 3);
SELECT count(*) AS differing FROM v3_users v
WHERE (v.item_id, v.score) NOT IN (SELECT item_id, score FROM recommend(v.user_id::bigint, 5, 'ab'));
SELECT count(DISTINCT served_version('ab', u)) AS versions_served FROM generate_series(1, 200) u;
SELECT version, share, action FROM pgrec.deployments WHERE name = 'ab';

-- New interactions fold into the deployed model (bpr, version 1) as a new
-- deployed version, without retraining: 20 new users with 10 items of their
-- group, and a new item per group (80–83, group item % 4) that a third of
-- each group's users click.
SELECT deploy('ab', 1);
CREATE TABLE new_clicks (user_id int, item_id int);
INSERT INTO new_clicks
SELECT u, ((u * 5 + j * 7) % 20) * 4 + u % 4 FROM generate_series(201, 220) u, generate_series(0, 9) j;
INSERT INTO new_clicks SELECT u, 80 + u % 4 FROM generate_series(1, 200) u WHERE u % 3 = 0;
SELECT name, version, interactions, new_users, new_items, users_updated FROM update_model('ab', 'new_clicks');
SELECT version, deployed, users, items, interactions, params->>'updated_from' AS updated_from,
       params->>'update_rows' AS update_rows
FROM pgrec.models WHERE name = 'ab' AND deployed;
SELECT version, action FROM pgrec.deployments WHERE name = 'ab' ORDER BY at DESC, version DESC LIMIT 1;
-- A new user is served their own group.
SELECT count(*) FILTER (WHERE r.item_id % 4 = u % 4) AS own_group, count(*) AS recs
FROM generate_series(201, 220) u, recommend(u::bigint, 5, 'ab') r;
-- A new item ranks higher for its group's users who have not clicked it
-- than the other groups' new items do.
SELECT count(*) FILTER (WHERE own < other) AS users_ranking_their_new_item_higher, count(*) AS users
FROM (
    SELECT u,
           (SELECT rank FROM (SELECT item_id, row_number() OVER () AS rank
                              FROM recommend(u::bigint, 84, 'ab', exclude_seen => false)) x
            WHERE item_id = 80 + u % 4) AS own,
           (SELECT avg(rank) FROM (SELECT item_id, row_number() OVER () AS rank
                                   FROM recommend(u::bigint, 84, 'ab', exclude_seen => false)) x
            WHERE item_id BETWEEN 80 AND 83 AND item_id <> 80 + u % 4) AS other
    FROM generate_series(1, 200) u WHERE u % 3 <> 0
) t;
-- Folding in what the model has does not break it; no rows, no version.
SELECT version, interactions, new_users, new_items FROM update_model('ab', 'SELECT * FROM new_clicks WHERE false');
-- Rollback returns to the model before the update.
SELECT rollback_model('ab') AS rolled_back_to;
SELECT count(*) AS recs_for_an_unknown_user FROM recommend(201::bigint, 5, 'ab');
\set VERBOSITY terse
SELECT version FROM train('graph', 'lightgcn', 'clicks', '{"factors": 4, "iterations": 1}');
SELECT * FROM update_model('graph', 'new_clicks');
SELECT * FROM update_model('nope', 'new_clicks');
SELECT * FROM update_model('ab', 'no_such_table');
SELECT * FROM update_model('ab', 'SELECT 1 AS user_id, 2 AS item_id, -1.0 AS weight');
SELECT * FROM update_model('ab', 'new_clicks', user_column => 'uid');
-- The updated model's size is bounded before it is made: a million new
-- users and items at 1024 factors would need gigabytes.
SELECT version FROM train('wide', 'bpr', 'clicks', '{"factors": 1024, "iterations": 1}');
SELECT * FROM update_model('wide', 'SELECT g AS user_id, g AS item_id FROM generate_series(1000, 1000999) g');
SELECT drop_model('wide');
\set VERBOSITY default
SELECT drop_model('graph');
SELECT deploy('ab', 3);

-- Bad input: each with its exact error.
\set VERBOSITY terse
SELECT deploy_challenger('ab', 1, 0);
SELECT deploy_challenger('ab', 1, 1);
SELECT deploy_challenger('ab', 1, -0.5);
SELECT deploy_challenger('ab', 1, 'NaN');
SELECT deploy_challenger('ab', 3, 0.5);
SELECT deploy_challenger('ab', 9, 0.5);
SELECT deploy_challenger('nope', 1, 0.5);
SELECT rollback_model('nope');
SELECT stop_challenger('nope');
SELECT served_version('nope', 1);
SELECT version, deployed FROM train('once', 'popular', 'clicks');
SELECT rollback_model('once');
\set VERBOSITY default

-- Another role: it sees no history of models it may not use, may not change
-- what they serve, and may not ask which version a user gets.
DROP ROLE IF EXISTS pgrec_deploy_app;
CREATE ROLE pgrec_deploy_app;
SET ROLE pgrec_deploy_app;
SELECT count(*) AS visible_history FROM pgrec.deployments;
\set VERBOSITY terse
SELECT deploy_challenger('ab', 1, 0.5);
SELECT rollback_model('ab');
SELECT stop_challenger('ab');
SELECT served_version('ab', 1);
SELECT * FROM update_model('ab', 'deploy_test.clicks');
SELECT * FROM pgrec.deployment_log;
\set VERBOSITY default
RESET ROLE;
-- Granted the model, it may serve from it and see its history, not change it.
SELECT grant_model('ab', 'pgrec_deploy_app');
SELECT deploy_challenger('ab', 1, 0.5);
SET ROLE pgrec_deploy_app;
SELECT count(*) > 0 AS visible_history FROM pgrec.deployments WHERE name = 'ab';
SELECT served_version('ab', 7) IN (1, 3) AS served;
\set VERBOSITY terse
SELECT deploy('ab', 1);
SELECT stop_challenger('ab');
\set VERBOSITY default
RESET ROLE;

-- Old versions go, but the newest ones, the deployed one and a challenger
-- stay (here version 4; 3, deployed; 1, the challenger): version 2 goes.
SELECT prune_versions('ab', 1) AS pruned;
SELECT version, deployed FROM pgrec.models WHERE name = 'ab' ORDER BY version;
SELECT prune_versions('ab', 0) AS pruned_again;
\set VERBOSITY terse
SELECT prune_versions('ab', -1);
SELECT prune_versions('nope');
SET ROLE pgrec_deploy_app;
SELECT prune_versions('ab');
RESET ROLE;
\set VERBOSITY default

-- Dropping a model drops its history.
SELECT drop_model('ab'), drop_model('once');
SELECT count(*) AS history_left FROM pgrec.deployment_log WHERE name IN ('ab', 'once');
DROP ROLE pgrec_deploy_app;
DROP SCHEMA deploy_test CASCADE;
RESET search_path;
RESET client_min_messages;
