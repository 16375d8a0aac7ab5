-- Encoders: Hugging Face model folders registered by name, run in-process.
-- pgrec.encoder_registry has one row per encoder; with store_in_database the
-- model files themselves are in pgrec.encoder_files, so replicas, pg_dump and
-- restores carry them. Both are dumped with the extension's data.

CREATE SEQUENCE pgrec.encoder_revisions;
SELECT pg_catalog.pg_extension_config_dump('pgrec.encoder_revisions', '');
CREATE TABLE pgrec.encoder_registry (
    name         text PRIMARY KEY,
    architecture text NOT NULL,
    dims         integer NOT NULL,
    max_tokens   integer NOT NULL,
    path         text NOT NULL,
    stored       boolean NOT NULL,
    bytes        bigint NOT NULL,
    -- From a sequence, never reused: what per-connection caches are keyed on.
    revision     bigint NOT NULL DEFAULT pg_catalog.nextval('pgrec.encoder_revisions'),
    loaded_at    timestamptz NOT NULL DEFAULT now(),
    owner        regrole NOT NULL
);
COMMENT ON TABLE pgrec.encoder_registry IS 'pgrec encoders: model folders registered with load_encoder()';
SELECT pg_catalog.pg_extension_config_dump('pgrec.encoder_registry', '');

CREATE TABLE pgrec.encoder_files (
    encoder text NOT NULL REFERENCES pgrec.encoder_registry (name) ON DELETE CASCADE ON UPDATE CASCADE,
    file    text NOT NULL,
    data    bytea NOT NULL,
    PRIMARY KEY (encoder, file)
);
ALTER TABLE pgrec.encoder_files ALTER COLUMN data SET STORAGE external;
COMMENT ON TABLE pgrec.encoder_files IS 'model files of the encoders loaded with store_in_database => true';
SELECT pg_catalog.pg_extension_config_dump('pgrec.encoder_files', '');

CREATE VIEW pgrec.encoders AS
SELECT name, architecture, dims, max_tokens,
       CASE WHEN stored THEN 'database' ELSE path END AS source,
       pg_catalog.pg_size_pretty(bytes) AS size, loaded_at, owner
FROM pgrec.encoder_registry ORDER BY name;
GRANT SELECT ON pgrec.encoders TO PUBLIC;

CREATE FUNCTION load_encoder(name text, path text, store_in_database boolean DEFAULT false)
    RETURNS TABLE(name text, architecture text, dims integer, max_tokens integer, stored boolean)
    AS 'MODULE_PATHNAME', 'load_encoder_wrapper' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION drop_encoder(name text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'drop_encoder_wrapper' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

-- Embedding reads the registry (and caches the model per connection): STABLE,
-- and restricted to the leader since each worker would load the model again.
CREATE FUNCTION embed_text(encoder text, input text) RETURNS embedding
    AS 'MODULE_PATHNAME', 'embed_text_wrapper' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION embed_text(encoder text, inputs text[]) RETURNS embedding[]
    AS 'MODULE_PATHNAME', 'embed_texts_wrapper' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION tokenize(encoder text, input text) RETURNS text[]
    AS 'MODULE_PATHNAME', 'tokenize_wrapper' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION token_count(encoder text, input text) RETURNS integer
    AS 'MODULE_PATHNAME', 'token_count_wrapper' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;

-- Images (CLIP): decoded, preprocessed as the model's preprocessor_config.json
-- says, embedded in the same space as CLIP's text vectors.
CREATE FUNCTION embed_image(encoder text, image bytea) RETURNS embedding
    AS 'MODULE_PATHNAME', 'embed_image_wrapper' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION embed_image(encoder text, images bytea[]) RETURNS embedding[]
    AS 'MODULE_PATHNAME', 'embed_images_wrapper' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION zero_shot_classify(encoder text, image bytea, labels text[], template text DEFAULT 'a photo of a {}')
    RETURNS TABLE(label text, probability real)
    AS 'MODULE_PATHNAME', 'zero_shot_classify_wrapper' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED ROWS 10;
