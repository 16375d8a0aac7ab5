-- The worked example ./scripts/demo.sh runs in a fresh database with pgrec created.

-- A small catalogue of items with 3-dimensional embeddings.
CREATE TABLE items (id bigint PRIMARY KEY, title text, emb embedding(3));
INSERT INTO items VALUES
    (1, 'red polo shirt',      '[0.9, 0.1, 0.0]'),
    (2, 'crimson t-shirt',     '[0.8, 0.2, 0.1]'),
    (3, 'blue jeans',          '[0.1, 0.9, 0.2]'),
    (4, 'navy chinos',         '[0.2, 0.8, 0.3]'),
    (5, 'white sneakers',      '[0.3, 0.3, 0.9]');

-- Nearest items to a query vector by cosine distance (exact scan).
SELECT id, title, round((emb <=> '[1, 0, 0]')::numeric, 4) AS cosine_distance
FROM items ORDER BY emb <=> '[1, 0, 0]' LIMIT 3;

-- Items similar to item 3, excluding itself, with every distance operator.
SELECT b.id, b.title,
       round((a.emb <-> b.emb)::numeric, 4) AS l2,
       round((a.emb <=> b.emb)::numeric, 4) AS cosine,
       round((a.emb <#> b.emb)::numeric, 4) AS neg_inner,
       round((a.emb <+> b.emb)::numeric, 4) AS l1
FROM items a JOIN items b ON b.id <> a.id
WHERE a.id = 3 ORDER BY a.emb <=> b.emb LIMIT 2;

-- A "taste" vector: the mean of two liked items, then what is closest to it.
SELECT avg(emb) AS taste FROM items WHERE id IN (1, 3);
SELECT id, title FROM items
WHERE id NOT IN (1, 3)
ORDER BY emb <=> (SELECT avg(emb) FROM items WHERE id IN (1, 3)) LIMIT 2;

-- Arrays convert both ways; vector helpers.
SELECT ARRAY[3, 4]::embedding AS from_array, dims('[3,4]'), norm('[3,4]'),
       l2_normalize('[3,4]'), subvector('[1,2,3,4]', 2, 2), '[1,2]'::embedding::real[] AS to_array;

-- An HNSW index: a larger catalogue (50,000 items, 64 dimensions), indexed for
-- cosine distance; the same ORDER BY ... LIMIT query now uses it.
CREATE TABLE catalogue (id bigint PRIMARY KEY, category int, emb embedding(64));
INSERT INTO catalogue
SELECT i, i % 20, ARRAY(SELECT sin(i * 0.001 * d) + cos(i % 97 + d) FROM generate_series(1, 64) d)::real[]
FROM generate_series(1, 50000) i;
SET maintenance_work_mem = '256MB';
CREATE INDEX catalogue_emb ON catalogue USING pgrec_hnsw (emb embedding_cosine_ops) WITH (m = 16, ef_construction = 64);
ANALYZE catalogue;
EXPLAIN (COSTS OFF)
SELECT id FROM catalogue ORDER BY emb <=> (SELECT emb FROM catalogue WHERE id = 42) LIMIT 5;
SELECT id, category FROM catalogue ORDER BY emb <=> (SELECT emb FROM catalogue WHERE id = 42) LIMIT 5;
-- With a filter, the scan keeps going until five rows pass it.
SELECT id, category FROM catalogue WHERE category = 3
ORDER BY emb <=> (SELECT emb FROM catalogue WHERE id = 42) LIMIT 5;
-- More candidates, higher recall: pgrec.ef_search (default 40).
SET pgrec.ef_search = 100;
SELECT id FROM catalogue ORDER BY emb <=> (SELECT emb FROM catalogue WHERE id = 42) LIMIT 5;

-- Recommenders: from a table of interactions to recommendations in two
-- statements. 2,000 users in ten taste groups click about 20 of 500 items each,
-- mostly from their group (user u likes items ending in the digit u % 10).
SET client_min_messages = warning;  -- hide the per-epoch progress NOTICEs
SELECT setseed(0.42);
CREATE TABLE clicks AS
SELECT DISTINCT u AS user_id,
       CASE WHEN random() < 0.8 THEN (u % 10) + 10 * floor(random() * 50)::int ELSE floor(random() * 500)::int END AS item_id
FROM generate_series(1, 2000) u, generate_series(1, 20) j;
SELECT name, version, deployed, round((metrics->>'recall@20')::numeric, 3) AS recall_20
FROM train('shop', 'als', 'clicks');
SELECT * FROM recommend(42, 5);                         -- items ending in 2
-- A visitor who liked two items, without retraining; items like item 7.
SELECT * FROM recommend_for_items(ARRAY[3, 13]::bigint[], 5);
SELECT * FROM similar_items(7, 5);
-- Other algorithms on the same data, side by side in the registry.
SELECT version, deployed FROM train('shop_bpr', 'bpr', 'clicks');
SELECT version, deployed FROM train('shop_popular', 'popular', 'clicks');
SELECT name, version, algorithm, deployed, recall_20, ndcg_20, train_seconds, size FROM pgrec.models;
-- With several models deployed, name the one to use.
SELECT * FROM recommend(ARRAY[1, 2]::bigint[], 3, model => 'shop_bpr');

-- Text embeddings in SQL: register the all-MiniLM-L6-v2 folder (fetched by
-- demo.sh), embed a few product titles, and search them by meaning.
SELECT * FROM load_encoder('minilm', :'minilm');
CREATE TABLE products (id int PRIMARY KEY, title text, emb embedding(384));
INSERT INTO products (id, title) VALUES
    (1, 'Red cotton polo shirt'), (2, 'Stainless steel chef knife'), (3, 'Wireless noise-cancelling headphones'),
    (4, 'Trail running shoes'), (5, 'Cast iron skillet, 12 inch'), (6, 'Bluetooth portable speaker'),
    (7, 'Slim fit denim jeans'), (8, 'Hiking backpack, 30 litres');
UPDATE products SET emb = embed_text('minilm', title);
SELECT id, title, round((emb <=> embed_text('minilm', 'something to listen to music'))::numeric, 3) AS distance
FROM products ORDER BY emb <=> embed_text('minilm', 'something to listen to music') LIMIT 3;
SELECT id, title FROM products ORDER BY emb <=> embed_text('minilm', 'cooking in the kitchen') LIMIT 2;
-- The pieces the model sees.
SELECT tokenize('minilm', 'Noise-cancelling headphones'), token_count('minilm', 'Noise-cancelling headphones');

-- Multimodal recommendation: orders plus the products' title vectors. 300
-- buyers with one interest each: kitchen (user 3: items 2, 5), audio (user 1:
-- 3, 6) or outdoor (user 2: 4, 8). VBPR learns which content each buyer likes.
CREATE TABLE orders AS
SELECT b AS user_id, p AS item_id FROM generate_series(1, 300) b,
       unnest(CASE b % 3 WHEN 0 THEN ARRAY[2, 5] WHEN 1 THEN ARRAY[3, 6] ELSE ARRAY[4, 8] END) p;
SELECT name, version FROM train('shop_vbpr', 'vbpr', 'orders', '{"test_fraction": 0}',
                                item_features => 'SELECT id, emb FROM products');
-- Three products listed today, with no orders yet: added from their titles
-- alone (a new deployed version, no retraining), each goes first to the
-- buyers whose interest it matches.
INSERT INTO products (id, title) VALUES
    (9, 'Enamelled cast iron dutch oven'), (10, 'Over-ear studio headphones'), (11, 'Waterproof hiking boots');
UPDATE products SET emb = embed_text('minilm', title) WHERE id > 8;
SELECT * FROM add_items('shop_vbpr', 'SELECT id, emb FROM products WHERE id > 8');
SELECT r.user_id, p.title FROM recommend(ARRAY[3, 1, 2]::bigint[], 1, 'shop_vbpr', candidates => ARRAY[9, 10, 11]::bigint[]) r
JOIN products p ON p.id = r.item_id;
