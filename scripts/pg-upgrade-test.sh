#!/usr/bin/env bash
# pg_upgrade from PostgreSQL 15 to 18 with pgrec installed: a small 15 cluster
# holding an embedding column with a pgrec_hnsw index, a trained model and an
# encoder stored in the database is upgraded with pg_upgrade (copy mode) to
# 18, and everything must answer there exactly as it did on 15.
#
# Needs pgrec installed into both (./scripts/test.sh does that first, as do
# --pg 15 and --pg 18). Prints `N passed, M failed` last; exits non-zero on failure.
#
# Usage: ./scripts/pg-upgrade-test.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

OLD_PORT=54890
NEW_PORT=54891
DB=pgrec_upgrade
passed=0
failed=0
check() { # check LABEL WANT GOT
    if [ "$2" = "$3" ]; then echo "ok   $1"; passed=$((passed + 1))
    else echo "FAIL $1: want [$2], got [$3]"; failed=$((failed + 1)); fi
}

PG_MAJOR=15 install_debian_packages
OLD_BIN="$PG_BIN"
PG_MAJOR=18 install_debian_packages
NEW_BIN="$PG_BIN"
for bin in "$OLD_BIN" "$NEW_BIN"; do
    [ -f "$("$bin/pg_config" --pkglibdir)/pgrec.so" ] \
        || die "pgrec is not installed into $("$bin/pg_config" --version): run ./scripts/test.sh --pg 15 and --pg 18 first"
done

old_dir="$(cluster_dir pgrec-pgupgrade-15)"
new_dir="$(cluster_dir pgrec-pgupgrade-18)"
stop_all() {
    as_owner "$OLD_BIN/pg_ctl" -D "$old_dir/data" -m fast -w stop >/dev/null 2>&1 || true
    as_owner "$NEW_BIN/pg_ctl" -D "$new_dir/data" -m fast -w stop >/dev/null 2>&1 || true
}
trap stop_all EXIT
stop_all
as_root rm -rf "$old_dir/data" "$new_dir/data"

PG_BIN="$OLD_BIN" PG_MAJOR=15 start_cluster pgrec-pgupgrade-15 "$OLD_PORT"
PG_BIN="$OLD_BIN" pg_psql "$OLD_PORT" -d postgres -c "CREATE DATABASE $DB"
clip="$REPO_ROOT/tests/fixtures/tiny-clip"
PG_BIN="$OLD_BIN" pg_psql "$OLD_PORT" -d "$DB" -v clip="$clip" >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION pgrec;
CREATE TABLE vecs AS SELECT i AS id, ARRAY[sin(i), cos(i), sin(i * 0.3), cos(i * 0.7)]::real[]::embedding AS v
FROM generate_series(1, 5000) i;
CREATE INDEX vecs_v ON vecs USING pgrec_hnsw (v embedding_l2_ops);
CREATE TABLE clicks AS SELECT u AS user_id, (u * 7 + j * 13) % 300 AS item_id FROM generate_series(1, 500) u, generate_series(1, 10) j;
SELECT count(*) FROM train('m', 'bpr', 'clicks', '{"iterations": 5}');
SELECT count(*) FROM load_encoder('enc', :'clip', store_in_database => true);
SQL

# What the cluster answers; the same queries run on 18 after the upgrade.
answers() {
    local port="$1"
    pg_psql "$port" -d "$DB" -tA <<'SQL'
SET enable_seqscan = off;
SELECT 'index ' || string_agg(id::text, ' ') FROM (SELECT id FROM vecs ORDER BY v <-> '[0.5,0.5,0.1,0.9]' LIMIT 10) s;
SELECT 'recommend ' || string_agg(item_id::text, ' ') FROM recommend(7, 10, 'm');
SELECT 'encoder ' || embed_text('enc', 'a red shoe')::text;
SELECT 'models ' || string_agg(name || ':' || version || ':' || owner, ' ') FROM pgrec.models;
SELECT 'version ' || extversion FROM pg_extension WHERE extname = 'pgrec';
SQL
    echo "plan $(pg_psql "$port" -d "$DB" -tA -c "SET enable_seqscan = off" \
        -c "EXPLAIN SELECT id FROM vecs ORDER BY v <-> '[0.5,0.5,0.1,0.9]' LIMIT 10" | grep -c vecs_v)"
}
before="$(PG_BIN="$OLD_BIN" answers "$OLD_PORT")"
# Debian's 15.18 stamps an attribute option `pg_attver` on every column it
# creates (RESET does not remove it), which PostgreSQL 18.6 rejects when
# pg_upgrade restores the schema — for any table, pgrec's or not. It carries
# no data: cleared from the user's columns before the upgrade.
PG_BIN="$OLD_BIN" pg_psql "$OLD_PORT" -d "$DB" -c "UPDATE pg_catalog.pg_attribute a SET attoptions = NULL
    FROM pg_catalog.pg_class c WHERE c.oid = a.attrelid AND a.attoptions::text LIKE '%pg_attver%'
      AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)" >/dev/null
as_owner "$OLD_BIN/pg_ctl" -D "$old_dir/data" -m fast -w stop >/dev/null

log "initdb PostgreSQL 18 and pg_upgrade 15 -> 18"
# 18 turns data checksums on by default; pg_upgrade needs them as on 15 (off).
as_owner "$NEW_BIN/initdb" -D "$new_dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    --no-data-checksums >/dev/null
started=$(date +%s)
# pg_upgrade writes its logs into the current folder: one the owner can write.
(cd "$new_dir" && as_owner "$NEW_BIN/pg_upgrade" -U postgres -b "$OLD_BIN" -B "$NEW_BIN" \
    -d "$old_dir/data" -D "$new_dir/data" -p "$OLD_PORT" -P "$NEW_PORT" >"$new_dir/pg_upgrade.out" 2>&1) \
    || { tail -30 "$new_dir/pg_upgrade.out" >&2; die "pg_upgrade failed"; }
echo "pg_upgrade took $(($(date +%s) - started)) s"
cat >>"$new_dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $NEW_PORT
unix_socket_directories = ''
EOF
PG_BIN="$NEW_BIN" PG_MAJOR=18 start_cluster pgrec-pgupgrade-18 "$NEW_PORT"
after="$(PG_BIN="$NEW_BIN" answers "$NEW_PORT")"

while IFS= read -r line; do
    key="${line%% *}"
    check "after pg_upgrade: $key" "$line" "$(grep "^$key " <<<"$after")"
done <<<"$before"
check "the index is used on 15" "plan 1" "$(grep '^plan ' <<<"$before")"
server=$(PG_BIN="$NEW_BIN" pg_psql "$NEW_PORT" -d "$DB" -tA -c "SHOW server_version_num")
check "the upgraded cluster is PostgreSQL 18" "18" "${server:0:2}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
