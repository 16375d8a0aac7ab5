#!/usr/bin/env bash
# Side by side: pgrec's `kgat` (the pure core, `cargo bench --bench kgat`)
# against RecBole's KGAT class (PyPI's recbole on torch, driven by
# benches/kgat_peers.py as RecBole's KGAT trainer drives it) on the KGAT
# authors' split files, at the paper's settings (64 factors, layers
# [64, 32, 16], bi aggregator, message dropout 0.1, CF batch 1024, KG batch
# 2048, Adam at LR, L2 1e-5), both from random embeddings (no pretraining)
# for EPOCHS epochs without early stopping, both on 2 threads, evaluated
# with one protocol (pgrec's catalogue, all items ranked, training items
# excluded, Recall@20 and NDCG@20). Sets: fb943 (the first 943 users of
# ml-1m-kgat's Freebase variant) and ml1m (ml-1m-kgat with DBpedia). The
# peers install from PyPI into a virtualenv outside the repository
# ($PGREC_BENCH_VENV, default ~/.cache/pgrec-bench-venv). Not part of CI.
#
# Usage: ./benches/kgat_peers.sh                (SETS="fb943 ml1m" EPOCHS=3 LR=0.0001)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${PGREC_BENCH_VENV:-$HOME/.cache/pgrec-bench-venv}"
LR="${LR:-0.0001}"
EPOCHS="${EPOCHS:-3}"
if ! "$VENV/bin/python" -c "import torch, recbole" 2>/dev/null; then
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q torch numpy scipy
    # recbole's pins do not install on Python 3.11 as they are; its model
    # classes need only these.
    "$VENV/bin/pip" install -q --no-deps recbole
    "$VENV/bin/pip" install -q colorlog pandas tensorboard texttable colorama scikit-learn pyyaml
fi
for set in ${SETS:-fb943 ml1m}; do
    case "$set" in
        fb943) dir=../shared/data/ml-1m-kgat/freebase users=943 ;;
        ml1m) dir=../shared/data/ml-1m-kgat/dbpedia users=1000000000 ;;
        *) echo "unknown set $set: use fb943 or ml1m" >&2; exit 2 ;;
    esac
    if [ ! -f "$dir/train.txt" ]; then
        echo "skipped $set: $dir is absent (the datasets are not part of the repository)"
        continue
    fi
    echo "=== $set: $EPOCHS epochs from random embeddings, learning rate $LR ==="
    # BENCH_ALGORITHMS splits on spaces: the params have none.
    params="{\"iterations\":$EPOCHS,\"learning_rate\":$LR,\"patience\":0,\"pretrain_iterations\":0}"
    BENCH_ALGORITHMS="kgat:$params" cargo bench -q --bench kgat -- "$set" 2>/dev/null | grep -v '^$'
    "$VENV/bin/python" -W ignore benches/kgat_peers.py "$dir" "$users" "$EPOCHS" "$LR" 1024 2 | grep -v '^  recbole'
done
