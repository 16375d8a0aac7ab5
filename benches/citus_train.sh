#!/usr/bin/env bash
# Training from a distributed table on Citus against the same rows in a table
# on the coordinator, in one run: KGAT's amazon-book training split (652,514
# interactions) in a plain table and in a distributed one (by user, a shard on
# each of two workers); train() with ALS and BPR at their defaults from each,
# wall seconds through psql, and what a scale-out ALS would move per iteration
# (both factor tables: a worker solving its users needs every item's factors
# and the reverse). Serving: recommend() for 2,000 users on the coordinator
# against the same call pushed down to the shards (distribute_models).
#
# Usage: ./benches/citus_train.sh
# Needs ./scripts/citus.sh to have been run (it starts the cluster on ports 54830-54832).
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

PORT=54830
DB=pgrec_citus
DATA="$REPO_ROOT/../shared/data/amazon-book"
[ -f "$DATA/train.txt" ] || { echo "skipped: $DATA is absent"; exit 0; }
install_debian_packages
pg_psql "$PORT" -d "$DB" -c "SELECT 1" >/dev/null 2>&1 || die "citus cluster not running: run ./scripts/citus.sh first"
q() { pg_psql "$PORT" -d "$DB" -v ON_ERROR_STOP=1 "$@"; }

pairs() { awk '{ for (i = 2; i <= NF; i++) print $1 "\t" $i }' "$1"; }
if ! q -tAc "SELECT count(*) FROM ctb_dist" 2>/dev/null | grep -qx 652514; then
    log "loading amazon-book's training split twice"
    q -o /dev/null -c "SET client_min_messages = warning" -c "DROP TABLE IF EXISTS ctb_local, ctb_dist, ctb_users" \
        -c "CREATE TABLE ctb_local (user_id bigint, item_id bigint)"
    pairs "$DATA/train.txt" | q -c "\\copy ctb_local FROM STDIN"
    q -o /dev/null <<'SQL'
SET client_min_messages = warning;
CREATE TABLE ctb_dist (LIKE ctb_local);
SELECT create_distributed_table('ctb_dist', 'user_id', shard_count => 2);
INSERT INTO ctb_dist SELECT * FROM ctb_local;
CREATE TABLE ctb_users (id bigint);
SELECT create_distributed_table('ctb_users', 'id', colocate_with => 'ctb_dist');
INSERT INTO ctb_users SELECT DISTINCT user_id FROM ctb_local;
VACUUM ANALYZE ctb_local, ctb_dist, ctb_users;
SQL
fi

seconds() { local s; s=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $s" | bc; }
printf '%-34s %12s %12s\n' "train() wall seconds, defaults" "local table" "distributed"
for algo in als bpr; do
    l=$(seconds q -c "SET client_min_messages = warning" -c "SELECT drop_model(name) FROM (SELECT DISTINCT name FROM pgrec.models WHERE name = 'ctb_l') m" \
        -c "SELECT count(*) FROM train('ctb_l', '$algo', 'ctb_local')")
    d=$(seconds q -c "SET client_min_messages = warning" -c "SELECT drop_model(name) FROM (SELECT DISTINCT name FROM pgrec.models WHERE name = 'ctb_d') m" \
        -c "SELECT count(*) FROM train('ctb_d', '$algo', 'ctb_dist')")
    printf '%-34s %12.2f %12.2f\n' "$algo" "$l" "$d"
done
r_l=$(seconds q -c "SELECT sum(user_id + item_id) FROM ctb_local")
r_d=$(seconds q -c "SELECT sum(user_id + item_id) FROM ctb_dist")
printf '%-34s %12.2f %12.2f\n' "reading every row (psql, sum)" "$r_l" "$r_d"
q -tAc "SELECT format('a scale-out ALS iteration would move %s users + %s items x 64 factors x 4 bytes = %s per side-set, to each worker',
                      users, items, pg_size_pretty((users + items) * 64 * 4))
        FROM pgrec.models WHERE name = 'ctb_d'"

# Serving: the same 2,000 users' top 20 on the coordinator and pushed down.
q -o /dev/null -c "SET client_min_messages = warning" -c "SELECT pgrec.distribute_models()"
on_coord=$(seconds q -c "SELECT count(*) FROM (SELECT id FROM ctb_users ORDER BY id LIMIT 2000) u, LATERAL recommend(u.id, 20, 'ctb_d') r")
pushed=$(seconds q -c "SELECT count(*) FROM ctb_users u, LATERAL recommend(u.id, 20, 'ctb_d') r WHERE u.id < 2000")
printf 'recommend(), 20 items for 2,000 users (the bpr model): coordinator %.2f s, pushed down to the shards %.2f s\n' "$on_coord" "$pushed"
