#!/usr/bin/env bash
# Crash and replication test of the pgrec_hnsw index. Inserts run while the
# postmaster is killed (`pg_ctl stop -m immediate`, no shutdown checkpoint), the
# cluster restarts and replays WAL, and the index must then agree with a
# sequential scan: every committed row reachable through it, the same nearest
# rows, and further inserts and VACUUM working. Then a streaming standby is made
# with pg_basebackup, the primary changes the index again, and the standby's
# index, rebuilt from WAL alone, must agree with the standby's sequential scan.
# Uses throwaway clusters of its own; the extension must already be installed
# (./scripts/test.sh does that first). Last line: "N passed, N failed".
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Other PostgreSQL versions (PG_MAJOR) get clusters and ports of their own.
sfx=""; [ "$PG_MAJOR" = 15 ] || sfx="-$PG_MAJOR"
PORT=$((54826 + 20 * (PG_MAJOR - 15)))
STANDBY_PORT=$((PORT + 1))
DB=pgrec_crash
passed=0
failed=0
check() { # check NAME EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "ok   $1"; else failed=$((failed + 1)); echo "FAIL $1: expected '$2', got '$3'"; fi
}
q() { pg_psql "${QPORT:-$PORT}" -d "$DB" -tA "$@"; }

install_debian_packages
dir="$(cluster_dir pgrec-crash$sfx)"
trap 'stop_cluster pgrec-standby$sfx; stop_cluster pgrec-crash$sfx' EXIT
start_cluster pgrec-crash$sfx "$PORT"
# Every WAL record carries the page as the primary left it, and recovery (after
# the crash, and on the standby) compares its own result with it: a record that
# replays differently stops recovery with "inconsistent page found".
pg_psql "$PORT" -d postgres -c "ALTER SYSTEM SET wal_consistency_checking = 'generic'" -c "SELECT pg_reload_conf()" >/dev/null
pg_psql "$PORT" -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
q <<'SQL'
CREATE EXTENSION pgrec;
SELECT setseed(0.17);
CREATE TABLE t (id serial PRIMARY KEY, e embedding(16));
INSERT INTO t (e) SELECT ARRAY(SELECT sin(i * 0.37 + k * 1.1) + cos(i * k * 0.013) FROM generate_series(1, 16) k)::real[]
FROM generate_series(1, 2000) i;
CREATE INDEX t_e ON t USING pgrec_hnsw (e embedding_cosine_ops);
SQL

# Thousands of small autocommit inserts; the kill lands somewhere among them.
# (`g * 0` ties each row's vector to its row, so the three differ.)
inserts="$(mktemp)"
echo "SELECT setseed(0.29);" >"$inserts"
for i in $(seq 1 4000); do
    echo "INSERT INTO t (e) SELECT ARRAY(SELECT random() - 0.5 + g * 0 FROM generate_series(1, 16) k)::real[] FROM generate_series(1, 3) g;"
done >>"$inserts"
pg_psql "$PORT" -d "$DB" -f "$inserts" >/dev/null 2>&1 &
writer=$!
sleep 3
log "killing the postmaster during inserts (pg_ctl stop -m immediate)"
as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
wait "$writer" || true
rm -f "$inserts"
start_cluster pgrec-crash$sfx "$PORT"

rows=$(q -c "SELECT count(*) FROM t")
echo "rows after recovery: $rows"
[ "$rows" -gt 2000 ] && check "some inserts committed before the crash" yes yes || check "some inserts committed before the crash" yes no

# Committed rows are reachable through the index, each once. Inserts can prune
# the last in-link of an older node (VACUUM links such nodes again), so right
# after the crash a handful (0.5%) unreached is allowed; after VACUUM, none.
reach() { # reach ID: rows found through the index from row ID's vector

    q -c "SET enable_seqscan = off; SET pgrec.ef_search = 1000; SET pgrec.max_scan_tuples = 1000000;
          SELECT count(DISTINCT id) FROM (SELECT id FROM t ORDER BY e <=> (SELECT e FROM t WHERE id = $1) LIMIT 1000000) s" | tail -1
}
mostly_reachable() { # mostly_reachable LABEL FOUND ROWS
    check "$1: at least 99.5% of rows reachable" yes \
        "$([ $(($2 * 1000)) -ge $(($3 * 995)) ] && echo yes || echo "no ($2 of $3)")"
}
mostly_reachable "after the crash" "$(reach 1)" "$rows"

# The nearest rows through the index equal the sequential scan's (as sets: the
# index ranks by float4 distances of normalised vectors, so near-ties may swap).
same_knn() { # same_knn LABEL ID...
    local label="$1" id knn via_index exact; shift
    for id in "$@"; do
        knn="SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM t ORDER BY e ${OP:-<=>} (SELECT e FROM t WHERE id = $id) LIMIT 10) s"
        via_index=$(q -c "SET enable_seqscan = off; SET pgrec.ef_search = 400; $knn" | tail -1)
        exact=$(q -c "SET enable_indexscan = off; $knn" | tail -1)
        check "$label: top 10 near row $id, index equals sequential scan" "$exact" "$via_index"
    done
}
same_knn "after the crash" 5 777 1999 "$(q -c "SELECT max(id) FROM t")"

# The recovered index keeps working: inserts, deletes, VACUUM.
q -c "INSERT INTO t (e) SELECT e * '[2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2]' FROM t WHERE id <= 100" >/dev/null
q -c "DELETE FROM t WHERE id % 3 = 0" >/dev/null
q -c "VACUUM t" >/dev/null
rows=$(q -c "SELECT count(*) FROM t")
check "after more inserts, deletes and VACUUM every row is reachable" "$rows" "$(reach 1)"

# A streaming standby replays the indexes from WAL.
standby="$(cluster_dir pgrec-standby$sfx)/data"
rm -rf "$standby"
log "pg_basebackup of the primary into a standby on port $STANDBY_PORT"
as_owner "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres -D "$standby" -R -X stream >/dev/null
echo "port = $STANDBY_PORT" | as_owner tee -a "$standby/postgresql.conf" >/dev/null
as_owner "$PG_BIN/pg_ctl" -D "$standby" -l "$standby/../server.log" -w -t 60 start >/dev/null
q -c "SELECT setseed(0.53); INSERT INTO t (e) SELECT ARRAY(SELECT random() - 0.5 + g * 0 FROM generate_series(1, 16) k)::real[] FROM generate_series(1, 1500) g" >/dev/null
q -c "CREATE INDEX t_e_l2 ON t USING pgrec_hnsw (e embedding_l2_ops) WITH (m = 8, ef_construction = 32)" >/dev/null
q -c "DELETE FROM t WHERE id % 7 = 0" >/dev/null
q -c "VACUUM t" >/dev/null
# The insert position, not pg_current_wal_lsn() (what has been written out): a
# VACUUM assigns no transaction id, so nothing flushes its last records at
# commit, and a standby "caught up" to the write position could still answer
# from the index as it was before VACUUM's repairs.
target=$(q -c "SELECT pg_current_wal_insert_lsn()")
for _ in $(seq 1 60); do
    done_lsn=$(QPORT=$STANDBY_PORT q -c "SELECT pg_last_wal_replay_lsn() >= '$target'::pg_lsn")
    [ "$done_lsn" = t ] && break
    sleep 1
done
check "the standby caught up (every record replayed as on the primary)" t "$done_lsn"
check "recovery and the standby found no page replayed differently" 0 \
    "$(cat "$dir/server.log" "$standby/../server.log" | grep -c "inconsistent page" || true)"
rows=$(q -c "SELECT count(*) FROM t")
check "on the standby every row is reachable" "$rows" "$(QPORT=$STANDBY_PORT reach 2)"
# The standby's indexes, rebuilt from WAL alone, answer exactly as the
# primary's: the same rows for the same queries, through either index. (The L2
# index was built after the standby started, so it arrives as the build's
# full-page images, then VACUUM's GenericXLog records.)
same_as_primary() { # same_as_primary LABEL OP ID...
    local label="$1" op="$2" id knn; shift 2
    for id in "$@"; do
        knn="SET enable_seqscan = off; SET pgrec.ef_search = 100;
             SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM t ORDER BY e $op (SELECT e FROM t WHERE id = $id) LIMIT 10) s"
        primary="$(q -c "$knn" | tail -1)"
        on_standby="$(QPORT=$STANDBY_PORT q -c "$knn" | tail -1)"
        check "$label: top 10 near row $id as on the primary" "$primary" "$on_standby"
        if [ "$primary" != "$on_standby" ]; then
            # The pages are the same (recovery checks each record): show both plans.
            q -c "SET enable_seqscan = off; EXPLAIN SELECT id FROM t ORDER BY e $op (SELECT e FROM t WHERE id = $id) LIMIT 10"
            QPORT=$STANDBY_PORT q -c "SET enable_seqscan = off; EXPLAIN SELECT id FROM t ORDER BY e $op (SELECT e FROM t WHERE id = $id) LIMIT 10"
        fi
    done
}
last=$(q -c "SELECT max(id) FROM t")
same_as_primary "on the standby, cosine index" '<=>' 2 1000 "$last"
same_as_primary "on the standby, L2 index" '<->' 4 1000 "$last"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
