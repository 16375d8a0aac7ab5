-- pgrec 0.3.0 -> 0.4.0: tune() (hyperparameter search on a validation split
-- of the training part, the best trained on all of it as a new version), the
-- trials kept with that version (pgrec.model_versions.trials) and shown by
-- pgrec.trials. The recommenders added since 0.3.0 (ease, item_knn, lightgcn)
-- need no SQL: train() takes them by name.
-- Released: never edit this file (scripts/test.sh checks it against
-- sql/released/SHA256SUMS); later changes go into the next upgrade script.
\echo Use "ALTER EXTENSION pgrec UPDATE TO '0.4.0'" to load this file. \quit

ALTER TABLE pgrec.model_versions ADD COLUMN trials jsonb;

CREATE FUNCTION tune(name text, algorithm text, interactions text, search jsonb, trials integer DEFAULT 10,
                     params jsonb DEFAULT '{}', user_column text DEFAULT 'user_id', item_column text DEFAULT 'item_id',
                     weight_column text DEFAULT NULL, ts_column text DEFAULT NULL,
                     relations text DEFAULT NULL, item_entities text DEFAULT NULL,
                     user_relations text DEFAULT NULL, item_features text DEFAULT NULL)
    RETURNS TABLE(name text, version integer, algorithm text, deployed boolean, params jsonb, metrics jsonb)
    AS 'MODULE_PATHNAME', 'tune_wrapper' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION tune(text, text, text, jsonb, integer, jsonb, text, text, text, text, text, text, text, text) IS
    'trains the trials of search on a validation split of the training part, then the best on all of it as a new version of name';

CREATE FUNCTION pgrec.trial_list()
    RETURNS TABLE(name text, version integer, trial integer, chosen boolean, params jsonb, metrics jsonb,
                  error text, seconds double precision)
    AS 'MODULE_PATHNAME', 'trial_list_wrapper' LANGUAGE C STABLE PARALLEL RESTRICTED;
CREATE VIEW pgrec.trials AS
SELECT name, version, trial, chosen, params,
       round((metrics->>'recall@20')::numeric, 4) AS recall_20,
       round((metrics->>'ndcg@20')::numeric, 4) AS ndcg_20,
       round(seconds::numeric, 1) AS seconds, error, metrics
FROM pgrec.trial_list()
ORDER BY name, version, trial;
GRANT SELECT ON pgrec.trials TO PUBLIC;
COMMENT ON VIEW pgrec.trials IS 'the trials of every tuned model version you may use, with their validation metrics';
