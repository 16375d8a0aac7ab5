#!/usr/bin/env bash
# A throwaway Citus cluster with pgrec on this machine: builds and installs
# Citus from ../shared/peers/citus-*.tar.gz into the system PostgreSQL 15
# (once), installs pgrec (release), and starts a coordinator and two workers on
# 127.0.0.1 (ports 54830, 54831, 54832, under target/citus-*), each preloading
# citus, with database `pgrec_citus` holding both extensions and the workers
# registered with the coordinator. Without the tarball it says so and exits 0.
#
# Usage: ./scripts/citus.sh              set up (idempotent) and leave the cluster running
#        ./scripts/citus.sh --installed  the same with the pgrec already installed (test.sh's
#                                        dev build) instead of building the release one
#        ./scripts/citus.sh stop         stop the three nodes
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CITUS_PORTS=(54830 54831 54832)
CITUS_NAMES=(citus-coordinator citus-worker1 citus-worker2)
CITUS_DB=pgrec_citus

citus_stop() {
    for name in "${CITUS_NAMES[@]}"; do stop_cluster "$name"; done
}

# Builds Citus once; a later run finds citus.so of this version and skips.
citus_install() {
    local libdir
    libdir="$("$PG_CONFIG" --pkglibdir)"
    if [ -f "$libdir/citus.so" ] && grep -q "default_version = '${CITUS_VERSION%.*}" \
        "$("$PG_CONFIG" --sharedir)/extension/citus.control" 2>/dev/null; then
        return 0
    fi
    install_packages libzstd-dev liblz4-dev libcurl4-openssl-dev libkrb5-dev
    local src="$REPO_ROOT/target/citus-src"
    rm -rf "$src" && mkdir -p "$src"
    tar xzf "$CITUS_TARBALL" -C "$src" --strip-components=1
    # PostgreSQL 15.20 exports have_createdb_privilege(); Citus's static
    # fallback copy for older minors would then clash with it.
    if grep -q "have_createdb_privilege" "$("$PG_CONFIG" --includedir-server)/commands/dbcommands.h"; then
        python3 - "$src/src/include/pg_version_compat.h" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
s2 = re.sub(r"static inline bool\s*\nhave_createdb_privilege\(void\)\s*\{.*?\n\}\n", "", s, flags=re.S)
open(p, "w").write(s2)
PY
    fi
    log "building Citus $CITUS_VERSION (about 2 minutes, once)"
    (cd "$src" && ./configure --quiet PG_CONFIG="$PG_CONFIG" >/dev/null && make -s -j"$(nproc)" >/dev/null 2>&1 \
        && as_root make -s install >/dev/null) || die "building Citus failed (see $src)"
}

# start_node NAME PORT: a cluster preloading citus.
start_node() {
    local name="$1" port="$2" data
    data="$(cluster_dir "$name")/data"
    if [ ! -f "$data/PG_VERSION" ]; then
        start_cluster "$name" "$port"
        cat >>"$data/postgresql.conf" <<CONF
shared_preload_libraries = 'citus'
# Loopback nodes without certificates: Citus would otherwise insist on SSL.
citus.node_conninfo = 'sslmode=disable'
max_connections = 200
CONF
        as_owner "$PG_BIN/pg_ctl" -D "$data" -m fast -w restart -l "$(dirname "$data")/server.log" >/dev/null
    else
        start_cluster "$name" "$port"
    fi
}

case "${1:-}" in
    stop)
        install_debian_packages
        citus_stop
        log "citus cluster stopped"
        exit 0
        ;;
    "" | --installed) ;;
    *) die "usage: $0 [--installed | stop]" ;;
esac

if [ ! -f "$CITUS_TARBALL" ]; then
    log "skipped: the Citus source ($CITUS_TARBALL) is absent"
    exit 0
fi
setup_all
citus_install
if [ "${1:-}" = --installed ]; then
    [ -f "$("$PG_CONFIG" --sharedir)/extension/pgrec.control" ] || die "--installed, but pgrec is not installed"
else
    log "building and installing pgrec (release)"
    install_extension --release >/dev/null
fi
for i in 0 1 2; do start_node "${CITUS_NAMES[$i]}" "${CITUS_PORTS[$i]}"; done
for port in "${CITUS_PORTS[@]}"; do
    if ! as_owner "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -Atqc \
        "SELECT 1 FROM pg_database WHERE datname = '$CITUS_DB'" postgres | grep -q 1; then
        as_owner "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE $CITUS_DB" postgres
    fi
    as_owner "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 -qc \
        "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS citus" "$CITUS_DB"
done
as_owner "$PG_BIN/psql" -h 127.0.0.1 -p "${CITUS_PORTS[0]}" -U postgres -v ON_ERROR_STOP=1 -qAt "$CITUS_DB" >/dev/null <<SQL
SET client_min_messages = warning;
SELECT citus_set_coordinator_host('127.0.0.1', ${CITUS_PORTS[0]});
SELECT citus_add_node('127.0.0.1', ${CITUS_PORTS[1]});
SELECT citus_add_node('127.0.0.1', ${CITUS_PORTS[2]});
CREATE EXTENSION IF NOT EXISTS pgrec;
SQL
log "citus cluster up: coordinator 127.0.0.1:${CITUS_PORTS[0]}, workers ${CITUS_PORTS[1]} and ${CITUS_PORTS[2]}, database $CITUS_DB"
