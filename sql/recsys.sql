-- Recommenders: the model registry in schema pgrec and the functions that
-- train, deploy and serve models. Model parameters live in the registry table
-- (bytea), so models are transactional, replicated and in pg_dump. Serving
-- functions are PARALLEL RESTRICTED: each backend keeps its own model cache,
-- which a parallel worker would have to load again.
--
-- Only pgrec's functions read and write the registry tables (as the
-- extension's owner, after checking the caller's rights to the model in
-- Rust): no role but the owner has privileges on them. Roles see the models
-- they may use through the view pgrec.models.

CREATE SCHEMA pgrec;
GRANT USAGE ON SCHEMA pgrec TO PUBLIC;

-- A role and a relation as the registry stores them: regrole and regclass
-- with their text form only. An OID means something in one server alone; on a
-- Citus cluster (pgrec.distribute_models) the registry's rows are copied to
-- every node, and Citus copies a type with a binary form byte for byte but
-- one without it as text, which each node reads back by name into its own
-- OIDs.
CREATE TYPE pgrec.role_ref;
CREATE FUNCTION pgrec.role_ref_in(cstring) RETURNS pgrec.role_ref
    AS 'regrolein' LANGUAGE internal STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pgrec.role_ref_out(pgrec.role_ref) RETURNS cstring
    AS 'regroleout' LANGUAGE internal STABLE STRICT PARALLEL SAFE;
CREATE TYPE pgrec.role_ref (INPUT = pgrec.role_ref_in, OUTPUT = pgrec.role_ref_out, LIKE = pg_catalog.regrole);
CREATE CAST (pgrec.role_ref AS pg_catalog.oid) WITHOUT FUNCTION;
CREATE CAST (pg_catalog.oid AS pgrec.role_ref) WITHOUT FUNCTION;
CREATE CAST (pgrec.role_ref AS pg_catalog.regrole) WITHOUT FUNCTION;
CREATE CAST (pg_catalog.text AS pgrec.role_ref) WITH INOUT;
CREATE TYPE pgrec.relation_ref;
CREATE FUNCTION pgrec.relation_ref_in(cstring) RETURNS pgrec.relation_ref
    AS 'regclassin' LANGUAGE internal STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pgrec.relation_ref_out(pgrec.relation_ref) RETURNS cstring
    AS 'regclassout' LANGUAGE internal STABLE STRICT PARALLEL SAFE;
CREATE TYPE pgrec.relation_ref (INPUT = pgrec.relation_ref_in, OUTPUT = pgrec.relation_ref_out,
                                LIKE = pg_catalog.regclass);
CREATE CAST (pgrec.relation_ref AS pg_catalog.oid) WITHOUT FUNCTION;
CREATE CAST (pg_catalog.oid AS pgrec.relation_ref) WITHOUT FUNCTION;
CREATE CAST (pg_catalog.text AS pgrec.relation_ref) WITH INOUT;

-- One row per model name: who owns it (the role that trained its first
-- version) and who else may use it (grant_model / revoke_model).
CREATE TABLE pgrec.model_acl (
    name    text PRIMARY KEY,
    owner   pgrec.role_ref NOT NULL,
    readers pgrec.role_ref[] NOT NULL DEFAULT '{}',
    public  boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE pgrec.model_acl IS 'owner of each pgrec model and the roles granted its use';
SELECT pg_catalog.pg_extension_config_dump('pgrec.model_acl', '');

CREATE SEQUENCE pgrec.model_ids;
SELECT pg_catalog.pg_extension_config_dump('pgrec.model_ids', '');

CREATE TABLE pgrec.model_versions (
    -- No foreign key to model_acl: pgrec's functions write both tables
    -- under the model's lock, and on Citus a key between reference tables
    -- would force train()'s reads of distributed tables onto one connection.
    name          text NOT NULL,
    version       integer NOT NULL,
    algorithm     text NOT NULL,
    params        jsonb NOT NULL,
    metrics       jsonb NOT NULL,
    users         bigint NOT NULL,
    items         bigint NOT NULL,
    interactions  bigint NOT NULL,
    train_rows    bigint NOT NULL,
    test_rows     bigint NOT NULL,
    train_seconds double precision NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    deployed      boolean NOT NULL DEFAULT false,
    data          bytea NOT NULL,
    graph         bytea,
    -- content_knn over one indexed column: the relation and its (id, vector)
    -- columns, from which serving builds its own index query.
    source        pgrec.relation_ref,
    source_columns text[],
    -- Never reused (a dropped and retrained name starts at version 1 again):
    -- what per-connection caches are keyed on.
    id            bigint NOT NULL UNIQUE DEFAULT pg_catalog.nextval('pgrec.model_ids'),
    -- tune(): every trial's params, validation metrics or error, and seconds.
    trials        jsonb,
    -- deploy_challenger(): the share of users recommend() serves this
    -- version to instead of the deployed one; NULL for every other version.
    share         real,
    PRIMARY KEY (name, version),
    CONSTRAINT model_versions_share_check CHECK (share IS NULL OR (share > 0 AND share < 1 AND NOT deployed))
);
ALTER TABLE pgrec.model_versions ALTER COLUMN data SET STORAGE external;
ALTER TABLE pgrec.model_versions ALTER COLUMN graph SET STORAGE external;
COMMENT ON COLUMN pgrec.model_versions.graph IS 'kgat: the attention-weighted knowledge graph that explain() reads';
CREATE UNIQUE INDEX model_versions_deployed ON pgrec.model_versions (name) WHERE deployed;
CREATE UNIQUE INDEX model_versions_challenger ON pgrec.model_versions (name) WHERE share IS NOT NULL;
COMMENT ON TABLE pgrec.model_versions IS 'every trained pgrec model version, with its parameters in data';
SELECT pg_catalog.pg_extension_config_dump('pgrec.model_versions', '');

-- Whether the current role may use a model with this owner and grants (what
-- 0.2.0's view filtered with; pgrec.model_list checks in Rust).
CREATE FUNCTION pgrec.may_use_model(owner regrole, readers regrole[], public boolean) RETURNS boolean
    AS 'MODULE_PATHNAME', 'may_use_model_wrapper' LANGUAGE C STABLE PARALLEL SAFE;

-- Read through a function that reads the registry as pgrec's owner and
-- keeps the versions the caller may use: a view over the tables would need
-- the caller's rights on them where Citus reads their shards.
CREATE FUNCTION pgrec.model_list()
    RETURNS TABLE(name text, version integer, algorithm text, deployed boolean, users bigint, items bigint,
                  interactions bigint, train_seconds double precision, bytes bigint, created_at timestamptz,
                  params jsonb, metrics jsonb, owner regrole)
    AS 'MODULE_PATHNAME', 'model_list_wrapper' LANGUAGE C STABLE PARALLEL RESTRICTED;
CREATE VIEW pgrec.models AS
SELECT name, version, algorithm, deployed,
       round((metrics->>'recall@20')::numeric, 4) AS recall_20,
       round((metrics->>'ndcg@20')::numeric, 4) AS ndcg_20,
       users, items, interactions, round(train_seconds::numeric, 1) AS train_seconds,
       pg_catalog.pg_size_pretty(bytes) AS size, created_at, params, metrics, owner
FROM pgrec.model_list()
ORDER BY name, version;
GRANT SELECT ON pgrec.models TO PUBLIC;

CREATE FUNCTION pgrec.distribute_models() RETURNS boolean
    AS 'MODULE_PATHNAME', 'distribute_models_wrapper' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pgrec.distribute_models() IS
    'citus: makes the model registry reference tables, so recommend() runs on every node; superusers only';

CREATE FUNCTION train(name text, algorithm text, interactions text, params jsonb DEFAULT '{}',
                      user_column text DEFAULT 'user_id', item_column text DEFAULT 'item_id',
                      weight_column text DEFAULT NULL, ts_column text DEFAULT NULL,
                      relations text DEFAULT NULL, item_entities text DEFAULT NULL,
                      user_relations text DEFAULT NULL, item_features text DEFAULT NULL)
    RETURNS TABLE(name text, version integer, algorithm text, deployed boolean, metrics jsonb)
    AS 'MODULE_PATHNAME', 'train_wrapper' LANGUAGE C VOLATILE PARALLEL UNSAFE;

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

CREATE FUNCTION deploy(name text, version integer DEFAULT NULL) RETURNS integer
    AS 'MODULE_PATHNAME', 'deploy_wrapper' LANGUAGE C VOLATILE PARALLEL UNSAFE;
-- Every change of what a model serves, oldest first: who deployed which
-- version when, by what (train, deploy, rollback, add_items, update,
-- challenger, stop_challenger; upgrade for what was deployed when 0.5.0
-- came). Read by
-- rollback_model() and shown, for the models the caller may use, by
-- pgrec.deployments.
CREATE SEQUENCE pgrec.deployment_ids;
SELECT pg_catalog.pg_extension_config_dump('pgrec.deployment_ids', '');
CREATE TABLE pgrec.deployment_log (
    id      bigint PRIMARY KEY DEFAULT pg_catalog.nextval('pgrec.deployment_ids'),
    name    text NOT NULL,
    version integer NOT NULL,
    -- The challenger's share of users; NULL where the version serves everyone else.
    share   real,
    action  text NOT NULL,
    at      timestamptz NOT NULL DEFAULT now(),
    by_role pgrec.role_ref NOT NULL
);
COMMENT ON TABLE pgrec.deployment_log IS 'every deployment of every pgrec model, oldest first';
SELECT pg_catalog.pg_extension_config_dump('pgrec.deployment_log', '');
CREATE FUNCTION pgrec.deployment_list()
    RETURNS TABLE(id bigint, name text, version integer, share real, action text, at timestamptz, by_role regrole)
    AS 'MODULE_PATHNAME', 'deployment_list_wrapper' LANGUAGE C STABLE PARALLEL RESTRICTED;
CREATE VIEW pgrec.deployments AS
SELECT name, version, share, action, at, by_role FROM pgrec.deployment_list() ORDER BY id;
GRANT SELECT ON pgrec.deployments TO PUBLIC;
COMMENT ON VIEW pgrec.deployments IS 'the deployment history of every model you may use, oldest first';

CREATE FUNCTION rollback_model(name text) RETURNS integer
    AS 'MODULE_PATHNAME', 'rollback_model_wrapper' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION rollback_model(text) IS
    'deploys again the version deployed before the current one (twice: back where it was); returns it';
CREATE FUNCTION deploy_challenger(name text, version integer, share real) RETURNS integer
    AS 'MODULE_PATHNAME', 'deploy_challenger_wrapper' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION deploy_challenger(text, integer, real) IS
    'recommend() serves version to share of the users (fixed by user id), the deployed version to the rest';
CREATE FUNCTION stop_challenger(name text) RETURNS integer
    AS 'MODULE_PATHNAME', 'stop_challenger_wrapper' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION stop_challenger(text) IS
    'the deployed version serves every user again; returns the challenger''s version (NULL if none)';
CREATE FUNCTION served_version(model text, user_id bigint) RETURNS integer
    AS 'MODULE_PATHNAME', 'served_version_wrapper' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION served_version(text, bigint) IS
    'the version of model that recommend() serves to user_id';
CREATE FUNCTION drop_model(name text) RETURNS integer
    AS 'MODULE_PATHNAME', 'drop_model_wrapper' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
CREATE FUNCTION grant_model(model text, role text) RETURNS void
    AS 'MODULE_PATHNAME', 'grant_model_wrapper' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
CREATE FUNCTION revoke_model(model text, role text) RETURNS void
    AS 'MODULE_PATHNAME', 'revoke_model_wrapper' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION grant_model(text, text) IS
    'lets role (or public) use model: recommend, similar_items, embeddings, evaluate, explain, pretrain from it';

CREATE FUNCTION recommend(user_id bigint, k integer DEFAULT 10, model text DEFAULT NULL,
                          exclude_seen boolean DEFAULT true, candidates bigint[] DEFAULT NULL)
    RETURNS TABLE(item_id bigint, score real)
    AS 'MODULE_PATHNAME', 'recommend_wrapper' LANGUAGE C STABLE PARALLEL RESTRICTED ROWS 10;
CREATE FUNCTION recommend(user_ids bigint[], k integer DEFAULT 10, model text DEFAULT NULL,
                          exclude_seen boolean DEFAULT true, candidates bigint[] DEFAULT NULL)
    RETURNS TABLE(user_id bigint, item_id bigint, score real)
    AS 'MODULE_PATHNAME', 'recommend_batch_wrapper' LANGUAGE C STABLE PARALLEL RESTRICTED;
CREATE FUNCTION recommend_for_items(item_ids bigint[], k integer DEFAULT 10, model text DEFAULT NULL,
                                    candidates bigint[] DEFAULT NULL)
    RETURNS TABLE(item_id bigint, score real)
    AS 'MODULE_PATHNAME', 'recommend_for_items_wrapper' LANGUAGE C STABLE PARALLEL RESTRICTED ROWS 10;
CREATE FUNCTION similar_items(item_id bigint, k integer DEFAULT 10, model text DEFAULT NULL)
    RETURNS TABLE(item_id bigint, score real)
    AS 'MODULE_PATHNAME', 'similar_items_wrapper' LANGUAGE C STABLE PARALLEL RESTRICTED ROWS 10;
CREATE FUNCTION user_embedding(model text, user_id bigint) RETURNS embedding
    AS 'MODULE_PATHNAME', 'user_embedding_wrapper' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION item_embedding(model text, item_id bigint) RETURNS embedding
    AS 'MODULE_PATHNAME', 'item_embedding_wrapper' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION export_item_embeddings(model text, target text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'export_item_embeddings_wrapper' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
CREATE FUNCTION evaluate(model text, test text, k integer DEFAULT 20, candidates bigint[] DEFAULT NULL,
                         user_column text DEFAULT 'user_id', item_column text DEFAULT 'item_id')
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'evaluate_wrapper' LANGUAGE C STABLE PARALLEL UNSAFE;

CREATE FUNCTION explain(model text, user_id bigint, item_id bigint, k integer DEFAULT 3)
    RETURNS TABLE(rank integer, weight real, hops integer, path text)
    AS 'MODULE_PATHNAME', 'explain_wrapper' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION explain(text, bigint, bigint, integer) IS
    'kgat: the k paths of up to three hops from the user to the item with the highest attention products';

CREATE FUNCTION add_items(model text, item_features text)
    RETURNS TABLE(name text, version integer, added bigint)
    AS 'MODULE_PATHNAME', 'add_items_wrapper' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION add_items(text, text) IS
    'vbpr, content_knn: a new deployed version of the model with the items of item_features it lacks, scored from their content';

CREATE FUNCTION update_model(name text, interactions text, user_column text DEFAULT 'user_id',
                             item_column text DEFAULT 'item_id', weight_column text DEFAULT NULL)
    RETURNS TABLE(name text, version integer, interactions bigint, new_users bigint, new_items bigint,
                  users_updated bigint)
    AS 'MODULE_PATHNAME', 'update_model_wrapper' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION update_model(text, text, text, text, text) IS
    'als, bpr, popular, ease, item_knn: a new deployed version with the new interactions folded in, without retraining';

CREATE FUNCTION prune_versions(name text, keep integer DEFAULT 5) RETURNS bigint
    AS 'MODULE_PATHNAME', 'prune_versions_wrapper' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION prune_versions(text, integer) IS
    'deletes the versions of name but the newest keep, the deployed one and a challenger; returns how many';
