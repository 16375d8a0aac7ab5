#!/usr/bin/env bash
# Runs every test tier of pgrec on this machine, installing what is missing first:
#   1. purity    the pure core crates (crates/base, ann, embed, recsys) do not depend on pgrx
#      released  the SQL scripts already shipped are byte for byte as released
#      lint      (PostgreSQL 15) cargo fmt --all --check; cargo clippy --workspace --all-targets -D warnings
#   2. unit      `cargo test --workspace --lib`: the pure crates and the shells' pure parts
#   3. pgrx      `cargo pgrx test pg15` in-process tests (src/pg_tests.rs)
#   4. regress   golden SQL tests in pg_test/ through PostgreSQL's pg_regress
#   5. driver    integration tests in tests/ through the Rust `postgres` driver
#                (among them tests/upgrade.rs: ALTER EXTENSION pgrec UPDATE from
#                every released version, tests/security.rs, and tests/schedule.rs:
#                retraining by a pg_cron job, on 15 only, where Debian has pg_cron)
#   6. crash     the HNSW index after the postmaster is killed mid-insert
#                (scripts/crash-test.sh, on a cluster of its own)
#   7. citus     (PostgreSQL 15) pgrec on a Citus coordinator with two workers
#                (scripts/citus-test.sh; builds Citus from ../shared/peers once,
#                about 2 minutes; recorded as skipped when that source is absent)
# Everything builds in the dev profile only (dependencies at opt-level 3).
# Exits non-zero if any tier fails; the last line is the summary.
#
# Usage: ./scripts/test.sh [--pg 15|16|18 | --all]
#   (none),  15, 16 and 18 one after the other, then pg_upgrade from 15 to 18
#   --all    (scripts/pg-upgrade-test.sh), with one summary: what CI runs.
#   --pg N   PostgreSQL N only (15 is Debian's; 16 and 18 come from PyPI, see
#            fetch_pg in common.sh); with N other than 15 the unit tier is
#            skipped (it does not touch PostgreSQL).
case "${1:-}" in
    --pg) export PG_MAJOR="${2:?--pg needs a version}" ;;
    --all | "")
        # Every supported version in turn (what CI runs), one summary.
        all_passed=0; all_failed=0; lines=()
        for v in 15 16 18; do
            out="$(mktemp)"
            "$0" --pg "$v" 2>&1 | tee "$out" || true
            read -r p f < <(awk '/^summary: [0-9]+ passed, [0-9]+ failed$/ { print $2, $4 }' "$out" | tail -1; echo "0 1")
            lines+=("$(printf 'PostgreSQL %s: %s passed, %s failed' "$v" "$p" "$f")")
            all_passed=$((all_passed + p)); all_failed=$((all_failed + f))
            rm -f "$out"
        done
        # pg_upgrade 15 -> 18 with pgrec installed in both (done above).
        out="$(mktemp)"
        "$(dirname "$0")/pg-upgrade-test.sh" 2>&1 | tee "$out" || true
        read -r p f < <(awk '/^[0-9]+ passed, [0-9]+ failed$/ { print $1, $3 }' "$out" | tail -1; echo "0 1")
        lines+=("$(printf 'pg_upgrade 15 -> 18: %s passed, %s failed' "$p" "$f")")
        all_passed=$((all_passed + p)); all_failed=$((all_failed + f))
        rm -f "$out"
        echo
        printf '  %s\n' "${lines[@]}"
        echo "summary: $all_passed passed, $all_failed failed"
        [ "$all_failed" -eq 0 ]
        exit
        ;;
    *) echo "usage: $0 [--pg 15|16|18 | --all]" >&2; exit 2 ;;
esac
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Clusters and ports of their own per version, so runs can follow each other.
REGRESS_PORT=$((54825 + 20 * (PG_MAJOR - 15)))
CLUSTER=pgrec-test
[ "$PG_MAJOR" = 15 ] || CLUSTER="pgrec-test-$PG_MAJOR"
started=$(date +%s)
results=()
total_passed=0
total_failed=0

# record TIER STATUS PASSED FAILED
record() {
    results+=("$(printf '%-8s %-4s %4s passed %4s failed' "$1" "$2" "$3" "$4")")
    total_passed=$((total_passed + $3))
    total_failed=$((total_failed + $4))
}

# Sums cargo's "test result: ... N passed; M failed" lines of a log.
cargo_counts() {
    awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
         END { printf "%d %d\n", p, f }' "$1"
}

# run_cargo_tier NAME COMMAND...: runs a cargo test command, tees its log, records counts.
run_cargo_tier() {
    local name="$1"; shift
    local log="$REPO_ROOT/target/test-$name.log"
    log "tier $name: $*"
    local status=0
    (cd "$REPO_ROOT" && "$@") 2>&1 | tee "$log" || status=$?
    read -r p f < <(cargo_counts "$log")
    if [ "$status" -ne 0 ] || [ "$f" -ne 0 ] || [ "$p" -eq 0 ]; then
        record "$name" FAIL "$p" "$((f > 0 ? f : 1))"
    else
        record "$name" ok "$p" 0
    fi
}

cleanup() { stop_cluster "$CLUSTER"; }
trap cleanup EXIT

setup_all
mkdir -p "$REPO_ROOT/target"
# The real MiniLM model the encoder tests compare against reference outputs.
fetch_minilm
export PGREC_MINILM_DIR="$MINILM_DIR"

# 1. Pure cores must build without Postgres. They are crates without pgrx in
#    their manifests, so using it from one is a compile error; this tier checks
#    that no manifest change brought pgrx into their dependency graph.
log "tier purity: the pure core crates do not depend on pgrx"
purity_ok=0
purity_bad=0
# On a fresh machine the registry index knows nothing yet, and `cargo tree
# --offline` cannot resolve: fetch what Cargo.lock names first (the build
# needs it anyway).
(cd "$REPO_ROOT" && cargo fetch --locked -q) || true
for crate in pgrec-base pgrec-ann pgrec-embed pgrec-recsys; do
    if ! deps=$(cd "$REPO_ROOT" && cargo tree --offline --locked -q -p "$crate" -e normal,build --prefix none 2>&1); then
        echo "$crate: cargo tree failed: $deps" >&2
        purity_bad=$((purity_bad + 1))
    elif grep -qE '^pgrx' <<<"$deps"; then
        echo "$crate depends on pgrx: $(grep -E '^pgrx' <<<"$deps" | sort -u | tr '\n' ' ')" >&2
        purity_bad=$((purity_bad + 1))
    else
        purity_ok=$((purity_ok + 1))
    fi
done
if [ "$purity_bad" -eq 0 ]; then
    record purity ok "$purity_ok" 0
else
    record purity FAIL "$purity_ok" "$purity_bad"
fi

# 1b. Released SQL is never edited: every base and upgrade script that has
#     shipped is listed with its checksum in sql/released/SHA256SUMS.
log "tier released: shipped SQL scripts are unchanged"
released_ok=0
released_bad=0
for f in "$REPO_ROOT"/sql/released/pgrec--*.sql "$REPO_ROOT"/sql/pgrec--*--*.sql; do
    rel="${f#"$REPO_ROOT"/sql/}"
    want=$(awk -v f="$rel" '$2 == f { print $1 }' "$REPO_ROOT/sql/released/SHA256SUMS")
    have=$(sha256sum "$f" | cut -d' ' -f1)
    if [ -n "$want" ] && [ "$want" = "$have" ]; then
        released_ok=$((released_ok + 1))
    else
        echo "sql/$rel: ${want:+edited after its release (checksum differs from sql/released/SHA256SUMS)}${want:-not listed in sql/released/SHA256SUMS}" >&2
        released_bad=$((released_bad + 1))
    fi
done
if [ "$released_bad" -eq 0 ] && [ "$released_ok" -gt 0 ]; then
    record released ok "$released_ok" 0
else
    record released FAIL "$released_ok" "$((released_bad > 0 ? released_bad : 1))"
fi

# 1c. Formatting and lints, as errors (PostgreSQL 15 only: the code is the
#     same for every version). clippy checks without building, so on a cold
#     machine this is its own pass over the dependencies (see the README's timings).
if [ "$PG_MAJOR" = 15 ]; then
    log "tier lint: cargo fmt --all --check, cargo clippy --workspace --all-targets -- -D warnings"
    lint_failed=0
    (cd "$REPO_ROOT" && cargo fmt --all --check) || lint_failed=$((lint_failed + 1))
    (cd "$REPO_ROOT" && cargo clippy --workspace --all-targets -- -D warnings) || lint_failed=$((lint_failed + 1))
    if [ "$lint_failed" -eq 0 ]; then
        record lint ok 2 0
    else
        record lint FAIL $((2 - lint_failed)) "$lint_failed"
    fi
fi

# 2. Unit tests: the pure core crates and the extension's pure parts. In-process
#    #[pg_test]s need a server and run in tier 3, so they are skipped here.
if [ "$PG_MAJOR" = 15 ]; then
    run_cargo_tier unit cargo test --workspace --lib -- --skip pg_tests::
else
    log "tier unit: skipped for PostgreSQL $PG_MAJOR (pure code, run with 15)"
fi

# 3. In-process tests: cargo-pgrx installs a test build and runs its own cluster.
pgrx_args=()
if is_root; then
    pgrx_args=(--runas postgres --pgdata "$(cluster_dir "pgrx-test-$PG_MAJOR")/data")
fi
run_cargo_tier pgrx cargo pgrx test "pg$PG_MAJOR" pg_tests:: "${pgrx_args[@]}"

# 4 and 5 run against one cluster with the dev build of the extension installed.
log "installing the dev build of pgrec into PostgreSQL $PG_MAJOR"
install_extension >/dev/null
WITH_PG_CRON=1 start_cluster "$CLUSTER" "$REGRESS_PORT"
# tests/schedule.rs runs where pg_cron is loaded, and fails if it should be.
PGREC_CRON=0
[ -f "$("$PG_BIN/pg_config" --pkglibdir)/pg_cron.so" ] && PGREC_CRON=1
export PGREC_CRON

log "tier regress: pg_regress on pg_test/"
regress_out="$REPO_ROOT/target/regress"
rm -rf "$regress_out" && mkdir -p "$regress_out"
tests=$(cd "$REPO_ROOT/pg_test/sql" && ls ./*.sql | sed 's|^\./||; s|\.sql$||' | sort)
status=0
PGUSER=postgres "$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress" \
    --inputdir="$REPO_ROOT/pg_test" --outputdir="$regress_out" --bindir="$PG_BIN" \
    --host=127.0.0.1 --port="$REGRESS_PORT" --dbname=pgrec_regress \
    $tests 2>&1 | tee "$regress_out/run.log" || status=$?
n_tests=$(echo "$tests" | wc -w)
n_failed=$(grep -cE '\.\.\. FAILED|^not ok' "$regress_out/run.log" || true)
if [ "$status" -ne 0 ] || [ "$n_failed" -ne 0 ]; then
    [ -f "$regress_out/regression.diffs" ] && cat "$regress_out/regression.diffs"
    record regress FAIL "$((n_tests - n_failed))" "$((n_failed > 0 ? n_failed : 1))"
else
    record regress ok "$n_tests" 0
fi

export PGREC_TEST_URL="host=127.0.0.1 port=$REGRESS_PORT user=postgres dbname=postgres"
run_cargo_tier driver cargo test --test '*'

log "tier crash: scripts/crash-test.sh"
crash_log="$REPO_ROOT/target/test-crash.log"
status=0
"$REPO_ROOT/scripts/crash-test.sh" 2>&1 | tee "$crash_log" || status=$?
read -r p f < <(awk '/^[0-9]+ passed, [0-9]+ failed$/ { print $1, $3 }' "$crash_log" | tail -1; echo "0 0")
if [ "$status" -ne 0 ] || [ "${f:-1}" -ne 0 ] || [ "${p:-0}" -eq 0 ]; then
    record crash FAIL "${p:-0}" "$(( ${f:-0} > 0 ? f : 1 ))"
else
    record crash ok "$p" 0
fi

# 7. pgrec on a Citus coordinator with two workers, on the dev build installed
#    above (PostgreSQL 15 only: the Citus source is built against the system's 15).
if [ "$PG_MAJOR" = 15 ]; then
    if [ -f "$CITUS_TARBALL" ]; then
        log "tier citus: scripts/citus-test.sh --installed"
        citus_log="$REPO_ROOT/target/test-citus.log"
        status=0
        "$REPO_ROOT/scripts/citus-test.sh" --installed 2>&1 | tee "$citus_log" || status=$?
        "$REPO_ROOT/scripts/citus.sh" stop >/dev/null 2>&1 || true
        if [ "$status" -eq 0 ] && grep -q "citus checks passed" "$citus_log"; then
            record citus ok 1 0
        else
            record citus FAIL 0 1
        fi
    else
        log "tier citus: skipped, the Citus source ($CITUS_TARBALL) is absent"
        record citus skip 0 0
    fi
fi

elapsed=$(( $(date +%s) - started ))
echo
echo "pgrec test tiers ($((elapsed / 60))m$((elapsed % 60))s):"
printf '  %s\n' "${results[@]}"
echo "summary: $total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
