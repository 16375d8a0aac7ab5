#!/usr/bin/env bash
# Side by side: pgrec's `ease` and `item_knn` (cosine and BM25; the pure core,
# `cargo bench --bench recsys`) against the numpy EASE of its paper and
# implicit's CosineRecommender and BM25Recommender, with the same λ and
# neighbour counts, all evaluated with one protocol (all items ranked,
# training items excluded, Recall@20 and NDCG@20 on the test part), on
# amazon-book (KGAT's train/test split), MovieLens 100K and music-kgcn (a
# random 20% of each user's items held out, seed 42, written by the pgrec
# bench to target/bench-splits/ so that the peers read the same split). The
# peers install from PyPI into a virtualenv outside the repository
# ($PGREC_BENCH_VENV, default ~/.cache/pgrec-bench-venv). Not part of CI.
#
# Usage: ./benches/item_item_peers.sh [LAMBDA [NEIGHBORS]]   (default auto and 100:
#        pgrec's default λ, 4 × the mean training interactions per item, which
#        the numpy peer is given too)
#        SETS="ml100k music" ./benches/item_item_peers.sh     (default: all three)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
LAMBDA="${1:-auto}"
ease_params="{\"regularization\": $LAMBDA}"
[ "$LAMBDA" = auto ] && ease_params="{}"
NEIGHBORS="${2:-100}"
bench_venv
for set in ${SETS:-amazon-book ml100k music}; do
    echo "=== $set ==="
    first=1
    for run in "ease $ease_params" \
               "item_knn {\"neighbors\": $NEIGHBORS}" \
               "item_knn {\"neighbors\": $NEIGHBORS, \"similarity\": \"bm25\"}"; do
        out=$(BENCH_SET="$set" cargo bench -q --bench recsys -- ${run%% *} "${run#* }" 2>/dev/null | grep -v '^$')
        if grep -q '^skipped' <<<"$out"; then echo "$out"; continue 2; fi
        if [ "$first" = 1 ]; then echo "$out" | head -1; first=0; fi
        echo "$out" | grep '^pgrec' | grep -v recommend
    done
    echo "pgrec ease on one thread (as the numpy peer below):"
    BENCH_THREADS=1 BENCH_SET="$set" cargo bench -q --bench recsys -- ease "$ease_params" 2>/dev/null \
        | grep '^pgrec ease  '
    data="$(pwd)/target/bench-splits/$set"
    [ "$set" = amazon-book ] && data="$(pwd)/../shared/data/amazon-book"
    # One OpenBLAS thread: with two, OpenBLAS 0.3.31 (numpy 2's wheel) crashes
    # (SIGSEGV) in dgetrf and dpotrf on amazon-book's 24,915 × 24,915 matrix
    # on this machine.
    echo "peers, same machine, same split (OPENBLAS_NUM_THREADS=1):"
    OPENBLAS_NUM_THREADS=1 "$VENV/bin/python" benches/item_item_peers.py "$data" "$LAMBDA" "$NEIGHBORS"
done
