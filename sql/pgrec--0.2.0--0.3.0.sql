-- pgrec 0.2.0 -> 0.3.0: the registry stores roles and relations in types
-- that Citus copies as text (each node reads them back into its own OIDs),
-- model_versions has no foreign key to model_acl (a key between reference
-- tables would serialise train()'s reads of distributed tables), the view
-- pgrec.models reads through pgrec.model_list() (as pgrec's owner, so that on
-- Citus the caller needs no rights on the registry's shards), and
-- pgrec.distribute_models() makes the registry Citus reference tables.
-- Released: never edit this file (scripts/test.sh checks it against
-- sql/released/SHA256SUMS); later changes go into the next upgrade script.
\echo Use "ALTER EXTENSION pgrec UPDATE TO '0.3.0'" to load this file. \quit

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

-- The view reads the columns whose types change.
DROP VIEW pgrec.models;
ALTER TABLE pgrec.model_versions DROP CONSTRAINT model_versions_name_fkey;
-- The stored OIDs are kept as they are: same server, same meaning.
ALTER TABLE pgrec.model_acl
    ALTER COLUMN owner TYPE pgrec.role_ref USING owner::pg_catalog.oid::pgrec.role_ref,
    ALTER COLUMN readers DROP DEFAULT,
    ALTER COLUMN readers TYPE pgrec.role_ref[] USING readers::pg_catalog.oid[]::pgrec.role_ref[],
    ALTER COLUMN readers SET DEFAULT '{}';
ALTER TABLE pgrec.model_versions
    ALTER COLUMN source TYPE pgrec.relation_ref USING source::pg_catalog.oid::pgrec.relation_ref;

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
