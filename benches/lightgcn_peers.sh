#!/usr/bin/env bash
# Side by side: pgrec's `lightgcn` (the pure core, `cargo bench --bench
# recsys`) against RecBole's LightGCN class (PyPI's recbole on torch, driven
# by benches/lightgcn_peers.py as RecBole's trainer drives it), same split,
# same settings (3 layers, 64 factors, batch 2048, Adam, the same learning
# rate and L2), both on 2 threads, evaluated with one protocol (all items
# ranked, training items excluded, Recall@20 and NDCG@20). MovieLens 100K and
# music-kgcn (a random 20% of each user's items held out, seed 42, written by
# the pgrec bench to target/bench-splits/) train to EPOCHS_SMALL epochs;
# amazon-book (KGAT's split), where one RecBole epoch takes minutes, to
# EPOCHS_BOOK. The peers install from PyPI into a virtualenv outside the
# repository ($PGREC_BENCH_VENV, default ~/.cache/pgrec-bench-venv). Not part
# of CI.
#
# Usage: ./benches/lightgcn_peers.sh                 (EPOCHS_SMALL=100 EPOCHS_BOOK=3 LR=0.005)
#        SETS="ml100k music" ./benches/lightgcn_peers.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${PGREC_BENCH_VENV:-$HOME/.cache/pgrec-bench-venv}"
LR="${LR:-0.005}"
REG=1e-4
if ! "$VENV/bin/python" -c "import torch, recbole" 2>/dev/null; then
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q torch numpy scipy
    # recbole's pins (an old colorlog among them) do not install on Python
    # 3.11 as they are; its model classes need only these.
    "$VENV/bin/pip" install -q --no-deps recbole
    "$VENV/bin/pip" install -q colorlog pandas tensorboard texttable colorama scikit-learn pyyaml
fi
for set in ${SETS:-ml100k music amazon-book}; do
    epochs="${EPOCHS_SMALL:-100}"
    [ "$set" = amazon-book ] && epochs="${EPOCHS_BOOK:-3}"
    params="{\"iterations\": $epochs, \"learning_rate\": $LR, \"regularization\": $REG}"
    echo "=== $set: $epochs epochs, learning rate $LR, L2 $REG ==="
    out=$(BENCH_SET="$set" BENCH_THREADS=2 cargo bench -q --bench recsys -- lightgcn "$params" 2>/dev/null | grep -v '^$')
    if grep -q '^skipped' <<<"$out"; then echo "$out"; continue; fi
    echo "$out" | grep -v recommend
    data="$(pwd)/target/bench-splits/$set"
    [ "$set" = amazon-book ] && data="$(pwd)/../shared/data/amazon-book"
    "$VENV/bin/python" -W ignore benches/lightgcn_peers.py "$data" "$epochs" 3 "$LR" "$REG" 2048 2 | grep -v '^  recbole'
done
