#!/usr/bin/env bash
# Crash test of the pgrec_hnsw index: inserts run while the postmaster is killed
# (`pg_ctl stop -m immediate`, no shutdown checkpoint), the cluster restarts and
# replays WAL, and the index must then agree with a sequential scan: every
# committed row reachable through it, the same nearest rows, and further inserts
# and VACUUM working. Uses its own throwaway cluster; the extension must already
# be installed (./scripts/test.sh does that first). Last line: "N passed, N failed".
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PORT=54826
DB=pgrec_crash
passed=0
failed=0
check() { # check NAME EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "ok   $1"; else failed=$((failed + 1)); echo "FAIL $1: expected '$2', got '$3'"; fi
}
q() { pg_psql "$PORT" -d "$DB" -tA "$@"; }

install_debian_packages
dir="$(cluster_dir pgrec-crash)"
trap 'stop_cluster pgrec-crash' EXIT
start_cluster pgrec-crash "$PORT"
pg_psql "$PORT" -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
q <<'SQL'
CREATE EXTENSION pgrec;
CREATE TABLE t (id serial PRIMARY KEY, e embedding(16));
INSERT INTO t (e) SELECT ARRAY(SELECT sin(i * 0.37 + k * 1.1) + cos(i * k * 0.013) FROM generate_series(1, 16) k)::real[]
FROM generate_series(1, 2000) i;
CREATE INDEX t_e ON t USING pgrec_hnsw (e embedding_cosine_ops);
SQL

# Thousands of small autocommit inserts; the kill lands somewhere among them.
# (`g * 0` ties each row's vector to its row, so the three differ.)
inserts="$(mktemp)"
for i in $(seq 1 4000); do
    echo "INSERT INTO t (e) SELECT ARRAY(SELECT random() - 0.5 + g * 0 FROM generate_series(1, 16) k)::real[] FROM generate_series(1, 3) g;"
done >"$inserts"
pg_psql "$PORT" -d "$DB" -f "$inserts" >/dev/null 2>&1 &
writer=$!
sleep 3
log "killing the postmaster during inserts (pg_ctl stop -m immediate)"
as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
wait "$writer" || true
rm -f "$inserts"
start_cluster pgrec-crash "$PORT"

rows=$(q -c "SELECT count(*) FROM t")
echo "rows after recovery: $rows"
[ "$rows" -gt 2000 ] && check "some inserts committed before the crash" yes yes || check "some inserts committed before the crash" yes no

# Every committed row is reachable through the index, each once.
reach() {
    q -c "SET enable_seqscan = off; SET pgrec.ef_search = 1000; SET pgrec.max_scan_tuples = 1000000;
          SELECT count(DISTINCT id) FROM (SELECT id FROM t ORDER BY e <=> (SELECT e FROM t WHERE id = $1) LIMIT 1000000) s" | tail -1
}
check "every row reachable through the index" "$rows" "$(reach 1)"

# The nearest rows through the index equal the sequential scan's (as sets: the
# index ranks by float4 distances of normalised vectors, so near-ties may swap).
for id in 5 777 1999 $((rows - 1)); do
    knn="SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM t ORDER BY e <=> (SELECT e FROM t WHERE id = $id) LIMIT 10) s"
    via_index=$(q -c "SET enable_seqscan = off; SET pgrec.ef_search = 400; $knn" | tail -1)
    exact=$(q -c "SET enable_indexscan = off; $knn" | tail -1)
    check "top 10 near row $id: index equals sequential scan" "$exact" "$via_index"
done

# The recovered index keeps working: inserts, deletes, VACUUM.
q -c "INSERT INTO t (e) SELECT e * '[2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2]' FROM t WHERE id <= 100" >/dev/null
q -c "DELETE FROM t WHERE id % 3 = 0" >/dev/null
q -c "VACUUM t" >/dev/null
rows=$(q -c "SELECT count(*) FROM t")
check "after more inserts, deletes and VACUUM every row is reachable" "$rows" "$(reach 1)"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
