-- The embedding type: text and binary forms, type modifiers, casts, and the exact
-- error (SQLSTATE, message, hint) for every bad input.

-- Text form, as pgvector writes it.
SELECT '[1,2.5,-3]'::embedding;
SELECT '  [ 1 , 2.5 ,-3 ]  '::embedding;
SELECT '[1e20,1e-7,0.1,-0,3.4028235e38]'::embedding;
SELECT '[1,2.5,-3]'::embedding::text = '[1,2.5,-3]' AS text_round_trip;
SELECT dims(('[' || repeat('1,', 15999) || '1]')::embedding) AS max_dims;

-- Malformed text.
SELECT err($$SELECT '1,2'::embedding$$);
SELECT err($$SELECT '[1,2'::embedding$$);
SELECT err($$SELECT '[1,,2]'::embedding$$);
SELECT err($$SELECT '[1,2,]'::embedding$$);
SELECT err($$SELECT '[1,two]'::embedding$$);
SELECT err($$SELECT '[[1,2]]'::embedding$$);
SELECT err($$SELECT ''::embedding$$);
-- Empty vector.
SELECT err($$SELECT '[]'::embedding$$);
-- NaN and infinities.
SELECT err($$SELECT '[1,NaN]'::embedding$$);
SELECT err($$SELECT '[Infinity,1]'::embedding$$);
SELECT err($$SELECT '[1,-inf]'::embedding$$);
-- Out of float4 range.
SELECT err($$SELECT '[1e39]'::embedding$$);
SELECT err($$SELECT '[1e-50]'::embedding$$);
-- More than 16,000 dimensions.
SELECT err($$SELECT ('[' || repeat('1,', 16000) || '1]')::embedding$$);

-- Type modifiers.
CREATE TABLE typed (id int, e embedding(3));
INSERT INTO typed VALUES (1, '[1,2,3]'), (2, ARRAY[4,5,6]), (3, NULL);
SELECT id, e FROM typed ORDER BY id;
\d typed
SELECT err($$INSERT INTO typed VALUES (9, '[1,2,3,4]')$$);
SELECT err($$INSERT INTO typed SELECT 9, '[1,2]'::embedding$$);
SELECT err($$UPDATE typed SET e = ARRAY[1,2,3,4] WHERE id = 1$$);
SELECT err($$SELECT '[1,2]'::embedding(3)$$);
SELECT err($$CREATE TABLE bad (e embedding(0))$$);
SELECT err($$CREATE TABLE bad (e embedding(16001))$$);
SELECT err($$CREATE TABLE bad (e embedding(3, 4))$$);
SELECT '[1,2,3]'::embedding(3);

-- Casts from arrays of every supported element type, and back.
SELECT ARRAY[1.5, 2, 3]::real[]::embedding AS from_real,
       ARRAY[1.5, 2, 3]::double precision[]::embedding AS from_double,
       ARRAY[1, 2, 3]::integer[]::embedding AS from_integer,
       ARRAY[1.5, 2, 3]::numeric[]::embedding AS from_numeric;
SELECT '[1,2.5]'::embedding::real[] AS to_real, '[1,2.5]'::embedding::double precision[] AS to_double;
SELECT ARRAY[1,2,3]::embedding(3);
-- NULL elements, multi-dimensional and empty arrays, non-finite and huge values.
SELECT err($$SELECT ARRAY[1,NULL,3]::real[]::embedding$$);
SELECT err($$SELECT ARRAY[1,2,NULL]::double precision[]::embedding$$);
SELECT err($$SELECT ARRAY[NULL,2]::integer[]::embedding$$);
SELECT err($$SELECT ARRAY[1,NULL]::numeric[]::embedding$$);
SELECT err($$SELECT ARRAY[[1,2],[3,4]]::real[]::embedding$$);
SELECT err($$SELECT '{}'::real[]::embedding$$);
SELECT err($$SELECT ARRAY['NaN']::numeric[]::embedding$$);
SELECT err($$SELECT ARRAY['Infinity']::double precision[]::embedding$$);
SELECT err($$SELECT ARRAY[1e39]::numeric[]::embedding$$);
SELECT err($$SELECT ARRAY[1,2,3]::embedding(2)$$);
SELECT err($$SELECT array_agg(1)::embedding FROM generate_series(1, 16001)$$);

-- Binary send/recv round trip (COPY BINARY goes through both).
CREATE TABLE bin (e embedding);
INSERT INTO bin VALUES ('[1,-2.5,3e10]'), ('[0.1]');
COPY bin TO '/tmp/pgrec_regress_bin.copy' WITH (FORMAT binary);
CREATE TABLE bin2 (e embedding);
COPY bin2 FROM '/tmp/pgrec_regress_bin.copy' WITH (FORMAT binary);
SELECT e FROM bin2 ORDER BY e;
SELECT embedding_send('[1,2]') AS wire_bytes;
CREATE TABLE bin3 (e embedding(3));
SELECT err($$COPY bin3 FROM '/tmp/pgrec_regress_bin.copy' WITH (FORMAT binary)$$);
