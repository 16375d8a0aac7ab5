-- pgrec 0.4.0 -> 0.5.0: deployment history (pgrec.deployment_log, shown by
-- pgrec.deployments), rollback_model(), and A/B serving: deploy_challenger()
-- serves a version to a share of the users (pgrec.model_versions.share),
-- stop_challenger() ends it, served_version() says which version a user gets;
-- update_model() folds new interactions into a model as a new version, and
-- prune_versions() deletes old versions.
-- Released: never edit this file (scripts/test.sh checks it against
-- sql/released/SHA256SUMS); later changes go into the next upgrade script.
\echo Use "ALTER EXTENSION pgrec UPDATE TO '0.5.0'" to load this file. \quit

ALTER TABLE pgrec.model_versions ADD COLUMN share real,
    ADD CONSTRAINT model_versions_share_check CHECK (share IS NULL OR (share > 0 AND share < 1 AND NOT deployed));
CREATE UNIQUE INDEX model_versions_challenger ON pgrec.model_versions (name) WHERE share IS NOT NULL;

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

-- What serves now has no history before this update: one row each.
INSERT INTO pgrec.deployment_log (name, version, action, by_role)
SELECT v.name, v.version, 'upgrade', a.owner
FROM pgrec.model_versions v JOIN pgrec.model_acl a ON a.name = v.name
WHERE v.deployed ORDER BY v.name;
