#!/usr/bin/env bash
# Encoder throughput side by side on this machine: all-MiniLM-L6-v2 sentences
# per second at batch 1 and 32, short and 128-token inputs,
#   - pgrec in the pure core (cargo bench --bench encoders, which also prints
#     the measured matrix-multiply GFLOP/s, tiny-CLIP images/s and the
#     ViT-B/32 estimate),
#   - pgrec through SQL (pgbench, 1 client, on the demo cluster),
#   - sentence-transformers on PyTorch CPU, from PyPI in a virtualenv outside
#     the repository ($PGREC_ENCODER_VENV, default ~/.cache/pgrec-encoder-venv).
# Needs ./scripts/demo.sh first (release build, cluster on 54815, which loads
# the model as 'minilm'). Not part of CI.
#
# Usage: ./benches/encoders.sh [seconds per measurement, default 10]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
SECS="${1:-10}"
PORT=54815
DB=pgrec_demo
install_debian_packages >/dev/null
fetch_minilm
pg_psql "$PORT" -d "$DB" -c "SELECT 1" >/dev/null 2>&1 || die "demo cluster not running: run ./scripts/demo.sh first"
VENV="${PGREC_ENCODER_VENV:-$HOME/.cache/pgrec-encoder-venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import sentence_transformers, torch" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q torch sentence-transformers transformers pillow safetensors
fi

echo "== pgrec, pure core =="
PGREC_MINILM_DIR="$MINILM_DIR" cargo bench -q --bench encoders 2>/dev/null | grep -v '^$'

echo "== pgrec through SQL (pgbench, prepared, 1 client, ${SECS} s each) =="
# The same inputs as the core bench and the Python side: product titles, and
# ~128-token review texts.
short="ARRAY['Red cotton polo shirt', 'Stainless steel chef knife', 'Wireless noise-cancelling headphones', 'Trail running shoes for wet weather', 'Cast iron skillet, 12 inch', 'Bluetooth portable speaker', 'Slim fit denim jeans', 'Hiking backpack, 30 litres']"
long="ARRAY(SELECT string_agg(format('item %s review part %s: sturdy, comfortable and good value', k, i), ' ' ORDER BY i) FROM generate_series(0, 31) k, generate_series(0, 11) i GROUP BY k ORDER BY k)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
PGOPTIONS="-c client_min_messages=warning" pg_psql "$PORT" -d "$DB" -qc "DROP TABLE IF EXISTS bench_texts; CREATE TABLE bench_texts AS SELECT 'short' AS kind, $short || $short || $short || $short AS t UNION ALL SELECT 'long', $long"
pg_psql "$PORT" -d "$DB" -qc "SELECT embed_text('minilm', 'warm up')" >/dev/null
run() { # run LABEL PER_CALL SQL
    printf '%s\n' "$3" >"$tmp/q.sql"
    local tps
    tps=$("$PG_BIN/pgbench" -n -M prepared -c 1 -T "$SECS" -h 127.0.0.1 -p "$PORT" -U postgres -f "$tmp/q.sql" "$DB" 2>/dev/null \
        | awk '/^tps/ { print $3 }')
    awk -v t="$tps" -v n="$2" -v l="$1" 'BEGIN { printf "pgrec SQL all-MiniLM-L6-v2, %s: %.1f sentences/s\n", l, t * n }'
}
for kind in short long; do
    run "$kind inputs, batch 1" 1 "\\set k random(1, 32)
SELECT embed_text('minilm', (SELECT t[:k] FROM bench_texts WHERE kind = '$kind'));"
    run "$kind inputs, batch 32" 32 "SELECT embed_text('minilm', (SELECT t FROM bench_texts WHERE kind = '$kind'));"
done

echo "== sentence-transformers on PyTorch CPU, same machine =="
"$VENV/bin/python" - "$MINILM_DIR" "$SECS" <<'PY'
import sys, time
import torch
from sentence_transformers import SentenceTransformer

model_dir, secs = sys.argv[1], float(sys.argv[2])
model = SentenceTransformer(model_dir, device="cpu")
short = ["Red cotton polo shirt", "Stainless steel chef knife", "Wireless noise-cancelling headphones",
         "Trail running shoes for wet weather", "Cast iron skillet, 12 inch", "Bluetooth portable speaker",
         "Slim fit denim jeans", "Hiking backpack, 30 litres"] * 4
long = [" ".join(f"item {k} review part {i}: sturdy, comfortable and good value" for i in range(12)) for k in range(32)]

def rate(per_call, f):
    f()
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < secs:
        f()
        n += per_call
    return n / (time.perf_counter() - t)

n = 1024
a = torch.randn(n, n)
mm = rate(1, lambda: a @ a)
print(f"torch f32 matmul 1024x1024x1024: {mm * 2 * n**3 / 1e9:.1f} GFLOP/s ({torch.get_num_threads()} threads)")
for label, xs in [("short", short), ("long", long)]:
    k = [0]
    def one():
        k[0] = (k[0] + 1) % len(xs)
        model.encode([xs[k[0]]], batch_size=1)
    print(f"sentence-transformers {torch.__version__}, {label} inputs: batch 1 {rate(1, one):.1f} sentences/s, "
          f"batch 32 {rate(32, lambda: model.encode(xs, batch_size=32)):.1f} sentences/s")
PY
