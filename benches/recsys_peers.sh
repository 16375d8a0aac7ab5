#!/usr/bin/env bash
# Side by side on amazon-book (KGAT's train/test split from ../shared/data):
# pgrec's ALS and BPR (the pure core, `cargo bench --bench recsys`, default
# params) against implicit's ALS and BPR and Cornac's BPR at 64 factors, all
# evaluated with one protocol (all items ranked, training items excluded,
# Recall@20 and NDCG@20 on test.txt). The peers install from PyPI into a
# virtualenv outside the repository ($PGREC_BENCH_VENV, default
# ~/.cache/pgrec-bench-venv). Not part of CI.
#
# Then BPR's epoch alone, pgrec and implicit taking turns ($REPEATS rounds of
# $EPOCHS epochs each, default 3 and 30), because this machine's speed drifts
# by a third between runs: the turns see the same drift.
#
# Usage: ./benches/recsys_peers.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DATA="$(pwd)/../shared/data/amazon-book"
if [ ! -f "$DATA/train.txt" ]; then
    echo "skipped: $DATA is absent (the datasets are not part of the repository)"
    exit 0
fi
bench_venv
echo "== pgrec (default params, 64 factors) =="
cargo bench -q --bench recsys 2>/dev/null | grep -v '^$'
echo "== peers, same machine, same data =="
OPENBLAS_NUM_THREADS=1 "$VENV/bin/python" benches/recsys_peers.py "$DATA"
echo "== BPR epoch, taking turns (${REPEATS:=3} rounds of ${EPOCHS:=30} epochs) =="
for _ in $(seq "$REPEATS"); do
    cargo bench -q --bench recsys -- bpr "{\"iterations\": $EPOCHS}" 2>/dev/null | grep 's/epoch' | sed 's/  (KGAT.*//'
    OPENBLAS_NUM_THREADS=1 "$VENV/bin/python" benches/recsys_peers.py "$DATA" --time-bpr "$EPOCHS"
done
