#!/usr/bin/env bash
# Side by side on amazon-book (KGAT's train/test split from ../shared/data):
# pgrec's `ease` and `item_knn` (cosine and BM25; the pure core, `cargo bench
# --bench recsys`) against the numpy EASE of its paper and implicit's
# CosineRecommender and BM25Recommender, all evaluated with one protocol (all
# items ranked, training items excluded, Recall@20 and NDCG@20 on test.txt),
# with the same λ and neighbour counts. The peers install from PyPI into a
# virtualenv outside the repository ($PGREC_BENCH_VENV, default
# ~/.cache/pgrec-bench-venv). Not part of CI.
#
# Usage: ./benches/item_item_peers.sh [LAMBDA [NEIGHBORS]]   (default 250 and 100)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DATA="$(pwd)/../shared/data/amazon-book"
if [ ! -f "$DATA/train.txt" ]; then
    echo "skipped: $DATA is absent (the datasets are not part of the repository)"
    exit 0
fi
LAMBDA="${1:-250}"
NEIGHBORS="${2:-100}"
VENV="${PGREC_BENCH_VENV:-$HOME/.cache/pgrec-bench-venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q implicit cornac numpy scipy
fi
echo "== pgrec =="
for run in "ease {\"regularization\": $LAMBDA}" \
           "item_knn {\"neighbors\": $NEIGHBORS}" \
           "item_knn {\"neighbors\": $NEIGHBORS, \"similarity\": \"bm25\"}"; do
    cargo bench -q --bench recsys -- ${run%% *} "${run#* }" 2>/dev/null | grep -v '^$'
done
echo "== peers, same machine, same data (OPENBLAS_NUM_THREADS unset: numpy's inverse uses both cores) =="
"$VENV/bin/python" benches/item_item_peers.py "$DATA" "$LAMBDA" "$NEIGHBORS"
