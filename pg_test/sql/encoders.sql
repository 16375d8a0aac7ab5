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
SELECT err($$SELECT * FROM load_encoder('x', '/tmp', store_in_database => NULL)$$);
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

-- CLIP: a tiny random-weight model made by scripts/fixtures/encoders.py with
-- transformers, with reference text and image vectors and zero-shot
-- probabilities; the same code path real CLIP ViT-B/32 weights take.
\set clip :srcdir '/../tests/fixtures/tiny-clip'
SELECT name, architecture, dims, max_tokens FROM load_encoder('tiny_clip', :'clip');
CREATE TABLE clip_ref AS SELECT pg_read_file(:'clip' || '/reference.json')::jsonb AS r;
CREATE TABLE clip_images AS
SELECT i->>'file' AS file, (i->>'exact')::boolean AS exact, (i->>'embedding')::embedding AS expected,
       i->'probabilities' AS probabilities, pg_read_binary_file(:'clip' || '/' || (i->>'file')) AS bytes
FROM clip_ref, jsonb_array_elements(r->'images') i;
-- Lossless formats agree to 1e-4 per component; JPEG within decoder rounding.
SELECT file, CASE WHEN exact THEN (SELECT max(abs(a - b)) < 1e-4 FROM unnest(embed_image('tiny_clip', bytes)::real[], expected::real[]) t(a, b))
                  ELSE 1 - (embed_image('tiny_clip', bytes) <=> expected) > 0.99 END AS matches
FROM clip_images ORDER BY file;
WITH b AS (SELECT embed_image('tiny_clip', array_agg(bytes ORDER BY file)) AS v, array_agg(file ORDER BY file) AS f FROM clip_images)
SELECT bool_and((b.v[k] <-> embed_image('tiny_clip', c.bytes)) < 1e-5) AS batch_equals_single
FROM b, generate_subscripts(b.f, 1) k JOIN clip_images c ON true WHERE c.file = b.f[k];
SELECT cardinality(embed_image('tiny_clip', ARRAY[NULL, NULL]::bytea[])) AS nulls, (embed_image('tiny_clip', ARRAY[NULL]::bytea[]))[1] IS NULL AS stays_null;
SELECT t->>'text' AS text, (SELECT max(abs(a - b)) < 1e-4 FROM unnest(embed_text('tiny_clip', t->>'text')::real[], (t->>'embedding')::embedding::real[]) u(a, b)) AS matches
FROM clip_ref, jsonb_array_elements(r->'texts') t WHERE length(t->>'text') < 40;
-- Zero-shot labels: best first, probabilities as transformers computes them.
SELECT z.label, round(z.probability::numeric, 3) AS probability,
       abs(z.probability - (c.probabilities->>(array_position(ARRAY['cat', 'dog', 'red polo shirt', 'blue sky', 'bowl of fruit'], z.label) - 1))::real) < 1e-4 AS matches
FROM clip_images c, zero_shot_classify('tiny_clip', c.bytes, ARRAY['cat', 'dog', 'red polo shirt', 'blue sky', 'bowl of fruit']) z
WHERE c.file = 'shapes.png';
SELECT label FROM zero_shot_classify('tiny_clip', (SELECT bytes FROM clip_images WHERE file = 'gradient.png'),
                                     ARRAY['cat', 'dog', 'red polo shirt', 'blue sky', 'bowl of fruit'], 'a photo of a {}') LIMIT 1;
SELECT sum(probability) BETWEEN 0.9999 AND 1.0001 AS sums_to_one
FROM zero_shot_classify('tiny_clip', (SELECT bytes FROM clip_images WHERE file = 'noise.bmp'), ARRAY['x', 'y'], '{} and {}');
-- Bad images and arguments.
SELECT err($$SELECT embed_image('tiny_clip', '\x0102030405'::bytea)$$);
SELECT err($$SELECT embed_image('tiny_clip', substring(bytes FROM 1 FOR 150)) FROM encoders_test.clip_images WHERE file = 'shapes.png'$$);
-- A 100-megapixel BMP header is refused before decoding.
SELECT err($$SELECT embed_image('tiny_clip', '\x424d36a3e111000000003600000028000000102700001027000001001800000000000000000000000000000000000000000000000000'::bytea)$$);
SET pgrec.max_image_pixels = 1000;
SELECT err($$SELECT embed_image('tiny_clip', bytes) FROM encoders_test.clip_images WHERE file = 'shapes.png'$$);
RESET pgrec.max_image_pixels;
SELECT err($$SELECT * FROM zero_shot_classify('tiny_clip', (SELECT bytes FROM encoders_test.clip_images LIMIT 1), ARRAY[]::text[])$$);
SELECT err($$SELECT * FROM zero_shot_classify('tiny_clip', (SELECT bytes FROM encoders_test.clip_images LIMIT 1), ARRAY['a', NULL])$$);
SELECT err($$SELECT * FROM zero_shot_classify('tiny_clip', (SELECT bytes FROM encoders_test.clip_images LIMIT 1), ARRAY['a'], 'a photo')$$);
SELECT err($$SELECT embed_image('minilm', '\x00'::bytea)$$);
SELECT err($$SELECT * FROM zero_shot_classify('minilm', '\x00'::bytea, ARRAY['a'])$$);
SELECT drop_encoder('tiny_clip');

-- Declared properties: embedding reads the registry (STABLE) and loads the
-- model in this backend (PARALLEL RESTRICTED).
SELECT p.proname, p.provolatile, p.proisstrict, p.proparallel, pg_get_function_result(p.oid) AS result
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'pgrec'
WHERE p.proname IN ('load_encoder', 'drop_encoder', 'embed_text', 'tokenize', 'token_count', 'embed_image', 'zero_shot_classify')
ORDER BY 1, 5;

DROP SCHEMA encoders_test CASCADE;
SELECT drop_encoder('minilm');
