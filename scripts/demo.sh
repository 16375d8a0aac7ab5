#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a working pgrec: installs what is
# missing, builds and installs pgrec (release), starts a throwaway cluster under
# target/pgrec-demo on 127.0.0.1:54815, creates the extension in database
# `pgrec_demo` and runs the worked example in scripts/demo.sql.
#
# Usage: ./scripts/demo.sh         set up (idempotent; fast when already built) and run the demo
#        ./scripts/demo.sh stop    stop the demo cluster
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DEMO_PORT=54815

case "${1:-}" in
    stop)
        install_debian_packages
        stop_cluster pgrec-demo
        log "demo cluster stopped"
        exit 0
        ;;
    "") ;;
    *) die "usage: $0 [stop]" ;;
esac

setup_all
fetch_minilm
log "building and installing pgrec (release)"
install_extension --release >/dev/null
start_cluster pgrec-demo "$DEMO_PORT"

# A fresh database each run, so the example always starts from the same state
# and a reinstalled build is picked up.
PGOPTIONS="-c client_min_messages=warning" pg_psql "$DEMO_PORT" -d postgres -c "DROP DATABASE IF EXISTS pgrec_demo" -c "CREATE DATABASE pgrec_demo"
pg_psql "$DEMO_PORT" -d pgrec_demo -c "CREATE EXTENSION pgrec"

log "worked example (scripts/demo.sql)"
pg_psql "$DEMO_PORT" -d pgrec_demo -e -v minilm="$MINILM_DIR" -f "$REPO_ROOT/scripts/demo.sql"

cat <<EOF

pgrec is running. Connect with:
    psql -h 127.0.0.1 -p $DEMO_PORT -U postgres pgrec_demo
Stop the cluster with:
    ./scripts/demo.sh stop
EOF
