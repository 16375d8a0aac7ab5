#!/usr/bin/env bash
# Serving while the model changes under it: 2 pgbench clients call
# recommend(user, 20) on model `live` for SECONDS while a third session, every
# few seconds, inserts a batch of new interactions, folds them into the model
# with update_model() (a new deployed version each time), and every fifth time
# serves the previous version to half the users with deploy_challenger() and
# then rolls back. MovieLens 100K (../shared/data/ml-100k): 80% of the ratings
# train `live` (als), the other 20% arrive in batches of 200 (they last about
# 100 cycles; later cycles fold in nothing, which makes no version, and keep
# swapping challengers and rolling back). Prints the
# clients' calls/s, p50, p99 and failed calls, and the writer's cycles and
# errors. Needs ./scripts/demo.sh (release build, cluster on 54815). Not part of CI.
#
# Usage: ./benches/serving_under_updates.sh [seconds, default 600] [seconds between cycles, default 3]
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

SECS="${1:-600}"
EVERY="${2:-3}"
PORT=54815
DB=pgrec_update_bench
DATA="$REPO_ROOT/../shared/data/ml-100k/u.data"
[ -f "$DATA" ] || { echo "skipped: $DATA is absent"; exit 0; }
install_debian_packages
pg_psql "$PORT" -d postgres -c "SELECT 1" >/dev/null 2>&1 || die "demo cluster not running: run ./scripts/demo.sh first"
q() { pg_psql "$PORT" -d "$DB" "$@"; }

pg_psql "$PORT" -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
q -c "CREATE EXTENSION pgrec" \
  -c "CREATE TABLE ratings (user_id int, item_id int, rating real, ts bigint)" >/dev/null
cut -f1-4 "$DATA" | q -c "\\copy ratings FROM STDIN"
q -c "CREATE TABLE seen AS SELECT user_id, item_id FROM ratings WHERE hashint4(user_id * 7919 + item_id) % 5 <> 0" \
  -c "CREATE TABLE pending AS SELECT row_number() OVER (ORDER BY ts, user_id, item_id) AS k, user_id, item_id
      FROM ratings WHERE hashint4(user_id * 7919 + item_id) % 5 = 0" >/dev/null
PGOPTIONS="-c client_min_messages=warning" q -tAc \
    "SELECT version FROM train('live', 'als', 'seen', '{\"factors\": 64, \"test_fraction\": 0}')" >/dev/null
log "model live trained on $(q -tAc 'SELECT count(*) FROM seen') ratings; $(q -tAc 'SELECT count(*) FROM pending') to arrive"

dir=$(mktemp -d)
printf '\\set uid random(1, 943)\nSELECT * FROM recommend(:uid::bigint, 20, '"'live'"');\n' >"$dir/q.sql"
(cd "$dir" && PGUSER=postgres "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PORT" -n -M prepared -c 2 -j 2 -T "$SECS" \
    --log --log-prefix=lat -f q.sql "$DB" >"$dir/out.txt" 2>&1) &
bench=$!

cycles=0; errors=0; at=0
end=$(($(date +%s) + SECS))
while [ "$(date +%s)" -lt "$end" ]; do
    cycles=$((cycles + 1))
    if ! PGOPTIONS="-c client_min_messages=warning" q -tA >/dev/null 2>>"$dir/writer.err" <<SQL
BEGIN;
INSERT INTO seen SELECT user_id, item_id FROM pending WHERE k > $at AND k <= $at + 200;
SELECT version FROM update_model('live', 'SELECT user_id, item_id FROM pending WHERE k > $at AND k <= $at + 200');
COMMIT;
SQL
    then errors=$((errors + 1)); fi
    at=$((at + 200))
    if [ $((cycles % 5)) = 0 ]; then
        q -tA >/dev/null 2>>"$dir/writer.err" <<SQL || errors=$((errors + 1))
SELECT deploy_challenger('live', (SELECT max(version) - 1 FROM pgrec.models WHERE name = 'live'), 0.5);
SELECT pg_sleep(1);
SELECT rollback_model('live');
SQL
    fi
    sleep "$EVERY"
done
wait "$bench" || true

calls=$(awk '/number of transactions actually processed/ {print $NF}' "$dir/out.txt" | cut -d/ -f1)
failed=$(awk '/number of failed transactions/ {print $5}' "$dir/out.txt")
tps=$(awk '/^tps/ {print $3}' "$dir/out.txt")
p50=$(cat "$dir"/lat.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {printf "%.3f", a[int(NR/2)+1] / 1000}')
p99=$(cat "$dir"/lat.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {printf "%.3f", a[int(NR*0.99)] / 1000}')
versions=$(q -tAc "SELECT count(*) FROM pgrec.models WHERE name = 'live'")
echo "recommend() under updates, $SECS s, 2 clients: $calls calls ($tps/s), p50 $p50 ms, p99 $p99 ms, failed ${failed:-0}"
echo "writer: $cycles cycles of 200 new ratings + update_model(), every 5th with a challenger and a rollback: $errors errors; $versions versions"
if [ -s "$dir/writer.err" ]; then
    echo "writer's errors:"
    sort "$dir/writer.err" | uniq -c | head
fi
grep -iE "error|abort" "$dir/out.txt" | head -5 || true
rm -rf "$dir"
