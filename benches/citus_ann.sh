#!/usr/bin/env bash
# Nearest-neighbour queries on Citus against the single node, in one run on
# this machine: the same rows (clustered, 128 dimensions) in a table on the
# coordinator alone, in a distributed table whose one shard sits on one worker,
# and in one with a shard on each of two workers, each with a pgrec_hnsw index
# (L2, defaults). pgbench (prepared, 1 and 2 clients) runs
# `ORDER BY v <-> q LIMIT 10` with one of 100 query vectors a call, through the
# coordinator; printed: queries/s and median latency. All three nodes share
# this machine's cores, so this measures Citus's overhead and fan-out here,
# not what separate machines would add.
#
# Usage: ./benches/citus_ann.sh [seconds per run, default 20]   (ROWS=1000000 for a million rows, default 100000)
# Needs ./scripts/citus.sh to have been run (it starts the cluster on ports 54830-54832).
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

SECS="${1:-20}"
ROWS="${ROWS:-100000}"
DIMS=128
PORT=54830
DB=pgrec_citus

install_debian_packages
pg_psql "$PORT" -d "$DB" -c "SELECT 1" >/dev/null 2>&1 || die "citus cluster not running: run ./scripts/citus.sh first"

if ! pg_psql "$PORT" -d "$DB" -tAc "SELECT count(*) FROM cb_single" 2>/dev/null | grep -qx "$ROWS"; then
    log "loading $ROWS x $DIMS rows three times and building the indexes"
    pg_psql "$PORT" -d "$DB" -v ON_ERROR_STOP=1 -o /dev/null <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS cb_single, cb_dist1, cb_dist2, cb_q_local, cb_q_ref;
SELECT setseed(0.42);
CREATE TABLE cb_single AS
SELECT i AS id, (SELECT array_agg(((i % 100) * 0.37 * d % 1.0 + (random() - 0.5) * 0.2)::real ORDER BY d)
                   FROM generate_series(1, $DIMS) d WHERE i > 0)::embedding($DIMS) AS v
  FROM generate_series(1, $ROWS) i;
CREATE TABLE cb_q_local AS
SELECT q AS qid, (SELECT array_agg(((q % 100) * 0.37 * d % 1.0 + (random() - 0.5) * 0.2)::real ORDER BY d)
                    FROM generate_series(1, $DIMS) d WHERE q > 0)::embedding($DIMS) AS v
  FROM generate_series(1, 100) q;
CREATE TABLE cb_q_ref AS SELECT * FROM cb_q_local;
SELECT create_reference_table('cb_q_ref');
-- One worker: its shard placed while the other worker takes none.
SELECT citus_set_node_property('127.0.0.1', 54832, 'shouldhaveshards', false);
CREATE TABLE cb_dist1 (id int, v embedding($DIMS));
SELECT create_distributed_table('cb_dist1', 'id', shard_count => 1, colocate_with => 'none');
SELECT citus_set_node_property('127.0.0.1', 54832, 'shouldhaveshards', true);
CREATE TABLE cb_dist2 (id int, v embedding($DIMS));
SELECT create_distributed_table('cb_dist2', 'id', shard_count => 2, colocate_with => 'none');
INSERT INTO cb_dist1 SELECT * FROM cb_single;
INSERT INTO cb_dist2 SELECT * FROM cb_single;
-- The workers build the shards' indexes with their own maintenance_work_mem:
-- a session SET stays on the coordinator, a SET LOCAL under propagation reaches them.
SET citus.propagate_set_commands = 'local';
BEGIN;
SET LOCAL maintenance_work_mem = '2GB';
CREATE INDEX ON cb_single USING pgrec_hnsw (v embedding_l2_ops);
CREATE INDEX ON cb_dist1 USING pgrec_hnsw (v embedding_l2_ops);
CREATE INDEX ON cb_dist2 USING pgrec_hnsw (v embedding_l2_ops);
COMMIT;
VACUUM ANALYZE cb_single;
SQL
fi

# bench LABEL TABLE QUERIES CLIENTS [SECONDS]: queries/s and median latency.
bench() {
    local label="$1" table="$2" queries="$3" clients="$4" secs="${5:-$SECS}" dir
    dir="$(mktemp -d)"
    chmod 777 "$dir"
    printf '\\set q random(1, 100)\nSELECT id FROM %s ORDER BY v <-> (SELECT v FROM %s WHERE qid = :q) LIMIT 10;\n' \
        "$table" "$queries" >"$dir/q.sql"
    local tps
    tps=$(cd "$dir" && PGUSER=postgres "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PORT" -n -M prepared -c "$clients" \
        -j "$clients" -T "$secs" -l --log-prefix="$dir/lat" -f "$dir/q.sql" "$DB" 2>&1 | awk '/^tps/ {print $3}')
    local p50
    p50=$(cat "$dir"/lat* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)] / 1000}')
    rm -rf "$dir"
    printf '%-40s %d client(s) %10.0f queries/s   p50 %6s ms\n' "$label" "$clients" "$tps" "$p50"
}

echo "ANN top-10, $ROWS x $DIMS (L2, m 16, ef_construction 64, ef_search 40), $SECS s each, $(nproc) cores shared by all nodes:"
# A first pass over each table, not printed, so every measured run finds its index cached.
for t in "cb_single cb_q_local" "cb_dist1 cb_q_ref" "cb_dist2 cb_q_ref"; do
    bench warm-up $t 2 5 >/dev/null
done
for c in 1 2; do
    bench "single node (coordinator table)" cb_single cb_q_local "$c"
    bench "Citus, 1 worker (1 shard)" cb_dist1 cb_q_ref "$c"
    bench "Citus, 2 workers (a shard each)" cb_dist2 cb_q_ref "$c"
done
