-- Encoders from SQL: registering the real all-MiniLM-L6-v2 (fetched by
-- scripts/test.sh into target/models), embeddings that agree with
-- sentence-transformers' (tests/fixtures/minilm/reference.json) to cosine
-- 0.9999, the batch form, tokens, weights kept in the database, a semantic
-- search, and the error for each bad input. Paths are not shown: they differ
-- between machines.
CREATE SCHEMA encoders_test;
SET search_path = encoders_test, public;
\getenv srcdir PG_ABS_SRCDIR
\set model :srcdir '/../target/models/all-MiniLM-L6-v2'
\set reference :srcdir '/../tests/fixtures/minilm/reference.json'

SELECT name, architecture, dims, max_tokens, stored FROM load_encoder('minilm', :'model');
SELECT name, architecture, dims, max_tokens, source = :'model' AS source_is_the_folder, size FROM pgrec.encoders;

-- Every reference sentence, one call each and all in one call.
CREATE TABLE ref AS
SELECT (s.ord - 1)::int AS k, s.sentence, e.vec::text::embedding AS expected
FROM jsonb_array_elements_text(pg_read_file(:'reference')::jsonb->'sentences') WITH ORDINALITY s(sentence, ord)
JOIN jsonb_array_elements(pg_read_file(:'reference')::jsonb->'embeddings') WITH ORDINALITY e(vec, ord) USING (ord);
SELECT count(*) AS sentences FROM ref;
SET client_min_messages = notice;
SELECT k, 1 - (embed_text('minilm', sentence) <=> expected) >= 0.9999 AS matches,
       abs(norm(embed_text('minilm', sentence)) - 1) < 1e-5 AS unit_length
FROM ref ORDER BY k;
WITH b AS (SELECT embed_text('minilm', array_agg(sentence ORDER BY k)) AS v FROM ref)
SELECT bool_and(1 - (b.v[k + 1] <=> expected) >= 0.9999) AS batch_matches, count(*)
FROM ref, b;
SET client_min_messages = warning;
-- NULL in, NULL out; NULL elements stay NULL; an empty array gives one.
SELECT embed_text('minilm', NULL::text) IS NULL AS null_text;
SELECT array_length(v, 1) AS len, v[2] IS NULL AS second_null, dims(v[1]) AS dims, dims(v[3]) AS dims3
FROM (SELECT embed_text('minilm', ARRAY['a', NULL, 'b']) AS v) s;
SELECT cardinality(embed_text('minilm', ARRAY[]::text[])) AS empty;

-- What the model sees.
SELECT tokenize('minilm', 'Amados');
SELECT tokenize('minilm', '');
SELECT token_count('minilm', sentence) AS tokens FROM ref WHERE k IN (0, 11) ORDER BY k;
SELECT cardinality(tokenize('minilm', sentence)) AS seen_tokens FROM ref WHERE k = 11;

-- Semantic search over a few texts.
CREATE TABLE docs (id int PRIMARY KEY, body text, emb embedding(384));
INSERT INTO docs (id, body) VALUES
    (1, 'A man is eating food.'), (2, 'A man is riding a horse.'), (3, 'The girl is carrying a baby.'),
    (4, 'A cheetah is running behind its prey.'), (5, 'Someone in a gorilla costume is playing drums.'),
    (6, 'Two men pushed carts through the woods.');
UPDATE docs SET emb = embed_text('minilm', body);
SELECT id, body FROM docs ORDER BY emb <=> embed_text('minilm', 'a person eats a meal') LIMIT 1;
SELECT id, body FROM docs ORDER BY emb <=> embed_text('minilm', 'a wild animal chases another') LIMIT 1;
CREATE INDEX ON docs USING pgrec_hnsw (emb embedding_cosine_ops);
SET enable_seqscan = off;
SELECT id FROM docs ORDER BY emb <=> embed_text('minilm', 'horse riding') LIMIT 1;
RESET enable_seqscan;

-- Weights kept in the database: same vectors, no folder needed afterwards.
SELECT name, stored FROM load_encoder('minilm_db', :'model', store_in_database => true);
SELECT count(*) AS files, sum(octet_length(data)) > 80000000 AS weights_inside
FROM pgrec.encoder_files WHERE encoder = 'minilm_db';
SELECT source FROM pgrec.encoders WHERE name = 'minilm_db';
SELECT embed_text('minilm_db', 'same weights') = embed_text('minilm', 'same weights') AS same;
SELECT drop_encoder('minilm_db');
SELECT count(*) AS files_left FROM pgrec.encoder_files WHERE encoder = 'minilm_db';

-- Bad input: each gets its SQLSTATE, message and hint.
SELECT err($$SELECT embed_text('nope', 'x')$$);
SELECT err($$SELECT tokenize('nope', 'x')$$);
SELECT err($$SELECT drop_encoder('nope')$$);
SELECT err($$SELECT * FROM load_encoder('x', '/nonexistent/model/folder')$$);
SELECT err($$SELECT * FROM load_encoder('x', '/tmp')$$);
SELECT err($$SELECT * FROM load_encoder('', '/tmp')$$);
SELECT err($$SELECT * FROM load_encoder(NULL, '/tmp')$$);
-- Only superusers and members of pg_read_server_files load from a path.
DROP ROLE IF EXISTS pgrec_plain_user;
CREATE ROLE pgrec_plain_user;
GRANT USAGE ON SCHEMA encoders_test TO pgrec_plain_user;
SET ROLE pgrec_plain_user;
SELECT err(format($$SELECT * FROM load_encoder('mine', %L)$$, :'model'));
RESET ROLE;
DROP OWNED BY pgrec_plain_user;
DROP ROLE pgrec_plain_user;
SELECT name FROM pgrec.encoders;

-- Declared properties: embedding reads the registry (STABLE) and loads the
-- model in this backend (PARALLEL RESTRICTED).
SELECT p.proname, p.provolatile, p.proisstrict, p.proparallel, pg_get_function_result(p.oid) AS result
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'pgrec'
WHERE p.proname IN ('load_encoder', 'drop_encoder', 'embed_text', 'tokenize', 'token_count')
ORDER BY 1, 5;

DROP SCHEMA encoders_test CASCADE;
SELECT drop_encoder('minilm');
