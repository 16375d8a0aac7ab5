#!/usr/bin/env bash
# Recommenders end to end in PostgreSQL on amazon-book (KGAT's split, from
# ../shared/data): load the interactions, train ALS and BPR with train() (default
# params, 64 factors), evaluate() on the test file, then serve: recommend() for
# one random user per call from pgbench with 2 clients (p50 and q/s), and
# recommend() for every user at once, timed against implicit's batch
# recommend() on the same model size in the same run. Needs ./scripts/demo.sh
# (release build, cluster on 54815) and, for the implicit figure, the virtualenv
# benches/recsys_peers.sh creates. Not part of CI.
#
# Usage: ./benches/recommend_sql.sh [seconds per pgbench run, default 10]
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

SECS="${1:-10}"
PORT=54815
DB=pgrec_recsys_bench
DATA="$REPO_ROOT/../shared/data/amazon-book"
[ -f "$DATA/train.txt" ] || { echo "skipped: $DATA is absent"; exit 0; }
install_debian_packages
pg_psql "$PORT" -d postgres -c "SELECT 1" >/dev/null 2>&1 || die "demo cluster not running: run ./scripts/demo.sh first"
q() { pg_psql "$PORT" -d "$DB" "$@"; }

pairs() { awk '{ for (i = 2; i <= NF; i++) print $1 "\t" $i }' "$1"; }
if ! q -tAc "SELECT count(*) FROM ab_train" 2>/dev/null | grep -qx 652514; then
    log "loading amazon-book into database $DB"
    pg_psql "$PORT" -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
    q -c "CREATE EXTENSION pgrec" -c "CREATE TABLE ab_train (user_id int, item_id int)" -c "CREATE TABLE ab_test (user_id int, item_id int)"
    pairs "$DATA/train.txt" | q -c "\\copy ab_train FROM STDIN"
    pairs "$DATA/test.txt" | q -c "\\copy ab_test FROM STDIN"
fi
# The database outlives rebuilds of the library: re-create the extension so its
# SQL definitions match the library just installed (models are retrained below).
q -c "DROP EXTENSION IF EXISTS pgrec CASCADE" -c "CREATE EXTENSION pgrec" >/dev/null

echo "== training in the database (train(), default params, 64 factors, all train rows) =="
for algo in als bpr; do
    q -c "SELECT drop_model('ab_$algo') WHERE EXISTS (SELECT 1 FROM pgrec.model_versions WHERE name = 'ab_$algo')" >/dev/null
    start=$(date +%s.%N)
    PGOPTIONS="-c client_min_messages=warning" q -tAc "SELECT version FROM train('ab_$algo', '$algo', 'ab_train', '{\"test_fraction\": 0}')" >/dev/null
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    metrics=$(q -tAc "SELECT round((m->>'recall@20')::numeric, 4) || ' / ' || round((m->>'ndcg@20')::numeric, 4) FROM evaluate('ab_$algo', 'ab_test') m")
    printf '%-4s train() %6.1f s (load, train, store)   Recall@20 / NDCG@20 on test.txt: %s\n' "$algo" "$secs" "$metrics"
done

echo "== serving: recommend(user, 20) from pgbench, prepared, 2 clients, $SECS s =="
dir=$(mktemp -d)
printf '\\set uid random(0, 70678)\nSELECT * FROM recommend(:uid::bigint, 20, '"'ab_als'"');\n' >"$dir/q.sql"
(cd "$dir" && PGUSER=postgres "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PORT" -n -M prepared -c 2 -j 2 -T "$SECS" \
    --log --log-prefix=lat -f q.sql "$DB" >"$dir/out.txt" 2>&1)
tps=$(awk '/^tps/ {print $3}' "$dir/out.txt")
p50=$(cat "$dir"/lat.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {printf "%.3f", a[int(NR/2)+1] / 1000}')
p99=$(cat "$dir"/lat.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {printf "%.3f", a[int(NR*0.99)] / 1000}')
echo "recommend(): $tps calls/s, p50 $p50 ms, p99 $p99 ms (24,915 items, 64 factors)"
rm -rf "$dir"

echo "== batch: top 20 for all 70,679 users =="
start=$(date +%s.%N)
n=$(q -tAc "SELECT count(*) FROM recommend(ARRAY(SELECT DISTINCT user_id::bigint FROM ab_train), 20, 'ab_als')")
secs=$(echo "$(date +%s.%N) - $start" | bc)
printf 'pgrec recommend(user_ids[]): %s rows in %.2f s\n' "$n" "$secs"
VENV="${PGREC_BENCH_VENV:-$HOME/.cache/pgrec-bench-venv}"
if [ -x "$VENV/bin/python" ]; then
    OPENBLAS_NUM_THREADS=1 "$VENV/bin/python" - "$DATA" <<'PY'
import sys, time, numpy as np, scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
u, i = [], []
for line in open(sys.argv[1] + "/train.txt"):
    ids = [int(x) for x in line.split()]
    u += [ids[0]] * (len(ids) - 1); i += ids[1:]
m = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)))
m.sum_duplicates(); m.data[:] = 1
als = AlternatingLeastSquares(factors=64, iterations=1, random_state=42)
als.fit(m, show_progress=False)
users = np.arange(m.shape[0])
t = time.perf_counter()
ids, scores = als.recommend(users, m[users], N=20, filter_already_liked_items=True)
print(f"implicit ALS recommend(all users): {ids.size} rows in {time.perf_counter() - t:.2f} s")
PY
fi
