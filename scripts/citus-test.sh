#!/usr/bin/env bash
# pgrec on Citus: starts the cluster of scripts/citus.sh (building Citus once)
# and checks what a distributed deployment relies on, on fresh tables:
#   - a pgrec_hnsw index on a distributed table is built on every shard, and
#     `ORDER BY v <-> q LIMIT k` runs as an index scan on each shard (EXPLAIN);
#   - recall@10 of that distributed search is at least the single-node index's
#     on the same rows, less 0.01;
#   - a filtered search (`WHERE category = 3`) still returns k rows;
#   - pgrec.ef_search reaches the workers with `SET LOCAL` under
#     citus.propagate_set_commands = 'local', and through ALTER DATABASE ... SET;
#   - train() on the coordinator reads a distributed interactions table, as a
#     role that is not a superuser;
#   - pgrec.distribute_models() makes the registry reference tables once (a
#     second call reports it done), every node holds the owner by name under
#     its own OID, recommend() inside a query pushed down to the workers
#     answers as on the coordinator (for one user and for all), a deploy
#     reaches the workers when it commits and not before (nor after a
#     rollback), and a reader is refused there before a grant and after a
#     revoke.
# Skips, saying so, when the Citus source is absent. The citus tier of
# test.sh (PostgreSQL 15) runs it with --installed, on its dev build.
#
# Usage: ./scripts/citus-test.sh [--installed]   (see scripts/citus.sh)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [ ! -f "$CITUS_TARBALL" ]; then
    log "skipped: the Citus source ($CITUS_TARBALL) is absent"
    exit 0
fi
"$REPO_ROOT/scripts/citus.sh" "$@"
install_debian_packages

log "checking pgrec on the Citus cluster"
as_owner "$PG_BIN/psql" -h 127.0.0.1 -p 54830 -U postgres -X -v ON_ERROR_STOP=1 -q pgrec_citus \
    -f "$REPO_ROOT/scripts/citus-test.sql"
log "citus checks passed"
