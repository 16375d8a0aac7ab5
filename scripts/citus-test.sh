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
#   - train() on the coordinator reads a distributed interactions table.
# Skips, saying so, when the Citus source is absent. Not part of test.sh (it
# installs pgrec in release and builds Citus); run it before changing anything
# a distributed deployment touches.
#
# Usage: ./scripts/citus-test.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CITUS_TARBALL="${CITUS_TARBALL:-$REPO_ROOT/../shared/peers/citus-13.2.2.tar.gz}"
if [ ! -f "$CITUS_TARBALL" ]; then
    log "skipped: the Citus source ($CITUS_TARBALL) is absent"
    exit 0
fi
"$REPO_ROOT/scripts/citus.sh"
install_debian_packages

log "checking pgrec on the Citus cluster"
as_owner "$PG_BIN/psql" -h 127.0.0.1 -p 54830 -U postgres -X -v ON_ERROR_STOP=1 -q pgrec_citus \
    -f "$REPO_ROOT/scripts/citus-test.sql"
log "citus checks passed"
