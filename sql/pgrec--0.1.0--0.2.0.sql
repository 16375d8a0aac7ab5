-- pgrec 0.1.0 -> 0.2.0: models get owners and grants, the registry is read
-- and written only by pgrec's functions, caches key on never-reused ids, and
-- content_knn records its item table instead of SQL text. Released: never
-- edit this file (scripts/test.sh checks it against sql/released/SHA256SUMS);
-- later changes go into the next upgrade script.
\echo Use "ALTER EXTENSION pgrec UPDATE TO '0.2.0'" to load this file. \quit

GRANT USAGE ON SCHEMA pgrec TO PUBLIC;

-- Owners: models trained before 0.2.0 belong to the extension's owner, who
-- can grant them (grant_model) or hand them on.
CREATE TABLE pgrec.model_acl (
    name    text PRIMARY KEY,
    owner   regrole NOT NULL,
    readers regrole[] NOT NULL DEFAULT '{}',
    public  boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE pgrec.model_acl IS 'owner of each pgrec model and the roles granted its use';
SELECT pg_catalog.pg_extension_config_dump('pgrec.model_acl', '');
INSERT INTO pgrec.model_acl (name, owner)
SELECT DISTINCT v.name, e.extowner::pg_catalog.regrole
FROM pgrec.model_versions v, pg_catalog.pg_extension e WHERE e.extname = 'pgrec';

CREATE SEQUENCE pgrec.model_ids;
SELECT pg_catalog.pg_extension_config_dump('pgrec.model_ids', '');

-- Versions trained before 0.2.0 have no recorded item table: a content_knn
-- model among them serves from its own vectors until it is retrained.
ALTER TABLE pgrec.model_versions
    ADD COLUMN source regclass,
    ADD COLUMN source_columns text[],
    ADD COLUMN id bigint NOT NULL DEFAULT pg_catalog.nextval('pgrec.model_ids');
ALTER TABLE pgrec.model_versions ADD CONSTRAINT model_versions_id_key UNIQUE (id);
ALTER TABLE pgrec.model_versions ADD CONSTRAINT model_versions_name_fkey
    FOREIGN KEY (name) REFERENCES pgrec.model_acl (name) ON DELETE CASCADE;

CREATE FUNCTION pgrec.may_use_model(owner regrole, readers regrole[], public boolean) RETURNS boolean
    AS 'MODULE_PATHNAME', 'may_use_model_wrapper' LANGUAGE C STABLE PARALLEL SAFE;

CREATE OR REPLACE VIEW pgrec.models AS
SELECT v.name, version, algorithm, deployed,
       round((metrics->>'recall@20')::numeric, 4) AS recall_20,
       round((metrics->>'ndcg@20')::numeric, 4) AS ndcg_20,
       users, items, interactions, round(train_seconds::numeric, 1) AS train_seconds,
       pg_catalog.pg_size_pretty(pg_catalog.octet_length(data)::bigint + coalesce(pg_catalog.octet_length(graph), 0)) AS size,
       created_at, params, metrics, a.owner
FROM pgrec.model_versions v JOIN pgrec.model_acl a ON a.name = v.name
WHERE pgrec.may_use_model(a.owner, a.readers, a.public)
ORDER BY v.name, version;
GRANT SELECT ON pgrec.models TO PUBLIC;

CREATE FUNCTION grant_model(model text, role text) RETURNS void
    AS 'MODULE_PATHNAME', 'grant_model_wrapper' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
CREATE FUNCTION revoke_model(model text, role text) RETURNS void
    AS 'MODULE_PATHNAME', 'revoke_model_wrapper' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION grant_model(text, text) IS
    'lets role (or public) use model: recommend, similar_items, embeddings, evaluate, explain, pretrain from it';

-- Encoders: revisions from a sequence (continuing past the old ones), and
-- owners (the extension's owner for those loaded before 0.2.0).
CREATE SEQUENCE pgrec.encoder_revisions;
SELECT pg_catalog.pg_extension_config_dump('pgrec.encoder_revisions', '');
SELECT pg_catalog.setval('pgrec.encoder_revisions', max(revision)) FROM pgrec.encoder_registry
HAVING max(revision) IS NOT NULL;
ALTER TABLE pgrec.encoder_registry
    ALTER COLUMN revision SET DEFAULT pg_catalog.nextval('pgrec.encoder_revisions'),
    ADD COLUMN owner regrole;
UPDATE pgrec.encoder_registry SET owner = e.extowner::pg_catalog.regrole
FROM pg_catalog.pg_extension e WHERE e.extname = 'pgrec';
ALTER TABLE pgrec.encoder_registry ALTER COLUMN owner SET NOT NULL;

CREATE OR REPLACE VIEW pgrec.encoders AS
SELECT name, architecture, dims, max_tokens,
       CASE WHEN stored THEN 'database' ELSE path END AS source,
       pg_catalog.pg_size_pretty(bytes) AS size, loaded_at, owner
FROM pgrec.encoder_registry ORDER BY name;
GRANT SELECT ON pgrec.encoders TO PUBLIC;
