#!/usr/bin/env bash
# Multimodal recommendation side by side on MovieLens 100K (../shared/data/ml-100k):
# ratings ≥ 4 are positives; 20% of the items with positives are cold (all
# their interactions tested, none trained); of the rest, 20% of each user's
# positives are the warm test. Item content is the MiniLM vector of
# "title. genres", embedded inside the database with embed_text.
#   - pgrec through SQL: bpr, content_knn, vbpr trained on the same training
#     table, scored with evaluate() — warm items ranked among the warm items,
#     cold items among the cold ones, training items excluded;
#   - Cornac's VBPR on the same features, split and protocol, from PyPI in a
#     virtualenv outside the repository ($PGREC_ENCODER_VENV, default
#     ~/.cache/pgrec-encoder-venv, shared with benches/encoders.sh for torch).
# Needs ./scripts/demo.sh first (release build, cluster on 54815, MiniLM
# loaded as 'minilm'). Not part of CI.
#
# Usage: ./benches/multimodal.sh [VBPR_PARAMS_JSON]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
DATA="$REPO_ROOT/../shared/data/ml-100k"
if [ ! -f "$DATA/u.data" ]; then
    echo "skipped: $DATA is absent (the datasets are not part of the repository)"
    exit 0
fi
PORT=54815
DB=pgrec_demo
install_debian_packages >/dev/null
VBPR="${1:-}"
[ -n "$VBPR" ] || VBPR='{}'
pg_psql "$PORT" -d "$DB" -c "SELECT 1" >/dev/null 2>&1 || die "demo cluster not running: run ./scripts/demo.sh first"
# Cornac's VBPR trains with PyTorch: the encoder bench's virtualenv has it.
VENV="${PGREC_ENCODER_VENV:-$HOME/.cache/pgrec-encoder-venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import cornac, torch" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q torch cornac numpy scipy
fi
tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT

# u.item is Latin-1, pipe-separated, with 19 genre flags; u.genre names them.
iconv -f latin1 -t utf-8 "$DATA/u.item" | awk -F'|' -v OFS='\t' '
    NR == FNR { if ($1 != "") genre[$2] = $1; next }
    { g = ""; for (k = 0; k < 19; k++) if ($(6 + k) == 1) g = g (g == "" ? "" : ", ") genre[k];
      gsub(/\t/, " ", $2); print $1, $2, g }' "$DATA/u.genre" - >"$tmp/movies.tsv"
cp "$DATA/u.data" "$tmp/ratings.tsv"
chmod 644 "$tmp"/*.tsv

echo "== data, split and item vectors (inside the database) =="
pg_psql "$PORT" -d "$DB" -v tmp="$tmp" <<'SQL'
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS mm CASCADE;
CREATE SCHEMA mm;
CREATE TABLE mm.ratings (user_id int, item_id int, rating int, ts bigint);
CREATE TABLE mm.movies (item_id int PRIMARY KEY, title text, genres text, emb embedding);
\set ratings :tmp '/ratings.tsv'
\set movies :tmp '/movies.tsv'
COPY mm.ratings FROM :'ratings';
COPY mm.movies (item_id, title, genres) FROM :'movies';
\timing on
UPDATE mm.movies m SET emb = e.emb
FROM (SELECT unnest(array_agg(item_id ORDER BY item_id)) AS item_id,
             unnest(embed_text('minilm', array_agg(title || '. ' || genres ORDER BY item_id))) AS emb
      FROM mm.movies) e
WHERE m.item_id = e.item_id;
\timing off
CREATE TABLE mm.positives AS SELECT user_id, item_id FROM mm.ratings WHERE rating >= 4;
-- A fixed pseudo-random order (md5) makes the split reproducible.
CREATE TABLE mm.cold_items AS
SELECT item_id FROM (SELECT DISTINCT item_id FROM mm.positives) i
ORDER BY md5('cold' || item_id) LIMIT (SELECT round(0.2 * count(DISTINCT item_id)) FROM mm.positives);
CREATE TABLE mm.cold_test AS SELECT * FROM mm.positives WHERE item_id IN (SELECT item_id FROM mm.cold_items);
CREATE TABLE mm.warm AS
SELECT p.*, row_number() OVER (PARTITION BY user_id ORDER BY md5('warm' || user_id || ':' || item_id)) AS rn,
       count(*) OVER (PARTITION BY user_id) AS n
FROM mm.positives p WHERE item_id NOT IN (SELECT item_id FROM mm.cold_items);
CREATE TABLE mm.warm_test AS SELECT user_id, item_id FROM mm.warm WHERE n >= 2 AND rn <= greatest(1, round(0.2 * n));
CREATE TABLE mm.train AS SELECT user_id, item_id FROM mm.warm EXCEPT SELECT * FROM mm.warm_test;
CREATE TABLE mm.warm_items AS SELECT DISTINCT item_id FROM mm.train;
SELECT (SELECT count(*) FROM mm.positives) AS positives, (SELECT count(*) FROM mm.train) AS train,
       (SELECT count(*) FROM mm.warm_test) AS warm_test, (SELECT count(*) FROM mm.cold_test) AS cold_test,
       (SELECT count(*) FROM mm.warm_items) AS warm_items, (SELECT count(*) FROM mm.cold_items) AS cold_items;
SQL

echo "== pgrec through SQL (train_seconds from the registry: reading, training, storing) =="
pg_psql "$PORT" -d "$DB" -v vbpr="$VBPR" <<'SQL'
SET client_min_messages = warning;
SELECT sum(drop_model(name)) AS dropped FROM (SELECT DISTINCT name FROM pgrec.model_versions WHERE name LIKE 'mm\_%') m;
SELECT name, algorithm FROM train('mm_bpr', 'bpr', 'mm.train', '{"test_fraction": 0}');
SELECT name, algorithm FROM train('mm_content_knn', 'content_knn', 'mm.train', '{"test_fraction": 0}',
                                  item_features => 'SELECT item_id, emb FROM mm.movies');
SELECT name, algorithm FROM train('mm_vbpr', 'vbpr', 'mm.train', '{"test_fraction": 0}'::jsonb || :'vbpr'::jsonb,
                                  item_features => 'SELECT item_id, emb FROM mm.movies');
WITH m AS (SELECT name, algorithm, train_seconds, (params->>'iterations')::int AS it FROM pgrec.model_versions WHERE name LIKE 'mm\_%'),
     e AS (SELECT m.*, evaluate(name, 'mm.warm_test', 20, ARRAY(SELECT item_id FROM mm.warm_items)) AS w,
                       evaluate(name, 'mm.cold_test', 20, ARRAY(SELECT item_id FROM mm.cold_items)) AS c FROM m)
SELECT 'pgrec ' || algorithm AS model,
       round((w->>'recall@20')::numeric, 4) AS warm_recall_20, round((w->>'ndcg@20')::numeric, 4) AS warm_ndcg_20,
       round((c->>'recall@20')::numeric, 4) AS cold_recall_20, round((c->>'ndcg@20')::numeric, 4) AS cold_ndcg_20,
       round(train_seconds::numeric, 2) AS train_seconds
FROM e ORDER BY algorithm;
SELECT params FROM pgrec.model_versions WHERE name = 'mm_vbpr';
SQL

pg_psql "$PORT" -d "$DB" -c "\\copy mm.train TO '$tmp/train.tsv'" -c "\\copy mm.warm_test TO '$tmp/warm_test.tsv'" \
    -c "\\copy mm.cold_test TO '$tmp/cold_test.tsv'" -c "\\copy mm.warm_items TO '$tmp/warm_items.tsv'" \
    -c "\\copy mm.cold_items TO '$tmp/cold_items.tsv'" \
    -c "\\copy (SELECT item_id, array_to_string(emb::real[], ' ') FROM mm.movies) TO '$tmp/features.tsv'"

echo "== Cornac on the same features, split and protocol =="
OPENBLAS_NUM_THREADS=1 "$VENV/bin/python" "$REPO_ROOT/benches/multimodal_peers.py" "$tmp" "$VBPR"
