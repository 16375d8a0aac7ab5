#!/usr/bin/env bash
# End-to-end bench: exact top-10 search by sequential scan over 100,000 random
# 384-dimensional rows, with pgbench (prepared statements, 1 client) on the demo
# cluster. Compared in the same run against what a user without a vector
# extension would write: the same vectors as real[] and a SQL distance function.
# (pgvector, the natural peer, is not packaged for Debian 12 and cannot be
# fetched here, so it is not in this run.)
#
# Usage: ./benches/exact_search.sh [seconds per run, default 30]
# Needs ./scripts/demo.sh to have been run (it builds the release extension and
# starts the cluster on port 54815).
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

SECS="${1:-30}"
PORT=54815
DB=pgrec_bench
ROWS=100000
DIMS=384

install_debian_packages
pg_psql "$PORT" -d postgres -c "SELECT 1" >/dev/null 2>&1 || die "demo cluster not running: run ./scripts/demo.sh first"

if ! pg_psql "$PORT" -d "$DB" -tAc "SELECT count(*) FROM items" 2>/dev/null | grep -qx "$ROWS"; then
    log "creating $ROWS x $DIMS random rows in database $DB"
    pg_psql "$PORT" -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
    pg_psql "$PORT" -d "$DB" -o /dev/null <<SQL
CREATE EXTENSION pgrec;
SELECT setseed(0.42);
-- Separate tables, so each scan reads only its own representation.
CREATE TABLE items_arr AS
    SELECT i AS id, array_agg((random() * 2 - 1)::real) AS arr
    FROM generate_series(1, $ROWS) i, generate_series(1, $DIMS) d GROUP BY i;
CREATE TABLE items AS SELECT id, arr::embedding($DIMS) AS emb FROM items_arr;
CREATE INDEX ON items_arr (id);
CREATE INDEX ON items (id);
VACUUM ANALYZE items_arr;
VACUUM ANALYZE items;
-- The no-extension baseline: cosine distance over real[] in SQL.
CREATE FUNCTION arr_cosine(a real[], b real[]) RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
\$\$ SELECT 1 - sum(x * y) / sqrt(sum(x * x) * sum(y * y)) FROM unnest(a, b) AS t(x, y) \$\$;
SQL
fi

bench() {
    local label="$1" sql="$2" file
    file="$(mktemp)"
    printf '\\set id random(1, %d)\n%s\n' "$ROWS" "$sql" >"$file"
    local tps
    tps=$(PGUSER=postgres "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PORT" -n -M prepared -c 1 -T "$SECS" -f "$file" "$DB" 2>&1 \
        | awk '/^tps/ {print $3}')
    rm -f "$file"
    printf '%-46s %10.2f queries/s %10.1f ms/query\n' "$label" "$tps" "$(echo "1000 / $tps" | bc -l)"
}

command -v bc >/dev/null || as_root apt-get install -y -qq bc >/dev/null
echo "exact top-10, $ROWS x $DIMS, 1 client, $SECS s each, $(nproc) cores, parallel workers allowed:"
bench "pgrec embedding  (emb <=> q)" \
    "SELECT id FROM items ORDER BY emb <=> (SELECT emb FROM items WHERE id = :id) LIMIT 10;"
bench "pgrec embedding  (emb <-> q)" \
    "SELECT id FROM items ORDER BY emb <-> (SELECT emb FROM items WHERE id = :id) LIMIT 10;"
bench "baseline real[] + SQL cosine function" \
    "SELECT id FROM items_arr ORDER BY arr_cosine(arr, (SELECT arr FROM items_arr WHERE id = :id)) LIMIT 10;"
